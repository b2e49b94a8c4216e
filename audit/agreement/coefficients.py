"""Agreement coefficients computed from sufficient statistics (AGREEMENT.md §1, §7.2).

Pure numpy, no Django. Every input is additive over items — a q×q contingency table (Cohen, Scott,
percent agreement), an items×categories count matrix (Fleiss, Randolph, Gwet) or a V×V coincidence
matrix (Krippendorff) — so a slice is pooled by summing its items' statistics and computing once
(§1.8). Undefined values are `None` with a reason, never NaN and never coerced to 0 or 1 (§7.4).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

type FloatArray = npt.NDArray[np.float64]
type IntArray = npt.NDArray[np.int64]
type Weights = Literal["linear", "quadratic"] | npt.ArrayLike | None
type Level = Literal["nominal", "ordinal", "interval", "ratio"]

MIN_ITEMS = 100
MIN_PER_CATEGORY = 10

NO_VARIANCE = "no variance"
NO_PAIRABLE = "no pairable values"
NOT_ENOUGH_DATA = "not enough data"
UNEQUAL_RATERS = "unequal raters per item, use α"
TOO_FEW_CATEGORIES = "fewer than 2 categories"


@dataclass(frozen=True)
class Result:
    """One coefficient: `value` is None exactly when it is undefined, and `reason` says why.

    `n_items` counts the items with at least two values, `n_pairable` the values in them (§0, recommendation 3).
    """

    value: float | None
    reason: str | None
    n_items: int
    n_pairable: int
    p_o: float | None = None
    p_e: float | None = None
    se: float | None = None


class KappaStack(NamedTuple):
    """κ, p_o and p_e for every table of a stack; κ is NaN where p_e = 1, all three where the table is empty."""

    kappa: FloatArray
    p_o: FloatArray
    p_e: FloatArray


def _undefined(reason: str, n_items: int, n_pairable: int, **extra: float | None) -> Result:
    return Result(value=None, reason=reason, n_items=n_items, n_pairable=n_pairable, **extra)


def _chance_corrected(p_o: float, p_e: float, n_items: int, n_pairable: int) -> Result:
    """(p_o − p_e)/(1 − p_e), undefined when p_e = 1 (§1)."""
    if n_items == 0:
        return _undefined(NO_PAIRABLE, 0, 0)
    if p_e >= 1.0:
        return _undefined(NO_VARIANCE, n_items, n_pairable, p_o=p_o, p_e=p_e)
    return Result(
        value=(p_o - p_e) / (1.0 - p_e), reason=None, n_items=n_items, n_pairable=n_pairable, p_o=p_o, p_e=p_e
    )


# Building the sufficient statistics


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def encode(values: Sequence[Hashable | None], labels: Sequence[Hashable]) -> IntArray:
    """Codes 0..q−1 by position in the fixed label list; None (or NaN) is missing and becomes −1."""
    index = {label: code for code, label in enumerate(labels)}
    try:
        return np.array([-1 if _is_missing(v) else index[v] for v in values], dtype=np.int64)
    except KeyError as error:
        raise ValueError(f"label {error.args[0]!r} is not in the label list") from None


def contingency_from_codes(a: npt.ArrayLike, b: npt.ArrayLike, q: int) -> IntArray:
    """The q×q table of two raters' codes (rows = a); a pair with a negative (missing) code is skipped."""
    a_codes, b_codes = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if a_codes.shape != b_codes.shape:
        raise ValueError("the two raters must rate the same items")
    if a_codes.size and max(int(a_codes.max()), int(b_codes.max())) >= q:
        raise ValueError("a code is outside the label list")
    both = (a_codes >= 0) & (b_codes >= 0)
    return np.bincount(a_codes[both] * q + b_codes[both], minlength=q * q).reshape(q, q)


def contingency_table(
    a: Sequence[Hashable | None], b: Sequence[Hashable | None], labels: Sequence[Hashable]
) -> IntArray:
    """The q×q table over the full label list (§1.2: unused levels keep their row and column)."""
    return contingency_from_codes(encode(a, labels), encode(b, labels), len(labels))


def item_tables(a: npt.ArrayLike, b: npt.ArrayLike, q: int) -> IntArray:
    """One one-hot q×q table per item, shape (N, q, q), for the cluster bootstrap; missing pairs are zero."""
    a_codes, b_codes = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    tables = np.zeros((a_codes.size, q, q), dtype=np.int64)
    both = np.flatnonzero((a_codes >= 0) & (b_codes >= 0))
    tables[both, a_codes[both], b_codes[both]] = 1
    return tables


