"""Row checks as SQL: each column's normalised value and, when it is wrong, why.

Every check runs set-based in DuckDB over the raw (all-text) staging table, so a
million rows are checked in a second.  Each produces a SQL expression for the
clean value and one for the error message (NULL when the cell is fine), which
the builder combines into the canonical table and the rejection ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

from stdnum.exceptions import ValidationError
from stdnum.gb import nhs

from cquin.dataset.duck import sql_str
from cquin.dataset.tables import Column

# Not policy: the range of dates any real record could carry.
PLAUSIBLE_FROM = "1900-01-01"
PLAUSIBLE_TO = "2099-12-31"

# White space trimmed from every cell: every character Python's str.strip() removes (tab, no-break space,
# the Unicode spaces, line and paragraph separators), plus the zero-width space and a stray byte-order mark.
# DuckDB's one-argument trim() removes only the space character.
WHITE_SPACE = "".join(ch for ch in map(chr, range(0x3001)) if ch.isspace()) + "\u200b\ufeff"
# The same characters as a regular-expression class (RE2 syntax), for white space inside a value.
WHITE_SPACE_RUN = "[\\s\\pZ\\x0b\\x1c-\\x1f\\x{85}\\x{200B}\\x{FEFF}]+"


def trim_sql(expr: str) -> str:
    """``expr`` without surrounding white space of any kind (see :data:`WHITE_SPACE`).

    For expressions run on a few rows (the detailed messages of failing rows): the shortest SQL.  Every-row
    passes use :func:`fast_trim_sql`.
    """
    return f"trim({expr}, {sql_str(WHITE_SPACE)})"


def fast_trim_sql(expr: str) -> str:
    """:func:`trim_sql` for a pass over every row; ``expr`` should be a column name (it is written three times).

    Trimming against a set of 30 characters costs about 0.5 microseconds a cell, and nearly every cell has
    nothing to trim: only a value that starts or ends with one of them is trimmed (16 times faster).
    """
    ws = sql_str(WHITE_SPACE)
    return (
        f"CASE WHEN contains({ws}, left({expr}, 1)) OR contains({ws}, right({expr}, 1)) THEN trim({expr}, {ws}) ELSE {expr} END"
    )


def answer_sql(expr: str) -> str:
    """A GPPS answer as matched: trimmed, inner white space runs made one space, lower case."""
    # Most rows are PAM assessments with empty answers: the regular expression runs only on an answer.
    return f"CASE WHEN coalesce({expr}, '') = '' THEN {expr} ELSE lower(regexp_replace({fast_trim_sql(expr)}, '{WHITE_SPACE_RUN}', ' ', 'g')) END"


SCIENTIFIC_HINT = (
    " is in scientific notation: a spreadsheet turned the NHS numbers into numbers and dropped digits; "
    "format the column as Text in the spreadsheet, restore the numbers from the source system and save again"
)


@dataclass(frozen=True)
class ColumnSQL:
    value: str  # the clean, typed value (NULL when empty or invalid)
    error: str  # a message, or NULL when the cell is fine (detailed; run only on failing rows)
    sql_type: str
    ok: str = "true"  # a cheap test that the cell is fine, run on every row


def nhs_number_sql(raw: str, *, trimmed: bool = False) -> tuple[str, str]:
    """Normalised NHS number and the Modulus 11 check, as SQL over ``raw``.

    NHS Data Dictionary: multiply digits 1-9 by weights 10..2, sum, take the
    remainder mod 11; the check digit is 11 minus that (11 becomes 0, 10 means
    the number is invalid) and must equal digit 10.  Equivalently, and in one
    sum: with digit 10 weighted 1, the weighted sum of all ten digits is a
    multiple of 11 (a remainder of 1 would need check digit 10, which no digit is).
    """
    norm = f"replace(replace({raw if trimmed else trim_sql(raw)}, ' ', ''), '-', '')"
    total = " + ".join(f"{11 - i} * (ascii(substr({norm}, {i}, 1)) - 48)" for i in range(1, 11))
    return norm, f"(({total}) % 11 = 0)"


def nhs_number_ok_sql(norm: str, as_int: str | None = None) -> str:
    """A fast Modulus 11 test on an already normalised value, by integer arithmetic.

    ``as_int`` names a column already holding ``TRY_CAST(norm AS BIGINT)``;
    materialising it first saves recomputing the cast for every digit.  The
    cast alone is not a digits test: DuckDB casts '9990002.50' (rounding),
    '999_000001' and '0x1234abcd' to integers, so the text must be ten digits.
    """
    n = as_int or f"TRY_CAST({norm} AS BIGINT)"
    digit = lambda i: f"(({n} // {10 ** (10 - i)}) % 10)"  # noqa: E731 - digit i of 10, counting from the left
    total = " + ".join(f"{11 - i} * {digit(i)}" for i in range(1, 11))
    return f"({n} IS NOT NULL AND regexp_full_match({norm}, '[0-9]{{10}}') AND ({total}) % 11 = 0)"


def column_sql(
    col: Column, raw: str, *, date_style: str = "iso", vocab_sql: dict[str, str] | None = None, trimmed: bool = False
) -> ColumnSQL:
    """SQL for one column: ``raw`` is the quoted column reference in the staging table.

    With ``trimmed``, ``raw`` already holds the trimmed text with empty for missing (never NULL), so the
    SQL does not trim it again: the bulk check trims each cell once.
    """
    vocab_sql = vocab_sql or {}
    present = f"({raw} <> '')" if trimmed else "(" + trim_sql(f"coalesce({raw}, '')") + " <> '')"
    missing_msg = sql_str(f"{col.name} is missing (required)")
    req = f"WHEN NOT {present} THEN {missing_msg}" if col.required else f"WHEN NOT {present} THEN NULL"
    val = raw if trimmed else trim_sql(raw)
    if col.kind == "nhs_number":
        norm, ok = nhs_number_sql(raw)
        err = (
            f"CASE {req} WHEN regexp_full_match({trim_sql(raw)}, '[0-9](\\.[0-9]+)?[eE][+]?[0-9]+') THEN "
            f"'NHS number ' || quote_text({trim_sql(raw)}) || {sql_str(SCIENTIFIC_HINT)} "
            f"WHEN NOT regexp_full_match({norm}, '[0-9]{{10}}') THEN "
            f"'NHS number ' || quote_text({trim_sql(raw)}) || ' is not 10 digits' "
            f"WHEN NOT {ok} THEN 'NHS number ' || quote_text({trim_sql(raw)}) || ' fails the Modulus 11 check digit' END"
        )
        value = f"CASE WHEN {present} THEN {norm} END"
        return ColumnSQL(value, err, "VARCHAR", cell_ok_sql(col, present, nhs_number_ok_sql(norm)))
    if col.kind == "date":
        timed = f"regexp_full_match({val}, '[0-9]{{1,4}}[-/][0-9]{{1,2}}[-/][0-9]{{1,4}}[ T][0-9]{{1,2}}:[0-9]{{2}}(:[0-9]{{2}}(\\.[0-9]+)?)?')"
        val = midnight_sql(val)
        if date_style == "uk":
            shape, fmt, expected = r"[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}", "%d/%m/%Y", "DD/MM/YYYY"
            parsed = f"CAST(try_strptime({val}, '{fmt}') AS DATE)"
            # An adapter that declares UK dates still accepts ISO ones.
            iso = f"CAST(try_strptime({val}, '%Y-%m-%d') AS DATE)"
            shape_ok = f"(regexp_full_match({val}, '{shape}') OR regexp_full_match({val}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}'))"
            parsed = f"coalesce({parsed}, CASE WHEN regexp_full_match({val}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}') THEN {iso} END)"
            expected = "DD/MM/YYYY or YYYY-MM-DD"
        else:
            shape_ok = f"regexp_full_match({val}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}')"
            parsed = f"CAST(try_strptime({val}, '%Y-%m-%d') AS DATE)"
            expected = "YYYY-MM-DD"
        err = (
            f"CASE {req} WHEN {timed} AND NOT {shape_ok} THEN quote_text({val}) || "
            "' has a time of day; a date is read from a date-time only at midnight (00:00)' "
            f"WHEN NOT {shape_ok} THEN quote_text({val}) || ' is not a date (expected {expected})' "
            f"WHEN {parsed} IS NULL THEN quote_text({val}) || ' is not a real date' "
            f"WHEN {parsed} < DATE '{PLAUSIBLE_FROM}' OR {parsed} > DATE '{PLAUSIBLE_TO}' THEN "
            f"quote_text({val}) || ' is outside the plausible range {PLAUSIBLE_FROM} to {PLAUSIBLE_TO}' END"
        )
        value = f"CASE WHEN {present} AND {shape_ok} THEN {parsed} END"
        if date_style == "uk":
            ok = f"({value}) BETWEEN DATE '{PLAUSIBLE_FROM}' AND DATE '{PLAUSIBLE_TO}'"
        else:
            cheap = f"CAST(try_strptime({val}, '%Y-%m-%d') AS DATE)"
            ok = (
                f"(length({val}) = 10 AND substr({val}, 5, 1) = '-' AND substr({val}, 8, 1) = '-' "
                f"AND {cheap} BETWEEN DATE '{PLAUSIBLE_FROM}' AND DATE '{PLAUSIBLE_TO}')"
            )
            value = f"CASE WHEN {present} AND length({val}) = 10 THEN {cheap} END"
        return ColumnSQL(value, err, "DATE", cell_ok_sql(col, present, ok))
    if col.kind in ("enum", "boolean"):
        values = col.values or ("true", "false")
        options = ", ".join(sql_str(v) for v in values)
        lowered = f"lower({val})"
        err = f"CASE {req} WHEN {lowered} NOT IN ({options}) THEN quote_text({val}) || ' is not one of: {', '.join(values)}' END"
        value = f"CASE WHEN {present} THEN {lowered} END"
        ok = cell_ok_sql(col, present, f"{lowered} IN ({options})")
        if col.kind == "boolean":
            value = f"CASE WHEN {present} THEN {lowered} = 'true' END"
            return ColumnSQL(value, err, "BOOLEAN", ok)
        return ColumnSQL(value, err, "VARCHAR", ok)
    if col.kind == "pam_score":
        lo, hi = vocab_sql.get("pam_score_min", "0"), vocab_sql.get("pam_score_max", "100")
        num = f"TRY_CAST({val} AS DECIMAL(18,6))"
        # A number written otherwise (1E+5000, 1e2, -3) is out of range or not in plain decimal form: said so, not "not a number".
        number = f"regexp_full_match({val}, '[+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][+-]?[0-9]+)?')"
        as_double = f"TRY_CAST({val} AS DOUBLE)"
        err = (
            f"CASE {req} WHEN NOT regexp_full_match({val}, '[0-9]{{1,3}}(\\.[0-9]{{1,6}})?') OR {num} IS NULL THEN "
            f"CASE WHEN {number} AND NOT ({as_double} BETWEEN {lo} AND {hi}) "
            f"THEN 'PAM score ' || quote_text({val}) || ' is outside {lo}-{hi}' "
            f"WHEN {number} THEN 'PAM score ' || quote_text({val}) || ' is not a plain decimal number (digits, and up to 6 decimal places)' "
            f"ELSE 'PAM score ' || quote_text({val}) || ' is not a number' END "
            f"WHEN {num} < {lo} OR {num} > {hi} THEN 'PAM score ' || {val} || ' is outside {lo}-{hi}' END"
        )
        ok = cell_ok_sql(
            col, present, f"regexp_full_match({val}, '[0-9]{{1,3}}(\\.[0-9]{{1,6}})?') AND {num} BETWEEN {lo} AND {hi}"
        )
        return ColumnSQL(f"CASE WHEN {present} THEN {num} END", err, "DECIMAL(18,6)", ok)
    if col.kind == "pam_level":
        lo, hi = vocab_sql.get("pam_level_min", "1"), vocab_sql.get("pam_level_max", "4")
        num = f"TRY_CAST({val} AS INTEGER)"
        err = (
            f"CASE {req} WHEN NOT regexp_full_match({val}, '[0-9]+') OR {num} IS NULL THEN "
            f"'PAM level ' || quote_text({val}) || ' is not a whole number' "
            f"WHEN {num} < {lo} OR {num} > {hi} THEN 'PAM level ' || {val} || ' is outside {lo}-{hi}' END"
        )
        ok = cell_ok_sql(col, present, f"regexp_full_match({val}, '[0-9]+') AND {num} BETWEEN {lo} AND {hi}")
        return ColumnSQL(f"CASE WHEN {present} THEN {num} END", err, "INTEGER", ok)
    if col.kind == "gpps_answer":
        options = vocab_sql.get(f"options_{col.name}", "")
        norm = answer_sql(raw)
        if options:
            err = (
                f"CASE {req} WHEN {norm} NOT IN ({options}) THEN "
                f"{sql_str(col.name + ' answer ')} || quote_text({val}) || ' is not one of the questionnaire options' END"
            )
            ok = cell_ok_sql(col, present, f"{norm} IN ({options})")
        else:
            err = f"CASE {req} END"
            ok = cell_ok_sql(col, present, "true")
        return ColumnSQL(f"CASE WHEN {present} THEN {val} END", err, "VARCHAR", ok)
    if col.kind == "care_plan_category":
        # Lower-cased so categories match the ruleset's ids whatever the case; which list applies depends on
        # the row's entry, so membership is a row rule (DatasetBuilder._row_rules).
        err = f"CASE {req} END"
        return ColumnSQL(f"CASE WHEN {present} THEN lower({val}) END", err, "VARCHAR", cell_ok_sql(col, present, "true"))
    # text and code: any non-empty text; codes are checked against their system below.
    err = f"CASE {req} END"
    return ColumnSQL(f"CASE WHEN {present} THEN {val} END", err, "VARCHAR", cell_ok_sql(col, present, "true"))


def midnight_sql(text: str) -> str:
    """``text`` without a time of exactly midnight (``05/03/2012 00:00``, ``2012-03-05T00:00:00.000``): Excel's date-times.

    Only text longer than a date is searched, so the common case costs one length test.
    """
    return f"CASE WHEN length({text}) > 10 THEN regexp_replace({text}, '[ T]00:00(:00(\\.0{{1,9}})?)?Z?$', '') ELSE {text} END"


def cell_ok_sql(col: Column, present: str, valid: str) -> str:
    """A cell is fine when it is empty and optional, or present and valid."""
    if col.required:
        return f"coalesce({present} AND ({valid}), false)"
    return f"coalesce(NOT {present} OR ({valid}), false)"


def quote_value(text: str | None, limit: int = 60) -> str:
    """A value quoted for a message, shortened when long (a 100,000-character cell stays readable)."""
    s = text or ""
    return "'" + (s if len(s) <= limit else s[: limit - 3] + "...") + "'"


def nhs_number_problem(text: str) -> str | None:
    """Why ``text`` is not a valid NHS number, in the words of the row checks (:func:`column_sql`), or None.

    For adapters that check an NHS number in Python before staging (FHIR, CSDS): python-stdnum's Modulus 11.
    """
    try:
        nhs.validate(text)
    except ValidationError as exc:
        if isinstance(exc, nhs.InvalidChecksum):
            return f"NHS number {quote_value(text)} fails the Modulus 11 check digit"
        return f"NHS number {quote_value(text)} is not 10 digits"
    return None
