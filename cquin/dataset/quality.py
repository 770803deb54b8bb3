"""The data-quality check: is a run's data too damaged to pay on?

A run is still evaluated and stored whatever its data, but when a data file lost
more than a share of its records to rejections (a small file: more than a count),
or a required file was rejected entirely, the run is marked as failing this check.
Every output then says so first, with the top reasons and the fix, and the command
exits with :data:`cquin.exceptions.DATA_QUALITY_EXIT` unless the user accepted the
rejections explicitly.  This is the guard against a confident total built on data
that mostly failed to load.  The limits are cquin's settings, not CQUIN policy:
``cquin/config/data_quality.yaml`` (a site may point ``CQUIN_DATA_QUALITY`` at its
own file) and ``--max-rejected-share`` for one run.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any

from cquin.dataset.ledger import Ledger
from cquin.exceptions import ConfigError, UserError

PASSED, FAILED, ACCEPTED = "passed", "failed", "accepted"


@dataclass(frozen=True)
class QualityLimits:
    """When a file's rejections fail the run (see ``cquin/config/data_quality.yaml``)."""

    max_rejected_share: Fraction
    judge_by_count_below: int
    max_rejected_records: int
    required_tables: tuple[str, ...]
    source: str = "cquin/config/data_quality.yaml"

    @property
    def share_text(self) -> str:
        return percent_text(self.max_rejected_share)

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_rejected_share": self.share_text,
            "judge_by_count_below": self.judge_by_count_below,
            "max_rejected_records": self.max_rejected_records,
            "required_tables": list(self.required_tables),
            "source": self.source,
        }


def percent_text(f: Fraction) -> str:
    pct = f * 100
    return f"{pct.numerator // pct.denominator}%" if pct.denominator == 1 else f"{float(pct):.4g}%"


def parse_share(text: str, where: str) -> Fraction:
    """'10%', '10' or '0.1'-style shares as an exact fraction; UserError otherwise."""
    t = str(text).strip()
    m = re.fullmatch(r"([0-9]{1,3}(?:\.[0-9]+)?)\s*%?", t)
    if not m:
        raise UserError(f"{where} {text!r}: expected a percentage such as 10% or 2.5%")
    value = Fraction(m.group(1)) / 100
    if value > 1:
        raise UserError(f"{where} {text!r}: a share cannot be more than 100%")
    return value


def load_limits(path: Path | None = None) -> QualityLimits:
    """The data-quality limits: ``path``, else ``$CQUIN_DATA_QUALITY``, else the bundled defaults."""
    from cquin.config.located import load_checked

    chosen = path or (Path(os.environ["CQUIN_DATA_QUALITY"]) if os.environ.get("CQUIN_DATA_QUALITY") else None)
    if chosen is None:
        text = resources.files("cquin.config").joinpath("data_quality.yaml").read_text(encoding="utf-8")
        doc, problems = load_checked(None, "data_quality", text=text, shown="cquin/config/data_quality.yaml")
    else:
        if not chosen.is_file():
            raise ConfigError(f"{chosen}: no such data-quality settings file (CQUIN_DATA_QUALITY)")
        doc, problems = load_checked(chosen, "data_quality")
    if problems:
        raise ConfigError("the data-quality settings are invalid:\n" + "\n".join(f"  {p}" for p in problems))
    d = doc.data
    return QualityLimits(
        max_rejected_share=parse_share(d["max_rejected_share"], f"{doc.file}: max_rejected_share"),
        judge_by_count_below=int(d["judge_by_count_below"]),
        max_rejected_records=int(d["max_rejected_records"]),
        required_tables=tuple(d["required_tables"]),
        source=doc.file,
    )


@dataclass(frozen=True)
class FileFailure:
    """One data file that failed the check, why, and what to do."""

    file: str
    table: str | None
    read: int
    rejected: int
    rule: str  # what it broke, in words
    reasons: list[tuple[str, int]]  # the top kinds of rejection, most frequent first
    fix: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "table": self.table,
            "read": self.read,
            "rejected": self.rejected,
            "rule": self.rule,
            "top_reasons": [{"reason": r, "count": n} for r, n in self.reasons],
            "fix": self.fix,
        }


