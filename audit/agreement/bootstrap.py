"""Cluster bootstrap over trajectories for any pooled coefficient (AGREEMENT.md §0.4, §1.9)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
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


def domain_bootstrap_ci(
    domains: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]],
    n_clusters: int,
    statistic: Callable[[FloatArray], npt.ArrayLike],
    *,
    B: int = 1000,
    seed: int | np.random.Generator | None = None,
    level: float = 0.95,
    chunk: int = 100,
) -> list[BootstrapCI]:
    """Percentile CIs of many domains of one sample (slices, annotators, the whole) from the same resamples.

    Each resample draws `n_clusters` whole clusters, with replacement, from all of them; a domain's statistic
    is computed on its own clusters in that resample — the usual bootstrap of a domain (sub-population)
    estimate, its size varying from resample to resample as it does between samples. One draw serves every
    domain, so the cost is one (B, n_clusters) count matrix plus one product per domain over its clusters.
    `domains` are (the domain's cluster indices in 0 … n_clusters − 1, their summed statistics (k, ...)).
    """
    if B < 1 or not 0.0 < level < 1.0:
        raise ValueError("B must be positive and level inside (0, 1)")
    rng = np.random.default_rng(seed)
    prepared = [(np.asarray(c, dtype=np.int64), np.asarray(s, dtype=np.float64)) for c, s in domains]
    shapes = [stats.shape[1:] for _, stats in prepared]
    widths = [int(np.prod(shape)) for shape in shapes]
    offsets = np.concatenate(([0], np.cumsum(widths)))
    # every domain's statistics side by side, zero where a cluster is not in it: one product per resample chunk
    stacked = np.zeros((n_clusters, int(offsets[-1])), dtype=np.float32)
    for k, (clusters, stats) in enumerate(prepared):
        stacked[clusters, offsets[k] : offsets[k + 1]] = stats.reshape(clusters.size, -1)
    parts: list[list[np.ndarray]] = [[] for _ in domains]
    for start in range(0, B, chunk):
        size = min(chunk, B - start)
        draws = rng.integers(0, max(n_clusters, 1), size=(size, n_clusters))
        rows = (np.arange(size)[:, None] * n_clusters + draws).ravel()
        weights = np.bincount(rows, minlength=size * n_clusters).reshape(size, n_clusters).astype(np.float32)
        pooled_all = (weights @ stacked).astype(np.float64)
        for k, (clusters, _) in enumerate(prepared):
            if clusters.size < 2:
                continue
            pooled = pooled_all[:, offsets[k] : offsets[k + 1]].reshape(size, *shapes[k])
            parts[k].append(np.asarray(statistic(pooled), dtype=np.float64).reshape(size))
    out = []
    tail = (1.0 - level) / 2.0
    for (clusters, _), values in zip(prepared, parts, strict=True):
        if clusters.size < 2:
            out.append(BootstrapCI(low=None, high=None, n_degenerate=0, n_resamples=0, reason=TOO_FEW_CLUSTERS))
            continue
        resampled = np.concatenate(values)
        finite = np.isfinite(resampled)
        n_degenerate = int((~finite).sum())
        if n_degenerate > MAX_DEGENERATE_SHARE * B:
            out.append(BootstrapCI(low=None, high=None, n_degenerate=n_degenerate, n_resamples=B, reason=DEGENERATE))
            continue
        low, high = np.quantile(resampled[finite], [tail, 1.0 - tail])
        out.append(BootstrapCI(low=float(low), high=float(high), n_degenerate=n_degenerate, n_resamples=B))
    return out
