"""Components whose evidence is missing entirely: what is missing, what it puts at stake, how to supply it.

A FHIR or CSDS export carries patient records only; the plan dates, staff
list and training records come from the organisation.  A run without them
would quietly pay 0% for those components.  Every output therefore starts
with these gaps: which component, which canonical table had no usable row,
the component's share of the year's value, and where to put the file.

Which tables a component reads is worked out from the ruleset (the rule
leaves of its populations, the provider dates of its attainment levels);
nothing here knows any particular indicator.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from cquin.dataset import TABLE_NAMES, CanonicalDataset, table
from cquin.engine.rules import PopulationRef, parse_rule, walk

EVIDENCE_MARK = "EVIDENCE MISSING"  # how each message starts, so stored notes can be told apart
PSEUDONYMOUS_MARK = "IDENTIFIERS ARE PSEUDONYMOUS"


def pseudonymous_notice(statement: str | None) -> str | None:
    """The notice every output of a run on pseudonymous ids starts with (None when patients are keyed by NHS number)."""
    if not statement:
        return None
    return f"{PSEUDONYMOUS_MARK} — {statement}. Patient ids cannot be looked up as NHS numbers; cohort lists name PERSON IDs."


@dataclass(frozen=True)
class EvidenceGap:
    """One component with no evidence at all in one or more of the canonical tables it reads."""

    component: str
    component_name: str
    year: str
    year_label: str
    tables: tuple[str, ...]  # the tables with no usable row
    supplied: tuple[str, ...]  # those of them a file was read for, none of whose rows could be used
    share: Fraction  # the component's share of the year's value
    at_stake: Decimal  # the component's value in pounds (0 when no contract value was given)
    year_value: Decimal

    @property
    def message(self) -> str:
        parts = []
        for name in self.tables:
            file_name = table(name).file_name
            if not table(name).organisational:
                parts.append(f"no {name} records were loaded from the export")
            elif name in self.supplied:
                parts.append(f"{file_name} was read but none of its rows could be used")
            else:
                parts.append(f"no {file_name}")
        pct = f"{float(self.share * 100):g}%"
        if self.year_value:
            stake = f"£{self.at_stake:,.2f} of the year's £{self.year_value:,.2f} ({pct}) is at stake"
        else:
            stake = f"{pct} of the year's value is at stake"
        return (
            f"{EVIDENCE_MARK} — {self.year_label}, {self.component} ({self.component_name}): "
            f"{' and '.join(parts)}; {stake}. {_how(self.tables)}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "year": self.year,
            "tables": list(self.tables),
            "files": [table(n).file_name for n in self.tables],
            "supplied": list(self.supplied),
            "share": str(self.share),
            "at_stake": f"{self.at_stake:.2f}",
            "message": self.message,
        }


def _how(names: tuple[str, ...]) -> str:
    org = [n for n in names if table(n).organisational]
    records = [n for n in names if not table(n).organisational]
    out = []
    if org:
        files = " and ".join(f"{table(n).file_name} ({', '.join(table(n).column_names)})" for n in org)
        out.append(f"To supply it: put {files} beside the export, or in a folder given with --org DIR.")
    if records:
        out.append(
            f"Check that the export holds {' and '.join(records)} records the adapter can read (see `cquin adapters list`)."
        )
    return " ".join(out)


def summary(gaps: list[EvidenceGap]) -> list[str]:
    """One line per year: the share of its value that rests on missing evidence."""
    lines = []
    for year in dict.fromkeys(g.year for g in gaps):
        of_year = [g for g in gaps if g.year == year]
        share = sum((g.share for g in of_year), Fraction(0))
        money = sum((g.at_stake for g in of_year), Decimal(0))
        pounds = f" (£{money:,.2f} of £{of_year[0].year_value:,.2f})" if of_year[0].year_value else ""
        ids = ", ".join(g.component for g in of_year)
        lines.append(
            f"{of_year[0].year_label}: {float(share * 100):g}% of the year's value{pounds} rests on missing evidence ({ids})"
        )
    return lines


def _rule_tables(pid: str, populations: dict[str, Any], seen: set[str]) -> set[str]:
    """The canonical tables population ``pid``'s rule reads, through the populations it names.

    A cohort's overrides are optional (an agreement to change nothing is not missing evidence), so only its
    members' and includes' rules count.
    """
    out: set[str] = set()
    seen.add(pid)
    for _, node in walk(parse_rule(populations[pid]["rule"])):
        if isinstance(node, PopulationRef):
            if node.population not in seen:
                out |= _rule_tables(node.population, populations, seen)
        else:
            out |= set(node.reads)
    return out


def component_tables(doc: dict[str, Any], component: dict[str, Any]) -> list[str]:
    """The canonical tables a component's result depends on, in canonical order."""
    pops = doc["populations"]
    needed: set[str] = set()
    if "attainment" in component:
        for level in component["attainment"]:
            if level.get("requires"):
                needed.add("provider")
    for side in ("denominator", "numerator"):
        if side in component:
            needed |= _rule_tables(component[side], pops, set())
    return [t for t in TABLE_NAMES if t in needed]


def evidence_gaps(
    doc: dict[str, Any], dataset: CanonicalDataset, components: list[Any], available: dict[str, Decimal]
) -> list[EvidenceGap]:
    """Each component with a table it reads that has no accepted row at all."""
    counts: dict[str, int] = {}
    gaps = []
    by_id = {c["id"]: c for c in doc["components"]}
    for result in components:
        empty = []
        for name in component_tables(doc, by_id[result.id]):
            if name not in counts:
                counts[name] = dataset.count(name)
            if not counts[name]:
                empty.append(name)
        if empty:
            gaps.append(
                EvidenceGap(
                    result.id,
                    result.name,
                    result.year,
                    doc["periods"][result.year].get("label", result.year),
                    tuple(empty),
                    tuple(n for n in empty if n in dataset.present),
                    result.share,
                    result.available,
                    available.get(result.year, Decimal(0)),
                )
            )
    return gaps
