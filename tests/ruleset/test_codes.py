"""Clinical code formats: SNOMED CT concept ids (Verhoeff, partition) and ICD-10 codes."""

from __future__ import annotations

import pytest
from stdnum import verhoeff

from cquin.engine.codes import check_code, check_icd10, check_snomed_concept, normalise

# --------------------------------------------------------------------------- SNOMED CT


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        ("44054006", "Diabetes mellitus type 2"),
        ("59621000", "Essential hypertension"),
        ("962851000000103", "a UK extension concept (long partition 10)"),
        ("195967001", "Asthma"),
        ("73211009", "Diabetes mellitus"),
    ],
)
def test_valid_snomed_concept_ids_pass(code: str, meaning: str):
    assert check_snomed_concept(code) is None, meaning
    assert check_code("snomed", code) is None


def test_a_wrong_check_digit_fails_verhoeff():
    problem = check_snomed_concept("44054007")
    assert problem is not None
    assert "'44054007'" in problem and "Verhoeff" in problem


@pytest.mark.parametrize("position", range(8))
def test_every_single_digit_typo_is_caught(position: int):
    """Verhoeff catches any one mistyped digit."""
    code = "44054006"
    for digit in "0123456789":
        if digit != code[position] and not (position == 0 and digit == "0"):
            typo = code[:position] + digit + code[position + 1 :]
            assert check_snomed_concept(typo) is not None, typo


def test_swapped_adjacent_digits_are_caught():
    assert check_snomed_concept("40454006") is not None  # 44054006 with digits 2 and 3 swapped


@pytest.mark.parametrize("partition", ["01", "11", "02", "12"])
def test_a_non_concept_partition_is_refused(partition: str):
    """Descriptions (01, 11) and relationships (02, 12) are not concepts, even with a valid check digit."""
    stem = "1234567" + partition
    code = stem + verhoeff.calc_check_digit(stem)
    assert verhoeff.is_valid(code)
    problem = check_snomed_concept(code)
    assert problem is not None
    assert f"partition {partition}" in problem and "not a concept" in problem


def test_a_real_description_id_is_not_a_concept():
    problem = check_snomed_concept("1223979019")  # partition 01: a description id
    assert problem is not None and "partition 01" in problem


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("12345", "6 to 18 digits"),
        ("1" * 19, "6 to 18 digits"),
        ("4405400X", "6 to 18 digits"),
        ("", "6 to 18 digits"),
        ("044054006", "may not start with 0"),
        ("44054006 ", "6 to 18 digits"),
    ],
)
def test_malformed_snomed_identifiers_are_refused(code: str, reason: str):
    problem = check_snomed_concept(code)
    assert problem is not None and reason in problem


# --------------------------------------------------------------------------- ICD-10


@pytest.mark.parametrize("code", ["E11", "E11.9", "E119", "I12.0", "e11", "F00.0", "M05.30", "Z99", " E11 "])
def test_valid_icd10_codes_pass(code: str):
    assert check_icd10(code) is None
    assert check_code("icd10", code) is None


@pytest.mark.parametrize("code", ["E1", "11E", "E11.", "E11.905", "EE11", "E1A", "E11-9", "I12..0", "diabetes"])
def test_malformed_icd10_codes_are_refused(code: str):
    problem = check_icd10(code)
    assert problem is not None
    assert repr(code) in problem and "not an ICD-10 code" in problem


@pytest.mark.parametrize(
    ("written", "compared_as"),
    [("E11.9", "E119"), ("e11", "E11"), ("E119", "E119"), (" i12.0 ", "I120"), ("N18", "N18")],
)
def test_icd10_codes_are_compared_upper_case_without_the_dot(written: str, compared_as: str):
    assert normalise("icd10", written) == compared_as


def test_snomed_and_local_codes_are_compared_as_written():
    assert normalise("snomed", " 44054006 ") == "44054006"
    assert normalise("local", "pcsp-Conversation") == "pcsp-Conversation"


# --------------------------------------------------------------------------- check_code


@pytest.mark.parametrize("code", ["pcsp-conversation", "PCSP.review_2", "a"])
def test_local_codes_are_letters_digits_and_punctuation(code: str):
    assert check_code("local", code) is None


@pytest.mark.parametrize("code", ["has space", "x" * 65, "semi;colon"])
def test_malformed_local_codes_are_refused(code: str):
    assert check_code("local", code) is not None


def test_an_empty_code_is_refused_in_every_system():
    for system in ("snomed", "icd10", "local"):
        assert check_code(system, "") == "empty code"


def test_an_unknown_code_system_is_refused():
    assert "unknown code system 'read2'" in check_code("read2", "C10..")