def counts_from_codes(codes: npt.ArrayLike, q: int) -> IntArray:
    """Items×categories counts from an items×raters code matrix; negative codes are missing."""
    matrix = np.asarray(codes, dtype=np.int64)
    items = np.broadcast_to(np.arange(matrix.shape[0])[:, None], matrix.shape)
    present = matrix >= 0
    if present.any() and int(matrix.max()) >= q:
        raise ValueError("a code is outside the label list")
    flat = np.bincount(items[present] * q + matrix[present], minlength=matrix.shape[0] * q)
    return flat.reshape(matrix.shape[0], q)


def category_counts(ratings: Sequence[Sequence[Hashable | None]], labels: Sequence[Hashable]) -> IntArray:
    """Items×categories counts n_ij from per-item lists of labels (any length; None is missing)."""
    lengths = np.array([len(row) for row in ratings], dtype=np.int64)
    codes = encode([value for row in ratings for value in row], labels)
    items = np.repeat(np.arange(len(ratings)), lengths)
    present = codes >= 0
    q = len(labels)
    return np.bincount(items[present] * q + codes[present], minlength=len(ratings) * q).reshape(len(ratings), q)


def counts_from_table(table: npt.ArrayLike) -> IntArray:
    """The items×categories counts of a two-rater table: one row e_i + e_j per item in cell (i, j)."""
    cells = np.asarray(table, dtype=np.int64)
    q = cells.shape[0]
    eye = np.eye(q, dtype=np.int64)
    patterns = (eye[:, None, :] + eye[None, :, :]).reshape(q * q, q)
    return np.repeat(patterns, cells.reshape(-1), axis=0)


# Cohen's κ, weighted κ and the two-rater relatives (§1.1, §1.2, §1.5)


def disagreement_weights(q: int, weights: Weights = None) -> FloatArray:
    """w_ij of §1.2 by position in the fixed label list: 1[i≠j], |i−j|/(q−1), (i−j)²/(q−1)², or a given q×q matrix."""
    if weights is None:
        return 1.0 - np.eye(q)
    if isinstance(weights, str):
        positions = np.arange(q, dtype=np.float64)
        span = max(q - 1, 1)
        if weights == "linear":
            return np.abs(positions[:, None] - positions[None, :]) / span
        if weights == "quadratic":
            return (positions[:, None] - positions[None, :]) ** 2 / span**2
        raise ValueError(f"unknown weights {weights!r}")
    matrix = np.asarray(weights, dtype=np.float64)
    if matrix.shape != (q, q):
        raise ValueError(f"a weight matrix must be {q}×{q}")
    return matrix


def agreement_weights(q: int, weights: Weights = None) -> FloatArray:
    """v_ij = 1 − w_ij / max w (§1.2): the identity for unweighted κ."""
    w = disagreement_weights(q, weights)
    top = float(w.max()) if w.size else 0.0
    return 1.0 - w / top if top > 0 else np.ones_like(w)


def cohen_kappa_stack(tables: npt.ArrayLike, weights: Weights = None) -> KappaStack:
    """κ_w = 1 − Σ w_ij p_ij / Σ w_ij p_i· p_·j for a stack of tables of shape (..., q, q) (§1.1, §1.2)."""
    t = np.asarray(tables, dtype=np.float64)
    q = t.shape[-1]
    w = disagreement_weights(q, weights)
    top = float(w.max()) if w.size else 0.0
    n = t.sum(axis=(-2, -1))
    d_o = np.einsum("...ij,ij->...", t, w)
    d_e = np.einsum("...i,ij,...j->...", t.sum(axis=-1), w, t.sum(axis=-2))
    scale = np.where(n > 0, n, 1.0)
    if top > 0:
        p_o = 1.0 - d_o / (scale * top)
        p_e = 1.0 - d_e / (scale**2 * top)
    else:
        p_o, p_e = np.ones_like(n), np.ones_like(n)
    p_o, p_e = np.where(n > 0, p_o, np.nan), np.where(n > 0, p_e, np.nan)
    defined = (n > 0) & (d_e > 0)
    kappa = np.full(n.shape, np.nan)
    np.subtract(1.0, n * d_o / np.where(defined, d_e, 1.0), out=kappa, where=defined)
    return KappaStack(kappa=kappa, p_o=p_o, p_e=p_e)


