"""Import a code list downloaded from OpenCodelists into a ruleset code list file (``code,term,source``).

OpenCodelists downloads come in a few shapes: ``code,term`` (most lists),
``id,name`` (older lists), ``dmd_type,dmd_id,dmd_name,bnf_code`` (dm+d), and
user uploads with extra columns.  The code and term columns are found by
name; every code is checked (SNOMED CT check digit and partition, ICD-10
format) and duplicates are dropped with a note.  The source (the OpenCodelists
id ``org/codelist/version``) is written on every row and into the YAML
``code_lists:`` entry printed for the ruleset.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from cquin.engine import codes
from cquin.exceptions import UserError

CODE_COLUMNS = (
    "code",
    "id",
    "dmd_id",
    "snomedct_id",
    "snomed_id",
    "snomed_code",
    "snomedcode",
    "conceptid",
    "concept_id",
    "icd10_code",
    "icd_code",
)
TERM_COLUMNS = ("term", "name", "dmd_name", "description", "concept_name", "term_name", "preferred_term", "fully_specified_name")
_ICD10_UNDOTTED = re.compile(r"^([A-Z][0-9]{2})([0-9A-Z]{1,2})$")


@dataclass
class Imported:
    """A code list read from a download: its rows and what was wrong with the others."""

    rows: list[tuple[str, str]]  # (code, term), in file order
    code_column: str
    term_column: str | None
    problems: list[str] = field(default_factory=list)  # "line N: why", codes that fail their check
    duplicates: list[str] = field(default_factory=list)


def read_download(path: Path, system: str, code_column: str | None = None, term_column: str | None = None) -> Imported:
    """Read an OpenCodelists CSV download; find its code and term columns by name."""
    if system not in ("snomed", "icd10", "local"):
        raise UserError(f"--system {system!r}: expected snomed, icd10 or local")
    from cquin.engine.ruleset import MAX_CODE_LIST_BYTES
    from cquin.files import read_capped

    data = read_capped(path, limit=4 * MAX_CODE_LIST_BYTES, what="code list download")  # downloads carry extra columns
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text))
    headers = [h for h in (reader.fieldnames or []) if h is not None]
    by_lower = {h.strip().lower(): h for h in headers}
    code_col = _pick(by_lower, code_column, CODE_COLUMNS, path, "code")
    term_col = _pick(by_lower, term_column, TERM_COLUMNS, path, "term", required=False)
    out = Imported([], code_col, term_col)
    seen: dict[str, int] = {}
    from cquin.engine.ruleset import MAX_CODES_PER_LIST

    for row in reader:
        line = reader.line_num
        if len(out.rows) >= MAX_CODES_PER_LIST:
            raise UserError(
                f"{path}: more than {MAX_CODES_PER_LIST:,} codes (line {line}); a ruleset's code list may hold at most "
                "that many (each evaluation matches every record against it): is it the right download?"
            )
        raw = (row.get(code_col) or "").strip()
        if not raw and not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue  # a blank line
        code = tidy(system, raw)
        problem = codes.check_code(system, code)
        if problem:
            out.problems.append(f"line {line}: {problem}")
            continue
        norm = codes.normalise(system, code)
        if norm in seen:
            out.duplicates.append(f"line {line}: {code} is listed twice (first on line {seen[norm]})")
            continue
        seen[norm] = line
        out.rows.append((code, " ".join((row.get(term_col) or "").split()) if term_col else ""))
    if not out.rows and not out.problems:
        raise UserError(f"{path}: no codes found in column {code_col!r}")
    return out


def _pick(
    by_lower: dict[str, str], chosen: str | None, candidates: tuple[str, ...], path: Path, what: str, required: bool = True
) -> str:
    if chosen:
        if chosen.lower() not in by_lower:
            raise UserError(f"{path}: no column {chosen!r} (columns: {', '.join(by_lower.values())})")
        return by_lower[chosen.lower()]
    for name in candidates:
        if name in by_lower:
            return by_lower[name]
    if required:
        raise UserError(
            f"{path}: cannot tell which column holds the {what}s (columns: {', '.join(by_lower.values()) or 'none'}); "
            f"name it with --{what}-column"
        )
    return ""


def tidy(system: str, code: str) -> str:
    """ICD-10 codes are written dotted (I10.0) as in the bundled lists; OpenCodelists writes them undotted (I100)."""
    if system == "icd10":
        code = code.upper().rstrip("X-").strip()
        m = _ICD10_UNDOTTED.match(code)
        if m:
            return f"{m[1]}.{m[2]}"
    return code


def write_code_list(imported: Imported, out: Path, source: str) -> None:
    """Write ``code,term,source`` rows, sorted as the bundled lists are (SNOMED numerically, others by text)."""
    rows = sorted(imported.rows, key=lambda r: (len(r[0]), r[0]) if r[0].isdigit() else (0, r[0]))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["code", "term", "source"])
        for code, term in rows:
            w.writerow([code, term, source])


def version_of(source: str) -> str:
    """The version in an OpenCodelists id (``org/codelist/version``), or '' if it has none."""
    parts = [p for p in source.split("/") if p]
    return parts[-1] if len(parts) >= 3 else ""


def yaml_entry(list_id: str, system: str, file: str, title: str, source: str, version: str, count: int) -> str:
    """The ``code_lists:`` entry to paste into a ruleset."""
    q = _quote
    return (
        "code_lists:\n"
        f"  {list_id}:\n"
        f"    system: {system}\n"
        f"    file: {file}\n"
        f"    title: {q(title)}\n"
        "    sources:\n"
        f'      - {{id: {q(source)}, publisher: "OpenCodelists", version: {q(version or "unknown")}}}\n'
        f"    version: {q(version or 'unknown')}\n"
        f"    notes: {q(f'Imported from the OpenCodelists download {source} ({count} codes).')}\n"
    )


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def list_id_for(out: Path, system: str) -> str:
    """A code list id from the output file name: stroke.snomed.csv -> stroke_snomed."""
    stem = out.name.split(".")[0]
    ident = re.sub(r"[^a-z0-9_]+", "_", stem.lower()).strip("_") or "imported"
    if not ident[0].isalpha():
        ident = "list_" + ident
    return ident if ident.endswith(f"_{system}") else f"{ident}_{system}"
