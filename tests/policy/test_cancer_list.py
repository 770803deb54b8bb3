"""The cancer SNOMED CT list is the whole of C19CAN_COD and C19HAEMCAN_COD (issue 12 item 11), and a diff says who moves.

Version 1.0.0 of cquin_2017_19 held only the first 1,500 of C19CAN_COD's 3,520
codes and no blood cancers.  Here that list is rebuilt (the bundled list's first
1,500 rows are the old list, in its order) and compared with the bundled one.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from typer.testing import CliRunner

from cquin import cli
from cquin.engine.ruleset import BUNDLED_DIR, load_ruleset

runner = CliRunner()
LIST = BUNDLED_DIR / "codelists" / "cquin_2017_19" / "cancer.snomed.csv"
MYELOMA = "109989006"  # |Multiple myeloma (disorder)|, in C19HAEMCAN_COD


def rows() -> list[dict[str, str]]:
    with LIST.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_the_list_holds_both_refsets_in_full():
    sources = [r["source"] for r in rows()]
    assert len(sources) == len(set(r["code"] for r in rows())) == 4327
    assert sources.count("nhsd-primary-care-domain-refsets/c19can_cod/20210127") == 3520
    # 817 rows of C19HAEMCAN_COD, 10 of which C19CAN_COD already lists (kept once, under C19CAN_COD).
    assert sources.count("nhsd-primary-care-domain-refsets/c19haemcan_cod/20210127") == 807
    spec = load_ruleset("cquin_2017_19").doc["code_lists"]["cancer_snomed"]
    assert {s["id"] for s in spec["sources"]} == {
        "nhsd-primary-care-domain-refsets/c19can_cod/20210127",
        "nhsd-primary-care-domain-refsets/c19haemcan_cod/20210127",
    }


def old_ruleset(folder: Path) -> Path:
    """cquin_2017_19 1.0.0: the bundled ruleset with the cancer list cut back to the truncated 1,500 rows."""
    shutil.copytree(BUNDLED_DIR / "codelists", folder / "codelists")
    cut = folder / "codelists" / "cquin_2017_19" / "cancer.snomed.csv"
    with cut.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, ["code", "term", "source"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows()[:1500])
    text = (BUNDLED_DIR / "cquin_2017_19.yaml").read_text(encoding="utf-8").replace("version: 1.2.0\n", "version: 1.0.0\n")
    path = folder / "cquin_2017_19.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_ruleset_diff_impact_shows_a_blood_cancer_patient_moving_into_ltc_identification(tmp_path):
    old = old_ruleset(tmp_path / "old")
    records = tmp_path / "records"
    records.mkdir()
    (records / "patients.csv").write_text(
        "patient_id,date_of_birth,sex,served_from,served_to\n9990000018,1948-02-03,male,2017-01-01,\n"
        "9990000026,1950-05-06,female,2017-01-01,\n",
        encoding="utf-8",
    )
    (records / "conditions.csv").write_text(
        f"patient_id,code_system,code,recorded_on\n9990000018,snomed,{MYELOMA},2016-02-01\n", encoding="utf-8"
    )
    result = runner.invoke(cli.app, ["ruleset", "diff", str(old), "cquin_2017_19", "--impact", str(records), "--list"])
    assert result.exit_code == 0, result.output
    shown = " ".join(result.stdout.split())
    assert "code list cancer_snomed (category cancer): 2827 code(s) added" in shown.replace(",", "")
    assert "y1.ltc_identification: changed" in shown
    assert "9990000018" in shown.split("Who moves")[1]