def cohen_kappa(table: npt.ArrayLike, weights: Weights = None) -> Result:
    """Cohen's κ (or weighted κ) of one table, with the Fleiss–Cohen–Everitt (1969) large-sample ASE as `se` (§1.1).

    p_o and p_e are the (agreement-weighted) observed and chance proportions; p_e = 1 leaves κ undefined.
    """
    t = np.asarray(table, dtype=np.float64)
    n = int(t.sum())
    if n == 0:
        return _undefined(NO_PAIRABLE, 0, 0)
    stack = cohen_kappa_stack(t, weights)
    p_o, p_e = float(stack.p_o), float(stack.p_e)
    if np.isnan(stack.kappa):
        return _undefined(NO_VARIANCE, n, 2 * n, p_o=p_o, p_e=p_e)
    kappa = float(stack.kappa)
    v = agreement_weights(t.shape[0], weights)
    p = t / n
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    v_row, v_col = v @ cols, rows @ v
    spread = (v - (v_row[:, None] + v_col[None, :]) * (1.0 - kappa)) ** 2
    variance = ((p * spread).sum() - (kappa - p_e * (1.0 - kappa)) ** 2) / (n * (1.0 - p_e) ** 2)
    return Result(
        value=kappa, reason=None, n_items=n, n_pairable=2 * n, p_o=p_o, p_e=p_e, se=float(np.sqrt(max(variance, 0.0)))
    )


def cohen_kappa_se0(table: npt.ArrayLike, weights: Weights = None) -> float | None:
    """SE of κ (or κ_w) under H0: κ = 0 (Fleiss, Cohen & Everitt 1969; §1.1). For z-tests only, never for CIs."""
    t = np.asarray(table, dtype=np.float64)
    n = float(t.sum())
    if n == 0:
        return None
    v = agreement_weights(t.shape[0], weights)
    rows, cols = t.sum(axis=1) / n, t.sum(axis=0) / n
    p_e = float(rows @ v @ cols)
    if p_e >= 1.0:
        return None
    spread = (v - ((v @ cols)[:, None] + (rows @ v)[None, :])) ** 2
    variance = (float(rows @ spread @ cols) - p_e**2) / (n * (1.0 - p_e) ** 2)
    return float(np.sqrt(max(variance, 0.0)))


def percent_agreement(table: npt.ArrayLike) -> Result:
    """Raw agreement p_o = Σ_i p_ii; defined whenever the table is not empty (§1.1, TV15)."""
    t = np.asarray(table, dtype=np.float64)
    n = int(t.sum())
    if n == 0:
        return _undefined(NO_PAIRABLE, 0, 0)
    p_o = float(np.trace(t)) / n
    return Result(value=p_o, reason=None, n_items=n, n_pairable=2 * n, p_o=p_o)


def brennan_prediger(table: npt.ArrayLike) -> Result:
    """Brennan–Prediger (p_o − 1/q)/(1 − 1/q), with q the full label count (§1.3, TV4)."""
    t = np.asarray(table, dtype=np.float64)
    q = t.shape[0]
    n = int(t.sum())
    if q < 2:
        return _undefined(TOO_FEW_CATEGORIES, n, 2 * n)
    return _chance_corrected(float(np.trace(t)) / n if n else 0.0, 1.0 / q, n, 2 * n)


def pabak(table: npt.ArrayLike) -> Result:
    """Prevalence- and bias-adjusted κ of a 2×2 table, 2p_o − 1 (§1.5, TV10)."""
    if np.shape(table) != (2, 2):
        raise ValueError("PABAK is defined for a 2×2 table")
    return brennan_prediger(table)


def specific_agreement(table: npt.ArrayLike) -> tuple[Result, Result]:
    """Positive and negative specific agreement 2a/(2a+b+c), 2d/(2d+b+c) of [[a,b],[c,d]], "+" first (§1.5)."""
    t = np.asarray(table, dtype=np.float64)
    if t.shape != (2, 2):
        raise ValueError("specific agreement is defined for a 2×2 table")
    (a, b), (c, d) = t
    n = int(t.sum())
    out = []
    for agree, kind in ((a, "positive"), (d, "negative")):
        denominator = 2 * agree + b + c
        if denominator == 0:
            out.append(_undefined(f"no {kind} ratings", n, 2 * n))
        else:
            out.append(Result(value=float(2 * agree / denominator), reason=None, n_items=n, n_pairable=2 * n))
    return out[0], out[1]


