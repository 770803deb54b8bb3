"""Counts balance for any input: every record of every file is accepted or rejected, once, at its own line.

Canonical CSV files are drawn with cells mixing valid values, invalid ones and
arbitrary text (quotes, commas, new lines, carriage returns, NULs, any
Unicode), written as well-formed CSV with LF or CR LF line ends and a few
blank lines (which are not records).  Python's
``csv`` module says where each record starts; after loading, for every file:

- rows read = the records Python's csv module finds = accepted + rejected
  (a carriage return inside an unquoted cell ends a record for both);
- the accepted rows in the canonical table are exactly ``accepted``;
- the lines of the accepted rows and of the rejections are exactly the lines
  the records start on (no record lost, none counted twice, none misplaced).
"""

from __future__ import annotations

import csv
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from cquin.dataset import table
from cquin.engine.ruleset import load_ruleset
from cquin.loading import load_dataset
from tests.properties.populations import DATES, bounded, nhs_number

VOCAB = load_ruleset("cquin_2017_19").vocabulary()

hostile_text = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), include_characters=',"\n\r\x00 \t\ufeff'),
    max_size=12,
)
GOOD = {
    "nhs_number": st.sampled_from([nhs_number(i) for i in range(1, 6)]),
    "date": st.sampled_from(DATES),
    "enum": None,  # filled per column from its allowed values
    "boolean": st.sampled_from(("true", "false", "TRUE")),
    "pam_score": st.sampled_from(("0", "47.3", "100")),
    "pam_level": st.sampled_from(("1", "4")),
    "text": st.sampled_from(("S1", "District nurse")),
    "code": st.sampled_from(("44054006", "I10", "diabetes")),
}
BAD = st.sampled_from(("", " ", "31/02/2018", "2018-13-01", "999000002A", "9990000019", "-1", "101", "5", "maybe", "NULL"))


def cell(kind: str, values: tuple[str, ...]) -> st.SearchStrategy[str]:
    if values:
        good = st.sampled_from(values)
    else:
        good = GOOD[kind] if GOOD.get(kind) is not None else GOOD["text"]
    if kind == "gpps_answer":
        good = st.sampled_from(VOCAB.gpps_options["gpps_q32"] + VOCAB.gpps_options["gpps_q33"])
    return st.one_of(good, good, good, BAD, hostile_text)


@st.composite
def csv_file(draw: st.DrawFn, name: str) -> tuple[list[str], list[list[str]], str, set[int]]:
    t = table(name)
    header = list(t.column_names)
    if draw(st.booleans()):
        header = draw(st.permutations(header))
    kinds = {c.name: (c.kind, c.values) for c in t.columns}
    rows = draw(st.lists(st.tuples(*(cell(*kinds[h]) for h in header)).map(list), max_size=12))
    blanks = draw(st.sets(st.integers(0, len(rows)), max_size=3))  # blank lines before these rows
    return header, rows, draw(st.sampled_from(("\n", "\r\n"))), blanks


def record_starts(path: Path) -> list[int]:
    """The line each record starts on, as Python's csv module reads the file."""
    starts = []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        previous = reader.line_num
        for row in reader:
            if row:
                starts.append(previous + 1)
            previous = reader.line_num
    return starts


@bounded(10)
@given(files=st.fixed_dictionaries({name: csv_file(name) for name in ("patients", "conditions", "assessments")}))
def test_every_record_is_accepted_or_rejected_once_at_its_line(tmp_path_factory, files):
    folder = tmp_path_factory.mktemp("canonical")
    for name, (header, rows, end, blanks) in files.items():
        with (folder / f"{name}.csv").open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator=end)
            writer.writerow(header)
            for i, row in enumerate(rows):
                if i in blanks:
                    fh.write(end)
                writer.writerow(row)
    ds, _ = load_dataset(folder, VOCAB, adapter="canonical")
    for name in files:
        file = f"{name}.csv"
        stats = ds.ledger.files[file]
        starts = record_starts(folder / file)
        assert stats.read == len(starts)
        assert stats.read == stats.accepted + stats.rejected
        accepted = sorted(line for (line,) in ds.con.execute(f"SELECT _line FROM {name} WHERE _file = ?", [file]).fetchall())
        rejected = sorted(
            line for (line,) in ds.con.execute("SELECT DISTINCT line FROM rejections WHERE file = ?", [file]).fetchall()
        )
        assert len(accepted) == stats.accepted
        assert not set(accepted) & set(rejected)
        assert sorted(accepted + rejected) == starts
