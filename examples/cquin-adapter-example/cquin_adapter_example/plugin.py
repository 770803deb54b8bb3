"""The ``example-epr`` adapter: a pipe-delimited event export from an electronic patient record.

The export is one text file, ``epr_export.txt``, with a header line and one
line per event::

    NHS_NO|DOB|GENDER|EVENT_TYPE|EVENT_DATE|CODE_SCHEME|CODE|VALUE
    9992000015|12/06/1941|F|REG|03/11/2016|||
    9992000015|12/06/1941|F|DX|10/03/2015|SNOMED|44054006|
    9992000015|12/06/1941|F|PAM|14/06/2017||1|44.2
    9992000015|12/06/1941|F|CSP|05/07/2017|||N123

Event types and what they become:

- ``REG`` registration with the service starts an episode: one ``patients``
  row (DOB, GENDER, EVENT_DATE as served_from).
- ``DIS`` discharge ends the patient's open episode (served_to).  It is merged
  into the REG's row, so it is counted as accepted without a row of its own.
  Events for one patient are in date order in the export, so a DIS closes the
  last REG before it.
- ``DX`` diagnosis: one ``conditions`` row; CODE_SCHEME ``SNOMED`` or
  ``ICD10``, CODE the code, EVENT_DATE the recorded date.  Other schemes
  (``READ``, ``CTV3``) are rejected: cquin's code lists are SNOMED CT and ICD-10.
- ``PAM`` Patient Activation Measure: one ``assessments`` row; CODE the
  level (1-4, may be empty), VALUE the score (0-100, may be empty).
- ``CSP`` care and support planning conversation: one ``conversations``
  row; VALUE the staff id (may be empty).
- Anything else (appointments, letters, ...) is rejected as ignored, so the
  counts still balance.

Dates are UK style, DD/MM/YYYY (option ``dates=iso`` for YYYY-MM-DD exports);
the adapter passes them to the builder unchanged and registers the file with
``date_style="uk"``, so the builder parses and checks them.  GENDER is ``M``,
``F``, ``I`` (indeterminate), ``U`` (unknown) or empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cquin.adapters.base import Adapter, AdapterOption
from cquin.dataset import DatasetBuilder
from cquin.exceptions import DataError
from cquin.hookspecs import hookimpl

FILE_NAME = "epr_export.txt"
HEADER = ("NHS_NO", "DOB", "GENDER", "EVENT_TYPE", "EVENT_DATE", "CODE_SCHEME", "CODE", "VALUE")
EVENT_TYPES = ("REG", "DIS", "DX", "PAM", "CSP")
GENDERS = {"M": "male", "F": "female", "I": "indeterminate", "U": "unknown"}
SCHEMES = {"SNOMED": "snomed", "SNOMEDCT": "snomed", "SCT": "snomed", "ICD10": "icd10", "ICD-10": "icd10"}


def _empty_to_none(text: str) -> str | None:
    return text if text else None


def _header(path: Path) -> tuple[str, ...] | None:
    """The file's header fields, upper-cased, or None if it cannot be read as text."""
    try:
        with path.open("r", encoding="utf-8-sig", errors="strict") as fh:
            first = fh.readline(4096)
    except (OSError, UnicodeDecodeError):
        return None
    return tuple(f.strip().upper() for f in first.rstrip("\r\n").split("|"))


@dataclass
class _Episode:
    line: int
    nhs_number: str | None
    dob: str | None
    gender: str | None
    start: str | None
    end: str | None = None