def scott_pi(table: npt.ArrayLike) -> Result:
    """Scott's π: p_e from the pooled marginals of both raters (§1.1, §1.3)."""
    t = np.asarray(table, dtype=np.float64)
    n = int(t.sum())
    if n == 0:
        return _undefined(NO_PAIRABLE, 0, 0)
    pooled = (t.sum(axis=0) + t.sum(axis=1)) / (2 * n)
    return _chance_corrected(float(np.trace(t)) / n, float(pooled @ pooled), n, 2 * n)


# Fleiss' κ and the multi-rater relatives (§1.3)


def _fixed_raters(counts: npt.ArrayLike) -> tuple[FloatArray, int] | Result:
    """The rated rows and their common rater count n, or the reason Fleiss does not apply."""
    c = np.asarray(counts, dtype=np.float64)
    totals = c.sum(axis=1)
    c = c[totals > 0]
    totals = totals[totals > 0]
    if c.shape[0] == 0:
        return _undefined(NO_PAIRABLE, 0, 0)
    if np.any(totals != totals[0]):
        return _undefined(UNEQUAL_RATERS, int((totals >= 2).sum()), int(totals[totals >= 2].sum()))
    if totals[0] < 2:
        return _undefined(NO_PAIRABLE, 0, 0)
    return c, int(totals[0])


def fleiss_kappa(counts: npt.ArrayLike) -> Result:
    """Fleiss' κ = (P̄ − P̄_e)/(1 − P̄_e) for a fixed number n of ratings per item; p_o = P̄, p_e = P̄_e (§1.3).

    Items without ratings are skipped; any other difference in n makes it undefined (use α instead).
    """
    fixed = _fixed_raters(counts)
    if isinstance(fixed, Result):
        return fixed
    c, n = fixed
    items = c.shape[0]
    p_bar = float(((c * (c - 1)).sum(axis=1) / (n * (n - 1))).mean())
    p_j = c.sum(axis=0) / (items * n)
    return _chance_corrected(p_bar, float(p_j @ p_j), items, items * n)


def fleiss_kappa_se0(counts: npt.ArrayLike) -> float | None:
    """SE of Fleiss' κ under H0: κ = 0 (Fleiss, Nee & Landis 1979; §1.3). For testing κ = 0 only, not for CIs."""
    fixed = _fixed_raters(counts)
    if isinstance(fixed, Result):
        return None
    c, n = fixed
    items = c.shape[0]
    p_j = c.sum(axis=0) / (items * n)
    pq = p_j * (1.0 - p_j)
    total = float(pq.sum())
    if total == 0:
        return None
    variance = 2.0 / (items * n * (n - 1)) * (total**2 - float((pq * (1.0 - 2.0 * p_j)).sum())) / total**2
    return float(np.sqrt(variance))


def category_kappas(counts: npt.ArrayLike) -> list[Result]:
    """Category-wise κ_j = 1 − Σ_i n_ij(n − n_ij) / (N n (n−1) p_j q_j), one per column (§1.3)."""
    c_all = np.asarray(counts, dtype=np.float64)
    fixed = _fixed_raters(c_all)
    if isinstance(fixed, Result):
        return [fixed] * c_all.shape[1]
    c, n = fixed
    items = c.shape[0]
    p_j = c.sum(axis=0) / (items * n)
    spread = p_j * (1.0 - p_j)
    disagreement = (c * (n - c)).sum(axis=0)
    out = []
    for j in range(c.shape[1]):
        if spread[j] == 0:
            out.append(_undefined(NO_VARIANCE, items, items * n))
        else:
            value = 1.0 - disagreement[j] / (items * n * (n - 1) * spread[j])
            out.append(Result(value=float(value), reason=None, n_items=items, n_pairable=items * n))
    return out


def item_agreement(counts: npt.ArrayLike, weights: Weights = None) -> FloatArray:
    """Per-item agreement P_i = Σ_k r_ik(r*_ik − 1)/(r_i(r_i − 1)) with r* = r vᵀ (§1.3; weighted as in AC2, §1.5).

    NaN marks an item with fewer than two ratings.
    """
    c = np.asarray(counts, dtype=np.float64)
    r_star = c if weights is None else c @ agreement_weights(c.shape[-1], weights).T  # identity: r* = r
    r = c.sum(axis=-1)
    pairs = r * (r - 1.0)
    out = np.full(r.shape, np.nan)
    np.divide((c * (r_star - 1.0)).sum(axis=-1), pairs, out=out, where=r >= 2)
    return out


