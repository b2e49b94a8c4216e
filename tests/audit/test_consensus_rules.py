"""The consensus rules of AGREEMENT.md §5 on hand-made votes."""

from __future__ import annotations

import pytest

from audit.consensus import exact, ordinal, tags

pytestmark = pytest.mark.smoke


def votes(*values):
    return [(i + 1, v) for i, v in enumerate(values)]


@pytest.mark.parametrize(
    ("values", "settled", "value", "agreement"),
    [
        (("valid", "valid", "valid"), True, "valid", "3/3"),
        (("valid", "valid", "invalid"), True, "valid", "2/3"),
        (("valid", "valid", "unsure"), True, "valid", "2/3"),
        (("valid", "invalid", "unsure"), False, None, ""),
        (("unsure", "unsure", "valid"), False, None, ""),
        (("unsure", "unsure", "unsure"), False, None, ""),
    ],
)
def test_argument_validity_needs_two_matching_definitive_votes(values, settled, value, agreement) -> None:
    outcome = exact(votes(*values), abstain=["unsure"])
    assert (outcome.settled, outcome.value, outcome.agreement) == (settled, value, agreement)
    if not settled:
        assert outcome.reason


def test_a_split_on_a_critical_step_escalates_and_the_outlier_is_named() -> None:
    plain = exact(votes("success", "success", "failure"))
    assert plain.settled and plain.source_labels == (1, 2) and plain.outliers == (3,)
    critical = exact(votes("success", "success", "failure"), critical=True)
    assert not critical.settled and critical.reason == "split on a critical step"
    assert exact(votes("success", "success", "success"), critical=True).settled


def test_three_different_process_rewards_escalate_two_equal_win() -> None:
    assert not exact(votes(-1, 0, 1)).settled
    assert exact(votes(1, 1, -1)).value == 1


def test_corrected_values_match_by_canonical_json() -> None:
    outcome = exact(votes({"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1}, "other"))
    assert outcome.settled and outcome.value == {"a": 1, "b": [1, 2]}
    assert not exact(votes({"a": 1}, {"a": 2}, None)).settled


@pytest.mark.parametrize(
    ("scores", "settled", "value", "outliers"),
    [
        ((4, 4, 4), True, 4, ()),
        ((3, 4, 4), True, 4, ()),
        ((3, 3, 4), True, 3, ()),
        ((4, 4, 1), True, 4, (3,)),
        ((2, 3, 4), False, None, ()),
        ((1, 3, 5), False, None, ()),
    ],
)
def test_rubric_range_one_is_the_median_a_pair_beats_an_outlier_else_escalate(scores, settled, value, outliers) -> None:
    outcome = ordinal(votes(*scores))
    assert (outcome.settled, outcome.value, outcome.outliers) == (settled, value, outliers)


def test_an_outlier_on_a_critical_axis_escalates() -> None:
    assert not ordinal(votes(4, 4, 1), critical=True).settled
    assert ordinal(votes(4, 4, 3), critical=True).settled


def test_never_some_pair_within_one() -> None:
    """2,3,4 has pairs within ±1 but a range of 2: it escalates (the rule is max − min ≤ 1)."""
    assert not ordinal(votes(2, 3, 4)).settled


def test_failure_modes_per_tag_majority_with_an_explicit_none() -> None:
    outcome = tags(votes(["none"], ["none"], ["schema_drift"]))
    assert outcome.settled and outcome.value == ["none"] and outcome.outliers == (3,)
    same = tags(votes(["schema_drift", "recovery_loop"], ["schema_drift", "recovery_loop"], ["schema_drift"]))
    assert same.value == ["recovery_loop", "schema_drift"] and same.agreement == "2/3"


def test_a_split_on_a_high_severity_tag_escalates() -> None:
    outcome = tags(votes(["wrong_tool"], ["wrong_tool"], ["none"]), high_severity={"wrong_tool"})
    assert not outcome.settled and outcome.details["tags"] == ["wrong_tool"]
    assert tags(votes(["wrong_tool"], ["wrong_tool"], ["wrong_tool"]), high_severity={"wrong_tool"}).settled


def test_a_majority_set_that_no_annotator_chose_escalates() -> None:
    """{H,S}, {S,W}, {H,W}: every tag has two votes, so the per-tag majority is {H, S, W} — nobody's set."""
    outcome = tags(votes(["H", "S"], ["S", "W"], ["H", "W"]))
    assert not outcome.settled and outcome.details["tags"] == ["H", "S", "W"]


def test_tv14c_step_7_settles_on_the_set_one_annotator_chose() -> None:
    """AGREEMENT.md TV14c step 7, {H,S}, {H}, {S}: the per-tag majority {H, S} is annotator A's set."""
    outcome = tags(votes(["H", "S"], ["H"], ["S"]))
    assert outcome.settled and outcome.value == ["H", "S"] and outcome.agreement == "1/3"
    assert outcome.outliers == (2, 3)


def test_no_tag_with_a_majority_escalates() -> None:
    assert not tags(votes(["a"], ["b"], ["none"])).settled


def test_one_annotator_settles_alone() -> None:
    assert exact(votes("valid")).agreement == "1/1"
    assert ordinal(votes(3)).value == 3
    assert tags(votes(["none"])).value == ["none"]
