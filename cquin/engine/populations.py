"""Populations: the ruleset's rule trees compiled to set-based SQL, with a reason for every patient.

The compiler owns one evaluation's tables in the dataset's DuckDB connection: the canonical tables as known
on the as-of date, the scored assessments, the LTC matches and measurements the tests share, and one node
table ``(id, inside, rule, reason)`` per rule node, built by that kind's function in
:mod:`cquin.engine.compile_rules`.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import duckdb

from cquin.dataset.duck import scalar
from cquin.dataset.duck import sql_str as q
from cquin.engine.compile_rules import Scope, compile_rule, settled_by
from cquin.engine.reasons import NO_REASON, ONE_OF_LIMIT, Templates, Value
from cquin.engine.rules import Rule
from cquin.engine.ruleset import Ruleset
from cquin.engine.ruleset_common import provider_dates
from cquin.engine.scoring import scored_assessments_sql


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
        # The words of every reason this evaluation's tables can hold (a base evaluation's, shared).
        self.templates: Templates = base.templates if base is not None else Templates()
        self._files: dict[str, tuple[str, ...]] = {}
        self._built: dict[tuple[Rule, str], str] = {}  # node -> its table, for milestones as at a date to reuse
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
            # A provider date after the cut was not yet known.
            known = ", ".join(f"CASE WHEN {d} <= {cut} THEN {d} END AS {d}" for d in provider_dates())
            view("provider", f"SELECT * REPLACE ({known}) FROM provider")
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

    def latest_dated(self) -> dt.date | None:
        """The latest date on any record the as-of views filter by (None when no record is dated).

        An evaluation as at a date on or after it is this evaluation: every view would hold every row.
        """
        dated = {
            "patients": ("served_from", "served_to"),
            "conditions": ("recorded_on",),
            "assessments": ("assessed_on",),
            "conversations": ("held_on",),
            "training": ("completed_on",),
            "care_plans": ("agreed_on", "entry_on"),
            "overrides": ("agreed_on",),
            "provider": tuple(provider_dates()),
        }  # the columns _make_sources compares with the cut
        parts = [f"SELECT max({col}) AS d FROM {table}" for table, cols in dated.items() for col in cols]
        row = self.con.execute(f"SELECT max(d) FROM ({' UNION ALL '.join(parts)})").fetchone()
        return row[0] if row else None

    def universe(self, entity: str) -> str:
        return self.t("patient_ids" if entity == "patient" else "staff_ids")

    # ------------------------------------------------------------------ populations

    def population(self, pid: str) -> str:
        """The table for population ``pid`` (built once): columns id, inside, rule, reason."""
        if pid not in self._pop_tables:
            pop = self.r.populations[pid]
            node = self.node(pop.rule, pop.entity, pid)
            self.con.execute(f"CREATE OR REPLACE VIEW {self.t('pop_' + pid)} AS SELECT * FROM {node}")
            self._pop_tables[pid] = node
        return self._pop_tables[pid]

    def node(self, rule: Rule, entity: str, owner: str) -> str:
        """A table (id, inside, rule, reason) for ``rule`` in population ``owner``, by its kind's compile function.

        Counting "as at" a cut (no reasons), a node that no record dated after the cut can change is the base
        evaluation's table for it: only what changes is computed.  That table may also hold subjects not yet
        known at the cut (who are out, as nothing of theirs is known), so such counts are taken over
        :meth:`universe` (see :meth:`count_inside`).
        """
        if self.base is not None and not self.reasons and self.as_of is not None:
            settled = settled_by(rule, self.r)
            if settled is not None and settled <= self.as_of and (rule, entity) in self.base._built:
                return self.base._built[(rule, entity)]
        table = compile_rule(rule, self, Scope(universe=self.universe(entity), entity=entity, owner=owner))
        self._built[(rule, entity)] = table
        return table

    def count_inside(self, pid: str) -> int:
        """How many subjects population ``pid`` holds in this evaluation."""
        table = self.population(pid)
        if self.base is None:
            return int(scalar(self.con, f"SELECT count(*) FROM {table} WHERE inside"))  # type: ignore[index]
        universe = self.universe(self.r.populations[pid].entity)
        return int(scalar(self.con, f"SELECT count(*) FROM {table} p SEMI JOIN {universe} u USING (id) WHERE inside"))  # type: ignore[index]

    def leaf(self, at: Scope, sql: str, *, keeps_rule: bool = False) -> str:
        """The node table of a leaf test whose ``sql`` selects (id, inside, reason) for every id of ``at.universe``.

        The answer is charged to the population the leaf is in, unless ``keeps_rule`` (``sql`` then selects a
        ``rule`` column too, as a cohort does to keep the rule that decided each member).
        """
        # Without reasons, the unused text columns are pruned from the plan before they are computed.
        reason = "reason" if self.reasons else f"{NO_REASON} AS reason"
        rule = "rule" if keeps_rule else f"{q(at.owner)} AS rule"
        return self.table(f"SELECT id, inside, {rule}, {reason} FROM ({sql})")

    def because(self, words: str, **values: Value) -> str:
        """SQL for a reason in ``words`` with ``values`` (see :meth:`cquin.engine.reasons.Templates.reason_sql`)."""
        return self.templates.reason_sql(words, **values)

    def files(self, table: str) -> tuple[str, ...]:
        """The source files rows of ``table`` came from (a reason names its file in its words when they are few)."""
        if table not in self._files:
            found = self.con.execute(f"SELECT DISTINCT _file FROM {table} LIMIT {ONE_OF_LIMIT + 1}").fetchall()
            self._files[table] = tuple(sorted(f for (f,) in found if f is not None))
        return self._files[table]

    def new_name(self, prefix: str) -> str:
        """A table name not used before in this evaluation, starting with ``prefix`` (without the evaluation's own)."""
        return f"{prefix}{next(self._ids)}"

    def table(self, sql: str) -> str:
        """A new node table holding ``sql``'s rows; the working tables of the leaf just built are dropped."""
        name = self.t(f"n{next(self._ids)}")
        self.con.execute(f"CREATE OR REPLACE TABLE {name} AS {sql}")
        for scratch in self._scratch_tables:  # a leaf's working tables are not needed once its node is built
            self.con.execute(f"DROP TABLE IF EXISTS {scratch}")
        self._scratch_tables.clear()
        return name

    def scratch(self, sql: str) -> str:
        """A working table for the leaf being built, dropped once the leaf's node table exists."""
        name = self.t(f"w{next(self._ids)}")
        self.con.execute(f"CREATE OR REPLACE TABLE {name} AS {sql}")
        self._scratch_tables.append(name)
        return name

    def combine(self, children: list[str], *, all_of: bool) -> str:
        """The node table of all_of / any_of over the children's node tables."""
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
        return self.table(f"SELECT c0.id, {inside} AS inside, {rule} AS rule, {reason} AS reason FROM {children[0]} c0 {joins}")

    # ------------------------------------------------------------------ shared measures

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
        direct = self.r.direct_recording_code_system
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

    def measurement(self, mid: str) -> str:
        """The chosen assessment per patient for measurement ``mid`` (table with id, instrument, value, low, result, ...)."""
        if mid in self._measurements:
            return self._measurements[mid]
        m = self.r.measurements[mid]
        start, end = self.r.period(m.within)
        order = "assessed_on ASC" if m.pick == "earliest" else "assessed_on DESC"
        same = m.same_instrument_as
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
              WHERE s.respondent = {q(m.respondent)} AND s.assessed_on BETWEEN DATE '{start}' AND DATE '{end}' {cond})
            WHERE rn = 1"""
        )
        self._measurements[mid] = name
        return name
