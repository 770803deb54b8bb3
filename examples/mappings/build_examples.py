"""Build the three example exports and their canonical copies from one synthetic population.

    .venv/bin/python examples/mappings/build_examples.py

Each example folder holds an export in a vendor's style, the mapping that reads it (``cquin-mapping.yaml``)
and ``canonical/``: the same records as cquin's canonical files.  The formats are written from the vendors'
public descriptions of their extracts (see each mapping's ``source``); they are illustrations, not official
formats.  Every value is synthetic (NHS numbers in the 999 test range).  The same run writes the same files.
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from cquin.demo.generate import generate  # noqa: E402

PATIENTS, SEED = 120, 15


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def write(
    path: Path,
    header: list[str],
    rows: list[list[str]],
    *,
    delimiter: str = ",",
    preamble: list[str] = (),
    bom: bool = False,
    crlf: bool = False,
) -> None:  # type: ignore[assignment]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as fh:
        for line in preamble:
            fh.write(line + ("\r\n" if crlf else "\n"))
        w = csv.writer(fh, delimiter=delimiter, lineterminator="\r\n" if crlf else "\n")
        w.writerow(header)
        w.writerows(rows)


def write_canonical(folder: Path, tables: dict[str, list[dict[str, str]]]) -> None:
    for name, rows in tables.items():
        if not rows:
            continue
        header = list(rows[0])
        write(folder / f"{name}.csv", header, [[r[c] for c in header] for r in rows])


def uk(date: str) -> str:
    return dt.date.fromisoformat(date).strftime("%d/%m/%Y") if date else ""


def guid(seed: str) -> str:
    return "{" + str(uuid.uuid5(uuid.NAMESPACE_URL, "cquin-example:" + seed)).upper() + "}"


def population() -> dict[str, list[dict[str, str]]]:
    with tempfile.TemporaryDirectory(prefix="cquin-examples-") as tmp:
        generate(Path(tmp), PATIENTS, SEED, bad_rows=False)
        return {p.stem: read(p) for p in Path(tmp).glob("*.csv")}


def systmone(pop: dict[str, list[dict[str, str]]], out: Path) -> None:
    """A SystmOne-style set of clinical report outputs: title lines above the header, DD/MM/YYYY, SNOMED CT and ICD-10."""
    sex = {"male": "M", "female": "F", "unknown": "U", "indeterminate": "I", "": ""}
    title = lambda name: [f"Report: CQUIN 11 PCSP - {name}", "Run by: Performance Team on 02/04/2019 09:14", ""]  # noqa: E731
    write(
        out / "Caseload.csv",
        ["NHS Number", "Date of Birth", "Gender", "Referral Date", "Discharge Date"],
        [
            [p["patient_id"], uk(p["date_of_birth"]), sex[p["sex"]], uk(p["served_from"]), uk(p["served_to"])]
            for p in pop["patients"]
        ],
        preamble=title("Caseload"),
        crlf=True,
    )
    scheme = {"snomed": "SNOMED CT", "icd10": "ICD-10"}
    conditions = [c for c in pop["conditions"] if c["code_system"] in scheme]
    write(
        out / "Clinical Codes.csv",
        ["NHS Number", "Date Recorded", "Coding Scheme", "Code", "Code Term"],
        [[c["patient_id"], uk(c["recorded_on"]), scheme[c["code_system"]], c["code"], ""] for c in conditions],
        preamble=title("Long-term conditions"),
        crlf=True,
    )
    tool = {"pam": "PAM", "gpps": "GPPS"}
    write(
        out / "Activation.csv",
        [
            "NHS Number",
            "Assessment Date",
            "Completed By",
            "Assessment Tool",
            "PAM Score",
            "PAM Level",
            "Q32 Answer",
            "Q33 Answer",
        ],
        [
            [
                a["patient_id"],
                uk(a["assessed_on"]),
                a["respondent"].title(),
                tool[a["instrument"]],
                a["pam_score"],
                a["pam_level"],
                a["gpps_q32"],
                a["gpps_q33"],
            ]
            for a in pop["assessments"]
        ],
        preamble=title("Activation assessments"),
        crlf=True,
    )
    contacts = [[c["patient_id"], uk(c["held_on"]), c["staff_id"], "Attended"] for c in pop["conversations"]]
    # A report also lists contacts that did not happen: the mapping skips them (counted as ignored).
    contacts += [[c["patient_id"], uk(c["held_on"]), c["staff_id"], "Did not attend"] for c in pop["conversations"][:7]]
    write(
        out / "Care Planning Contacts.csv",
        ["NHS Number", "Contact Date", "Staff ID", "Outcome"],
        contacts,
        preamble=title("Contacts"),
        crlf=True,
    )
    canonical = {**pop, "conditions": conditions}
    write_canonical(out / "canonical", canonical)
    for name in ("staff", "training", "provider", "overrides"):
        (out / f"{name}.csv").write_bytes((out / "canonical" / f"{name}.csv").read_bytes())


def emis(pop: dict[str, list[dict[str, str]]], out: Path) -> None:
    """An EMIS-style extract: tab-separated tables keyed by PatientGuid, SNOMED CT observations, M/F sex."""
    key = {p["patient_id"]: guid(p["patient_id"]) for p in pop["patients"]}
    sex = {"male": "M", "female": "F", "unknown": "U", "indeterminate": "I", "": ""}
    write(
        out / "Admin_Patient.txt",
        ["PatientGuid", "NhsNumber", "DateOfBirth", "Sex", "ReferralReceivedDate", "DischargeDate"],
        [
            [key[p["patient_id"]], p["patient_id"], p["date_of_birth"], sex[p["sex"]], p["served_from"], p["served_to"]]
            for p in pop["patients"]
        ],
        delimiter="\t",
    )
    conditions = [c for c in pop["conditions"] if c["code_system"] == "snomed"]
    levels = [a for a in pop["assessments"] if a["instrument"] == "pam" and a["respondent"] == "patient" and a["pam_level"]]
    obs = [
        [guid(f"obs{i}"), key[c["patient_id"]], f"{c['recorded_on']} 00:00:00", c["code"], ""] for i, c in enumerate(conditions)
    ]
    obs += [
        [guid(f"pam{i}"), key[a["patient_id"]], f"{a['assessed_on']} 00:00:00", "962851000000103", a["pam_level"]]
        for i, a in enumerate(levels)
    ]
    write(
        out / "CareRecord_Observation.txt",
        ["ObservationGuid", "PatientGuid", "EffectiveDate", "SnomedCTConceptId", "NumericValue"],
        obs,
        delimiter="\t",
    )
    staff_guid = {s["staff_id"]: guid("staff" + s["staff_id"]) for s in pop["staff"]}
    write(
        out / "CareRecord_Consultation.txt",
        ["ConsultationGuid", "PatientGuid", "EffectiveDate", "UserInRoleGuid", "ConsultationType"],
        [
            [guid(f"con{i}"), key[c["patient_id"]], c["held_on"], staff_guid.get(c["staff_id"], ""), "Care and support planning"]
            for i, c in enumerate(pop["conversations"])
        ],
        delimiter="\t",
    )
    staff = [{**s, "staff_id": staff_guid[s["staff_id"]]} for s in pop["staff"]]
    training = [{**t, "staff_id": staff_guid[t["staff_id"]]} for t in pop["training"]]
    assessments = [
        {
            "patient_id": a["patient_id"],
            "assessed_on": a["assessed_on"],
            "respondent": "patient",
            "instrument": "pam",
            "pam_score": "",
            "pam_level": a["pam_level"],
            "gpps_q32": "",
            "gpps_q33": "",
        }
        for a in levels
    ]
    conversations = [{**c, "staff_id": staff_guid.get(c["staff_id"], "")} for c in pop["conversations"]]
    canonical = {
        **pop,
        "conditions": conditions,
        "assessments": assessments,
        "conversations": conversations,
        "staff": staff,
        "training": training,
    }
    write_canonical(out / "canonical", canonical)
    for name in ("staff", "training", "provider", "overrides"):
        (out / f"{name}.csv").write_bytes((out / "canonical" / f"{name}.csv").read_bytes())


def csds_flat(pop: dict[str, list[dict[str, str]]], out: Path) -> None:
    """CSDS-like flat files: pipe-separated, headed by CSDS data item names, coded as CSDS codes them."""
    gender = {"male": "1", "female": "2", "indeterminate": "9", "unknown": "X", "": ""}
    write(
        out / "csds_referrals.txt",
        [
            "NHS NUMBER",
            "PERSON BIRTH DATE",
            "PERSON STATED GENDER CODE",
            "REFERRAL REQUEST RECEIVED DATE",
            "SERVICE DISCHARGE DATE",
        ],
        [[p["patient_id"], p["date_of_birth"], gender[p["sex"]], p["served_from"], p["served_to"]] for p in pop["patients"]],
        delimiter="|",
    )
    scheme = {"icd10": "02", "snomed": "06"}
    conditions = [c for c in pop["conditions"] if c["code_system"] in scheme]
    write(
        out / "csds_diagnoses.txt",
        ["NHS NUMBER", "DIAGNOSIS SCHEME IN USE", "PRIMARY DIAGNOSIS", "DIAGNOSIS DATE"],
        [[c["patient_id"], scheme[c["code_system"]], c["code"], c["recorded_on"]] for c in conditions],
        delimiter="|",
    )
    levels = [a for a in pop["assessments"] if a["instrument"] == "pam" and a["respondent"] == "patient" and a["pam_level"]]
    rows = [[a["patient_id"], "962851000000103", a["pam_level"], a["assessed_on"]] for a in levels]
    rows += [[a["patient_id"], "248240001", "3", a["assessed_on"]] for a in levels[:5]]  # another tool: ignored by the mapping
    write(
        out / "csds_coded_assessments.txt",
        ["NHS NUMBER", "CODED ASSESSMENT TOOL TYPE (SNOMED CT)", "PERSON SCORE", "ASSESSMENT TOOL COMPLETION DATE"],
        rows,
        delimiter="|",
    )
    write(
        out / "csds_care_contacts.txt",
        ["NHS NUMBER", "CARE CONTACT DATE", "CARE PROFESSIONAL LOCAL IDENTIFIER", "ATTENDED OR DID NOT ATTEND"],
        [[c["patient_id"], c["held_on"], c["staff_id"], "5"] for c in pop["conversations"]]
        + [[c["patient_id"], c["held_on"], c["staff_id"], "3"] for c in pop["conversations"][:4]],
        delimiter="|",
    )
    assessments = [
        {
            "patient_id": a["patient_id"],
            "assessed_on": a["assessed_on"],
            "respondent": "patient",
            "instrument": "pam",
            "pam_score": "",
            "pam_level": a["pam_level"],
            "gpps_q32": "",
            "gpps_q33": "",
        }
        for a in levels
    ]
    write_canonical(out / "canonical", {**pop, "conditions": conditions, "assessments": assessments})
    for name in ("staff", "training", "provider", "overrides"):
        (out / f"{name}.csv").write_bytes((out / "canonical" / f"{name}.csv").read_bytes())


def main() -> None:
    pop = population()
    for name, build in (("systmone-style", systmone), ("emis-style", emis), ("csds-flat", csds_flat)):
        folder = HERE / name
        mapping = (folder / "cquin-mapping.yaml").read_bytes() if (folder / "cquin-mapping.yaml").exists() else None
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir()
        if mapping is not None:
            (folder / "cquin-mapping.yaml").write_bytes(mapping)
        build(pop, folder)
        print(f"wrote {folder}")


if __name__ == "__main__":
    main()