class EprEventAdapter(Adapter):
    """Reads ``epr_export.txt`` (or a folder holding it) into patients, conditions, assessments and conversations."""

    name = "example-epr"
    description = "Example plugin: a pipe-delimited EPR event export (epr_export.txt: REG, DIS, DX, PAM and CSP events)"
    tables = ("patients", "conditions", "assessments", "conversations")
    options = (
        AdapterOption("dates", "Date format of EVENT_DATE and DOB: uk (DD/MM/YYYY) or iso (YYYY-MM-DD)", "uk", ("uk", "iso")),
    )

    @staticmethod
    def export_file(path: Path) -> Path | None:
        """The export file at ``path``: the file itself, or ``epr_export.txt`` inside a folder."""
        if path.is_dir():
            path = path / FILE_NAME
        return path if path.is_file() else None

    def detect(self, path: Path) -> bool:
        file = self.export_file(path)
        return file is not None and _header(file) == HEADER

    def load(self, path: Path, builder: DatasetBuilder, options: Mapping[str, str]) -> None:
        file = self.export_file(path)
        if file is None:
            raise DataError(f"{path}: no {FILE_NAME} here (the example-epr adapter reads that one file)")
        header = _header(file)
        if header is None:
            raise DataError(f"{file.name}: cannot be read as UTF-8 text")
        missing = [h for h in HEADER if h not in header]
        if missing:
            raise DataError(f"{file.name}: the header lacks {', '.join(missing)} (expected {'|'.join(HEADER)})")
        source = file.name
        builder.source(source, file, None, date_style=options.get("dates", "uk"))

        episodes: list[_Episode] = []
        open_episode: dict[str | None, _Episode] = {}
        rows: dict[str, list[dict[str, object]]] = {"conditions": [], "assessments": [], "conversations": []}
        with file.open("r", encoding="utf-8-sig") as fh:
            next(fh)  # the header
            for line_no, line in enumerate(fh, start=2):
                text = line.rstrip("\r\n")
                if not text.strip():
                    continue  # a blank line is not a record
                fields = text.split("|")
                if len(fields) != len(header):
                    builder.reject(
                        source,
                        line_no,
                        None,
                        text,
                        f"the line has {len(fields)} fields but the header has {len(header)} (fields are separated by '|')",
                    )
                    continue
                rec = {h: f.strip() for h, f in zip(header, fields, strict=True)}
                nhs = _empty_to_none(rec["NHS_NO"].replace(" ", ""))
                event = rec["EVENT_TYPE"].upper()
                when = _empty_to_none(rec["EVENT_DATE"])
                at = {"_file": source, "_line": line_no, "patient_id": nhs}
                if event == "REG":
                    if nhs in open_episode:
                        builder.reject(
                            source,
                            line_no,
                            "EVENT_TYPE",
                            "REG",
                            f"a second registration while the one on line {open_episode[nhs].line} is still open "
                            "(expected a DIS line between them)",
                        )
                        continue
                    gender = rec["GENDER"].upper()
                    episode = _Episode(line_no, nhs, _empty_to_none(rec["DOB"]), GENDERS.get(gender, rec["GENDER"] or None), when)
                    episodes.append(episode)
                    open_episode[nhs] = episode
                elif event == "DIS":
                    episode = open_episode.pop(nhs, None)
                    if episode is None:
                        builder.reject(
                            source,
                            line_no,
                            "EVENT_TYPE",
                            "DIS",
                            f"a discharge for NHS number {nhs} with no open registration before it (expected a REG line first)",
                        )
                        continue
                    episode.end = when
                    builder.accept_record(source, line_no)  # merged into the REG line's patients row
                elif event == "DX":
                    scheme = rec["CODE_SCHEME"].upper().replace(" ", "")
                    if scheme not in SCHEMES:
                        builder.reject(
                            source,
                            line_no,
                            "CODE_SCHEME",
                            rec["CODE_SCHEME"],
                            f"code scheme '{rec['CODE_SCHEME']}' is not used: cquin's code lists are SNOMED CT and ICD-10 "
                            "(expected SNOMED or ICD10)",
                        )
                        continue
                    rows["conditions"].append(at | {"code_system": SCHEMES[scheme], "code": rec["CODE"], "recorded_on": when})
                elif event == "PAM":
                    rows["assessments"].append(
                        at
                        | {
                            "assessed_on": when,
                            "respondent": "patient",
                            "instrument": "pam",
                            "pam_level": _empty_to_none(rec["CODE"]),
                            "pam_score": _empty_to_none(rec["VALUE"]),
                        }
                    )
                elif event == "CSP":
                    rows["conversations"].append(at | {"held_on": when, "staff_id": _empty_to_none(rec["VALUE"])})
                else:
                    builder.reject(
                        source,
                        line_no,
                        "EVENT_TYPE",
                        rec["EVENT_TYPE"],
                        f"ignored: event type '{rec['EVENT_TYPE']}' is not one cquin reads ({', '.join(EVENT_TYPES)})",
                    )

        builder.add_rows(
            "patients",
            (
                {
                    "_file": source,
                    "_line": e.line,
                    "patient_id": e.nhs_number,
                    "date_of_birth": e.dob,
                    "sex": e.gender,
                    "served_from": e.start,
                    "served_to": e.end,
                }
                for e in episodes
            ),
        )
        for table_name, staged in rows.items():
            builder.add_rows(table_name, staged)
        if not episodes:
            builder.note(f"{source}: no REG events, so there are no patients")


@hookimpl
def cquin_register_adapters(register) -> None:  # type: ignore[no-untyped-def]
    """cquin calls this once at start-up: add the adapter class to the registry."""
    register.add(EprEventAdapter)
