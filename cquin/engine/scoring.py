"""Activation scoring as SQL: PAM level from level or score, GPPS points, low activation.

Every number comes from the ruleset's ``instruments`` section; this module only
turns those tables into CASE expressions so scoring runs set-based.
"""

from __future__ import annotations

from typing import Any

from cquin.dataset.checks import answer_sql
from cquin.dataset.duck import sql_str
from cquin.engine.bands import to_fraction
from cquin.engine.ruleset import Ruleset, normalise_answer


def _lit(value: Any) -> str:
    f = to_fraction(value)
    if f.denominator == 1:
        return f"CAST({f.numerator} AS DECIMAL(18,6))"
    return f"CAST({f.numerator} AS DECIMAL(18,6)) / {f.denominator}"


def pam_level_sql(r: Ruleset, level: str = "pam_level", score: str = "pam_score") -> str:
    """The PAM level: the recorded level, else derived from the score with the ruleset's cut points."""
    levels = r.instruments["pam"]["levels"]
    whens = " ".join(f"WHEN {score} <= {_lit(lv['score_at_most'])} THEN {int(lv['level'])}" for lv in levels)
    return f"coalesce({level}, CASE {whens} END)"


def gpps_points_sql(r: Ruleset) -> str:
    """Total GPPS points: the sum over the questions of each answer's points."""
    parts = []
    for q in r.instruments["gpps"]["questions"]:
        col = q["field"]
        norm = answer_sql(col)
        whens = " ".join(f"WHEN {sql_str(normalise_answer(o['answer']))} THEN {_lit(o['points'])}" for o in q["options"])
        parts.append(f"(CASE {norm} {whens} END)")
    return " + ".join(parts)


def scored_assessments_sql(r: Ruleset, source: str) -> str:
    """SELECT over ``source`` adding ``value`` (PAM level or GPPS points), ``low`` and a readable ``result``."""
    pam = r.instruments["pam"]
    gpps = r.instruments["gpps"]
    low_levels = ", ".join(str(int(x)) for x in pam["low_activation_levels"])
    level = pam_level_sql(r)
    points = gpps_points_sql(r)
    preference = r.instruments["preference"]
    rank = " ".join(f"WHEN {sql_str(name)} THEN {i}" for i, name in enumerate(preference))
    return f"""
        SELECT *,
          CASE instrument WHEN 'pam' THEN CAST({level} AS DECIMAL(18,6)) ELSE CAST({points} AS DECIMAL(18,6)) END AS value,
          CASE instrument WHEN 'pam' THEN {level} IN ({low_levels})
               ELSE ({points}) <= {_lit(gpps["low_activation_points_at_most"])} END AS low,
          CASE instrument
            WHEN 'pam' THEN 'PAM level ' || CAST({level} AS VARCHAR)
                 || CASE WHEN pam_level IS NULL THEN ' (from score ' || CAST(CAST(pam_score AS DOUBLE) AS VARCHAR) || ')' ELSE '' END
            ELSE 'GPPS ' || CAST(CAST({points} AS DOUBLE) AS VARCHAR) || ' points' END AS result,
          CASE instrument {rank} END AS instrument_rank
        FROM {source}
    """
