"""The analyst's alternative: every component's numerator and denominator in one DuckDB SQL pass.

    .venv/bin/python benchmarks/analyst_query.py DATA_DIR [--ruleset cquin_2017_19]

This is what an analyst would write instead of running cquin: read the canonical CSV files
straight into one SQL statement and count.  No row checks, no ledger, no rejected rows, no
per-patient trace, no audit store, no overrides: strictly less than cquin does, which is why
``bench_evaluate.py`` reports cquin's time as a ratio to it (issue 18) rather than expecting them
to be equal.  The dates, code lists, PAM cut points and GPPS points come from the ruleset, so the
query counts what the ruleset says (on clean rows the counts agree with cquin's: see the
``--check`` option).  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb


def _lit(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def build_sql(data: Path, doc: dict[str, Any], ruleset_dir: Path) -> str:
    """One SELECT over the canonical files that returns one row of counts."""
    y1, y2 = doc["periods"]["year1"], doc["periods"]["year2"]
    y1s, y1e, y2s, y2e = (_lit(v) for v in (y1["from"], y1["to"], y2["from"], y2["to"]))
    lists = doc["code_lists"]
    code_rows = []
    for cat in doc["ltc"]["categories"]:
        back = cat.get("lookback_years")
        for name in cat["code_lists"]:
            spec = lists[name]
            path = ruleset_dir / spec["file"]
            since = f"DATE {y1e} - INTERVAL {int(back)} YEAR + INTERVAL 1 DAY" if back else "DATE '0001-01-01'"
            code_rows.append(
                f"SELECT {_lit(cat['id'])} AS category, {_lit(spec['system'])} AS system, upper(replace(code, '.', '')) AS code,"
                f" {since} AS since FROM read_csv({_lit(path)}, all_varchar=true, ignore_errors=true)"
            )
    direct = _lit(doc["ltc"].get("direct_recording_code_system", "gpps"))
    pam = doc["instruments"]["pam"]
    level_case = " ".join(
        f"WHEN TRY_CAST(pam_score AS DOUBLE) <= {lv['score_at_most']} THEN {lv['level']}" for lv in pam["levels"]
    )
    low_levels = ", ".join(str(v) for v in pam["low_activation_levels"])
    gpps = doc["instruments"]["gpps"]
    points = []
    for q in gpps["questions"]:
        cases = " ".join(f"WHEN lower(trim({q['field']})) = {_lit(o['answer'].lower())} THEN {o['points']}" for o in q["options"])
        points.append(f"(CASE {cases} END)")
    gpps_points = " + ".join(points)
    gpps_low = gpps["low_activation_points_at_most"]
    provider = doc.get("provider_evidence", {})
    del provider  # the plan component is read from provider.csv below

    def f(name: str) -> str:
        return _lit(data / f"{name}.csv")

    return f"""
WITH
codes AS ({" UNION ALL ".join(code_rows)}),
patients AS (SELECT patient_id, TRY_CAST(served_from AS DATE) AS sf, TRY_CAST(served_to AS DATE) AS st
             FROM read_csv({f("patients")}, all_varchar=true, ignore_errors=true)),
served1 AS (SELECT DISTINCT patient_id FROM patients WHERE sf <= DATE {y1e} AND (st IS NULL OR st >= DATE {y1s})),
conditions AS (SELECT patient_id, lower(code_system) AS system, upper(replace(trim(code), '.', '')) AS code,
                      TRY_CAST(recorded_on AS DATE) AS recorded_on FROM read_csv({f("conditions")}, all_varchar=true, ignore_errors=true)),
keys AS (SELECT patient_id, system, recorded_on,
                unnest(CASE WHEN system = 'icd10' THEN [code, left(code, 3), left(code, 4)] ELSE [code] END) AS key
         FROM conditions WHERE recorded_on <= DATE {y1e}),
ltc AS (SELECT DISTINCT c.patient_id FROM keys c JOIN codes k ON k.system = c.system AND k.code = c.key
        WHERE c.recorded_on >= k.since
        UNION SELECT DISTINCT patient_id FROM conditions WHERE system = {direct} AND recorded_on <= DATE {y1e}),