@dataclass(frozen=True)
class DataQuality:
    """The verdict on a run's data: passed, failed, or failed but accepted with ``--accept-rejections``."""

    status: str
    limits: QualityLimits
    failures: list[FileFailure] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """True when the run must not be relied on (and the command exits non-zero)."""
        return self.status == FAILED

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message": self.headline(),
            "limits": self.limits.as_dict(),
            "failures": [f.as_dict() for f in self.failures],
        }

    def headline(self) -> str:
        if self.status == PASSED:
            return "data-quality check passed"
        files = ", ".join(f.file for f in self.failures)
        if self.status == ACCEPTED:
            return f"data-quality check FAILED ({files}); the rejections were accepted with --accept-rejections"
        return (
            f"DATA-QUALITY CHECK FAILED ({files}): these results are built on data that largely failed to load "
            "and must not be relied on"
        )

    def lines(self) -> list[str]:
        """Plain lines for the top of any output (nothing when the check passed)."""
        if self.status == PASSED:
            return []
        out = [self.headline()]
        for f in self.failures:
            out.append(f"  {f.file}: {f.rule}")
            for reason, n in f.reasons:
                out.append(f"    {n:,} × {reason}")
            out.append(f"    fix: {f.fix}")
        if self.status == FAILED:
            out.append(
                "  the run is stored, marked as failing its data-quality check; fix the data and run again, or pass "
                "--accept-rejections to accept it as it is"
            )
        return out


def assess(ledger: Ledger, limits: QualityLimits, *, accept: bool = False) -> DataQuality:
    """Judge every data file in ``ledger`` against ``limits``."""
    summary: dict[str, list[tuple[str, int]]] = {}
    for file, kind, n in _reason_parts(ledger):
        summary.setdefault(file, []).append((kind, int(n)))
    failures = []
    share = limits.max_rejected_share
    # Records rejected as "ignored: ..." are ones cquin has no use for (another FHIR resource type, a row the
    # mapping skips); they are accounted for, but they are not data lost to errors.
    ignored = dict(
        ledger.con.execute(
            "SELECT file, count(DISTINCT coalesce(line, -1)) FROM rejections WHERE reason LIKE 'ignored:%' GROUP BY file"
        ).fetchall()
    )
    for f in ledger.files.values():
        used = f.read - int(ignored.get(f.name, 0))
        lost = f.rejected - int(ignored.get(f.name, 0))
        if used <= 0 or lost <= 0:
            continue
        rule = None
        if f.table in limits.required_tables and f.accepted == 0:
            rule = f"all {used:,} of its records were rejected, and {f.table} is required"
        elif used >= limits.judge_by_count_below:
            if Fraction(lost, used) > share:
                rule = (
                    f"{lost:,} of {used:,} records rejected ({percent_text(Fraction(lost, used))}; "
                    f"the limit is {limits.share_text})"
                )
        elif lost > limits.max_rejected_records:
            rule = (
                f"{lost:,} of {used:,} records rejected (a file of fewer than {limits.judge_by_count_below} "
                f"records may lose at most {limits.max_rejected_records})"
            )
        if rule is None:
            continue
        reasons = summary.get(f.name, [])[:3]
        failures.append(FileFailure(f.name, f.table, used, lost, rule, reasons, _fix(ledger, f.name, reasons)))
    status = PASSED if not failures else (ACCEPTED if accept else FAILED)
    return DataQuality(status, limits, failures)


_PARTS_SQL = r"""
SELECT file, kind, count(DISTINCT coalesce(line, -1)) FROM
  (SELECT file, line, regexp_replace(unnest(string_split(reason, '; ')), '''[^'']*''|[0-9]{10}', '…', 'g') AS kind
   FROM rejections WHERE reason NOT LIKE 'ignored:%')
GROUP BY ALL ORDER BY file, 3 DESC, kind
"""


def _reason_parts(ledger: Ledger) -> list[tuple[str, str, int]]:
    """Rejected rows by file and each separate reason's kind (a row with two bad dates counts once per kind)."""
    return ledger.con.execute(_PARTS_SQL).fetchall()


def _fix(ledger: Ledger, file: str, reasons: list[tuple[str, int]]) -> str:
    """What to do: the specific hint the load found for this file, else what its top reason points to."""
    hint = ledger.hints.get(file)
    if hint:
        return hint
    top = reasons[0][0] if reasons else ""
    if "scientific notation" in top:
        return (
            "format the NHS number column as Text in the spreadsheet, restore the numbers from the source system and save again"
        )
    if "is not a date" in top:
        return "write the dates as YYYY-MM-DD, or name the format the file uses (for DD/MM/YYYY: --option dates=uk)"
    if "unknown patient" in top:
        return "supply the patients these rows belong to (patients.csv or the export's person records), or check the NHS numbers"
    return (
        "correct the rows listed by `cquin load SOURCE --out DIR` (rejections.csv gives each file, line and reason) and run again"
    )


def with_share(limits: QualityLimits, text: str | None) -> QualityLimits:
    """``limits`` with the share given for one run (``--max-rejected-share``)."""
    if text is None:
        return limits
    return replace(limits, max_rejected_share=parse_share(text, "--max-rejected-share"), source="--max-rejected-share")
