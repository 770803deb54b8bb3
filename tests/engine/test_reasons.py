"""A reason is kept as its words (a template, fixed when the rules are compiled) and the values of one row.

The values are what a row holds (dates, line numbers, codes, free text); they are joined into one string and
must read back exactly whatever they contain.  A value from a small known set (a code system, an LTC
category, a file name) is written into the words instead, unless it has digits (words are shown where
patient values are hidden).
"""

from __future__ import annotations

import duckdb
import pytest

from cquin.engine.reasons import ONE_OF_LIMIT, OneOf, Safe, Templates, Text, escape, one_of, render, slots, values_of


def _reason(templates: Templates, sql_reason: str, rows: str) -> list[str | None]:
    con = duckdb.connect()
    got = con.execute(f"SELECT r.t, r.v FROM (SELECT {sql_reason} AS r FROM ({rows}))").fetchall()
    return [templates.render(t, v) for t, v in got]


@pytest.mark.parametrize(
    "code",
    ["343087000", "E11.9", "a|b", 'say "hi"', "back\\slash", "tab\there", "100%", "", "naïve – ünïcode"],
)
def test_a_text_value_reads_back_exactly_whatever_it_holds(code: str) -> None:
    templates = Templates()
    sql = templates.reason_sql("code {code} recorded {on}", code=Text("code"), on=Safe("CAST(d AS VARCHAR)"))
    literal = "'" + code.replace("'", "''") + "'"
    assert _reason(templates, sql, f"SELECT {literal} AS code, DATE '2017-06-01' AS d") == [f"code {code} recorded 2017-06-01"]


def test_a_known_choice_goes_into_the_words_and_another_stays_a_value() -> None:
    templates = Templates()
    system = one_of("s", ["snomed", "gpps"])
    sql = templates.reason_sql("{system} {code}", system=system, code=Text("c"))
    rows = "SELECT * FROM (VALUES ('snomed', '1234'), ('gpps', 'dementia'), ('read', 'E11')) v(s, c)"
    assert _reason(templates, sql, rows) == ["snomed 1234", "gpps dementia", "read E11"]
    assert templates.texts == ["snomed %s", "gpps %s", "%s %s"]
    con = duckdb.connect()
    values = [v for (v,) in con.execute(f"SELECT r.v FROM (SELECT {sql} AS r FROM ({rows}))").fetchall()]
    assert values == ["1234", "dementia", "read|E11"]  # only what is not in the words is stored


def test_a_file_name_with_digits_or_one_among_too_many_is_never_written_into_the_words() -> None:
    assert isinstance(one_of("f", ["bundle-9990000018.json"], from_records=True), Text)
    many = [f"file{chr(97 + i % 26)}{chr(97 + i // 26)}.csv" for i in range(ONE_OF_LIMIT + 1)]
    assert isinstance(one_of("f", many, from_records=True), Text)
    assert isinstance(one_of("s", ["icd10"]), OneOf)  # the ruleset's own words may have digits
    kept = one_of("f", ["patients.csv", "bundle-9990000018.json"], from_records=True)
    assert isinstance(kept, OneOf) and kept.options == ("patients.csv",)


def test_constants_are_words_and_a_percent_sign_in_them_is_kept_literally() -> None:
    templates = Templates()
    sql = templates.reason_sql("over {share} of {n} patients", share="50%", n=Safe("CAST(n AS VARCHAR)"))
    assert _reason(templates, sql, "SELECT 12 AS n") == ["over 50% of 12 patients"]
    assert templates.texts == ["over 50%% of %s patients"]


def test_a_reason_with_no_values_and_one_empty_value_read_back_apart() -> None:
    assert values_of("") == [""]
    assert render("no episode of care known", values_of("")) == "no episode of care known"
    assert render("override: %s", values_of("")) == "override: "
    assert slots("100%% of %s") == 1


def test_stored_values_split_exactly_on_the_separator_only() -> None:
    values = ["a|b", 'q"', "\\", "2017-06-01"]
    assert values_of("|".join(escape(v) for v in values)) == values
