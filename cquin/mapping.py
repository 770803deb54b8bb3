"""Adapter mappings: a YAML file that tells the ``mapped`` adapter how to read an export, for IT teams who do not write Python.

A mapping (``mapping_version: 1``, checked against ``cquin/schemas/mapping.schema.json``) says, per canonical
table, which file or sheet holds it, how the file is written (delimiter, encoding, date formats, lines before
the header), which rows to skip, and where each canonical column comes from: a source column (with an optional
value map, which is also how code systems are named), a constant, or a local patient id looked up in the
patients table.  It is data: nothing in it is evaluated or run.  Every problem is reported at
``file:line:column`` (:func:`check_mapping`); :func:`draft_mapping` proposes one from the headers of an export.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cquin.config.located import load_checked
from cquin.config.yaml_source import SourceDocument
from cquin.dataset.tables import TABLE_NAMES, table
from cquin.exceptions import ConfigError

MAPPING_FILE = "cquin-mapping.yaml"  # a mapping kept in the export folder is found without --mapping

# The date formats a mapping may name, as DuckDB strptime formats (names, not format strings: nothing is interpreted).
DATE_FORMATS = {
    "YYYY-MM-DD": "%Y-%m-%d",
    "DD/MM/YYYY": "%d/%m/%Y",
    "DD-MM-YYYY": "%d-%m-%Y",
    "DD.MM.YYYY": "%d.%m.%Y",
    "DD-Mon-YYYY": "%d-%b-%Y",
    "DD Mon YYYY": "%d %b %Y",
    "YYYYMMDD": "%Y%m%d",
    "MM/DD/YYYY": "%m/%d/%Y",
    "DD/MM/YYYY HH:MM": "%d/%m/%Y %H:%M",
    "DD/MM/YYYY HH:MM:SS": "%d/%m/%Y %H:%M:%S",
    "YYYY-MM-DD HH:MM:SS": "%Y-%m-%d %H:%M:%S",
    "YYYY-MM-DDTHH:MM:SS": "%Y-%m-%dT%H:%M:%S",
}
DELIMITERS = {"auto": None, "comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|"}
ENCODINGS = {"auto": None, "utf-8": "utf-8", "windows-1252": "cp1252", "latin-1": "latin-1"}


@dataclass(frozen=True)
class ColumnSource:
    """Where one canonical column's value comes from."""

    canonical: str
    column: str | None = None  # source header name, lower-cased
    constant: str | None = None
    patient_key: str | None = None  # source header name holding the local patient id
    values: dict[str, str] = field(default_factory=dict)  # lower-cased, trimmed source value -> canonical value
    where: str = ""  # file:line:column in the mapping
    optional: bool = False  # `columns: canonical`: the file may leave the column out (then it is empty)

    @property
    def source_columns(self) -> list[str]:
        return [c for c in (self.column, self.patient_key) if c]


@dataclass(frozen=True)
class SkipRule:
    column: str
    values: tuple[str, ...]
    reason: str
    where: str = ""


@dataclass(frozen=True)
class TableMapping:
    name: str
    file: str
    sheet: str | None
    delimiter: str | None
    encoding: str | None
    date_formats: tuple[str, ...]  # DuckDB strptime formats
    skip_lines: int
    skip_rows: tuple[SkipRule, ...]
    keep_rows: tuple[SkipRule, ...]
    columns: dict[str, ColumnSource]
    where: str = ""


@dataclass(frozen=True)
class Mapping:
    path: Path
    name: str
    tables: dict[str, TableMapping]
    patient_key: str | None  # the patients table's column holding the local id
    patient_key_where: str = ""


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def check_mapping(path: Path) -> tuple[Mapping | None, list[str]]:
    """The mapping and every problem with it (schema and meaning), each at ``file:line:column``."""
    doc, problems = load_checked(path, "mapping")
    if problems:
        return None, problems
    return _build(path, doc)


