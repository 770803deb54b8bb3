"""Populations: the ruleset's rule trees compiled to set-based SQL, with a reason for every patient.

Each rule node becomes a table ``(id, inside, reason)`` over every patient (or
member of staff): whether the node holds and the fact that decided it, in
words a commissioner can check against the source records.  Composite nodes
combine their children's tables; nothing loops over patients in Python.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import duckdb

from cquin.dataset.duck import sql_str as q
from cquin.engine.ruleset import Ruleset
from cquin.engine.scoring import scored_assessments_sql


def _loc(alias: str = "") -> str:
    p = f"{alias}." if alias else ""
    return f"' (' || {p}_file || ' line ' || CAST({p}_line AS VARCHAR) || ')'"


class PopulationCompiler:
    """Builds population tables in a DuckDB connection for one evaluation (one as-of date)."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        ruleset: Ruleset,
        *,
        as_of: dt.date | None,
        prefix: str,
        base: PopulationCompiler | None = None,
        reasons: bool = True,
    ) -> None:
        self.reasons = reasons  # False: only who is in (milestone counts), skipping the reason text
        self.base = base  # an evaluation without a cut-off whose scored tables this one filters
        self.con = con
        self.r = ruleset
        self.as_of = as_of
        self.p = prefix
        self._ids = itertools.count()
        self._pop_tables: dict[str, str] = {}
        self._scratch_tables: list[str] = []
        self._measurements: dict[str, str] = {}
        self.override_notes: list[dict[str, Any]] = []
        self._make_sources()

    # ------------------------------------------------------------------ sources

    def t(self, name: str) -> str:
        return f"{self.p}{name}"

    def _make_sources(self) -> None:
        """Views of the canonical tables holding only what was known on the as-of date."""
        c, a = self.con, self.as_of
        cut = f"DATE '{a.isoformat()}'" if a else None

        def view(name: str, sql: str) -> None:
            c.execute(f"CREATE OR REPLACE VIEW {self.t(name)} AS {sql}")

        if cut:
            view(
                "patients",
                f"SELECT * REPLACE (CASE WHEN served_to > {cut} THEN NULL ELSE served_to END AS served_to) FROM patients WHERE served_from <= {cut}",
            )
            view("conditions", f"SELECT * FROM conditions WHERE recorded_on <= {cut}")
            view("assessments_raw", f"SELECT * FROM assessments WHERE assessed_on <= {cut}")
            view("conversations", f"SELECT * FROM conversations WHERE held_on <= {cut}")
            view("training", f"SELECT * FROM training WHERE completed_on <= {cut}")
            view("care_plans", f"SELECT * FROM care_plans WHERE greatest(agreed_on, coalesce(entry_on, agreed_on)) <= {cut}")
            view("overrides", f"SELECT * FROM overrides WHERE agreed_on IS NULL OR agreed_on <= {cut}")
            view(
                "provider",
                f"""SELECT * REPLACE (CASE WHEN plan_agreed_on <= {cut} THEN plan_agreed_on END AS plan_agreed_on,
                     CASE WHEN recording_system_live_on <= {cut} THEN recording_system_live_on END AS recording_system_live_on) FROM provider""",
            )
        else:
            for name in ("patients", "conditions", "conversations", "care_plans", "training", "overrides", "provider"):
                view(name, f"SELECT * FROM {name}")
            view("assessments_raw", "SELECT * FROM assessments")
        view("staff", "SELECT * FROM staff")
        if self.base is not None and cut:
            # Scoring does not depend on the date: filter the base evaluation's scored rows.
            view("scored", f"SELECT * FROM {self.base.t('scored')} WHERE assessed_on <= {cut}")
        else:
            c.execute(
                f"CREATE OR REPLACE TABLE {self.t('scored')} AS {scored_assessments_sql(self.r, self.t('assessments_raw'))}"
            )
        c.execute(
            f"CREATE OR REPLACE TABLE {self.t('patient_ids')} AS SELECT DISTINCT patient_id AS id FROM {self.t('patients')}"
        )
        c.execute(f"CREATE OR REPLACE TABLE {self.t('staff_ids')} AS SELECT DISTINCT staff_id AS id FROM {self.t('staff')}")

    def universe(self, entity: str) -> str:
        return self.t("patient_ids" if entity == "patient" else "staff_ids")

    # ------------------------------------------------------------------ populations

    def population(self, pid: str) -> str:
        """The table for population ``pid`` (built once): columns id, inside, rule, reason."""
        if pid not in self._pop_tables:
            pop = self.r.doc["populations"][pid]
            node = self.node(pop["rule"], pop["entity"], pid)
            self.con.execute(f"CREATE OR REPLACE VIEW {self.t('pop_' + pid)} AS SELECT * FROM {node}")
            self._pop_tables[pid] = node
        return self._pop_tables[pid]

    def _new(self, sql: str) -> str:
        name = self.t(f"n{next(self._ids)}")
        self.con.execute(f"CREATE OR REPLACE TABLE {name} AS {sql}")
        for scratch in self._scratch_tables:  # a leaf's working tables are not needed once its node is built
            self.con.execute(f"DROP TABLE IF EXISTS {scratch}")
        self._scratch_tables.clear()
        return name

    def _scratch(self, sql: str) -> str:
        """A working table for the leaf being built, dropped once the leaf's node table exists."""
        name = self.t(f"w{next(self._ids)}")
        self.con.execute(f"CREATE OR REPLACE TABLE {name} AS {sql}")
        self._scratch_tables.append(name)
        return name

    def node(self, rule: dict[str, Any], entity: str, owner: str) -> str:
        """A table (id, inside, rule, reason): ``rule`` names the population whose test decided."""
        ((kind, value),) = rule.items()
        u = self.universe(entity)
        if kind == "population":
            return self.population(value)
        if kind == "all_of":
            return self._combine([self.node(child, entity, owner) for child in value], all_of=True)
        if kind == "any_of":
            return self._combine([self.node(child, entity, owner) for child in value], all_of=False)
        if kind == "not":
            child = self.node(value, entity, owner)
            return self._new(f"SELECT id, NOT inside AS inside, rule, reason FROM {child}")
        handler = getattr(self, f"_leaf_{kind}")
        self._owner = owner
        # Without reasons, the unused text columns are pruned from the plan before they are computed.
        reason = "reason" if self.reasons else "CAST(NULL AS VARCHAR) AS reason"
        if kind == "cohort":  # a cohort keeps the rule that decided each member
            return self._new(f"SELECT id, inside, rule, {reason} FROM ({handler(value, u)})")
        return self._new(f"SELECT id, inside, {q(owner)} AS rule, {reason} FROM ({handler(value, u)})")

    def _combine(self, children: list[str], *, all_of: bool) -> str:
        # all_of: inside when every child is; the deciding fact is the last child's when inside, else the first failing one's.
        # any_of: inside when any child is; the deciding fact is the first passing child's, else the last child's.
        joins = " ".join(f"JOIN {c} c{i} USING (id)" for i, c in enumerate(children[1:], start=1))
        aliases = ["c0"] + [f"c{i}" for i in range(1, len(children))]
        if all_of:
            inside = " AND ".join(f"{a}.inside" for a in aliases)
            pick = " ".join(f"WHEN NOT {a}.inside THEN {a}.{{col}}" for a in aliases) + f" ELSE {aliases[-1]}.{{col}}"
        else:
            inside = " OR ".join(f"{a}.inside" for a in aliases)
            pick = " ".join(f"WHEN {a}.inside THEN {a}.{{col}}" for a in aliases) + f" ELSE {aliases[-1]}.{{col}}"
        rule = "CASE " + pick.format(col="rule") + " END"
        reason = "CASE " + pick.format(col="reason") + " END"
        return self._new(f"SELECT c0.id, {inside} AS inside, {rule} AS rule, {reason} AS reason FROM {children[0]} c0 {joins}")

    # ------------------------------------------------------------------ leaves (patients)

    def _dates(self, ref: str) -> str:
        return f"DATE '{self.r.date(ref).isoformat()}'"

    def _leaf_served(self, value: dict[str, Any], u: str) -> str:
        if "during" in value:
            start, end = self.r.period(value["during"])
            label = f"{value['during']} ({start} to {end})"
        else:
            start = end = self.r.date(value["on"])
            label = f"on {start}"
        s, e = f"DATE '{start.isoformat()}'", f"DATE '{end.isoformat()}'"
        overlap = f"(served_from <= {e} AND (served_to IS NULL OR served_to >= {s}))"
        return f"""
            WITH ep AS (
              SELECT patient_id AS id, bool_or({overlap}) AS inside,
                arg_min(struct_pack(f := served_from, t := served_to, file := _file, line := _line),
                        struct_pack(o := NOT {overlap}, f := served_from, file := _file, line := _line)) AS hit,
                count(*) AS n, min(served_from) AS first_from, max(coalesce(served_to, DATE '9999-12-31')) AS last_to
              FROM {self.t("patients")} GROUP BY patient_id)
            SELECT u.id, coalesce(ep.inside, false) AS inside,
              CASE WHEN ep.inside THEN 'under care ' || {q(label)} || ': episode from ' || CAST(ep.hit.f AS VARCHAR)
                     || ' to ' || coalesce(CAST(ep.hit.t AS VARCHAR), 'ongoing') || ' (' || ep.hit.file || ' line ' || CAST(ep.hit.line AS VARCHAR) || ')'
                   WHEN ep.id IS NULL THEN 'no episode of care known'
                   ELSE 'not under care ' || {q(label)} || ' (' || CAST(ep.n AS VARCHAR) || ' episode(s) from '
                     || CAST(ep.first_from AS VARCHAR) || ' to ' || CASE WHEN ep.last_to = DATE '9999-12-31' THEN 'ongoing' ELSE CAST(ep.last_to AS VARCHAR) END || ')' END AS reason
            FROM {u} u LEFT JOIN ep USING (id)"""

    def ltc_matches(self) -> str:
        """Every condition row matched to an LTC category (built once): code list or direct recording."""
        name = self.t("ltc_matches")
        if name in self._measurements:
            return name
        if self.base is not None and self.as_of is not None:
            self.con.execute(
                f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {self.base.ltc_matches()} WHERE recorded_on <= DATE '{self.as_of}'"
            )
            self._measurements[name] = name
            return name
        direct = self.r.doc["ltc"]["direct_recording_code_system"]
        # The conditions are read once per kind of match (a subquery each, not a shared CTE, which DuckDB
        # would hold in memory whole).
        cond = f"""(SELECT patient_id, code_system, code, recorded_on, _file, _line,
                    CASE WHEN code_system = 'icd10' THEN upper(replace(code, '.', '')) ELSE code END AS norm
                  FROM {self.t("conditions")})"""
        self.con.execute(
            f"""CREATE OR REPLACE TABLE {name} AS
            SELECT c.patient_id, c.code_system, c.code, c.recorded_on, c._file, c._line, l.category, l.list_id FROM {cond} c
              JOIN codelist l ON l.system = 'snomed' AND c.code_system = 'snomed' AND l.code = c.norm
            UNION ALL
            SELECT c.patient_id, c.code_system, c.code, c.recorded_on, c._file, c._line, l.category, l.list_id FROM
              (SELECT *, left(norm, CAST(k AS INTEGER)) AS prefix FROM {cond}, range(3, 8) AS r(k)
               WHERE code_system = 'icd10' AND k <= length(norm)) c
              JOIN codelist l ON l.system = 'icd10' AND l.code = c.prefix
            UNION ALL
            SELECT c.patient_id, c.code_system, c.code, c.recorded_on, c._file, c._line, lower(c.code) AS category,
                   'direct recording' AS list_id FROM {cond} c WHERE c.code_system = {q(direct)}"""
        )
        self._measurements[name] = name
        return name

    def _leaf_ltc(self, value: dict[str, Any], u: str) -> str:
        by = self.r.date(value["recorded_by"])
        cats = self.r.doc["ltc"]["categories"]
        wanted = value.get("categories") or [c["id"] for c in cats]
        # Each category's window: recorded on or before `by`, and within its look-back if it has one.
        windows = []
        for cat in cats:
            if cat["id"] not in wanted:
                continue
            years = cat.get("lookback_years")
            start = years_before(by, years) if years else None
            cond = f"category = {q(cat['id'])} AND recorded_on <= DATE '{by.isoformat()}'"
            if start:
                cond += f" AND recorded_on >= DATE '{start.isoformat()}'"
            windows.append(f"({cond})")
        ok = " OR ".join(windows) or "false"
        wanted_sql = ", ".join(q(w) for w in wanted)
        m = self.ltc_matches()
        if not self.reasons:  # who is in, without reading the facts back
            return f"""
            WITH placed AS (SELECT patient_id, ({ok}) AS ok FROM {m} WHERE category IN ({wanted_sql})),
            hits AS (SELECT patient_id AS id, bool_or(ok) AS inside FROM placed GROUP BY patient_id)
            SELECT u.id, coalesce(h.inside, false) AS inside, CAST(NULL AS VARCHAR) AS reason FROM {u} u LEFT JOIN hits h USING (id)"""
        cat_rank = " ".join(f"WHEN {q(c)} THEN {i}" for i, c in enumerate(wanted))
        # Each match gets one 128-bit position (date, source file, line, category): the patient's first match
        # in its window and latest match are the minimum and maximum position, so ties are broken by where the
        # record is (a deterministic trace) and every aggregate has a fixed-size state, which DuckDB can spill
        # to disk at scale.  The facts are then read back by position: rows at one position differ at most in
        # the code list that matched, so they carry the same fact.
        pos = (
            "((CAST(recorded_on - DATE '1800-01-01' AS HUGEINT) << 80) + (CAST(f.rank AS HUGEINT) << 64)"
            f" + (CAST(_line AS HUGEINT) << 8) + CASE category {cat_rank} END)"
        )
        fact = "{0}.code_system || ' ' || {0}.code || ' (' || {0}.category || ') recorded ' || CAST({0}.recorded_on AS VARCHAR)"
        # Built in steps, each a table: at scale every step then lives on disk rather than being held in
        # memory as a shared intermediate result.
        placed = self._scratch(
            f"""SELECT m.patient_id, m.category, ({ok}) AS ok, {pos} AS pos, m.code_system, m.code, m.recorded_on, m._file, m._line
                FROM {m} m JOIN (SELECT _file, row_number() OVER (ORDER BY _file) AS rank FROM (SELECT DISTINCT _file FROM {m})) f
                  USING (_file)
                WHERE category IN ({wanted_sql})"""
        )
        hits = self._scratch(
            f"""SELECT patient_id AS id, bool_or(ok) AS inside, min(first) AS first, max(latest) AS latest,
                       count(*) FILTER (WHERE ok) AS n_categories
                FROM (SELECT patient_id, bool_or(ok) AS ok, min(pos) FILTER (WHERE ok) AS first, max(pos) AS latest
                      FROM {placed} GROUP BY patient_id, category)
                GROUP BY patient_id"""
        )
        # The one fact each patient's reason needs: the first match in the window when inside, else the latest.
        facts = self._scratch(
            f"""SELECT DISTINCT patient_id, pos, code_system, code, category, recorded_on, _file, _line FROM {placed} p
                SEMI JOIN (SELECT id, CASE WHEN inside THEN first ELSE latest END AS pos FROM {hits}) w
                  ON w.id = p.patient_id AND w.pos = p.pos"""
        )
        described = self._scratch(
            f"""SELECT h.id, h.inside,
                  CASE WHEN h.inside THEN {fact.format("f")} || ' (' || f._file || ' line ' || CAST(f._line AS VARCHAR) || ')'
                            || CASE WHEN h.n_categories > 1 THEN ' (+' || CAST(h.n_categories - 1 AS VARCHAR) || ' more LTC categories)' ELSE '' END
                       ELSE 'no LTC code in its time window by {by.isoformat()} (latest LTC code: ' || {fact.format("f")} || ')' END AS reason
                FROM {hits} h JOIN {facts} f ON f.patient_id = h.id AND f.pos = CASE WHEN h.inside THEN h.first ELSE h.latest END"""
        )
        return f"""
            SELECT u.id, coalesce(d.inside, false) AS inside,
              coalesce(d.reason, 'no condition in the LTC categories recorded by {by.isoformat()}') AS reason
            FROM {u} u LEFT JOIN {described} d USING (id)"""

    def measurement(self, mid: str) -> str:
        """The chosen assessment per patient for measurement ``mid`` (table with id, instrument, value, low, result, ...)."""
        if mid in self._measurements:
            return self._measurements[mid]
        m = self.r.doc["measurements"][mid]
        start, end = self.r.period(m["within"])
        order = "assessed_on ASC" if m["pick"] == "earliest" else "assessed_on DESC"
        same = m.get("same_instrument_as")
        join = ""
        cond = ""
        if same:
            other = self.measurement(same)
            join = f"JOIN {other} o ON o.id = s.patient_id"
            cond = "AND s.instrument = o.instrument"
        name = self.t(f"m_{mid}")
        self.con.execute(
            f"""CREATE OR REPLACE TABLE {name} AS
            SELECT patient_id AS id, assessed_on, instrument, value, low, result, _file, _line FROM (
              SELECT s.*, row_number() OVER (PARTITION BY s.patient_id ORDER BY s.{order}, s.instrument_rank) AS rn
              FROM {self.t("scored")} s {join}
              WHERE s.respondent = {q(m["respondent"])} AND s.assessed_on BETWEEN DATE '{start}' AND DATE '{end}' {cond})
            WHERE rn = 1"""
        )
        self._measurements[mid] = name
        return name

    def _leaf_measured(self, mid: str, u: str) -> str:
        m = self.r.doc["measurements"][mid]
        start, end = self.r.period(m["within"])
        t = self.measurement(mid)
        label = m["label"].lower()
        # Why not: carer-only, other instrument, or nothing in the period.
        within = f"s.assessed_on BETWEEN DATE '{start}' AND DATE '{end}'"
        same = m.get("same_instrument_as")
        other_instr = ""
        if same:
            o = self.measurement(same)
            other_instr = f"""WHEN EXISTS (SELECT 1 FROM {self.t("scored")} s WHERE s.patient_id = u.id AND s.respondent = {q(m["respondent"])} AND {within})
                                THEN 'no {label}: the {m["respondent"]}''s assessments in {m["within"]} were on another instrument than the ' || coalesce((SELECT instrument FROM {o} WHERE id = u.id), '(no {same})') || ' {same.replace("_", " ")}'
                              WHEN NOT EXISTS (SELECT 1 FROM {o} WHERE id = u.id) THEN 'no {same.replace("_", " ")} to compare with' """
        carer = "carer" if m["respondent"] == "patient" else "patient"
        return f"""
            SELECT u.id, t.id IS NOT NULL AS inside,
              CASE WHEN t.id IS NOT NULL THEN {q(mid.replace("_", " ") + ": ")} || t.result || ' on ' || CAST(t.assessed_on AS VARCHAR) || {_loc("t")}
                   {other_instr}
                   WHEN EXISTS (SELECT 1 FROM {self.t("scored")} s WHERE s.patient_id = u.id AND s.respondent = {q(carer)} AND {within})
                     THEN 'no {label}: only {carer} assessments in {m["within"]} ({start} to {end}); a {carer}''s answers are not the {m["respondent"]}''s own'
                   ELSE 'no {m["respondent"]} assessment dated in {m["within"]} ({start} to {end})' END AS reason
            FROM {u} u LEFT JOIN {t} t USING (id)"""

    def _leaf_low_activation(self, mid: str, u: str) -> str:
        t = self.measurement(mid)
        return f"""
            SELECT u.id, coalesce(t.low, false) AS inside,
              CASE WHEN t.id IS NULL THEN 'no {mid.replace("_", " ")}'
                   WHEN t.low THEN {q(mid.replace("_", " ") + " ")} || t.result || ' is low activation'
                   ELSE {q(mid.replace("_", " ") + " ")} || t.result || ' is not low activation' END AS reason
            FROM {u} u LEFT JOIN {t} t USING (id)"""

    def _leaf_improved(self, value: dict[str, str], u: str) -> str:
        a, b = self.measurement(value["from"]), self.measurement(value["to"])
        fa, fb = value["from"].replace("_", " "), value["to"].replace("_", " ")
        return f"""
            SELECT u.id, coalesce(b.value > a.value AND a.instrument = b.instrument, false) AS inside,
              CASE WHEN a.id IS NULL THEN 'no {fa}'
                   WHEN b.id IS NULL THEN 'no {fb}'
                   WHEN b.value > a.value THEN '{fb} ' || b.result || ' is higher than {fa} ' || a.result
                   ELSE '{fb} ' || b.result || ' is not higher than {fa} ' || a.result END AS reason
            FROM {u} u LEFT JOIN {a} a USING (id) LEFT JOIN {b} b USING (id)"""

    def _leaf_conversation(self, value: dict[str, str], u: str) -> str:
        s, e = self.r.date(value["from"]), self.r.date(value["to"])
        return f"""
            WITH conv AS (
              SELECT patient_id AS id, count(*) AS n, min(held_on) AS first_on,
                arg_min(struct_pack(f := _file, l := _line), struct_pack(d := held_on, f := _file, l := _line)) AS first

              FROM {self.t("conversations")} WHERE held_on BETWEEN DATE '{s}' AND DATE '{e}' GROUP BY patient_id)
            SELECT u.id, c.id IS NOT NULL AS inside,
              CASE WHEN c.id IS NOT NULL THEN 'conversation held ' || CAST(c.first_on AS VARCHAR)
                     || ' (' || c.first.f || ' line ' || CAST(c.first.l AS VARCHAR) || ')'
                     || CASE WHEN c.n > 1 THEN ' (' || CAST(c.n AS VARCHAR) || ' conversations in all)' ELSE '' END
                   ELSE 'no care and support planning conversation recorded {s} to {e}' END AS reason
            FROM {u} u LEFT JOIN conv c USING (id)"""

    def _leaf_cohort(self, value: dict[str, Any], u: str) -> str:
        owner = self._owner  # building the members may compile other populations
        members = self.node(value["members"], "patient", owner)
        cohort = value["overrides"]
        requires = self.node(value["include_requires"], "patient", owner) if "include_requires" in value else None
        ov = self.t(f"ov_{cohort}_{next(self._ids)}")
        req_join = f"LEFT JOIN {requires} rq ON rq.id = o.patient_id" if requires else ""
        req_ok = "rq.inside" if requires else "true"
        req_spec = value.get("include_requires") or {}
        if "population" in req_spec:
            label = self.r.doc["populations"][req_spec["population"]]["label"]
            req_reason = f"{q('not in ' + label + ': ')} || rq.reason"
        else:
            req_reason = "rq.reason" if requires else "''"
        self.con.execute(
            f"""CREATE OR REPLACE TABLE {ov} AS
            SELECT o.patient_id AS id, o.action, o.reason AS why, o.agreed_on, o._file, o._line,
                   m.inside AS member, {req_ok} AS allowed, {req_reason} AS refused_because
            FROM {self.t("overrides")} o JOIN {members} m ON m.id = o.patient_id {req_join}
            WHERE o.cohort = {q(cohort)}
            -- One override per patient (the load rejects repeats and conflicts), so no patient is counted twice.
            QUALIFY row_number() OVER (PARTITION BY o.patient_id ORDER BY o.agreed_on NULLS FIRST, o._file, o._line) = 1"""
        )
        # Report what the overrides did: refused includes are rejected rows; no-op excludes are noted.
        for row in self.con.execute(
            f"""SELECT id, action, why, _file, _line, member, allowed, refused_because FROM {ov}
                WHERE (action = 'include' AND (NOT allowed OR member)) OR (action = 'exclude' AND NOT member)
                ORDER BY _file, _line"""
        ).fetchall():
            pid, action, why, file, line, member, allowed, refused = row
            if action == "include" and not allowed:
                kind, text = "rejected", f"include of {pid} in the {cohort} cohort refused: {refused}"
            elif action == "include":
                kind, text = "no effect", f"include of {pid} in the {cohort} cohort changes nothing: already a member"
            else:
                kind, text = "no effect", f"exclude of {pid} from the {cohort} cohort changes nothing: not a member"
            self.override_notes.append(
                {"file": file, "line": line, "patient_id": pid, "kind": kind, "message": text, "reason": why}
            )
        agreed = "CASE WHEN o.agreed_on IS NOT NULL THEN ', agreed ' || CAST(o.agreed_on AS VARCHAR) ELSE '' END"
        return f"""
            SELECT m.id,
              CASE WHEN (o.action = 'exclude' AND m.inside) OR (o.action = 'include' AND o.allowed AND NOT m.inside)
                   THEN {q(owner)} ELSE m.rule END AS rule,
              CASE WHEN o.action = 'exclude' THEN false WHEN o.action = 'include' AND o.allowed THEN true ELSE m.inside END AS inside,
              CASE WHEN o.action = 'exclude' AND m.inside
                     THEN 'excluded by agreed override: ' || o.why || {agreed} || {_loc("o")}
                   WHEN o.action = 'include' AND o.allowed AND NOT m.inside
                     THEN 'included by agreed override: ' || o.why || {agreed} || {_loc("o")}
                   ELSE m.reason END AS reason
            FROM {members} m LEFT JOIN {ov} o USING (id)"""

    # ------------------------------------------------------------------ leaves (staff)

    def _leaf_cares_for_cohort(self, value: bool, u: str) -> str:
        return f"""
            SELECT u.id, coalesce(s.cares_for_cohort = {str(bool(value)).lower()}, false) AS inside,
              CASE WHEN s.cares_for_cohort THEN 'identified as caring for the patient cohort' || {_loc("s")}
                   ELSE 'not identified as caring for the patient cohort' || {_loc("s")} END AS reason
            FROM {u} u LEFT JOIN {self.t("staff")} s ON s.staff_id = u.id"""

    def _leaf_trained(self, value: dict[str, str], u: str) -> str:
        by = self.r.date(value["by"])
        start = self.r.date(value["from"]) if "from" in value else None
        window = f"completed_on <= DATE '{by}'" + (f" AND completed_on >= DATE '{start}'" if start else "")
        return f"""
            WITH tr AS (
              SELECT staff_id AS id, bool_or({window}) AS inside,
                arg_min('training ' || coalesce('''' || course || '''', '') || ' completed ' || CAST(completed_on AS VARCHAR) || {_loc()},
                        CASE WHEN {window} THEN struct_pack(d := completed_on, f := _file, l := _line) END) AS hit,
                min(completed_on) AS first_on
              FROM {self.t("training")} GROUP BY staff_id)
            SELECT u.id, coalesce(t.inside, false) AS inside,
              CASE WHEN t.inside THEN t.hit
                   WHEN t.id IS NOT NULL THEN 'training completed ' || CAST(t.first_on AS VARCHAR) || ', outside the window (by {by})'
                   ELSE 'no training record completed by {by}' END AS reason
            FROM {u} u LEFT JOIN tr t USING (id)"""


def years_before(day: dt.date, years: int) -> dt.date:
    """The first day of the ``years``-year window ending on ``day`` (e.g. 2018-03-31, 5 -> 2013-04-01)."""
    nxt = day + dt.timedelta(days=1)
    try:
        return nxt.replace(year=nxt.year - years)
    except ValueError:  # 29 February
        return nxt.replace(year=nxt.year - years, day=28)
