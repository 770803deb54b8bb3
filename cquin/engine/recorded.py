"""Decisions recorded in the audit store that a ruleset's components read as evidence.

The indicator asks the commissioner, not the provider, to confirm some things
(e.g. that the plan was "received and accepted ... (yes/no)").  Such a decision is
recorded with ``cquin signoff`` and handed to the engine as a :class:`RecordedDecision`;
the ruleset's ``recorded_evidence`` section says which decisions exist, who makes
them and what happens while none is recorded.  Nothing here knows a particular indicator.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RecordedDecision:
    """One recorded decision: yes (``agree``) or no (``dispute``), made on a date, by a named person."""

    evidence: str  # the recorded_evidence id
    decision: str  # agree | dispute
    decided_on: dt.date
    by: str
    party: str
    signoff_id: int
    run_id: str

    @property
    def yes(self) -> bool:
        return self.decision == "agree"

    def as_dict(self) -> dict[str, Any]:
        return {
            "evidence": self.evidence,
            "decision": self.decision,
            "decided_on": self.decided_on.isoformat(),
            "by": self.by,
            "party": self.party,
            "signoff_id": self.signoff_id,
            "run_id": self.run_id,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RecordedDecision:
        return cls(
            d["evidence"],
            d["decision"],
            dt.date.fromisoformat(d["decided_on"]),
            d["by"],
            d["party"],
            int(d["signoff_id"]),
            d["run_id"],
        )


@dataclass(frozen=True)
class EvidenceState:
    """What a requirement on recorded evidence found: the decision in force (if any) and whether it is provisional."""

    evidence: str
    label: str
    decision: RecordedDecision | None
    provisional: bool

    def date(self, due: dt.date) -> dt.date | None:
        """The date to compare with the requirement's due date: acceptance date, the due date itself while
        provisional, or None (refused, or not recorded where the ruleset says that is not met)."""
        if self.decision is not None:
            return self.decision.decided_on if self.decision.yes else None
        return due if self.provisional else None

    def describe(self) -> str:
        if self.decision is not None:
            d = self.decision
            answer = "yes" if d.yes else "no"
            return f"{self.label}: {answer}, {d.party} {d.by} on {d.decided_on} (sign-off #{d.signoff_id})"
        if self.provisional:
            return f"{self.label}: not yet recorded, so this level is provisional"
        return f"{self.label}: not recorded"


def in_force(
    spec: Mapping[str, Any], evidence_id: str, decisions: Iterable[RecordedDecision], as_of: dt.date | None
) -> EvidenceState:
    """The latest decision on ``evidence_id`` known on ``as_of`` (every decision when no as-of is given)."""
    known = sorted(
        (d for d in decisions if d.evidence == evidence_id and (as_of is None or d.decided_on <= as_of)),
        key=lambda d: (d.decided_on, d.signoff_id),
    )
    # The latest decision is in force; a "yes" repeated later keeps the date of the first "yes" since the last "no".
    in_force_now: RecordedDecision | None = None
    for d in known:
        if in_force_now is None or not (d.yes and in_force_now.yes):
            in_force_now = d
    return EvidenceState(
        evidence_id, spec["label"], in_force_now, in_force_now is None and spec["when_not_recorded"] == "provisional"
    )
