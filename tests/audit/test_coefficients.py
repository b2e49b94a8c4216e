"""The agreement coefficients against every published vector of AGREEMENT.md §3, plus their properties.

Expected values are written as printed in §3; the tolerance follows the printed precision,
abs_tol = 5e-(digits+1).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.agreement import (
    Result,
    brennan_prediger,
    category_counts,
    category_kappas,
    cohen_kappa,
    cohen_kappa_se0,
    cohen_kappa_stack,
    coincidence_from_table,
    coincidence_matrix,
    contingency_from_codes,
    contingency_table,
    counts_from_codes,
    counts_from_table,
    encode,
    fleiss_kappa,
    fleiss_kappa_se0,
    gwet_ac1,
    gwet_ac2,
    item_agreement,
    item_tables,
    jaccard_distance,
    krippendorff_alpha,
    krippendorff_alpha_counts,
    krippendorff_alpha_stack,
    masi_distance,
    pabak,
    per_tag_alpha,
    percent_agreement,
    randolph_kappa,
    require_min_n,
    scott_pi,
    set_alpha,
    specific_agreement,
)

pytestmark = pytest.mark.smoke

F71 = np.array(
    [[0, 0, 0, 6, 0], [0, 3, 0, 0, 3], [0, 1, 4, 0, 1], [0, 0, 0, 0, 6], [0, 3, 0, 3, 0], [2, 0, 4, 0, 0],
     [0, 0, 4, 0, 2], [2, 0, 3, 1, 0], [2, 0, 0, 4, 0], [0, 0, 0, 0, 6], [1, 0, 0, 5, 0], [1, 1, 0, 4, 0],
     [0, 3, 3, 0, 0], [1, 0, 0, 5, 0], [0, 2, 0, 3, 1], [0, 0, 5, 0, 1], [3, 0, 0, 1, 2], [5, 1, 0, 0, 0],
     [0, 2, 0, 4, 0], [1, 0, 2, 0, 3], [0, 0, 0, 0, 6], [0, 1, 0, 5, 0], [0, 2, 0, 1, 3], [2, 0, 0, 4, 0],
     [1, 0, 0, 4, 1], [0, 5, 0, 1, 0], [4, 0, 0, 0, 2], [0, 2, 0, 4, 0], [1, 0, 5, 0, 0], [0, 0, 0, 0, 6]]
)  # fmt: skip
DIAGNOSES = [
    [4, 4, 4, 4, 4, 4], [2, 2, 2, 5, 5, 5], [2, 3, 3, 3, 3, 5], [5, 5, 5, 5, 5, 5], [2, 2, 2, 4, 4, 4],
    [1, 1, 3, 3, 3, 3], [3, 3, 3, 3, 5, 5], [1, 1, 3, 3, 3, 4], [1, 1, 4, 4, 4, 4], [5, 5, 5, 5, 5, 5],
    [1, 4, 4, 4, 4, 4], [1, 2, 4, 4, 4, 4], [2, 2, 2, 3, 3, 3], [1, 4, 4, 4, 4, 4], [2, 2, 4, 4, 4, 5],
    [3, 3, 3, 3, 3, 5], [1, 1, 1, 4, 5, 5], [1, 1, 1, 1, 1, 2], [2, 2, 4, 4, 4, 4], [1, 3, 3, 5, 5, 5],
    [5, 5, 5, 5, 5, 5], [2, 4, 4, 4, 4, 4], [2, 2, 4, 5, 5, 5], [1, 1, 4, 4, 4, 4], [1, 4, 4, 4, 4, 5],
    [2, 2, 2, 2, 2, 4], [1, 1, 1, 1, 5, 5], [2, 2, 4, 4, 4, 4], [1, 3, 3, 3, 3, 3], [5, 5, 5, 5, 5, 5],
]  # fmt: skip
W = np.array(
    [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
     [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
)  # fmt: skip
F15 = F71[:15]
ABSTRACTORS = np.array([[13, 0, 0], [0, 20, 7], [0, 4, 56]])
T10 = np.array([[0, 4, 1], [0, 8, 0], [0, 1, 5]])
RATER2 = [3, 6, 4, 6, 2, 4, 2, 4, 3, 3, 2, 3, 3, 3, 2, 2, 1, 3, 3, 4]
RATER3 = [2, 1, 4, 4, 3, 2, 1, 6, 1, 1, 1, 2, 3, 3, 1, 1, 3, 3, 2, 2]
ANXIETY = contingency_table(RATER2, RATER3, [1, 2, 3, 4, 6])
ANXIETY_1_6 = contingency_table(RATER2, RATER3, [1, 2, 3, 4, 5, 6])
TOEPLITZ = np.array([0, 0, 1, 1, 2])[np.abs(np.subtract.outer(np.arange(5), np.arange(5)))]
PARADOX_A = np.array([[40, 9], [6, 45]])
PARADOX_B = np.array([[80, 10], [5, 5]])
RARE = np.array([[90, 5], [5, 0]])
SKEWED = np.array([[85, 5], [5, 5]])
BALANCED = np.array([[45, 5], [5, 45]])
WIKI = np.array([[20, 5], [10, 15]])
RUBRIC_A = [1, 2, 2, 4, 5, 5, 1, 4]
RUBRIC_B = [2, 2, 4, 4, 5, 4, 1, 5]
RUBRIC_COUNTS = category_counts(list(zip(RUBRIC_A, RUBRIC_B, strict=True)), [1, 2, 3, 4, 5])
H, WT, S, L, R, IP, P = "H", "W", "S", "L", "R", "I", "P"
TAGS = [H, WT, S, L, R, IP, P]
TAG_ITEMS: list[list[set[str] | None]] = [
    [{H}, {H}, {H, WT}], [{WT}, {WT}, {WT}], [{S}, {S, H}, {S}], [{L}, {L}, {R}],
    [{R, IP}, {R}, {R, IP}], [{P}, {P}, {P}], [{H, S}, {H}, {S}], [{WT}, {H}, {WT}],
]  # fmt: skip


def approx(expected: str) -> object:
    """Equality to `expected` within half a unit of its last printed digit (§3 conventions)."""
    digits = len(expected.partition(".")[2])
    return pytest.approx(float(expected), abs=5 * 10.0 ** -(digits + 1))


def value(result: Result) -> float:
    assert result.value is not None, result.reason
    return result.value


def two_rater_ac1(table: np.ndarray) -> float:
    return value(gwet_ac1(counts_from_table(table)))


def two_rater_alpha(table: np.ndarray) -> float:
    return value(krippendorff_alpha(coincidence_from_table(table), n_items=int(table.sum())))


PUBLISHED: list[tuple[str, Callable[[], float | None], str]] = [
    ("TV1 Fleiss κ", lambda: fleiss_kappa(F71).value, "0.4302445"),
    ("TV1 P̄", lambda: fleiss_kappa(F71).p_o, "0.5556"),
    ("TV1 P̄_e", lambda: fleiss_kappa(F71).p_e, "0.2199"),
    ("TV1 SE₀", lambda: fleiss_kappa_se0(F71), "0.02437"),
    ("TV1 z", lambda: value(fleiss_kappa(F71)) / (fleiss_kappa_se0(F71) or 1.0), "17.65183"),
    *[
        (f"TV1 κ_{j + 1}", lambda j=j: category_kappas(F71)[j].value, e)
        for j, e in enumerate(["0.245", "0.245", "0.520", "0.471", "0.566"])
    ],
    ("TV1 Randolph", lambda: randolph_kappa(F71).value, "0.4444444"),
    ("TV1 α nominal", lambda: krippendorff_alpha_counts(F71).value, "0.4334098"),
    ("TV1 AC1", lambda: gwet_ac1(F71).value, "0.4478845"),
    ("TV1 AC1 p_a", lambda: gwet_ac1(F71).p_o, "0.5555556"),
    ("TV1 AC1 p_e", lambda: gwet_ac1(F71).p_e, "0.1950154"),
    ("TV2 Fleiss κ", lambda: fleiss_kappa(W).value, "0.20993"),
    ("TV2 P̄", lambda: fleiss_kappa(W).p_o, "0.37802"),
    ("TV2 P̄_e", lambda: fleiss_kappa(W).p_e, "0.21276"),
    *[
        (f"TV2 P_{i + 1}", lambda i=i: float(item_agreement(W)[i]), e)
        for i, e in enumerate(["1.000", ".253", ".308", ".440", ".330", ".462", ".242", ".176", ".286", ".286"])
    ],
    ("TV3 Fleiss κ", lambda: fleiss_kappa(F15).value, "0.4139265"),
    ("TV3 Fleiss p_a", lambda: fleiss_kappa(F15).p_o, "0.5511111"),
    ("TV3 Fleiss p_e", lambda: fleiss_kappa(F15).p_e, "0.2340741"),
    ("TV3 AC1", lambda: gwet_ac1(F15).value, "0.4448007"),
    ("TV3 AC1 p_e", lambda: gwet_ac1(F15).p_e, "0.1914815"),
    ("TV3 α", lambda: krippendorff_alpha_counts(F15).value, "0.4204384"),
    ("TV3 α p_a", lambda: krippendorff_alpha_counts(F15).p_o, "0.5560988"),
    ("TV3 Brennan–Prediger", lambda: randolph_kappa(F15).value, "0.4388889"),
    ("TV3 Brennan–Prediger p_e", lambda: randolph_kappa(F15).p_e, "0.2"),
    ("TV4 Cohen κ", lambda: cohen_kappa(ABSTRACTORS).value, "0.7964094"),
    ("TV4 Cohen SE", lambda: cohen_kappa(ABSTRACTORS).se, "0.05891072"),
    ("TV4 Scott π", lambda: scott_pi(ABSTRACTORS).value, "0.7962397"),
    ("TV4 AC1", lambda: two_rater_ac1(ABSTRACTORS), "0.8493305"),
    ("TV4 Brennan–Prediger", lambda: brennan_prediger(ABSTRACTORS).value, "0.835"),
    ("TV4 α", lambda: two_rater_alpha(ABSTRACTORS), "0.7972585"),
    ("TV4 percent agreement", lambda: percent_agreement(ABSTRACTORS).value, "0.89"),
    ("TV5 κ", lambda: cohen_kappa(T10).value, "0.48416290"),
    ("TV5 ASE", lambda: cohen_kappa(T10).se, "0.1380"),
    ("TV5 ASE₀", lambda: cohen_kappa_se0(T10), "0.1484"),
    ("TV5 Z", lambda: value(cohen_kappa(T10)) / (cohen_kappa_se0(T10) or 1.0), "3.2626"),
    ("TV5 linear κ_w", lambda: cohen_kappa(T10, "linear").value, "0.47011952"),
    ("TV5 linear ASE", lambda: cohen_kappa(T10, "linear").se, "0.1457"),
    ("TV5 linear ASE₀", lambda: cohen_kappa_se0(T10, "linear"), "0.1426"),
    ("TV5 linear Z", lambda: value(cohen_kappa(T10, "linear")) / (cohen_kappa_se0(T10, "linear") or 1.0), "3.2971"),
    ("TV5 quadratic κ_w", lambda: cohen_kappa(T10, "quadratic").value, "0.45016077"),
    ("TV6 unweighted", lambda: cohen_kappa(ANXIETY).value, "-0.006289308"),
    ("TV6 unweighted z", lambda: value(cohen_kappa(ANXIETY)) / (cohen_kappa_se0(ANXIETY) or 1.0), "-0.0604067"),
    ("TV6 linear", lambda: cohen_kappa(ANXIETY, "linear").value, "0.1459075"),
    (
        "TV6 linear z",
        lambda: value(cohen_kappa(ANXIETY, "linear")) / (cohen_kappa_se0(ANXIETY, "linear") or 1.0),
        "1.282472",
    ),
    ("TV6 quadratic", lambda: cohen_kappa(ANXIETY, "quadratic").value, "0.2520325"),
    (
        "TV6 quadratic z",
        lambda: value(cohen_kappa(ANXIETY, "quadratic")) / (cohen_kappa_se0(ANXIETY, "quadratic") or 1.0),
        "1.437451",
    ),
    ("TV6 custom weights (0,0,1,1,2)", lambda: cohen_kappa(ANXIETY, TOEPLITZ).value, "0.2391304"),
    ("TV6 labels 1..6 linear", lambda: cohen_kappa(ANXIETY_1_6, "linear").value, "0.1262136"),
    ("TV6 labels 1..6 quadratic", lambda: cohen_kappa(ANXIETY_1_6, "quadratic").value, "0.2297980"),
    ("TV11 κ", lambda: cohen_kappa(WIKI).value, "0.40"),
    ("TV11 p_o", lambda: cohen_kappa(WIKI).p_o, "0.70"),
    ("TV11 p_e", lambda: cohen_kappa(WIKI).p_e, "0.50"),
    (
        "TV14a quadratic, labels inferred",
        lambda: cohen_kappa(contingency_table(RUBRIC_A, RUBRIC_B, [1, 2, 4, 5]), "quadratic").value,
        "0.7778",
    ),
    (
        "TV14a quadratic, labels 1..5",
        lambda: cohen_kappa(contingency_table(RUBRIC_A, RUBRIC_B, [1, 2, 3, 4, 5]), "quadratic").value,
        "0.8108",
    ),
    (
        "TV14a linear, labels inferred",
        lambda: cohen_kappa(contingency_table(RUBRIC_A, RUBRIC_B, [1, 2, 4, 5]), "linear").value,
        "0.5789",
    ),
    (
        "TV14a linear, labels 1..5",
        lambda: cohen_kappa(contingency_table(RUBRIC_A, RUBRIC_B, [1, 2, 3, 4, 5]), "linear").value,
        "0.6296",
    ),
    ("TV14a α ordinal", lambda: krippendorff_alpha_counts(RUBRIC_COUNTS, level="ordinal").value, "0.7848"),
    (
        "TV14a α interval",
        lambda: krippendorff_alpha_counts(RUBRIC_COUNTS, level="interval", values=[1, 2, 3, 4, 5]).value,
        "0.8199",
    ),
    ("TV14b MASI nested", lambda: masi_distance({1, 2}, {1, 2, 3, 4}), "0.6667"),
    ("TV14b MASI equal", lambda: masi_distance({"a"}, {"a"}), "0"),
    ("TV14b MASI disjoint", lambda: masi_distance({"a"}, {"b"}), "1"),
    ("TV14b MASI overlap", lambda: masi_distance({"a", "b"}, {"b", "c"}), "0.8889"),
    ("TV14b MASI ∅ ∅", lambda: masi_distance(set(), set()), "0"),
    ("TV14c set α MASI", lambda: set_alpha(TAG_ITEMS, "masi").value, "0.506461"),
    ("TV14c set α Jaccard", lambda: set_alpha(TAG_ITEMS, "jaccard").value, "0.561131"),
    ("TV14c set α exact", lambda: set_alpha(TAG_ITEMS, "exact").value, "0.402000"),
    *[
        (f"TV14c per-tag α {tag}", lambda tag=tag: per_tag_alpha(TAG_ITEMS, TAGS)[tag].value, e)
        for tag, e in zip(TAGS, ["0.4202", "0.5741", "0.7579", "0.4773", "0.7125", "0.4773", "1.0"], strict=True)
    ],
]

PARADOX: list[tuple[str, np.ndarray, dict[str, str]]] = [
    (
        "A",
        PARADOX_A,
        {
            "p_o": "0.85",
            "p_e": "0.50",
            "kappa": "0.6995",
            "ac1": "0.7007",
            # §3 prints 0.7007; §1.4 gives 1 − 199·30/19950 = 0.700752, which rounds to 0.7008 (printed truncated).
            "alpha": "0.70075",
            "pabak": "0.70",
            "p_pos": "0.8421",
            "p_neg": "0.8571",
        },
    ),
    (
        "B",
        PARADOX_B,
        {
            "p_o": "0.85",
            "p_e": "0.78",
            "kappa": "0.3182",
            "ac1": "0.8080",
            "alpha": "0.3177",
            "pabak": "0.70",
            "p_pos": "0.9143",
            "p_neg": "0.4000",
        },
    ),
    ("rare", RARE, {"p_o": "0.90", "kappa": "-0.0526", "ac1": "0.8895", "alpha": "-0.0474", "pabak": "0.80"}),
    ("skewed", SKEWED, {"kappa": "0.4444", "ac1": "0.8780", "alpha": "0.4472"}),
    ("balanced", BALANCED, {"kappa": "0.8000", "ac1": "0.8000", "alpha": "0.8010"}),
]


def paradox_quantity(table: np.ndarray, name: str) -> float | None:
    kappa = cohen_kappa(table)
    positive, negative = specific_agreement(table)
    return {
        "p_o": kappa.p_o,
        "p_e": kappa.p_e,
        "kappa": kappa.value,
        "ac1": two_rater_ac1(table),
        "alpha": two_rater_alpha(table),
        "pabak": pabak(table).value,
        "p_pos": positive.value,
        "p_neg": negative.value,
    }[name]


@pytest.mark.parametrize(("compute", "expected"), [pytest.param(c, e, id=name) for name, c, e in PUBLISHED])
def test_published_vector(compute: Callable[[], float | None], expected: str) -> None:
    assert compute() == approx(expected)


@pytest.mark.parametrize(
    ("table", "name", "expected"),
    [pytest.param(t, q, e, id=f"TV10 {label} {q}") for label, t, row in PARADOX for q, e in row.items()],
)
def test_kappa_paradox(table: np.ndarray, name: str, expected: str) -> None:
    assert paradox_quantity(table, name) == approx(expected)


def test_tv1_raw_ratings_give_the_published_counts() -> None:
    counts = category_counts(DIAGNOSES, [1, 2, 3, 4, 5])
    assert counts.sum(axis=0).tolist() == [26, 26, 30, 55, 43]
    assert np.array_equal(counts, F71)


# TV15 edge cases

CONSTANT = np.array([[10, 0], [0, 0]])


def test_constant_identical_raters() -> None:
    kappa = cohen_kappa(CONSTANT)
    assert kappa.value is None
    assert kappa.reason == "no variance"
    assert percent_agreement(CONSTANT).value == 1.0
    assert gwet_ac1(counts_from_table(CONSTANT)).value == 1.0
    assert scott_pi(CONSTANT).value is None
    assert fleiss_kappa(counts_from_table(CONSTANT)).reason == "no variance"
    assert krippendorff_alpha(coincidence_from_table(CONSTANT), n_items=10).reason == "no variance"
    assert np.isnan(cohen_kappa_stack(CONSTANT).kappa)


def test_one_constant_rater_gives_zero() -> None:
    assert cohen_kappa(contingency_table([0, 0, 0, 0], [0, 1, 0, 1], [0, 1])).value == 0.0


def test_perfect_swap_alpha_is_minus_half() -> None:
    counts = category_counts([["A", "B"], ["B", "A"]], ["A", "B"])
    assert krippendorff_alpha_counts(counts).value == pytest.approx(-0.5)


def test_unequal_raters_per_item_in_fleiss() -> None:
    unequal = np.array([[2, 1], [1, 1], [0, 3]])
    result = fleiss_kappa(unequal)
    assert result.value is None
    assert result.reason == "unequal raters per item, use α"
    assert fleiss_kappa_se0(unequal) is None
    assert krippendorff_alpha_counts(unequal).value is not None


def test_missing_values_are_dropped_not_a_category() -> None:
    labels = ["valid", "invalid"]
    assert encode(["valid", None, float("nan"), "invalid"], labels).tolist() == [0, -1, -1, 1]
    table = contingency_table(["valid", None, "invalid"], ["valid", "valid", None], labels)
    assert table.tolist() == [[1, 0], [0, 0]]
    assert contingency_from_codes([0, -1, 1], [1, 1, -1], 2).tolist() == [[0, 1], [0, 0]]
    counts = counts_from_codes([[0, -1, 1], [-1, -1, 1]], 2)
    assert counts.tolist() == [[1, 1], [0, 1]]
    with pytest.raises(ValueError, match="not in the label list"):
        encode(["unsure"], labels)


def test_unused_rubric_level_keeps_its_row_and_column() -> None:
    table = contingency_table(RUBRIC_A, RUBRIC_B, [1, 2, 3, 4, 5])
    assert table.shape == (5, 5)
    assert table[2].sum() == table[:, 2].sum() == 0


def test_empty_set_against_empty_set() -> None:
    assert masi_distance(set(), set()) == 0.0
    assert jaccard_distance(set(), set()) == 0.0
    assert 1.0 - masi_distance(set(), set()) == 1.0
    units: list[list[set[str] | None]] = [[set(), set()], [{"H"}, {"H"}], [set(), {"H"}], [{"W"}, None]]
    assert value(set_alpha(units, "jaccard")) == pytest.approx(value(set_alpha(units, "exact")))


def test_undefined_results_carry_reasons_never_nan() -> None:
    empty = np.zeros((3, 3), dtype=np.int64)
    assert cohen_kappa(empty).reason == "no pairable values"
    assert percent_agreement(empty).value is None
    assert krippendorff_alpha_counts([[1, 0], [0, 1]]).reason == "no pairable values"
    assert gwet_ac1([[1, 0], [0, 1]]).reason == "no pairable values"
    assert gwet_ac1([[3], [2]]).reason == "fewer than 2 categories"
    assert category_kappas(np.array([[2, 0, 0], [1, 1, 0]]))[2].reason == "no variance"
    assert specific_agreement(np.array([[0, 0], [0, 5]]))[0].reason == "no positive ratings"


def test_item_tables_sum_to_the_contingency_table() -> None:
    a, b = encode(RUBRIC_A, [1, 2, 3, 4, 5]), encode(RUBRIC_B, [1, 2, 3, 4, 5])
    a[0] = -1
    assert np.array_equal(item_tables(a, b, 5).sum(axis=0), contingency_from_codes(a, b, 5))


def test_ac2_uses_the_weighted_agreement_of_weighted_kappa() -> None:
    table = contingency_table(RUBRIC_A, RUBRIC_B, [1, 2, 3, 4, 5])
    ac2 = gwet_ac2(counts_from_table(table))
    assert ac2.p_o == pytest.approx(cohen_kappa(table, "quadratic").p_o)
    assert gwet_ac2(F71, None).value == pytest.approx(value(gwet_ac1(F71)))
    assert value(ac2) > value(gwet_ac1(counts_from_table(table)))


def test_min_n_guard() -> None:
    small = cohen_kappa(ABSTRACTORS[:2, :2])
    assert require_min_n(small).reason == "not enough data"
    assert require_min_n(small).value is None
    assert require_min_n(small, min_items=small.n_items) == small
    big = cohen_kappa(ABSTRACTORS)
    assert require_min_n(big) == big
    assert require_min_n(big, category_totals=ABSTRACTORS.sum(axis=0)).value is not None
    assert require_min_n(big, category_totals=[13, 24, 3]).reason == "not enough data"
    assert require_min_n(cohen_kappa(CONSTANT)).reason == "no variance"


def test_stacks_agree_with_single_tables() -> None:
    tables = np.stack([ABSTRACTORS, ABSTRACTORS.T, np.diag([5, 0, 0]), np.eye(3, dtype=np.int64) * 4 + 1])
    for weights in (None, "linear", "quadratic"):
        stack = cohen_kappa_stack(tables, weights)
        for t, kappa in zip(tables, stack.kappa, strict=True):
            single = cohen_kappa(t, weights).value
            assert (np.isnan(kappa) and single is None) or kappa == pytest.approx(single)
    coincidences = coincidence_from_table(tables)
    for level in ("nominal", "ordinal"):
        alphas = krippendorff_alpha_stack(coincidences, level=level)
        for o, alpha in zip(coincidences, alphas, strict=True):
            single = krippendorff_alpha(o, n_items=1, level=level).value
            assert (np.isnan(alpha) and single is None) or alpha == pytest.approx(single)
    nested = cohen_kappa_stack(np.stack([tables, tables]))
    assert nested.kappa.shape == (2, 4)


# Properties (§7.4)

ratings = st.integers(min_value=2, max_value=5).flatmap(
    lambda q: st.tuples(
        st.just(q),
        st.lists(st.lists(st.integers(min_value=-1, max_value=q - 1), min_size=3, max_size=3), min_size=2, max_size=25),
    )
)
fixed_counts = st.integers(min_value=2, max_value=4).flatmap(
    lambda q: st.lists(
        st.lists(st.integers(min_value=0, max_value=q - 1), min_size=4, max_size=4), min_size=2, max_size=25
    ).map(lambda rows: counts_from_codes(rows, q))
)

tables = st.integers(min_value=2, max_value=4).flatmap(
    lambda q: st.lists(st.integers(min_value=0, max_value=20), min_size=q * q, max_size=q * q).map(
        lambda cells: np.array(cells).reshape(q, q)
    )
)


def same(a: Result, b: Result) -> bool:
    if a.value is None or b.value is None:
        return a.value is None and b.value is None and a.reason == b.reason
    return bool(np.isclose(a.value, b.value, rtol=0, atol=1e-12))


@settings(max_examples=60, deadline=None)
@given(ratings, st.integers(min_value=0, max_value=2**32 - 1))
def test_permuting_items_or_raters_does_not_change_alpha(data: tuple[int, list[list[int]]], seed: int) -> None:
    q, rows = data
    codes = np.array(rows)
    rng = np.random.default_rng(seed)
    items, raters = rng.permutation(len(rows)), rng.permutation(3)
    for level in ("nominal", "ordinal"):
        original = krippendorff_alpha_counts(counts_from_codes(codes, q), level=level)
        assert same(original, krippendorff_alpha_counts(counts_from_codes(codes[items], q), level=level))
        assert same(original, krippendorff_alpha_counts(counts_from_codes(codes[:, raters], q), level=level))
    table = contingency_from_codes(codes[:, 0], codes[:, 1], q)
    assert same(cohen_kappa(table), cohen_kappa(contingency_from_codes(codes[:, 1], codes[:, 0], q)))
    assert same(scott_pi(table), scott_pi(table.T))


@settings(max_examples=60, deadline=None)
@given(fixed_counts, st.integers(min_value=0, max_value=2**32 - 1))
def test_permuting_items_does_not_change_fleiss(counts: np.ndarray, seed: int) -> None:
    items = np.random.default_rng(seed).permutation(counts.shape[0])
    assert same(fleiss_kappa(counts), fleiss_kappa(counts[items]))
    assert same(gwet_ac1(counts), gwet_ac1(counts[items]))


@settings(max_examples=60, deadline=None)
@given(fixed_counts, tables, st.integers(min_value=0, max_value=2**32 - 1))
def test_relabelling_nominal_categories_changes_nothing(counts: np.ndarray, table: np.ndarray, seed: int) -> None:
    rng = np.random.default_rng(seed)
    perm = rng.permutation(counts.shape[1])
    for statistic in (fleiss_kappa, gwet_ac1, randolph_kappa, krippendorff_alpha_counts):
        assert same(statistic(counts), statistic(counts[:, perm]))
    perm = rng.permutation(table.shape[0])
    relabelled = table[np.ix_(perm, perm)]
    for two_rater in (cohen_kappa, scott_pi, percent_agreement, brennan_prediger):
        assert same(two_rater(table), two_rater(relabelled))
    assert same(gwet_ac1(counts_from_table(table)), gwet_ac1(counts_from_table(relabelled)))


@settings(max_examples=60, deadline=None)
@given(ratings, st.integers(min_value=0, max_value=25))
def test_pooled_halves_equal_the_whole(data: tuple[int, list[list[int]]], cut: int) -> None:
    q, rows = data
    counts = counts_from_codes(rows, q)
    cut = min(cut, len(rows))
    pooled = coincidence_matrix(counts[:cut]) + coincidence_matrix(counts[cut:])
    assert np.allclose(pooled, coincidence_matrix(counts))
    whole = krippendorff_alpha_counts(counts, level="ordinal")
    n_items = int((counts.sum(axis=1) >= 2).sum())
    assert same(whole, krippendorff_alpha(pooled, n_items=n_items, level="ordinal"))
    codes = np.array(rows)
    first, second = codes[:cut], codes[cut:]
    halves = contingency_from_codes(first[:, 0], first[:, 1], q) + contingency_from_codes(second[:, 0], second[:, 1], q)
    whole_table = contingency_from_codes(codes[:, 0], codes[:, 1], q)
    assert same(cohen_kappa(halves, "quadratic"), cohen_kappa(whole_table, "quadratic"))


@settings(max_examples=60, deadline=None)
@given(ratings, tables)
def test_values_are_finite_or_none_with_a_reason(data: tuple[int, list[list[int]]], table: np.ndarray) -> None:
    q, rows = data
    counts = counts_from_codes(rows, q)
    results = [
        fleiss_kappa(counts),
        gwet_ac1(counts),
        gwet_ac2(counts),
        randolph_kappa(counts),
        *category_kappas(counts),
        *(krippendorff_alpha_counts(counts, level=level) for level in ("nominal", "ordinal")),
        krippendorff_alpha_counts(counts, level="interval", values=np.arange(q)),
        *(cohen_kappa(table, weights) for weights in (None, "linear", "quadratic")),
        scott_pi(table),
        brennan_prediger(table),
        percent_agreement(table),
    ]
    for result in results:
        assert (result.value is None) == (result.reason is not None)
        assert result.value is None or np.isfinite(result.value)
        assert all(x is None or np.isfinite(x) for x in (result.p_o, result.p_e, result.se))


def test_the_engine_imports_no_django() -> None:
    probe = "import sys, audit.agreement; sys.exit(any(m.split('.')[0] == 'django' for m in sys.modules))"
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", probe], cwd=root, check=False).returncode == 0