ltc1 AS (SELECT patient_id FROM ltc JOIN served1 USING (patient_id)),
assess AS (SELECT patient_id, TRY_CAST(assessed_on AS DATE) AS on_, lower(instrument) AS instrument,
                  CASE WHEN lower(instrument) = 'pam' THEN coalesce(TRY_CAST(pam_level AS INTEGER), CASE {level_case} END)
                       ELSE {gpps_points} END AS result
           FROM read_csv({f("assessments")}, all_varchar=true, ignore_errors=true) WHERE lower(respondent) = 'patient'),
baseline AS (SELECT patient_id, arg_min(instrument, on_ + CASE instrument WHEN 'pam' THEN 0 ELSE 1 END * INTERVAL 1 SECOND) AS instrument,
                    arg_min(result, on_ + CASE instrument WHEN 'pam' THEN 0 ELSE 1 END * INTERVAL 1 SECOND) AS result
             FROM assess WHERE on_ BETWEEN DATE {y1s} AND DATE {y1e} GROUP BY patient_id),
based AS (SELECT b.* FROM baseline b JOIN ltc1 USING (patient_id)),
cohort1 AS (SELECT patient_id FROM based
            WHERE (instrument = 'pam' AND result IN ({low_levels})) OR (instrument = 'gpps' AND result <= {gpps_low})),
cohort2 AS (SELECT DISTINCT c.patient_id FROM cohort1 c JOIN patients p USING (patient_id)
            WHERE p.sf <= DATE {y2s} AND (p.st IS NULL OR p.st >= DATE {y2s})),
conv AS (SELECT DISTINCT patient_id FROM read_csv({f("conversations")}, all_varchar=true, ignore_errors=true)
         WHERE TRY_CAST(held_on AS DATE) BETWEEN DATE {y1s} AND DATE {y2e}),
follow AS (SELECT a.patient_id, arg_max(a.result, a.on_) AS result, any_value(b.result) AS base
           FROM assess a JOIN based b ON a.patient_id = b.patient_id AND a.instrument = b.instrument
           JOIN cohort2 c ON c.patient_id = a.patient_id
           WHERE a.on_ BETWEEN DATE {y2s} AND DATE {y2e} GROUP BY a.patient_id),
staff AS (SELECT DISTINCT staff_id FROM read_csv({f("staff")}, all_varchar=true, ignore_errors=true) WHERE lower(cares_for_cohort) IN ('true', 'yes', '1')),
trained AS (SELECT DISTINCT t.staff_id FROM read_csv({f("training")}, all_varchar=true, ignore_errors=true) t JOIN staff USING (staff_id)
            WHERE TRY_CAST(completed_on AS DATE) <= DATE {y1e})
SELECT
  (SELECT count(*) FROM served1) AS served_year1,
  (SELECT count(*) FROM ltc1) AS ltc_identified,
  (SELECT count(*) FROM based) AS baseline_assessed,
  (SELECT count(*) FROM cohort1) AS year1_cohort,
  (SELECT count(*) FROM cohort1 JOIN conv USING (patient_id)) AS conversation_held,
  (SELECT count(*) FROM cohort2) AS year2_cohort,
  (SELECT count(*) FROM follow) AS followed_up,
  (SELECT count(*) FROM follow WHERE result > base) AS improved,
  (SELECT count(*) FROM staff) AS relevant_staff,
  (SELECT count(*) FROM trained) AS trained_staff
"""


def analyst_counts(data: Path, ruleset: str = "cquin_2017_19") -> tuple[dict[str, int], float]:
    """The counts and the wall seconds of the one-pass query (ruleset loading not timed)."""
    from cquin.engine.ruleset import load_ruleset

    rs = load_ruleset(ruleset)
    sql = build_sql(data, _plain(rs.doc), Path(rs.path).parent)
    start = time.perf_counter()
    con = duckdb.connect()
    cur = con.execute(sql)
    row = cur.fetchone()
    names = [d[0] for d in cur.description]
    con.close()
    wall = time.perf_counter() - start
    assert row is not None
    return dict(zip(names, (int(v) for v in row), strict=True)), wall


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--ruleset", default="cquin_2017_19")
    args = parser.parse_args()
    counts, wall = analyst_counts(args.data, args.ruleset)
    json.dump({"wall_seconds": round(wall, 3), "counts": counts}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
