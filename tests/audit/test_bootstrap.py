"""The cluster bootstrap (AGREEMENT.md §1.9): whole trajectories are resampled, degenerate resamples counted."""

from __future__ import annotations

import numpy as np
import pytest

from audit.agreement import (
    bootstrap_ci,
    cluster_sums,
    cohen_kappa,
    cohen_kappa_stack,
    counts_from_codes,
    item_tables,
    krippendorff_alpha_counts,
    krippendorff_alpha_stack,
    unit_coincidences,
)
from audit.agreement.bootstrap import DEGENERATE, TOO_FEW_CLUSTERS

pytestmark = pytest.mark.smoke


def kappa_of(tables: np.ndarray) -> np.ndarray:
    return cohen_kappa_stack(tables).kappa


def two_raters(items: int, seed: int, q: int = 3, agreement: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, q, size=items)
    b = np.where(rng.random(items) < agreement, a, rng.integers(0, q, size=items))
    return a, b


def test_interval_contains_the_point_estimate_and_is_reproducible() -> None:
    a, b = two_raters(300, seed=1)
    tables = item_tables(a, b, 3)
    clusters = np.repeat(np.arange(60), 5)
    point = cohen_kappa(tables.sum(axis=0)).value
    ci = bootstrap_ci(tables, clusters, kappa_of, B=1000, seed=7)
    assert ci.low is not None and ci.high is not None
    assert ci.low < point < ci.high
    assert ci.high - ci.low < 0.3
    assert ci.n_degenerate == 0 and ci.reason is None
    assert bootstrap_ci(tables, clusters, kappa_of, B=1000, seed=7) == ci
    assert bootstrap_ci(tables, clusters, kappa_of, B=1000, seed=8) != ci
    low, high, n_degenerate = ci
    assert (low, high, n_degenerate) == (ci.low, ci.high, 0)


def test_resamples_are_whole_clusters() -> None:
    stats = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    seen: list[np.ndarray] = []

    def record(pooled: np.ndarray) -> np.ndarray:
        seen.append(pooled)
        return pooled[:, 0]

    assert cluster_sums(stats, ["t1", "t1", "t2"]).tolist() == [[2.0, 0.0], [0.0, 1.0]]
    bootstrap_ci(stats, ["t1", "t1", "t2"], record, B=500, seed=3)
    pooled = np.concatenate(seen)
    assert pooled.shape == (500, 2)
    assert set(pooled[:, 0]) == {0.0, 2.0, 4.0}
    assert np.all(pooled[:, 0] / 2 + pooled[:, 1] == 2)


def test_chunks_do_not_change_the_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = two_raters(120, seed=2)
    tables = item_tables(a, b, 3)
    clusters = np.repeat(np.arange(40), 3)
    whole = bootstrap_ci(tables, clusters, kappa_of, B=300, seed=5)
    monkeypatch.setattr("audit.agreement.bootstrap.CELLS_PER_CHUNK", 40 * 7)
    assert bootstrap_ci(tables, clusters, kappa_of, B=300, seed=5) == whole


def test_duplicated_clusters_widen_the_interval_against_item_resampling() -> None:
    a, b = two_raters(40, seed=4, agreement=0.6)
    tables = np.repeat(item_tables(a, b, 3), 5, axis=0)
    by_trajectory = bootstrap_ci(tables, np.repeat(np.arange(40), 5), kappa_of, B=2000, seed=11)
    by_item = bootstrap_ci(tables, np.arange(200), kappa_of, B=2000, seed=11)
    assert by_trajectory.low is not None and by_trajectory.high is not None
    assert by_item.low is not None and by_item.high is not None
    assert (by_trajectory.high - by_trajectory.low) > 1.5 * (by_item.high - by_item.low)