def _gwet_p_a(c: FloatArray, weights: Weights) -> tuple[float, int, int]:
    """Gwet's p_a, the mean P_i over items with r_i ≥ 2, with their count and their ratings (§1.5)."""
    r = c.sum(axis=1)
    two = r >= 2
    if not two.any():
        return 0.0, 0, 0
    return float(item_agreement(c[two], weights).mean()), int(two.sum()), int(r[two].sum())


def randolph_kappa(counts: npt.ArrayLike) -> Result:
    """Randolph's free-marginal κ (multi-rater Brennan–Prediger): p_e = 1/q over every declared category (§1.3)."""
    c = np.asarray(counts, dtype=np.float64)
    q = c.shape[1]
    p_a, items, pairable = _gwet_p_a(c, None)
    if items and q < 2:
        return _undefined(TOO_FEW_CATEGORIES, items, pairable)
    return _chance_corrected(p_a, 1.0 / max(q, 1), items, pairable)


def gwet_ac(counts: npt.ArrayLike, weights: Weights = None) -> Result:
    """Gwet's AC1 (unweighted) or AC2 (weighted) from items×categories counts (§1.5).

    π_k averages each unit's share of category k over every rated unit (one rating is enough);
    p_e = Σ v_kl / (q(q−1)) · Σ_k π_k(1 − π_k), so every declared category counts.
    """
    c = np.asarray(counts, dtype=np.float64)
    q = c.shape[1]
    v = agreement_weights(q, weights)
    p_a, items, pairable = _gwet_p_a(c, weights)
    if items == 0:
        return _undefined(NO_PAIRABLE, 0, 0)
    if q < 2:
        return _undefined(TOO_FEW_CATEGORIES, items, pairable)
    r = c.sum(axis=1)
    rated = r >= 1
    share = np.zeros_like(c)
    np.divide(c, r[:, None], out=share, where=rated[:, None])
    pi = share.sum(axis=0) / int(rated.sum())
    p_e = float(v.sum() * (pi * (1.0 - pi)).sum() / (q * (q - 1)))
    return _chance_corrected(p_a, p_e, items, pairable)


def gwet_ac1(counts: npt.ArrayLike) -> Result:
    """Gwet's AC1 from items×categories counts (§1.5; TV1, TV3)."""
    return gwet_ac(counts)


def gwet_ac2(counts: npt.ArrayLike, weights: Weights = "quadratic") -> Result:
    """Gwet's AC2 for ordinal categories, quadratic weights by position unless told otherwise (§1.5)."""
    return gwet_ac(counts, weights)


# Krippendorff's α (§1.4)


def coincidence_matrix(counts: npt.ArrayLike) -> FloatArray:
    """o = Σ_u (n_u n_uᵀ − diag n_u)/(m_u − 1) over units with m_u ≥ 2 (§1.4); counts may be stacked (..., N, V)."""
    c = np.asarray(counts, dtype=np.float64)
    m = c.sum(axis=-1)
    w = np.zeros_like(m)
    np.divide(1.0, m - 1.0, out=w, where=m >= 2)
    pairs = np.einsum("...uv,...u,...uw->...vw", c, w, c)
    own = np.einsum("...u,...uv->...v", w, c)
    return pairs - own[..., :, None] * np.eye(c.shape[-1])


def unit_coincidences(counts: npt.ArrayLike) -> FloatArray:
    """One coincidence matrix per unit, shape (N, V, V), for the cluster bootstrap (§1.9)."""
    return coincidence_matrix(np.asarray(counts, dtype=np.float64)[:, None, :])


def coincidence_from_table(table: npt.ArrayLike) -> FloatArray:
    """The coincidence matrix of two raters' table: T + Tᵀ (each unit has m_u = 2); works on stacks."""
    t = np.asarray(table, dtype=np.float64)
    return t + np.swapaxes(t, -1, -2)


