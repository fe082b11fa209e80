r"""Are parallel shards independent? Checks of the random streams and of shard templates.

Pure module (numpy, scipy). A template built from many shards is worth its size only
if every shard draws fresh noise: two shards that share noise vectors, or whose
streams are correlated, add events but not information. Three checks:

* :func:`shared_rows`: how many noise vectors of one shard occur (bit for bit) in
  another; shards with different keys, or disjoint event ranges of one key, must
  share none (and a shard must not repeat a vector within itself).
* :func:`shard_correlation`: the shard-to-shard correlation of template bins. With
  :math:`h_{ib}` the count of shard :math:`i` in bin :math:`b`, the homogeneity
  statistic :math:`D = \sum_{i,b} (h_{ib} - E_{ib})^2/E_{ib}`,
  :math:`E_{ib} = R_i C_b / T`, is :math:`\chi^2` with :math:`(M-1)(B-1)` degrees of
  freedom for independent shards. Shards with a common pairwise correlation
  :math:`\rho` fluctuate together, so their spread around the mean shrinks by
  :math:`1-\rho`: :math:`\hat\rho = 1 - D/\mathrm{ndf}` with uncertainty
  :math:`\sqrt{2/\mathrm{ndf}}` (the test is two-sided: anti-correlation inflates
  :math:`D`). The matrix of pairwise correlations of the standardised residuals
  :math:`(h_{ib} - E_{ib})/\sqrt{E_{ib}}` is returned for the report: it is
  :math:`-1/(M-1)` off the diagonal for independent equal shards (each entry
  :math:`\pm 1/\sqrt{B}`) and shows which pairs are related (a common mode of all
  shards cancels in the residuals; :math:`D` sees that one).
* :func:`bitwise_equal`: the same key must reproduce the same output bit for bit.

Example:
    >>> rng = np.random.default_rng(0)
    >>> shards = rng.poisson(200.0, size=(8, 50))
    >>> res = shard_correlation(shards)
    >>> bool(abs(res.rho) < 4 * res.rho_err and res.p_value > 1e-3)
    True
    >>> res = shard_correlation(np.tile(shards[0], (8, 1)))  # every shard the same noise
    >>> bool(res.rho > 0.99 and res.p_value < 1e-6)
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ._jsonutil import to_jsonable

__all__ = [
    "shared_rows",
    "duplicate_rows",
    "ShardCorrelation",
    "shard_correlation",
    "merge_sparse_bins",
    "BitwiseComparison",
    "bitwise_equal",
    "paired_correlation",
    "StreamChecks",
    "stream_checks",
]


def _row_view(a: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(a)
    x = x[:, None] if x.ndim == 1 else x.reshape(len(x), -1)
    if np.issubdtype(x.dtype, np.floating):
        x = x + x.dtype.type(0.0)  # -0.0 -> 0.0, so byte equality is value equality
    return np.ascontiguousarray(x).view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))).ravel()


def shared_rows(a: np.ndarray, b: np.ndarray) -> int:
    """How many rows of ``a`` (e.g. noise vectors ``[n, dim]``) occur bit for bit in ``b``.

    Example:
        >>> shared_rows(np.array([[1, 2], [3, 4]]), np.array([[3, 4], [5, 6]]))
        1
    """
    return int(np.isin(_row_view(a), _row_view(b)).sum())


def duplicate_rows(a: np.ndarray) -> int:
    """How many rows of ``a`` repeat an earlier row (0 for a sound stream).

    Example:
        >>> duplicate_rows(np.array([[1, 2], [3, 4], [1, 2]]))
        1
    """
    v = _row_view(a)
    return int(v.size - np.unique(v).size)


def merge_sparse_bins(counts: np.ndarray, min_expected: float = 10.0) -> np.ndarray:
    """Merge adjacent bins (columns) until every merged bin expects at least
    ``min_expected`` counts per shard; a last small group joins its neighbour.

    Args:
        counts: ``[M, B]`` counts per shard and bin.
        min_expected: minimum mean count per shard in a merged bin.

    Returns:
        ``[M, B']`` with ``B' <= B``.

    Example:
        >>> merge_sparse_bins(np.array([[1, 1, 20, 1], [1, 1, 20, 1]]), 5).tolist()
        [[23.0], [23.0]]
    """
    c = np.asarray(counts, dtype=np.float64)
    mean = c.mean(axis=0)
    groups, acc, start = [], 0.0, 0
    for b in range(c.shape[1]):
        acc += mean[b]
        if acc >= min_expected:
            groups.append((start, b + 1))
            start, acc = b + 1, 0.0
    if start < c.shape[1]:
        if groups:
            groups[-1] = (groups[-1][0], c.shape[1])
        else:
            groups.append((0, c.shape[1]))
    return np.stack([c[:, lo:hi].sum(axis=1) for lo, hi in groups], axis=1)


@dataclass(frozen=True)
class ShardCorrelation:
    r"""The shard-to-shard correlation of template bins (see the module docstring).

    Attributes:
        n_shards, n_bins: :math:`M` and the number of (merged) bins used.
        chi2, ndf, p_value: the homogeneity statistic, its degrees of freedom and
            the two-sided p-value.
        rho, rho_err: the common pairwise correlation :math:`1 - D/\mathrm{ndf}` and
            its uncertainty.
        matrix: ``[M, M]`` correlations of the standardised residuals.
        expected_offdiag, offdiag_err: the off-diagonal expectation for independent
            shards and the spread of one entry.
        offdiag_mean, offdiag_mean_err: the mean off-diagonal entry and its error.
    """

    n_shards: int
    n_bins: int
    chi2: float
    ndf: int
    p_value: float
    rho: float
    rho_err: float
    matrix: np.ndarray
    expected_offdiag: float
    offdiag_err: float
    offdiag_mean: float
    offdiag_mean_err: float

    def consistent_with_zero(self, alpha: float = 1e-3) -> bool:
        """True when the two-sided p-value is at least ``alpha``."""
        return self.p_value >= alpha

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return to_jsonable(self)


def shard_correlation(shard_counts: np.ndarray | Sequence[np.ndarray], *, min_expected: float = 10.0) -> ShardCorrelation:
    r"""Test that the templates of ``M`` shards fluctuate independently.

    Args:
        shard_counts: ``[M, B]`` unit-weight counts, one row per shard (e.g. the
            ``mll_inclusive`` flow bins of each shard); the shards may differ in size.
        min_expected: adjacent bins are merged until each expects at least this many
            counts per shard, so the :math:`\chi^2` approximation holds.

    Returns:
        A :class:`ShardCorrelation`.

    Raises:
        ValueError: with fewer than 2 shards, or fewer than 2 bins after merging.
    """
    from scipy import stats

    h = merge_sparse_bins(np.asarray(shard_counts, dtype=np.float64), min_expected)
    m, b = h.shape
    if m < 2 or b < 2:
        msg = f"need at least 2 shards and 2 populated bins to test shard correlations, got {m} shards and {b} bins"
        raise ValueError(msg)
    rows, cols, total = h.sum(axis=1), h.sum(axis=0), h.sum()
    exp = np.outer(rows, cols) / total
    z = (h - exp) / np.sqrt(exp)
    chi2 = float(np.sum(z * z))
    ndf = (m - 1) * (b - 1)
    p = float(min(1.0, 2.0 * min(stats.chi2.cdf(chi2, ndf), stats.chi2.sf(chi2, ndf))))
    norm = np.sqrt(np.sum(z * z, axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):  # identical shards: 0/0, left as NaN
        matrix = (z @ z.T) / np.outer(norm, norm)
    off = np.nan_to_num(matrix[~np.eye(m, dtype=bool)], nan=1.0)
    offdiag_err = 1.0 / np.sqrt(b)
    return ShardCorrelation(
        n_shards=m, n_bins=b, chi2=chi2, ndf=ndf, p_value=p, rho=1.0 - chi2 / ndf, rho_err=float(np.sqrt(2.0 / ndf)),
        matrix=matrix, expected_offdiag=-1.0 / (m - 1), offdiag_err=float(offdiag_err),
        offdiag_mean=float(off.mean()), offdiag_mean_err=float(offdiag_err * np.sqrt(2.0 / (m * (m - 1)))),
    )


@dataclass(frozen=True)
class BitwiseComparison:
    """Whether two outputs are identical bit for bit.

    Attributes:
        identical: every array equal in shape, dtype and bytes.
        n_values: how many values were compared.
        n_different: how many differ.
        max_abs_diff: the largest absolute difference (0 when identical).
        mismatched: names of the arrays that differ.
    """

    identical: bool
    n_values: int
    n_different: int
    max_abs_diff: float
    mismatched: list[str]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return to_jsonable(self)


def bitwise_equal(a: dict[str, np.ndarray] | np.ndarray, b: dict[str, np.ndarray] | np.ndarray) -> BitwiseComparison:
    """Compare two outputs (arrays, or dicts of arrays such as template counts) bit for bit.

    Example:
        >>> bitwise_equal(np.array([1.0, 2.0]), np.array([1.0, 2.0])).identical
        True
        >>> bitwise_equal({"h": np.array([1.0])}, {"h": np.array([1.0 + 1e-15])}).mismatched
        ['h']
    """
    da = a if isinstance(a, dict) else {"output": a}
    db = b if isinstance(b, dict) else {"output": b}
    mismatched, n_values, n_diff, max_diff = [], 0, 0, 0.0
    for name in sorted(set(da) | set(db)):
        if name not in da or name not in db:
            mismatched.append(name)
            continue
        x, y = np.asarray(da[name]), np.asarray(db[name])
        n_values += x.size
        if x.shape != y.shape or x.dtype != y.dtype:
            mismatched.append(name)
            n_diff += max(x.size, y.size)
            continue
        neq = _row_view(x.reshape(x.size, 1)) != _row_view(y.reshape(y.size, 1))
        if neq.any():
            mismatched.append(name)
            n_diff += int(neq.sum())
            if np.issubdtype(x.dtype, np.number):
                with np.errstate(invalid="ignore"):
                    d = np.abs(x.astype(np.float64) - y.astype(np.float64))
                max_diff = max(max_diff, float(np.nanmax(d)) if np.isfinite(d).any() else np.inf)
    return BitwiseComparison(identical=not mismatched, n_values=n_values, n_different=n_diff,
                             max_abs_diff=max_diff, mismatched=mismatched)


def paired_correlation(shards: Sequence[np.ndarray]) -> tuple[np.ndarray, float, float]:
    r"""Correlation of the noise of event :math:`k` of one shard with event :math:`k` of another.

    For every pair of shards :math:`(i, j)`, :math:`r_{ij}` is the mean of
    :math:`z_i z_j` over events and dimensions (normals), which is
    :math:`N(0, 1/(n\,d))` for independent streams. Bad seeding (seeds ``s`` and
    ``s + 1`` of a weak generator, or one stream mixed into another) shows up here
    long before it shows in a histogram.

    Args:
        shards: ``M`` arrays ``[n, d]`` of N(0, 1) noise of equal shape.

    Returns:
        ``(r, z_max, p_value)``: the ``[M, M]`` matrix (1 on the diagonal), the
        largest :math:`|r_{ij}|\sqrt{n d}` and its two-sided p-value with a Bonferroni
        correction for the :math:`M(M-1)/2` pairs.
    """
    from scipy import stats

    z = np.stack([np.asarray(s, dtype=np.float64).reshape(len(s), -1) for s in shards])  # (M, n, d)
    m, n, d = z.shape
    r = np.einsum("ind,jnd->ij", z, z) / (n * d)
    np.fill_diagonal(r, 1.0)
    if m < 2:
        return r, 0.0, 1.0
    zmax = float(np.max(np.abs(r[np.triu_indices(m, 1)])) * np.sqrt(n * d))
    p = float(min(1.0, 2.0 * stats.norm.sf(zmax) * m * (m - 1) / 2))
    return r, zmax, p


@dataclass(frozen=True)
class StreamChecks:
    r"""The stream-level checks of :func:`stream_checks`.

    Attributes:
        seed, other_seed: the two keys compared.
        n_shards, shard_size: the shards of ``seed`` (consecutive global event ranges).
        shared_between_shards: noise vectors of one shard found in another (all pairs).
        shared_between_keys: noise vectors of ``seed`` found in the same range of ``other_seed``.
        duplicates_within: repeated vectors inside each shard, summed.
        correlation: :func:`shard_correlation` of per-shard histograms of the
            uniform :math:`\Phi(z_0)` of the first normal of each event.
        paired_zmax, paired_p_value: :func:`paired_correlation` of the shards' noise.
        reproducible: the first shard drawn twice, compared bit for bit.
        alpha: the significance level of :attr:`passed`.
    """

    seed: int
    other_seed: int
    n_shards: int
    shard_size: int
    shared_between_shards: int
    shared_between_keys: int
    duplicates_within: int
    correlation: ShardCorrelation
    paired_zmax: float
    paired_p_value: float
    reproducible: BitwiseComparison
    alpha: float

    @property
    def passed(self) -> bool:
        """No shared or repeated vector, correlation consistent with zero, bit-identical rerun."""
        return (self.shared_between_shards == 0 and self.shared_between_keys == 0 and self.duplicates_within == 0
                and self.correlation.consistent_with_zero(self.alpha) and self.paired_p_value >= self.alpha
                and self.reproducible.identical)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**to_jsonable(self), "passed": self.passed}


def _default_noise(seed: int, first_event: int, n: int) -> np.ndarray:
    from .random import noise

    return np.asarray(noise(seed, first_event, n).normals)


def stream_checks(
    seed: int = 1,
    other_seed: int = 2,
    *,
    n_shards: int = 8,
    shard_size: int = 20_000,
    n_bins: int = 50,
    alpha: float = 1e-3,
    noise_fn: Callable[[int, int, int], np.ndarray] | None = None,
) -> StreamChecks:
    r"""Check a noise stream: disjoint shards, distinct keys, no correlation, reproducible.

    Args:
        seed: the key of the shards.
        other_seed: a second key, whose vectors must all differ from ``seed``'s.
        n_shards: :math:`M`, shards of ``shard_size`` consecutive global events.
        shard_size: events per shard.
        n_bins: bins of the per-shard histogram of :math:`\Phi(z_0)`.
        alpha: significance level for the correlation test.
        noise_fn: ``(seed, first_event, n) -> [n, dim]`` noise vectors; default
            :func:`dyroot.random.noise` (its float32 normals). Pass another to test it.

    Returns:
        A :class:`StreamChecks`; :attr:`StreamChecks.passed` is the verdict.
    """
    from scipy.special import ndtr

    fn = noise_fn or _default_noise
    shards = [np.asarray(fn(seed, k * shard_size, shard_size)) for k in range(n_shards)]
    between = sum(shared_rows(shards[i], shards[j]) for i in range(n_shards) for j in range(i + 1, n_shards))
    keys = shared_rows(shards[0], np.asarray(fn(other_seed, 0, shard_size)))
    within = sum(duplicate_rows(s) for s in shards)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    hists = np.stack([np.histogram(ndtr(s.reshape(len(s), -1)[:, 0].astype(np.float64)), edges)[0] for s in shards])
    again = np.asarray(fn(seed, 0, shard_size))
    _, zmax, p_pair = paired_correlation(shards)
    return StreamChecks(seed=seed, other_seed=other_seed, n_shards=n_shards, shard_size=shard_size,
                        shared_between_shards=between, shared_between_keys=keys, duplicates_within=within,
                        correlation=shard_correlation(hists), paired_zmax=zmax, paired_p_value=p_pair,
                        reproducible=bitwise_equal(shards[0], again), alpha=alpha)