def load_mapping(path: Path) -> Mapping:
    """The mapping at ``path``, or ConfigError listing every problem."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such mapping file")
    mapping, problems = check_mapping(path)
    if problems or mapping is None:
        raise ConfigError(f"{path}: the mapping has {len(problems)} problem(s)\n" + "\n".join(f"  {p}" for p in problems))
    return mapping


def _build(path: Path, doc: SourceDocument) -> tuple[Mapping | None, list[str]]:
    d = doc.data
    problems: list[str] = []
    defaults = d.get("defaults") or {}
    key = (d.get("patient_key") or {}).get("key")
    tables: dict[str, TableMapping] = {}
    for name, spec in d["tables"].items():
        t = table(name)
        here = ("tables", name)
        cols: dict[str, ColumnSource] = {}
        if spec["columns"] == "canonical":
            spec = {**spec, "columns": {c: {"column": c} for c in t.column_names}}
            optional = True
        else:
            optional = False
        for canonical, src in spec["columns"].items():
            where = str(doc.locate((*here, "columns", canonical)))
            if canonical not in t.column_names:
                problems.append(
                    f"{where}: {canonical!r} is not a column of the {name} table (its columns: {', '.join(t.column_names)})"
                )
                continue
            given = [k for k in ("column", "constant", "patient_key") if k in src]
            if len(given) != 1:
                problems.append(
                    f"{where}: {canonical} needs exactly one of column, constant or patient_key (found {', '.join(given) or 'none'})"
                )
                continue
            if "values" in src and given[0] != "column":
                problems.append(f"{where}: {canonical}: a value map applies to a source column, not a {given[0]}")
                continue
            if "patient_key" in src and (canonical != "patient_id" or key is None):
                problems.append(
                    f"{where}: {canonical}: patient_key looks up a local patient id, so it fills patient_id only, "
                    "and needs a patient_key section naming the patients table's local id column"
                )
                continue
            values = {_text(k).strip().lower(): _text(v) for k, v in (src.get("values") or {}).items()}
            cols[canonical] = ColumnSource(
                canonical,
                column=src["column"].strip().lower() if "column" in src else None,
                constant=_text(src["constant"]) if "constant" in src else None,
                patient_key=src["patient_key"].strip().lower() if "patient_key" in src else None,
                values=values,
                where=where,
                optional=optional and canonical not in t.required_columns,
            )
        missing = [c for c in t.required_columns if c not in spec["columns"]]
        if missing:
            problems.append(f"{doc.locate((*here, 'columns'))}: the {name} table needs {', '.join(missing)} (required)")
        fmt = {**defaults, **{k: spec[k] for k in ("delimiter", "encoding", "date_formats", "skip_lines") if k in spec}}
        rules = {
            kind: tuple(
                SkipRule(
                    r["column"].strip().lower(),
                    tuple(_text(v).strip().lower() for v in r["values"]),
                    r["reason"],
                    str(doc.locate((*here, kind, i))),
                )
                for i, r in enumerate(spec.get(kind) or [])
            )
            for kind in ("skip_rows", "keep_rows")
        }
        tables[name] = TableMapping(
            name=name,
            file=spec["file"],
            sheet=spec.get("sheet"),
            delimiter=DELIMITERS[fmt.get("delimiter", "auto")],
            encoding=ENCODINGS[fmt.get("encoding", "auto")],
            date_formats=tuple(DATE_FORMATS[f] for f in fmt.get("date_formats", ["YYYY-MM-DD"])),
            skip_lines=int(fmt.get("skip_lines", 0)),
            skip_rows=rules["skip_rows"],
            keep_rows=rules["keep_rows"],
            columns=cols,
            where=str(doc.locate(here)),
        )
    if key is not None:
        pid = tables.get("patients")
        if pid is not None and "patient_id" in pid.columns and pid.columns["patient_id"].column is None:
            problems.append(
                f"{doc.locate(('patient_key',))}: the patients table must take patient_id from a column (the NHS number)"
            )
    if problems:
        return None, problems
    return Mapping(
        path, str(d.get("name") or path.name), tables, key.strip().lower() if key else None, str(doc.locate(("patient_key",)))
    ), []


# ----------------------------------------------------------------------------- draft

# Words in vendor headers that point to a canonical column (matched on the header with non-letters removed).
_HINTS: dict[str, dict[str, tuple[str, ...]]] = {
    "patients": {
        "patient_id": ("nhsnumber", "nhsno", "nhs"),
        "date_of_birth": ("dateofbirth", "dob", "birthdate", "datebirth"),
        "sex": ("sex", "gender"),
        "served_from": ("referraldate", "referralreceived", "datereferral", "startdate", "admissiondate", "servedfrom"),
        "served_to": ("dischargedate", "enddate", "datedischarge", "servedto"),
    },
    "conditions": {
        "patient_id": ("nhsnumber", "nhsno"),
        "code_system": ("codingscheme", "codesystem", "scheme", "terminology"),
        "code": ("snomedcode", "conceptid", "code", "diagnosiscode", "readcode"),
        "recorded_on": ("daterecorded", "recordeddate", "eventdate", "dateevent", "effectivedate", "diagnosisdate", "date"),
    },
    "assessments": {
        "patient_id": ("nhsnumber", "nhsno"),
        "assessed_on": ("assessmentdate", "dateassessed", "completiondate", "eventdate", "date"),
        "respondent": ("respondent", "completedby"),
        "instrument": ("instrument", "tool", "assessmenttype"),
        "pam_score": ("pamscore", "score"),
        "pam_level": ("pamlevel", "level"),
    },
    "conversations": {
        "patient_id": ("nhsnumber", "nhsno"),
        "held_on": ("contactdate", "appointmentdate", "eventdate", "date"),
        "staff_id": ("staffid", "clinicianid", "userid", "performer", "staff"),
    },
    "care_plans": {
        "patient_id": ("nhsnumber", "nhsno"),
        "plan_id": ("careplanid", "planid", "careplanidentifier"),
        "agreed_on": ("agreeddate", "dateagreed", "planagreed", "careplanagreeddate"),
        "shared_with_patient": ("shared", "copytopatient", "patientcopy"),
        "entry": ("entrytype", "itemtype", "entry"),
        "category": ("category", "servicetype", "needcategory"),
        "entry_on": ("entrydate", "referraldate", "itemdate"),
    },
    "staff": {
        "staff_id": ("staffid", "userid", "id"),
        "role": ("role", "jobtitle", "jobcategory"),
        "cares_for_cohort": ("cohort", "caresfor"),
    },
    "training": {"staff_id": ("staffid", "userid"), "completed_on": ("completed", "date"), "course": ("course", "module")},
}
_FILE_HINTS = {
    "patients": ("patient", "caseload", "referral", "demograph", "person"),
    "conditions": ("condition", "diagnos", "problem", "code", "observation"),
    "assessments": ("assess", "pam", "activation"),
    "care_plans": ("careplancontent", "careplanitem", "planitem", "needs", "goals", "referral"),
    "conversations": ("conversation", "contact", "careplan", "appointment", "activity"),
    "staff": ("staff", "user", "workforce"),
    "training": ("training", "learning"),
}


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def draft_mapping(export: Path) -> str:
    """A mapping proposed from the headers of the files in ``export``, as YAML with TODOs for a person to finish."""
    from cquin.dataset.csvread import CsvFormat, detect_delimiter, first_text
    from cquin.dataset.xlsxread import Sheet, is_workbook, sheet_names

    if not export.is_dir():
        raise ConfigError(f"{export}: give the export folder (its files' headers are what the draft is made from)")
    sources: list[tuple[str, str | None, list[str], str | None]] = []  # file, sheet, header, delimiter
    skips: dict[str, int] = {}
    for f in sorted(p for p in export.iterdir() if p.is_file()):
        if is_workbook(f):
            for s in sheet_names(f):
                sources.append((f.name, s, Sheet(f, s).header(), None))
        elif f.suffix.lower() in (".csv", ".txt", ".tsv", ".psv"):
            import csv as _csv

            from cquin.dataset.csvread import encoding_for

            lines = first_text(f, encoding_for(f, CsvFormat())).splitlines()[:20]
            # A report's title and run details come before its header: the header is the first line that
            # splits into several columns (with the delimiter that splits it most).
            skip, delim, header = 0, ",", []
            for i, line in enumerate(lines):
                delim = detect_delimiter(line, [])
                header = [h.strip() for h in next(_csv.reader([line], delimiter=delim), [])]
                if len([h for h in header if h]) >= 2:
                    skip = i
                    break
            sources.append((f.name, None, header, delim))
            skips[f.name] = skip
    doc: dict[str, Any] = {
        "mapping_version": 1,
        "name": f"TODO: describe the export in {export.name}",
        "defaults": {"date_formats": ["DD/MM/YYYY", "YYYY-MM-DD"]},
        "tables": {},
    }
    used: set[tuple[str, str | None]] = set()
    todo: list[str] = []
    for name in TABLE_NAMES:
        hints = _HINTS.get(name)
        if not hints:
            continue
        best, best_score = None, 0
        for src in sources:
            if (src[0], src[1]) in used:
                continue
            squashed = [_squash(h) for h in src[2]]
            score = sum(any(any(w in h for w in words) for h in squashed) for words in hints.values())
            score += 2 * any(w in _squash(f"{src[0]} {src[1] or ''}") for w in _FILE_HINTS.get(name, ()))
            if score > best_score:
                best, best_score = src, score
        if best is None or best_score < 2:
            continue
        used.add((best[0], best[1]))
        spec: dict[str, Any] = {"file": best[0]}
        if best[1]:
            spec["sheet"] = best[1]
        if best[3] and best[3] != ",":
            spec["delimiter"] = {";": "semicolon", "\t": "tab", "|": "pipe"}[best[3]]
        if skips.get(best[0]):
            spec["skip_lines"] = skips[best[0]]
        cols: dict[str, Any] = {}
        for canonical in table(name).column_names:
            words = hints.get(canonical, ())
            match = next((h for w in words for h in best[2] if w in _squash(h)), None)
            if match:
                cols[canonical] = {"column": match}
            elif canonical in table(name).required_columns:
                cols[canonical] = {"column": f"TODO: the column holding {canonical}"}
                todo.append(f"{name}.{canonical}")
        if "sex" in cols:
            cols["sex"]["values"] = {"M": "male", "F": "female", "U": "unknown", "I": "indeterminate"}
        spec["columns"] = cols
        doc["tables"][name] = spec
    preface = (
        "# Drafted by `cquin mapping draft` from the headers it found: check every line, replace each TODO,\n"
        "# then run `cquin mapping check` on it.  Nothing in a mapping is executed.\n"
    )
    if todo:
        preface += f"# Still to do: {', '.join(todo)}\n"
    return preface + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
