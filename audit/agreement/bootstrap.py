"""Cluster bootstrap over trajectories for any pooled coefficient (AGREEMENT.md §0.4, §1.9)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from audit.agreement.coefficients import FloatArray

MAX_DEGENERATE_SHARE = 0.01
DEGENERATE = "degenerate bootstrap > 1%"
TOO_FEW_CLUSTERS = "fewer than 2 clusters"
CELLS_PER_CHUNK = 4_000_000


@dataclass(frozen=True)
class BootstrapCI:
    """A percentile interval; `low`/`high` are None with a `reason` when the slice is too small.

    Unpacks as (low, high, n_degenerate).
    """

    low: float | None
    high: float | None
    n_degenerate: int
    n_resamples: int
    reason: str | None = None

    def __iter__(self) -> Iterator[float | int | None]:
        return iter((self.low, self.high, self.n_degenerate))


def cluster_sums(unit_stats: npt.ArrayLike, cluster_ids: npt.ArrayLike) -> FloatArray:
    """Each cluster's summed sufficient statistics, shape (C, ...), clusters in sorted id order."""
    stats = np.asarray(unit_stats, dtype=np.float64)
    ids = np.asarray(cluster_ids)
    if ids.shape != (stats.shape[0],):
        raise ValueError("one cluster id per unit")
    _, codes = np.unique(ids, return_inverse=True)
    sums = np.zeros((int(codes.max()) + 1 if codes.size else 0, *stats.shape[1:]))
    np.add.at(sums, codes, stats)
    return sums


def bootstrap_ci(
    unit_stats: npt.ArrayLike,
    cluster_ids: npt.ArrayLike,
    statistic: Callable[[FloatArray], npt.ArrayLike],
    *,
    B: int = 1000,
    seed: int | np.random.Generator | None = None,
    level: float = 0.95,
) -> BootstrapCI:
    """Percentile CI from resampling whole clusters (trajectories) with replacement (§1.9).

    `unit_stats` are per-unit sufficient statistics (N, ...) — one-hot tables, unit coincidence matrices,
    count rows; they are summed per cluster, each resample's pooled statistics are a (B, C) multinomial
    count matrix times the (C, ...) cluster sums, and `statistic` maps the (b, ...) pooled stack to b values,
    NaN for a degenerate resample (p_e = 1). Degenerate resamples are dropped and counted; above 1% the
    interval is withheld.
    """
    if B < 1 or not 0.0 < level < 1.0:
        raise ValueError("B must be positive and level inside (0, 1)")
    sums = cluster_sums(unit_stats, cluster_ids)
    clusters = sums.shape[0]
    if clusters < 2:
        return BootstrapCI(low=None, high=None, n_degenerate=0, n_resamples=0, reason=TOO_FEW_CLUSTERS)
    flat = sums.reshape(clusters, -1)
    rng = np.random.default_rng(seed)
    uniform = np.full(clusters, 1.0 / clusters)
    chunk = max(1, CELLS_PER_CHUNK // max(clusters, flat.shape[1]))
    values = []
    for start in range(0, B, chunk):
        size = min(chunk, B - start)
        weights = rng.multinomial(clusters, uniform, size=size).astype(np.float64)
        pooled = (weights @ flat).reshape(size, *sums.shape[1:])
        values.append(np.asarray(statistic(pooled), dtype=np.float64).reshape(size))
    resampled = np.concatenate(values)
    finite = np.isfinite(resampled)
    n_degenerate = int((~finite).sum())
    if n_degenerate > MAX_DEGENERATE_SHARE * B:
        return BootstrapCI(low=None, high=None, n_degenerate=n_degenerate, n_resamples=B, reason=DEGENERATE)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(resampled[finite], [tail, 1.0 - tail])
    return BootstrapCI(low=float(low), high=float(high), n_degenerate=n_degenerate, n_resamples=B)
