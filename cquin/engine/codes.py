"""Clinical code formats: SNOMED CT identifiers and ICD-10 codes.

SNOMED CT concept ids carry a Verhoeff check digit (checked with python-stdnum)
and a two-digit partition before it ('00' or '10' for a concept).  ICD-10 codes
are a letter, two digits and an optional dotted fourth (and fifth) character;
they are compared without the dot, upper-cased.
"""

from __future__ import annotations

import re

from stdnum import verhoeff

_ICD10 = re.compile(r"^[A-Z][0-9]{2}(\.?[0-9A-Z]{1,2})?$")
_LOCAL = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
CONCEPT_PARTITIONS = ("00", "10")


def check_snomed_concept(code: str) -> str | None:
    """Why ``code`` is not a SNOMED CT concept id, or None if it is one."""
    if not code.isdigit() or not 6 <= len(code) <= 18:
        return f"{code!r} is not a SNOMED CT identifier (expected 6 to 18 digits)"
    if code.startswith("0"):
        return f"{code!r} is not a SNOMED CT identifier (it may not start with 0)"
    if not verhoeff.is_valid(code):
        return f"{code!r} fails the SNOMED CT Verhoeff check digit"
    if code[-3:-1] not in CONCEPT_PARTITIONS:
        return f"{code!r} has partition {code[-3:-1]}, which is not a concept (expected 00 or 10)"
    return None


def check_icd10(code: str) -> str | None:
    """Why ``code`` is not an ICD-10 code or prefix, or None if it is one."""
    if not _ICD10.match(code.strip().upper()):
        return f"{code!r} is not an ICD-10 code (expected a letter and two digits, e.g. E11 or I12.0)"
    return None


def check_code(system: str, code: str) -> str | None:
    if not code:
        return "empty code"
    if system == "snomed":
        return check_snomed_concept(code)
    if system == "icd10":
        return check_icd10(code)
    if system == "local":
        return None if _LOCAL.match(code) else f"{code!r} is not a local code (letters, digits, '.', '_' or '-')"
    return f"unknown code system {system!r}"


def normalise(system: str, code: str) -> str:
    """The form codes are compared in: ICD-10 upper-case without the dot; SNOMED as written."""
    code = code.strip()
    if system == "icd10":
        return code.upper().replace(".", "")
    return code
