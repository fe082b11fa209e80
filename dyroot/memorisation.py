r"""Has the generator memorised its training events? Nearest-neighbour distances.

Pure module (numpy, scipy). A generator that copies its training events (exactly or
with a small jitter) produces events that sit closer to some training event than an
independent event from the same distribution would. The test compares, in
standardised features, the distance of every generated event to its nearest training
event with the same distance for held-out events (independent draws of the truth
that the generator never saw):

* the ratio of the medians, generated / held-out (1 for a sound generator; below 1
  for memorisation, above 1 for a generator broader than the truth), with a bootstrap
  uncertainty;
* the **close-pair test**: the fraction of each sample closer to the training set than
  the pooled ``level`` quantile of both samples' distances, compared with Fisher's
  exact test (one-sided: generated more often close). Memorised copies all land in
  that tail, so a few per cent of them are seen even when the bulk looks right;
* a one-sided Mann-Whitney U test of the whole distributions (informative);
* **exact duplicates**: generated rows equal, at float32 precision, to a training row
  (none for a continuous generator), compared with the same count for the held-out rows.

Verdict: memorisation is flagged when the close-pair test or the duplicate test has
a p-value below ``alpha`` (default 1e-3).

The distances are computed in the features given (standardise them, and transform
heavy-tailed ones, e.g. :math:`\log p_T^{\mu\mu}`, first: :func:`standardise` does
mean/std scaling with the training set's constants). Generated and held-out events
must pass the same selection as the training events.

Example:
    >>> from dyroot.toys import ToyDimuon, resampling_generator
    >>> toy, rng = ToyDimuon(), np.random.default_rng(4)
    >>> train, held = toy.sample(5000, rng), toy.sample(5000, rng)
    >>> memorisation_test(toy.sample(5000, rng), train, held).memorised
    False
    >>> memorisation_test(resampling_generator(train, 5000, rng), train, held).memorised
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ._jsonutil import to_jsonable

__all__ = ["standardise", "nearest_distances", "exact_duplicates", "MemorisationResult", "memorisation_test"]


def standardise(train: np.ndarray, *others: np.ndarray, log_columns: Sequence[int] = ()) -> list[np.ndarray]:
    r"""Scale every column to zero mean and unit variance with the training set's constants.

    Args:
        train: training events, shape ``(n, d)``.
        others: further arrays with the same columns (generated, held-out).
        log_columns: columns to take the logarithm of first (positive, heavy-tailed
            variables such as :math:`p_T^{\mu\mu}` in GeV); non-positive values are
            clipped to the smallest positive value of the training column.

    Returns:
        ``[train, *others]`` standardised (float64).

    Example:
        >>> t, o = standardise(np.array([[1.0], [3.0]]), np.array([[2.0]]))
        >>> t.ravel().tolist(), o.ravel().tolist()
        ([-1.0, 1.0], [0.0])
    """
    arrays = [np.array(a, dtype=np.float64, copy=True) for a in (train, *others)]
    arrays = [a[:, None] if a.ndim == 1 else a for a in arrays]
    for c in log_columns:
        pos = arrays[0][:, c][arrays[0][:, c] > 0]
        floor = float(pos.min()) if pos.size else 1e-12
        for a in arrays:
            a[:, c] = np.log(np.maximum(a[:, c], floor))
    mu, sd = arrays[0].mean(axis=0), arrays[0].std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return [(a - mu) / sd for a in arrays]


def nearest_distances(query: np.ndarray, reference: np.ndarray, *, workers: int = 1) -> np.ndarray:
    """The Euclidean distance of every query row to its nearest row of ``reference`` (cKDTree).

    Args:
        query: shape ``(n, d)``.
        reference: shape ``(m, d)``.
        workers: threads for the query (-1: all cores).

    Returns:
        ``n`` distances.
    """
    from scipy.spatial import cKDTree

    tree = cKDTree(np.asarray(reference, dtype=np.float64))
    dist, _ = tree.query(np.asarray(query, dtype=np.float64), k=1, workers=workers)
    return np.asarray(dist)


def exact_duplicates(query: np.ndarray, reference: np.ndarray) -> int:
    """How many rows of ``query`` equal some row of ``reference`` at float32 precision.

    Example:
        >>> exact_duplicates(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[3.0, 4.0], [5.0, 6.0]]))
        1
    """
    q = np.ascontiguousarray(np.asarray(query, dtype=np.float32))
    r = np.ascontiguousarray(np.asarray(reference, dtype=np.float32))
    q, r = (q[:, None] if q.ndim == 1 else q), (r[:, None] if r.ndim == 1 else r)
    q, r = q + np.float32(0.0), r + np.float32(0.0)  # -0.0 -> 0.0, so byte equality is value equality
    view = np.dtype((np.void, q.dtype.itemsize * q.shape[1]))
    return int(np.isin(q.view(view).ravel(), r.view(view).ravel()).sum())


@dataclass(frozen=True)
class MemorisationResult:
    """The nearest-neighbour memorisation test (see the module docstring).

    Attributes:
        n_train, n_generated, n_heldout: sample sizes.
        median_generated, median_heldout: median nearest-training distances.
        ratio, ratio_err: ``median_generated / median_heldout`` and its bootstrap error.
        level, threshold: the pooled quantile level and its distance.
        frac_generated_close, frac_heldout_close: fractions below the threshold.
        close_p_value: one-sided Fisher exact p-value (generated closer more often).
        mannwhitney_p_value: one-sided Mann-Whitney p-value (generated distances smaller).
        duplicates_generated, duplicates_heldout: exact float32 copies of a training row.
        duplicates_p_value: one-sided Fisher exact p-value of the duplicate counts.
        alpha: the significance level of the verdict.
        memorised: the verdict.
        hist_edges, hist_generated, hist_heldout: normalised histograms of
            log10(distance) for the report.
    """

    n_train: int
    n_generated: int
    n_heldout: int
    median_generated: float
    median_heldout: float
    ratio: float
    ratio_err: float
    level: float
    threshold: float
    frac_generated_close: float
    frac_heldout_close: float
    close_p_value: float
    mannwhitney_p_value: float
    duplicates_generated: int
    duplicates_heldout: int
    duplicates_p_value: float
    alpha: float
    memorised: bool
    hist_edges: np.ndarray = field(default_factory=lambda: np.zeros(0))
    hist_generated: np.ndarray = field(default_factory=lambda: np.zeros(0))
    hist_heldout: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def verdict(self) -> str:
        """``"memorised"`` or ``"no memorisation seen"``, as the report prints it."""
        return "memorised" if self.memorised else "no memorisation seen"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**to_jsonable(self), "verdict": self.verdict}


def memorisation_test(
    generated: np.ndarray,
    train: np.ndarray,
    heldout: np.ndarray,
    *,
    level: float = 0.01,
    alpha: float = 1e-3,
    n_bootstrap: int = 200,
    seed: int = 0,
    workers: int = 1,
    raw: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> MemorisationResult:
    r"""Compare nearest-training distances of generated and of held-out events.

    Args:
        generated: generated events, ``(n, d)``, in the same (standardised) features as
            the others; pass the raw values if they are on comparable scales.
        train: the training events, ``(m, d)``.
        heldout: independent events of the truth, never trained on, ``(k, d)``.
        level: the pooled distance quantile that defines a "close" event (0.01: the
            closest 1 %).
        alpha: the significance level of the verdict.
        n_bootstrap: bootstrap replicas for the ratio's uncertainty.
        seed: seed of the bootstrap.
        workers: threads of the KD-tree queries.
        raw: ``(generated, train, heldout)`` in their original units (same rows), in
            which exact duplicates are counted (a standardised copy of a float32 value
            is no longer bit-equal to the standardised original); default the inputs.

    Returns:
        A :class:`MemorisationResult`.

    Raises:
        ValueError: if a sample has fewer than 20 events or the columns differ.
    """
    from scipy import stats

    g, t, h = (np.asarray(a, dtype=np.float64) for a in (generated, train, heldout))
    g, t, h = ((a[:, None] if a.ndim == 1 else a) for a in (g, t, h))
    if not g.shape[1] == t.shape[1] == h.shape[1]:
        msg = f"column counts differ (generated {g.shape[1]}, training {t.shape[1]}, held-out {h.shape[1]}); pass the same features"
        raise ValueError(msg)
    if min(len(g), len(t), len(h)) < 20:
        msg = "the memorisation test needs at least 20 events in each of the generated, training and held-out samples"
        raise ValueError(msg)
    dg, dh = nearest_distances(g, t, workers=workers), nearest_distances(h, t, workers=workers)
    mg, mh = float(np.median(dg)), float(np.median(dh))
    rng = np.random.default_rng(seed)
    boot = [np.median(rng.choice(dg, dg.size)) / max(np.median(rng.choice(dh, dh.size)), 1e-300)
            for _ in range(n_bootstrap)]
    ratio = mg / mh if mh > 0 else np.inf
    thr = float(np.quantile(np.concatenate([dg, dh]), level))
    cg, ch = int(np.sum(dg <= thr)), int(np.sum(dh <= thr))
    close_p = float(stats.fisher_exact([[cg, dg.size - cg], [ch, dh.size - ch]], alternative="greater")[1])
    mw_p = float(stats.mannwhitneyu(dg, dh, alternative="less").pvalue)
    rg, rt, rh = (g, t, h) if raw is None else raw
    dup_g, dup_h = exact_duplicates(rg, rt), exact_duplicates(rh, rt)
    dup_p = float(stats.fisher_exact([[dup_g, g.shape[0] - dup_g], [dup_h, h.shape[0] - dup_h]],
                                     alternative="greater")[1])
    pos = np.concatenate([dg[dg > 0], dh[dh > 0]])
    lo = np.log10(pos.min()) if pos.size else -6.0
    hi = np.log10(pos.max()) if pos.size else 1.0
    edges = np.linspace(min(lo, -6.0) if (dg == 0).any() else lo, hi + 1e-9, 61)
    floor = 10.0 ** edges[0]
    hg = np.histogram(np.log10(np.maximum(dg, floor)), edges)[0] / dg.size
    hh = np.histogram(np.log10(np.maximum(dh, floor)), edges)[0] / dh.size
    return MemorisationResult(
        n_train=len(t), n_generated=len(g), n_heldout=len(h), median_generated=mg, median_heldout=mh,
        ratio=ratio, ratio_err=float(np.std(boot, ddof=1)), level=level, threshold=thr,
        frac_generated_close=cg / dg.size, frac_heldout_close=ch / dh.size, close_p_value=close_p,
        mannwhitney_p_value=mw_p, duplicates_generated=dup_g, duplicates_heldout=dup_h, duplicates_p_value=dup_p,
        alpha=alpha, memorised=bool(close_p < alpha or dup_p < alpha),
        hist_edges=edges, hist_generated=hg, hist_heldout=hh,
    )