def test_alpha_from_unit_coincidences() -> None:
    rng = np.random.default_rng(9)
    truth = rng.integers(0, 4, size=150)
    codes = np.where(rng.random((150, 3)) < 0.75, truth[:, None], rng.integers(0, 4, size=(150, 3)))
    codes[rng.random((150, 3)) < 0.1] = -1
    counts = counts_from_codes(codes, 4)
    units = unit_coincidences(counts)
    point = krippendorff_alpha_counts(counts).value
    assert np.allclose(units.sum(axis=0).sum(), krippendorff_alpha_counts(counts).n_pairable)
    ci = bootstrap_ci(units, np.repeat(np.arange(50), 3), krippendorff_alpha_stack, B=500, seed=1)
    assert ci.low is not None and ci.high is not None
    assert ci.low < point < ci.high


def test_too_many_degenerate_resamples_withhold_the_interval() -> None:
    constant = item_tables(np.zeros(6, dtype=np.int64), np.zeros(6, dtype=np.int64), 2)
    varied = item_tables(np.array([0, 1, 1]), np.array([0, 1, 0]), 2)
    tables = np.concatenate([constant, varied])
    clusters = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    ci = bootstrap_ci(tables, clusters, kappa_of, B=1000, seed=2)
    assert ci.low is None and ci.high is None
    assert ci.reason == DEGENERATE
    assert 200 < ci.n_degenerate < 400  # P(cluster 2 never drawn) = (2/3)³ ≈ 0.30


def test_a_single_cluster_gives_no_interval() -> None:
    a, b = two_raters(10, seed=3)
    ci = bootstrap_ci(item_tables(a, b, 3), np.zeros(10), kappa_of, B=100, seed=1)
    assert (ci.low, ci.high, ci.reason) == (None, None, TOO_FEW_CLUSTERS)


def test_domain_bootstrap_of_the_whole_sample_agrees_with_the_cluster_bootstrap() -> None:
    """One domain that is every cluster: the same resampling scheme as bootstrap_ci, so a similar interval."""
    from audit.agreement import domain_bootstrap_ci

    rng = np.random.default_rng(5)
    clusters = 300
    truth = rng.integers(0, 2, size=(clusters, 6))
    other = np.where(rng.random(truth.shape) < 0.85, truth, 1 - truth)
    tables = np.zeros((clusters, 2, 2))
    for c in range(clusters):
        np.add.at(tables[c], (truth[c], other[c]), 1)
    kappa = lambda t: cohen_kappa_stack(t).kappa  # noqa: E731
    whole = bootstrap_ci(tables, np.arange(clusters), kappa, B=2000, seed=1)
    (domain,) = domain_bootstrap_ci([(np.arange(clusters), tables)], clusters, kappa, B=2000, seed=2)
    point = cohen_kappa(tables.sum(axis=0)).value
    assert domain.low < point < domain.high
    assert abs(domain.low - whole.low) < 0.03 and abs(domain.high - whole.high) < 0.03
    again = domain_bootstrap_ci([(np.arange(clusters), tables)], clusters, kappa, B=2000, seed=2)
    assert again[0] == domain  # same seed, same interval


def test_a_small_domain_gets_a_wider_interval_and_a_tiny_one_none() -> None:
    from audit.agreement import domain_bootstrap_ci

    rng = np.random.default_rng(6)
    clusters = 400
    tables = np.zeros((clusters, 2, 2))
    for c in range(clusters):
        a = rng.integers(0, 2, size=8)
        b = np.where(rng.random(8) < 0.8, a, 1 - a)
        np.add.at(tables[c], (a, b), 1)
    kappa = lambda t: cohen_kappa_stack(t).kappa  # noqa: E731
    small = np.arange(0, clusters, 10)
    whole, part, single = domain_bootstrap_ci(
        [(np.arange(clusters), tables), (small, tables[small]), (np.array([3]), tables[[3]])],
        clusters,
        kappa,
        B=500,
        seed=3,
    )
    assert (part.high - part.low) > (whole.high - whole.low)
    assert single.low is None and single.reason == TOO_FEW_CLUSTERS