def difference_matrix(level: Level, marginals: npt.ArrayLike, values: npt.ArrayLike | None = None) -> FloatArray:
    """δ²_ck of §1.4; ordinal uses the marginals n_g, interval and ratio the numeric `values` of the categories."""
    n_c = np.asarray(marginals, dtype=np.float64)
    size = n_c.shape[-1]
    if level == "nominal":
        return 1.0 - np.eye(size)
    if level == "ordinal":
        middle = np.cumsum(n_c, axis=-1) - n_c / 2.0
        return (middle[..., None, :] - middle[..., :, None]) ** 2
    if values is None:
        raise ValueError(f"{level} differences need the numeric value of every category")
    x = np.asarray(values, dtype=np.float64)
    if x.shape != (size,):
        raise ValueError("one numeric value per category")
    if level == "interval":
        return (x[:, None] - x[None, :]) ** 2
    if level == "ratio":
        total = x[:, None] + x[None, :]
        ratio = np.zeros((size, size))
        np.divide(x[:, None] - x[None, :], total, out=ratio, where=total != 0)
        return ratio**2
    raise ValueError(f"unknown level {level!r}")


def krippendorff_alpha_stack(
    coincidences: npt.ArrayLike,
    *,
    level: Level = "nominal",
    values: npt.ArrayLike | None = None,
    delta: npt.ArrayLike | None = None,
) -> FloatArray:
    """α = 1 − (n − 1) Σ o_ck δ_ck / Σ n_c n_k δ_ck for a stack (..., V, V); NaN where D_e = 0 (§1.4)."""
    o = np.asarray(coincidences, dtype=np.float64)
    n_c = o.sum(axis=-1)
    n = n_c.sum(axis=-1)
    d = np.asarray(delta, dtype=np.float64) if delta is not None else difference_matrix(level, n_c, values)
    d = np.broadcast_to(d, o.shape)
    observed = np.einsum("...ck,...ck->...", o, d)
    expected = np.einsum("...c,...ck,...k->...", n_c, d, n_c)
    alpha = np.full(n.shape, np.nan)
    defined = expected > 0
    np.subtract(1.0, (n - 1.0) * observed / np.where(defined, expected, 1.0), out=alpha, where=defined)
    return alpha


def krippendorff_alpha(
    coincidences: npt.ArrayLike,
    *,
    n_items: int,
    level: Level = "nominal",
    values: npt.ArrayLike | None = None,
    delta: npt.ArrayLike | None = None,
) -> Result:
    """Krippendorff's α of one (pooled) coincidence matrix; `n_items` is the number of units behind it (§1.4).

    For the nominal level it also gives p_o = 1 − (n − 1)/n · Σ_{c≠k} o_ck/n and p_e = Σ_c (n_c/n)², the
    parameterisation irrCAC reports (TV3), so that α = (p_o − p_e)/(1 − p_e).
    """
    o = np.asarray(coincidences, dtype=np.float64)
    n = float(o.sum())
    pairable = round(n)
    if n == 0:
        return _undefined(NO_PAIRABLE, n_items, 0)
    alpha = float(krippendorff_alpha_stack(o, level=level, values=values, delta=delta))
    extra: dict[str, float | None] = {}
    if level == "nominal" and delta is None:
        n_c = o.sum(axis=1)
        extra = {"p_o": 1.0 - (n - 1.0) * (n - float(np.trace(o))) / n**2, "p_e": float(n_c @ n_c) / n**2}
    if np.isnan(alpha):
        return _undefined(NO_VARIANCE, n_items, pairable, **extra)
    return Result(value=alpha, reason=None, n_items=n_items, n_pairable=pairable, **extra)


def krippendorff_alpha_counts(
    counts: npt.ArrayLike,
    *,
    level: Level = "nominal",
    values: npt.ArrayLike | None = None,
    delta: npt.ArrayLike | None = None,
) -> Result:
    """Krippendorff's α from items×values counts; units with fewer than two values drop out (§1.4)."""
    c = np.asarray(counts, dtype=np.float64)
    n_items = int((c.sum(axis=1) >= 2).sum())
    return krippendorff_alpha(coincidence_matrix(c), n_items=n_items, level=level, values=values, delta=delta)


# Guard (§1.10)


def require_min_n(
    result: Result,
    *,
    min_items: int = MIN_ITEMS,
    category_totals: npt.ArrayLike | None = None,
    min_per_category: int = MIN_PER_CATEGORY,
) -> Result:
    """The §1.10 practical rule: the value stands only with ≥ `min_items` co-rated items.

    When `category_totals` (pairable values per category, e.g. coincidence marginals) are given, each also needs
    ≥ `min_per_category`. Otherwise value None, reason "not enough data"; an undefined result keeps its reason.
    """
    if result.value is None:
        return result
    short = result.n_items < min_items
    if category_totals is not None:
        short = short or bool(np.any(np.asarray(category_totals) < min_per_category))
    return replace(result, value=None, reason=NOT_ENOUGH_DATA) if short else result
