"""Generate a reproducible synthetic canonical dataset for CQUIN 2017-19 Indicator 11.

``generate(out_dir, patients, seed)`` writes all eight canonical CSV files with
a realistic mix for a community services provider: older-skewed patients with
one (sometimes two) episodes of care, about 60% with long-term conditions coded
in SNOMED CT, ICD-10 (with and without the dot, sometimes with a fourth
character) or as a GPPS category, PAM and GPPS activation assessments (Year 1
baselines, Year 2 follow-ups, a share improving), care and support planning
conversations concentrated on low-activation patients, staff, training,
a handful of agreed cohort overrides and the provider's details.  With
``bad_rows=True`` about 0.1% of rows are deliberately wrong in the ways real
exports are (bad check digit, DD/MM/YYYY, 31 February, unknown code system,
an answer that is not a GPPS option, PAM score 120, unknown patient, exact
duplicate), so the rejection report has something to show.

It is vectorised (numpy draws every column at once; pyarrow formats and
joins the text), so a million patients take seconds, and deterministic: the
same ``patients`` and ``seed`` give byte-identical files with the same numpy.
NHS numbers are in the 999 test range (909,091 valid numbers); a larger
population continues into the 998 range, then 997, and so on.

Long because each canonical table is generated with its own realistic defects, one function per table.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cquin.dataset.tables import TABLE_NAMES, table

# The indicator's years, as days since 1970-01-01.
EPOCH = np.datetime64("1970-01-01", "D")


def _day(text: str) -> int:
    return int((np.datetime64(text, "D") - EPOCH).astype(np.int64))


Y1_START, Y1_END = _day("2017-04-01"), _day("2018-03-31")
Y2_START, Y2_END = _day("2018-04-01"), _day("2019-03-31")
OPEN = _day("2099-12-31")  # stands for "still under care" in date arithmetic
CODES_FROM, CODES_TO = _day("2010-01-01"), _day("2019-03-31")

CATEGORIES = (
    "dementia",
    "angina_heart",
    "arthritis_joint",
    "asthma_chest",
    "blindness_visual",
    "cancer",
    "deafness_hearing",
    "diabetes",
    "epilepsy",
    "high_blood_pressure",
    "kidney_liver",
    "back_problem",
    "mental_health",
    "neurological",
)
# Relative prevalence of each category among long-term-condition codes.
CATEGORY_WEIGHTS = (6, 10, 14, 12, 3, 6, 5, 12, 2, 20, 5, 10, 10, 3)

# Codes for conditions that are not long-term ones, so they count for nothing.
NON_LTC_SNOMED = (
    "195662009",  # Acute viral pharyngitis
    "10509002",  # Acute bronchitis
    "68566005",  # Urinary tract infectious disease
    "128045006",  # Cellulitis
    "36971009",  # Sinusitis
    "65363002",  # Otitis media
    "44465007",  # Sprain of ankle
    "271737000",  # Anaemia
    "284549007",  # Laceration of hand
    "275272006",  # Cough
)
NON_LTC_ICD10 = ("J06.9", "J069", "N39.0", "L03.1", "R51", "S52.5", "J20.9", "R05")

SEX = ("female", "male", "unknown", "indeterminate", None)
SEX_P = (0.54, 0.452, 0.005, 0.001, 0.002)

PAM_LEVEL_P = (0.15, 0.25, 0.35, 0.25)
# NHS England cut points in tenths of a point: level n spans [lo, hi].
PAM_TENTHS = ((300, 470), (471, 551), (552, 670), (671, 950))

GPPS_Q32 = ("Yes, definitely", "Yes, to some extent", "No", "I haven't needed support", "Don't know / can't say")
GPPS_Q33 = ("Very confident", "Fairly confident", "Not very confident", "Not at all confident", "Don't know")
GPPS_Q32_P = (0.22, 0.33, 0.2, 0.15, 0.1)
GPPS_Q33_P = (0.18, 0.42, 0.22, 0.11, 0.07)
GPPS_POINTS = (1.0, 0.5, 0.0, 0.0, 0.0)

STAFF_ROLES = (
    "Community nurse",
    "District nurse",
    "Community matron",
    "Physiotherapist",
    "Occupational therapist",
    "Health care assistant",
    "Speech and language therapist",
    "Dietitian",
    "Podiatrist",
    "Administrator",
)
STAFF_ROLE_P = (0.22, 0.18, 0.06, 0.12, 0.1, 0.12, 0.04, 0.04, 0.04, 0.08)
COURSES = (
    "Personalised care and support planning (e-learning)",
    "Health coaching, two-day course",
    "PAM practitioner training",
)
INCLUDE_REASONS = (
    "LTC recorded in the GP record, not in ours; agreed at the contract review meeting",
    "Diagnosis confirmed by consultant letter; agreed with the commissioner",
)
EXCLUDE_REASONS = (
    "Receiving end of life care; activation assessment not appropriate",
    "Registered in error (temporary resident)",
    "Moved out of area before the baseline could be taken",
)

PROVIDER = {
    "provider_code": "RYX",
    "provider_name": "Demo Community Health Services NHS Trust (synthetic data)",
    "plan_agreed_on": "2017-09-15",
    "recording_system_live_on": "2018-01-10",
}

BAD_SHARE = 0.001

# Care plans (the bundled ruleset's care_planning categories and conversation elements; a test keeps them in step).
CARE_PLAN_CATEGORIES = (
    "physical_activity",
    "healthy_eating",
    "arts_for_health",
    "befriending",
    "welfare_rights",
    "volunteering",
    "telehealth_self_care",
    "peer_support",
    "structured_education",
    "coaching",
    "physical_health",
    "mental_wellbeing",
)
CARE_PLAN_CATEGORY_P = (0.14, 0.09, 0.04, 0.1, 0.08, 0.03, 0.07, 0.08, 0.08, 0.05, 0.14, 0.1)
CONVERSATION_ELEMENTS = (
    "sharing_information",
    "identifying_support_needs",
    "discussing_options",
    "contingency_planning",
    "setting_goals",
    "action_plan",
    "monitoring_progress",
)
CONVERSATION_ELEMENT_P = (0.95, 0.9, 0.8, 0.45, 0.85, 0.75, 0.6)
ENTRY_KINDS = next(c.values for c in table("care_plans").columns if c.name == "entry")  # need, goal, action, referral, element

Row = dict[str, str | None]


# --------------------------------------------------------------------------- helpers


def nhs_numbers(count: int, skip: int = 0) -> np.ndarray:
    """``count`` valid NHS numbers (int64), in order from 9990000000, after skipping ``skip``.

    The first nine digits run up from 999000000; the tenth is the Modulus 11
    check digit, and a prefix whose check digit would be 10 is skipped.  When
    the 999 range is used up the numbers continue from 998000000, and so on.
    """
    out: list[np.ndarray] = []
    have, block = 0, 0
    need = count + skip
    weights = np.arange(10, 1, -1, dtype=np.int64)
    while have < need:
        prefixes = np.arange((999 - block) * 1_000_000, (1000 - block) * 1_000_000, dtype=np.int64)
        digits = (prefixes[:, None] // (10 ** np.arange(8, -1, -1, dtype=np.int64))) % 10
        check = 11 - (digits @ weights) % 11
        check[check == 11] = 0
        ok = check != 10
        numbers = prefixes[ok] * 10 + check[ok]
        out.append(numbers[: need - have])
        have += len(out[-1])
        block += 1
    return np.concatenate(out)[skip:need]


def _uniform_days(rng: np.random.Generator, lo: np.ndarray | int, hi: np.ndarray | int, size: int | None = None) -> np.ndarray:
    """A uniform day in [lo, hi] (inclusive) for each row."""
    lo_a, hi_a = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
    n = size if size is not None else int(np.broadcast(lo_a, hi_a).size)
    span = np.maximum(hi_a - lo_a + 1, 1)
    return lo_a + np.floor(rng.random(n) * span).astype(np.int64)


def _dates(days: np.ndarray, present: np.ndarray | None = None) -> pa.Array:
    """ISO date text; empty where ``present`` is False."""
    arr = pa.array(days.astype(np.int32), pa.date32(), mask=None if present is None else ~present)
    return arr.cast(pa.string())


def _pick(strings: Sequence[str | None], index: np.ndarray) -> pa.Array:
    """``strings[index]`` for each row, as CSV text (None is empty)."""
    return pc.take(pa.array([_csv_text(s) for s in strings], pa.string()), pa.array(index.astype(np.int32)))


def _choice(rng: np.random.Generator, n: int, p: Sequence[float]) -> np.ndarray:
    """Draw ``n`` indices with probabilities ``p`` (normalised)."""
    cum = np.cumsum(np.asarray(p, dtype=np.float64))
    cum /= cum[-1]
    return np.minimum(np.searchsorted(cum, rng.random(n), side="right"), len(cum) - 1)


def _order(*keys: np.ndarray) -> np.ndarray:
    """Row order sorting by the first key, then the next, ... (stable).

    Small integer keys are packed into one int64 and sorted once, which is
    several times faster than ``np.lexsort`` on millions of rows.
    """
    if len(keys[0]) == 0:
        return np.arange(0)
    lows = [int(k.min()) for k in keys]
    bits = [max(1, int(int(k.max()) - lo).bit_length()) for k, lo in zip(keys, lows, strict=True)]
    if sum(bits) > 62:
        return np.lexsort(tuple(reversed(keys)))
    packed = np.zeros(len(keys[0]), dtype=np.int64)
    for k, lo, b in zip(keys, lows, bits, strict=True):
        packed = (packed << b) | (k.astype(np.int64) - lo)
    return np.argsort(packed, kind="stable")


def _distinct_rows(*keys: np.ndarray) -> np.ndarray:
    """Mask keeping the first of rows equal on every key (rows already grouped together)."""
    order = _order(*keys)
    same = np.ones(len(order), dtype=bool)
    same[0] = False
    for k in keys:
        sk = k[order]
        same[1:] &= sk[1:] == sk[:-1]
    keep = np.ones(len(order), dtype=bool)
    keep[order[same]] = False
    return keep


def _csv_text(value: str | None) -> str | None:
    """One value as CSV text: quoted only when it holds a comma, quote or line break."""
    if value is not None and any(ch in value for ch in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _write_csv(path: Path, columns: Sequence[str], data: dict[str, pa.Array]) -> int:
    """Write a CSV file fast; ``data`` holds CSV-ready text (see :func:`_csv_text`). Returns the number of rows."""
    n = len(next(iter(data.values()))) if data else 0
    cols = [pc.fill_null(data[c], "") if c in data else pa.array([""] * n, pa.string()) for c in columns]
    with path.open("wb") as fh:
        fh.write((",".join(columns) + "\n").encode())
        step = 500_000
        for start in range(0, n, step):
            parts = [c.slice(start, step) for c in cols]
            lines = pc.binary_join_element_wise(*parts, ",") if len(parts) > 1 else parts[0]
            lines = pc.binary_join_element_wise(lines, "", "\n")
            lines = lines.cast(pa.large_string()) if len(lines) else lines
            if len(lines):
                offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
                fh.write(memoryview(lines.buffers()[2])[offsets[0] : offsets[-1]])
    return n


def _text_rows(columns: Sequence[str], rows: Sequence[Mapping[str, str | None]], *, escape: bool = True) -> dict[str, pa.Array]:
    return {c: pa.array([_csv_text(r.get(c)) if escape else r.get(c) for r in rows], pa.string()) for c in columns}


def _insert_rows(
    rng: np.random.Generator, columns: Sequence[str], good: dict[str, pa.Array], bad: list[Row]
) -> dict[str, pa.Array]:
    """Put the ``bad`` rows (already CSV text) at random places among the ``good`` ones (never first)."""
    if not bad:
        return good
    n = len(good[columns[0]])
    at = np.sort(rng.integers(1, max(n, 2), size=len(bad)))
    order = pa.array(np.insert(np.arange(n), np.minimum(at, n), np.arange(n, n + len(bad))))
    extra = _text_rows(columns, bad, escape=False)
    return {c: pc.take(pa.concat_arrays([good[c].cast(pa.string()), extra[c]]), order) for c in columns}


def _bad_count(rows: int, kinds: int) -> int:
    """About 0.1% of the rows, with every kind at least once when the file is big enough to carry them."""
    return min(max(kinds, round(rows * BAD_SHARE)), max(1, rows // 100))


def _uk(day: int) -> str:
    d = str(EPOCH + np.timedelta64(int(day), "D"))
    return f"{d[8:10]}/{d[5:7]}/{d[0:4]}"


def _iso(day: int) -> str:
    return str(EPOCH + np.timedelta64(int(day), "D"))


# --------------------------------------------------------------------------- code pools


@dataclass(frozen=True)
class CodePools:
    """Every code text the generator may write, grouped in pools it draws from uniformly."""

    texts: list[str]
    offsets: np.ndarray  # pool -> first index into texts
    sizes: np.ndarray  # pool -> number of texts

    def draw(self, rng: np.random.Generator, pool: np.ndarray) -> np.ndarray:
        return self.offsets[pool] + np.floor(rng.random(len(pool)) * self.sizes[pool]).astype(np.int64)


# Pool numbering: style * 14 + category for the styles below, then the non-LTC pools.
SNOMED, ICD_ASIS, ICD_DOTTED4, ICD_UNDOTTED4, GPPS = range(5)
NON_LTC_SNOMED_POOL = 5 * len(CATEGORIES)
NON_LTC_ICD_POOL = NON_LTC_SNOMED_POOL + 1


# Codes are drawn from the first rows of each bundled list only, so a list that grows by appended rows (the
# cancer list did, from 1,500 to 4,327 codes) leaves the data a seed generates unchanged.
POOL_ROWS = 1500


def _codelist(name: str) -> list[str]:
    text = resources.files("cquin.rulesets").joinpath(f"codelists/cquin_2017_19/{name}").read_text(encoding="utf-8")
    codes = [row["code"].strip() for row in csv.DictReader(io.StringIO(text)) if row.get("code", "").strip()]
    return codes[:POOL_ROWS]


def code_pools() -> CodePools:
    """The bundled code lists, as pools of code texts (ICD-10 in the ways exports write it)."""
    pools: list[list[str]] = [[] for _ in range(5 * len(CATEGORIES) + 2)]
    for c, cat in enumerate(CATEGORIES):
        pools[SNOMED * 14 + c] = _codelist(f"{cat}.snomed.csv")
        for code in _codelist(f"{cat}.icd10.csv"):
            pools[ICD_ASIS * 14 + c].append(code)
            if "." in code:
                pools[ICD_DOTTED4 * 14 + c].append(code)
                pools[ICD_UNDOTTED4 * 14 + c].append(code.replace(".", ""))
            else:  # a 3-character category: exports add the 4th character, with or without the dot
                pools[ICD_DOTTED4 * 14 + c].extend(f"{code}.{d}" for d in range(10))
                pools[ICD_UNDOTTED4 * 14 + c].extend(f"{code}{d}" for d in range(10))
        pools[GPPS * 14 + c] = [cat]
    pools[NON_LTC_SNOMED_POOL] = list(NON_LTC_SNOMED)
    pools[NON_LTC_ICD_POOL] = list(NON_LTC_ICD10)
    sizes = np.array([len(p) for p in pools], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return CodePools([t for p in pools for t in p], offsets, sizes)


# --------------------------------------------------------------------------- the generator


def generate(out_dir: Path, patients: int, seed: int, *, bad_rows: bool = True) -> dict[str, int]:
    """Write a synthetic canonical dataset folder; returns the rows written per file name.

    The same ``patients`` and ``seed`` always give byte-identical files (with the
    same numpy version).  ``bad_rows`` adds about 0.1% deliberately bad rows.
    """
    if patients < 1:
        raise ValueError("patients must be at least 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.Generator(np.random.PCG64(seed))
    n = patients
    ids_all = nhs_numbers(n + 64 + n // 200)
    ids, spare_ids = ids_all[:n], ids_all[n:]  # spare: valid numbers that are nobody's
    id_text = pa.array(ids).cast(pa.string())

    # ---- patients and their episodes of care
    age = np.where(rng.random(n) < 0.65, np.clip(rng.normal(76, 11, n), 18, 103), rng.uniform(1, 95, n))
    dob = (Y1_START - age * 365.25).astype(np.int64) - rng.integers(0, 365, n)
    sex = _choice(rng, n, SEX_P)

    start_kind = _choice(rng, n, (0.72, 0.18, 0.10))  # before Year 1, in Year 1, in Year 2
    lo_start = np.select([start_kind == 0, start_kind == 1], [_day("2010-01-01"), Y1_START], Y2_START)
    hi_start = np.select([start_kind == 0, start_kind == 1], [Y1_START - 1, Y1_END], Y2_END - 30)
    served_from = _uniform_days(rng, lo_start, hi_start)
    served_from = np.maximum(served_from, dob + 1)
    end_kind = _choice(rng, n, (0.065, 0.015, 0.20, 0.10, 0.62))  # in Y1, before Y1, in Y2, after Y2, open
    end_kind = np.where((end_kind == 1) & (start_kind != 0), 0, end_kind)
    end_kind = np.where((start_kind == 2) & (end_kind < 2), 4, end_kind)
    lo_end = np.select(
        [end_kind == 0, end_kind == 1, end_kind == 2, end_kind == 3],
        [np.maximum(served_from, Y1_START), served_from, np.maximum(served_from, Y2_START), Y2_END + 1],
        OPEN,
    )
    hi_end = np.select(
        [end_kind == 0, end_kind == 1, end_kind == 2, end_kind == 3], [Y1_END, Y1_START - 1, Y2_END, _day("2019-12-31")], OPEN
    )
    served_to = _uniform_days(rng, lo_end, hi_end)
    served_to = np.where(end_kind == 4, OPEN, np.maximum(served_to, served_from))

    # A second episode: readmission after a discharge, or an earlier closed episode.
    second = rng.random(n) < 0.07
    discharged = served_to < OPEN
    gap = rng.integers(30, 365, n)
    length = rng.integers(30, 500, n)
    s2_from = np.where(discharged, served_to + gap, served_from - gap - length)
    s2_to = np.where(discharged, np.where(rng.random(n) < 0.7, OPEN, s2_from + length), served_from - gap)
    second &= (s2_from > dob) & (s2_from <= Y2_END)
    earlier = second & ~discharged
    p_idx = np.concatenate([np.arange(n), np.flatnonzero(second)])
    p_pos = np.concatenate([np.where(earlier, 1, 0), np.where(earlier, 0, 1)[second]])
    p_from = np.concatenate([served_from, s2_from[second]])
    p_to = np.concatenate([served_to, s2_to[second]])
    order = _order(p_idx, p_pos)
    p_idx, p_from, p_to = p_idx[order], p_from[order], p_to[order]
    patients_tab = {
        "patient_id": pc.take(id_text, pa.array(p_idx)),
        "date_of_birth": _dates(dob[p_idx]),
        "sex": _pick(SEX, sex[p_idx]),
        "served_from": _dates(p_from),
        "served_to": _dates(p_to, p_to < OPEN),
    }

    # ---- conditions: ~60% have long-term conditions, most have some other codes too
    pools = code_pools()
    has_ltc = rng.random(n) < 0.6
    n_ltc = np.where(has_ltc, 1 + rng.poisson(1.3, n), 0)
    n_other = rng.poisson(1.6, n)
    ltc_idx = np.repeat(np.arange(n), n_ltc)
    other_idx = np.repeat(np.arange(n), n_other)
    cat = _choice(rng, len(ltc_idx), CATEGORY_WEIGHTS)
    style = _choice(rng, len(ltc_idx), (0.66, 0.12, 0.09, 0.09, 0.04))  # snomed, icd10 x3, gpps
    other_icd = rng.random(len(other_idx)) < 0.3
    c_idx = np.concatenate([ltc_idx, other_idx])
    c_pool = np.concatenate([style * 14 + cat, np.where(other_icd, NON_LTC_ICD_POOL, NON_LTC_SNOMED_POOL)])
    c_style = np.concatenate([style, np.where(other_icd, ICD_ASIS, SNOMED)])
    c_code = pools.draw(rng, c_pool)
    c_day = _uniform_days(rng, CODES_FROM, CODES_TO, len(c_idx))
    c_system = np.select([c_style == SNOMED, c_style == GPPS], [0, 2], 1)  # snomed, icd10, gpps
    c_system = np.where(rng.random(len(c_idx)) < 0.01, c_system + 3, c_system)  # a few in capitals
    keep = _distinct_rows(c_idx, c_code, c_day)  # no accidental exact duplicates
    order = _order(c_idx[keep], c_day[keep], c_code[keep])
    c_idx, c_code, c_day, c_system = (a[keep][order] for a in (c_idx, c_code, c_day, c_system))
    conditions_tab = {
        "patient_id": pc.take(id_text, pa.array(c_idx)),
        "code_system": _pick(("snomed", "icd10", "gpps", "SNOMED", "ICD10", "GPPS"), c_system),
        "code": _pick(pools.texts, c_code),
        "recorded_on": _dates(c_day),
    }

    # ---- assessments: Year 1 baselines, repeats, Year 2 follow-ups, carers
    y1_lo, y1_hi = np.maximum(served_from, Y1_START), np.minimum(served_to, Y1_END)
    in_y1 = y1_lo <= y1_hi
    baselined = in_y1 & (rng.random(n) < np.where(has_ltc, 0.9, 0.25))
    base_day = _uniform_days(rng, y1_lo, np.maximum(y1_lo, y1_hi))
    base_pam = rng.random(n) < 0.85
    base_level = _choice(rng, n, PAM_LEVEL_P) + 1
    base_q32, base_q33 = _choice(rng, n, GPPS_Q32_P), _choice(rng, n, GPPS_Q33_P)
    base_points = np.take(GPPS_POINTS, base_q32) + np.take(GPPS_POINTS, base_q33)
    low = baselined & np.where(base_pam, base_level <= 2, base_points == 0)

    fu_lo = np.maximum(np.maximum(served_from, Y2_START), base_day + 120)
    fu_hi = np.minimum(served_to, Y2_END)
    followed = baselined & (fu_lo <= fu_hi) & (rng.random(n) < np.where(low, 0.75, 0.4))
    fu_day = _uniform_days(rng, fu_lo, np.maximum(fu_lo, fu_hi))
    fu_pam = np.where(rng.random(n) < 0.05, ~base_pam, base_pam)  # a few change instrument
    delta = np.where(low, _choice(rng, n, (0.1, 0.45, 0.35, 0.1)) - 1, _choice(rng, n, (0.2, 0.6, 0.2)) - 1)
    fu_level = np.where(fu_pam == base_pam, np.clip(base_level + delta, 1, 4), _choice(rng, n, PAM_LEVEL_P) + 1)
    improving = rng.random(n) < np.where(low, 0.45, 0.2)
    fu_q32 = np.where(improving, _choice(rng, n, (0.35, 0.4, 0.1, 0.1, 0.05)), _choice(rng, n, GPPS_Q32_P))
    fu_q33 = np.where(improving, _choice(rng, n, (0.3, 0.5, 0.1, 0.05, 0.05)), _choice(rng, n, GPPS_Q33_P))

    repeated = baselined & (rng.random(n) < 0.15)  # a second assessment in Year 1
    rep_day = base_day + rng.integers(21, 76, n)
    rep_level = np.clip(base_level + _choice(rng, n, (0.2, 0.6, 0.2)) - 1, 1, 4)

    y2_lo, y2_hi = np.maximum(served_from, Y2_START), np.minimum(served_to, Y2_END)
    y2_only = ~in_y1 & has_ltc & (y2_lo <= y2_hi) & (rng.random(n) < 0.5)
    y2_day = _uniform_days(rng, y2_lo, np.maximum(y2_lo, y2_hi))
    y2_level = _choice(rng, n, PAM_LEVEL_P) + 1

    carer = baselined & (rng.random(n) < 0.03)
    carer_level = _choice(rng, n, PAM_LEVEL_P) + 1

    # One block per kind of assessment: (who, day, pam?, level, q32, q33, respondent)
    blocks = [
        (baselined, base_day, base_pam, base_level, base_q32, base_q33, 0),
        (repeated, rep_day, base_pam, rep_level, _choice(rng, n, GPPS_Q32_P), _choice(rng, n, GPPS_Q33_P), 0),
        (followed, fu_day, fu_pam, fu_level, fu_q32, fu_q33, 0),
        (y2_only, y2_day, np.ones(n, bool), y2_level, base_q32, base_q33, 0),
        (carer, base_day, np.ones(n, bool), carer_level, base_q32, base_q33, 1),
    ]
    a_idx = np.concatenate([np.flatnonzero(b[0]) for b in blocks])
    a_day = np.concatenate([b[1][b[0]] for b in blocks])
    a_pam = np.concatenate([b[2][b[0]] for b in blocks])
    a_level = np.concatenate([b[3][b[0]] for b in blocks])
    a_q32 = np.concatenate([b[4][b[0]] for b in blocks])
    a_q33 = np.concatenate([b[5][b[0]] for b in blocks])
    a_resp = np.concatenate([np.full(int(b[0].sum()), b[6]) for b in blocks])
    order = _order(a_idx, a_day, a_resp)
    a_idx, a_day, a_pam, a_level, a_q32, a_q33, a_resp = (x[order] for x in (a_idx, a_day, a_pam, a_level, a_q32, a_q33, a_resp))
    m = len(a_idx)
    lo_t = np.take([r[0] for r in PAM_TENTHS], a_level - 1)
    hi_t = np.take([r[1] for r in PAM_TENTHS], a_level - 1)
    tenths = lo_t + np.floor(rng.random(m) * (hi_t - lo_t + 1)).astype(np.int64)
    recorded = _choice(rng, m, (0.6, 0.25, 0.15))  # score and level, score only, level only
    score_text = pc.binary_join_element_wise(
        pa.array(tenths // 10).cast(pa.string()), pa.array(tenths % 10).cast(pa.string()), "."
    )
    null = pa.nulls(m, pa.string())
    pam_score = pc.if_else(pa.array(a_pam & (recorded <= 1)), score_text, null)
    pam_level = pc.if_else(pa.array(a_pam & (recorded != 1)), pa.array(a_level).cast(pa.string()), null)
    # GPPS answers as written: mostly exact, sometimes other capitals or stray spaces.
    q32_texts = [v for o in GPPS_Q32 for v in (o, o.lower(), o.upper(), f"  {o} ")]
    q33_texts = [v for o in GPPS_Q33 for v in (o, o.lower(), o.upper(), f" {o}  ")]
    variant = _choice(rng, m, (0.85, 0.07, 0.03, 0.05))
    gpps = pa.array(~a_pam)
    assessments_tab = {
        "patient_id": pc.take(id_text, pa.array(a_idx)),
        "assessed_on": _dates(a_day),
        "respondent": _pick(("patient", "carer"), a_resp),
        "instrument": _pick(("gpps", "pam"), a_pam.astype(np.int64)),
        "pam_score": pam_score,
        "pam_level": pam_level,
        "gpps_q32": pc.if_else(gpps, _pick(q32_texts, a_q32 * 4 + variant), null),
        "gpps_q33": pc.if_else(gpps, _pick(q33_texts, a_q33 * 4 + _choice(rng, m, (0.85, 0.07, 0.03, 0.05))), null),
    }

    # ---- staff and training
    n_staff = max(10, n // 200)
    role = _choice(rng, n_staff, STAFF_ROLE_P)
    cares = (role != STAFF_ROLES.index("Administrator")) & (rng.random(n_staff) < 0.77)
    staff_ids = [f"S{i:05d}" for i in range(1, n_staff + 1)]
    staff_tab = {
        "staff_id": pa.array(staff_ids, pa.string()),
        "role": _pick(STAFF_ROLES, role),
        "cares_for_cohort": _pick(("false", "true"), cares.astype(np.int64)),
    }
    trained = rng.random(n_staff) < np.where(cares, 0.88, 0.15)
    late = rng.random(n_staff) < 0.12
    t_day = np.where(
        late, _uniform_days(rng, Y2_START, _day("2018-12-31"), n_staff), _uniform_days(rng, Y1_START, Y1_END, n_staff)
    )
    course = _choice(rng, n_staff, (0.6, 0.25, 0.15))
    twice = trained & (rng.random(n_staff) < 0.2)
    t_staff = np.concatenate([np.flatnonzero(trained), np.flatnonzero(twice)])
    t_days = np.concatenate([t_day[trained], (t_day + rng.integers(30, 200, n_staff))[twice]])
    t_course = np.concatenate([course[trained], ((course + 1) % len(COURSES))[twice]])
    order = _order(t_staff, t_days)
    t_staff, t_days, t_course = t_staff[order], t_days[order], t_course[order]
    training_tab = {
        "staff_id": _pick(staff_ids, t_staff),
        "completed_on": _dates(t_days),
        "course": _pick(COURSES, t_course),
    }

    # ---- conversations: concentrated on low-activation patients
    any_lo = np.maximum(served_from, Y1_START)
    any_hi = np.minimum(served_to, Y2_END)
    n_conv = np.select(
        [low, baselined, has_ltc],
        [_choice(rng, n, (0.15, 0.45, 0.28, 0.12)), _choice(rng, n, (0.6, 0.28, 0.1, 0.02)), _choice(rng, n, (0.85, 0.12, 0.03))],
        _choice(rng, n, (0.95, 0.05)),
    )
    n_conv = np.where(baselined | (any_lo <= any_hi), n_conv, 0)
    v_idx = np.repeat(np.arange(n), n_conv)
    v_nth = np.arange(len(v_idx)) - np.repeat(np.cumsum(n_conv) - n_conv, n_conv)
    first_day = np.where(
        baselined,
        base_day + rng.integers(0, 120, n),
        _uniform_days(rng, np.minimum(any_lo, any_hi), any_hi),
    )
    v_day = first_day[v_idx] + v_nth * rng.integers(14, 200, len(v_idx))
    v_day = np.where(v_day > Y2_END, Y1_START + (v_day - Y1_START) % (Y2_END - Y1_START + 1), v_day)
    caring = np.flatnonzero(cares) if cares.any() else np.arange(n_staff)
    v_staff = np.where(
        rng.random(len(v_idx)) < 0.95, caring[rng.integers(0, len(caring), len(v_idx))], rng.integers(0, n_staff, len(v_idx))
    )
    v_has_staff = rng.random(len(v_idx)) >= 0.08
    keep = _distinct_rows(v_idx, v_day)
    order = _order(v_idx[keep], v_day[keep])
    v_idx, v_day, v_staff, v_has_staff = (a[keep][order] for a in (v_idx, v_day, v_staff, v_has_staff))
    conversations_tab = {
        "patient_id": pc.take(id_text, pa.array(v_idx)),
        "held_on": _dates(v_day),
        "staff_id": pc.if_else(pa.array(v_has_staff), _pick(staff_ids, v_staff), pa.nulls(len(v_idx), pa.string())),
    }

    care_plans_tab = _care_plans(np.random.Generator(np.random.PCG64([seed, 19])), id_text, v_idx, v_day, improving)

    # ---- overrides: a handful, agreed with the commissioner
    k = min(n, 6 + n // 100_000)
    who = rng.choice(n, size=k, replace=False)
    cohort = rng.integers(0, 2, k)
    action = rng.integers(0, 2, k)
    reason_pick = rng.integers(0, 6, k)
    agreed = np.where(
        cohort == 0,
        _uniform_days(rng, _day("2017-10-01"), _day("2018-03-31"), k),
        _uniform_days(rng, _day("2018-10-01"), _day("2019-03-31"), k),
    )
    overrides_rows = [
        {
            "patient_id": str(ids[who[i]]),
            "cohort": ("year1", "year2")[cohort[i]],
            "action": ("include", "exclude")[action[i]],
            "reason": (INCLUDE_REASONS if action[i] == 0 else EXCLUDE_REASONS)[reason_pick[i] % (2 if action[i] == 0 else 3)],
            "agreed_on": _iso(agreed[i]),
        }
        for i in np.argsort(who, kind="stable")
    ]

    # ---- the deliberately bad rows
    spare = iter(spare_ids.tolist())
    cols = {name: table(name).column_names for name in TABLE_NAMES}
    tabs: dict[str, dict[str, pa.Array]] = {
        "patients": patients_tab,
        "conditions": conditions_tab,
        "assessments": assessments_tab,
        "conversations": conversations_tab,
        "care_plans": care_plans_tab,
        "staff": staff_tab,
        "training": training_tab,
        "overrides": _text_rows(cols["overrides"], overrides_rows),
        "provider": _text_rows(cols["provider"], [PROVIDER]),
    }
    if bad_rows:
        bad = _bad_rows(rng, tabs, ids, spare)
        for name, rows in bad.items():
            tabs[name] = _insert_rows(rng, cols[name], tabs[name], rows)

    written = {}
    for name in TABLE_NAMES:
        written[table(name).file_name] = _write_csv(out_dir / table(name).file_name, cols[name], tabs[name])
    return written


def _care_plans(
    rng: np.random.Generator, id_text: pa.Array, v_idx: np.ndarray, v_day: np.ndarray, improving: np.ndarray
) -> dict[str, pa.Array]:
    """What the plans agreed at about 40% of conversations say: needs, goals, actions, referrals, elements.

    Drawn from a generator of their own, so the other files a seed gives are unchanged.  Each plan records
    one to three support needs in distinct categories; a need is followed by a goal (70%), an action (35%)
    and a referral (45%, more often for a patient whose activation is to improve), dated up to 60 days
    after the plan; the conversation elements are recorded with their own frequencies.
    """
    planned = rng.random(len(v_idx)) < 0.4
    p_pat, p_day = v_idx[planned], v_day[planned]
    n_plans = len(p_pat)
    shared = _choice(rng, n_plans, (0.8, 0.12, 0.08))  # true, false, not recorded
    has_id = rng.random(n_plans) < 0.9
    k = 1 + _choice(rng, n_plans, (0.5, 0.35, 0.15))
    first = _choice(rng, n_plans, CARE_PLAN_CATEGORY_P)
    step = rng.integers(1, 4, n_plans)
    need_plan = np.repeat(np.arange(n_plans), k)
    nth = np.arange(len(need_plan)) - np.repeat(np.cumsum(k) - k, k)
    need_cat = (first[need_plan] + nth * step[need_plan]) % len(CARE_PLAN_CATEGORIES)
    m = len(need_plan)
    refer_p = np.where(improving[p_pat[need_plan]], 0.6, 0.35)
    later = rng.integers(0, 61, m)
    blocks = [  # (plan of each row, entry kind, category, days after the plan)
        (need_plan, 0, need_cat, np.zeros(m, np.int64)),
        (need_plan, 1, need_cat, np.zeros(m, np.int64)),
        (need_plan, 2, need_cat, np.zeros(m, np.int64)),
        (need_plan, 3, need_cat, later),
    ]
    keep = [np.ones(m, bool), rng.random(m) < 0.7, rng.random(m) < 0.35, rng.random(m) < refer_p]
    e_plan = np.repeat(np.arange(n_plans), len(CONVERSATION_ELEMENTS))
    e_cat = np.tile(np.arange(len(CONVERSATION_ELEMENTS)), n_plans)
    e_keep = rng.random(len(e_plan)) < np.tile(np.array(CONVERSATION_ELEMENT_P), n_plans)
    rows_plan = np.concatenate([b[0][kp] for b, kp in zip(blocks, keep, strict=True)] + [e_plan[e_keep]])
    rows_kind = np.concatenate(
        [np.full(int(kp.sum()), b[1]) for b, kp in zip(blocks, keep, strict=True)] + [np.full(int(e_keep.sum()), 4)]
    )
    rows_cat = np.concatenate([b[2][kp] for b, kp in zip(blocks, keep, strict=True)] + [e_cat[e_keep]])
    rows_after = np.concatenate([b[3][kp] for b, kp in zip(blocks, keep, strict=True)] + [np.zeros(int(e_keep.sum()), np.int64)])
    order = _order(p_pat[rows_plan], rows_plan, rows_kind, rows_cat)
    rows_plan, rows_kind, rows_cat, rows_after = (a[order] for a in (rows_plan, rows_kind, rows_cat, rows_after))
    plan_ids = pc.binary_join_element_wise("CP", pa.array(np.arange(1, n_plans + 1)).cast(pa.string()), "")
    category = pc.if_else(
        pa.array(rows_kind == 4),
        _pick(CONVERSATION_ELEMENTS, np.minimum(rows_cat, len(CONVERSATION_ELEMENTS) - 1)),
        _pick(CARE_PLAN_CATEGORIES, rows_cat),
    )
    return {
        "patient_id": pc.take(id_text, pa.array(p_pat[rows_plan])),
        "plan_id": pc.if_else(
            pa.array(has_id[rows_plan]), pc.take(plan_ids, pa.array(rows_plan)), pa.nulls(len(rows_plan), pa.string())
        ),
        "agreed_on": _dates(p_day[rows_plan]),
        "shared_with_patient": _pick(("true", "false", None), shared[rows_plan]),
        "entry": _pick(ENTRY_KINDS, rows_kind),
        "category": category,
        "entry_on": _dates(p_day[rows_plan] + rows_after, rows_after > 0),
    }


def _row(tab: dict[str, pa.Array], i: int) -> Row:
    return {c: a[i].as_py() for c, a in tab.items()}


def _bad_rows(
    rng: np.random.Generator, tabs: dict[str, dict[str, pa.Array]], ids: np.ndarray, spare: Iterator[int]
) -> dict[str, list[Row]]:
    """About 0.1% of each patient-level file: the mistakes real exports make, one kind after another."""
    n = len(ids)

    def some_row(name: str) -> Row:
        return _row(tabs[name], int(rng.integers(0, len(tabs[name]["patient_id"]))))

    def some_id() -> str:
        return str(ids[int(rng.integers(0, n))])

    def bad_check_digit() -> str:
        good = str(next(spare))
        return good[:9] + str((int(good[9]) + 1 + int(rng.integers(0, 8))) % 10)

    def new_patient(**changes: str) -> Row:
        row = some_row("patients") | {"patient_id": str(next(spare))}
        return row | changes

    def day_text(lo: int, hi: int) -> tuple[str, str]:
        d = int(rng.integers(lo, hi + 1))
        return _iso(d), _uk(d)

    patient_kinds: list[Callable[[], Row]] = [
        lambda: new_patient(patient_id=bad_check_digit()),
        lambda: new_patient(date_of_birth=day_text(_day("1930-01-01"), _day("1960-12-31"))[1]),
        lambda: new_patient(served_from="2018-02-31"),
        lambda: some_row("patients"),  # an exact duplicate
    ]
    condition_kinds: list[Callable[[], Row]] = [
        lambda: some_row("conditions") | {"code_system": "read", "code": str(rng.choice(["G30..", "C10..", "H33..", "G20.."]))},
        lambda: some_row("conditions") | {"patient_id": str(next(spare))},
        lambda: some_row("conditions") | {"recorded_on": day_text(CODES_FROM, CODES_TO)[1]},
        lambda: some_row("conditions"),
        lambda: some_row("conditions") | {"patient_id": bad_check_digit()},
    ]
    assessment_kinds: list[Callable[[], Row]] = [
        lambda: {
            "patient_id": some_id(),
            "assessed_on": day_text(Y1_START, Y1_END)[0],
            "respondent": "patient",
            "instrument": "gpps",
            "gpps_q32": "maybe",
            "gpps_q33": "Fairly confident",
        },
        lambda: {
            "patient_id": some_id(),
            "assessed_on": day_text(Y1_START, Y1_END)[0],
            "respondent": "patient",
            "instrument": "pam",
            "pam_score": "120",
        },
        lambda: some_row("assessments") | {"assessed_on": "2018-02-31"},
        lambda: some_row("assessments") | {"patient_id": str(next(spare))},
    ]
    conversation_kinds: list[Callable[[], Row]] = [
        lambda: some_row("conversations") | {"patient_id": str(next(spare))},
        lambda: some_row("conversations"),
        lambda: some_row("conversations") | {"held_on": day_text(Y1_START, Y2_END)[1]},
    ]
    out: dict[str, list[Row]] = {}
    for name, kinds in (
        ("patients", patient_kinds),
        ("conditions", condition_kinds),
        ("assessments", assessment_kinds),
        ("conversations", conversation_kinds),
    ):
        rows = len(tabs[name]["patient_id"])
        if rows == 0:
            continue
        out[name] = [kinds[i % len(kinds)]() for i in range(_bad_count(rows, len(kinds)))]
    return out
