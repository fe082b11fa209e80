r"""Two-sample tests: are generated events distributed like the held-out reference?

Pure module (numpy, scipy; torch only inside :func:`classifier_two_sample`). Three
tests, from the physicist's classic to the most sensitive:

* :func:`binned_chi2`: the shapes of two (weighted) histograms, bin by bin, with the
  per-bin pulls and ratio that the report plots below each comparison.
* :func:`ks_two_sample`: the Kolmogorov-Smirnov distance of the two (weighted)
  empirical CDFs, with the p-value of the Kolmogorov distribution at the Kish
  effective sizes.
* :func:`classifier_two_sample`: a small neural network is trained to tell the
  generated from the reference events on one half of each; its ROC AUC on the other
  half is 0.5 when the samples are indistinguishable (arXiv:1610.06545, the
  "classifier two-sample test"). The AUC's uncertainty is DeLong's (DeLong, DeLong &
  Clarke-Pearson, Biometrics 44 (1988) 837, in the O(n log n) form of Sun & Xu, IEEE
  SPL 21 (2014) 1389) for unit weights, a bootstrap of the test half otherwise.
  The test is one-sided: z = (AUC - 0.5)/σ, p = Φ(-z).

Example:
    >>> rng = np.random.default_rng(2)
    >>> a, b = rng.normal(size=20_000), rng.normal(size=20_000)
    >>> edges = np.linspace(-4, 4, 41)
    >>> res = binned_chi2(np.histogram(a, edges)[0], np.histogram(b, edges)[0])
    >>> bool(0.5 < res.chi2 / res.ndf < 1.5 and res.p_value > 0.01)
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ._jsonutil import to_jsonable

__all__ = [
    "Chi2Result",
    "binned_chi2",
    "KSResult",
    "ks_two_sample",
    "ClassifierResult",
    "classifier_two_sample",
    "roc_auc",
    "delong_auc_variance",
    "kish_size",
]


def kish_size(weights: np.ndarray | None, n: int | None = None) -> float:
    r"""Kish's effective sample size :math:`(\sum w)^2 / \sum w^2` (``n`` when unweighted).

    Example:
        >>> kish_size(np.array([1.0, 1.0, 2.0]))
        2.6666666666666665
    """
    if weights is None:
        return float(n if n is not None else 0)
    w = np.asarray(weights, dtype=np.float64)
    s2 = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / s2 if s2 > 0 else 0.0


# ----------------------------------------------------------------------------------------------
# Binned chi2


@dataclass(frozen=True)
class Chi2Result:
    r"""A binned shape comparison of sample 1 (e.g. generated) with sample 2 (reference).

    Attributes:
        chi2, ndf, p_value: the statistic, its degrees of freedom (bins used - 1) and
            the :math:`\chi^2` upper-tail probability.
        f1, f2: normalised contents per bin (each sums to 1).
        err1, err2: their uncertainties (pooled-expected, see :func:`binned_chi2`).
        pull: :math:`(f_1 - f_2)/\sqrt{\sigma_1^2 + \sigma_2^2}` per bin (0 where unused).
        ratio, ratio_err: :math:`f_1/f_2` and the uncertainty of that ratio from both samples.
    """

    chi2: float
    ndf: int
    p_value: float
    f1: np.ndarray
    f2: np.ndarray
    err1: np.ndarray
    err2: np.ndarray
    pull: np.ndarray
    ratio: np.ndarray
    ratio_err: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return to_jsonable(self)


def binned_chi2(
    counts1: np.ndarray,
    counts2: np.ndarray,
    sumw2_1: np.ndarray | None = None,
    sumw2_2: np.ndarray | None = None,
) -> Chi2Result:
    r"""Compare the shapes of two histograms with the same binning.

    Each histogram is normalised to unit area; the per-bin variance of each
    normalised content is taken from the pooled shape (not the observed contents,
    which would bias the statistic for small counts):
    :math:`\sigma_{i,b}^2 = \hat p_b\,\bar w_{i,b}/S_i`, with :math:`\hat p_b` the
    pooled fraction weighted by the Kish sizes, :math:`\bar w_{i,b} =
    \mathrm{sumw2}_{i,b}/\mathrm{sumw}_{i,b}` the bin's mean weight (1 for counts) and
    :math:`S_i` the total sum of weights. Then
    :math:`\chi^2 = \sum_b (f_{1,b} - f_{2,b})^2 / (\sigma_{1,b}^2 + \sigma_{2,b}^2)`
    over bins with a non-zero pooled fraction, with bins − 1 degrees of freedom.

    Args:
        counts1: sum of weights per bin of sample 1 (generated).
        counts2: sum of weights per bin of sample 2 (reference).
        sumw2_1: sum of squared weights per bin of sample 1 (default: ``counts1``, i.e.
            unit weights).
        sumw2_2: the same for sample 2.

    Returns:
        A :class:`Chi2Result`.

    Raises:
        ValueError: if the shapes differ or a histogram is empty.
    """
    from scipy import stats

    c1, c2 = np.asarray(counts1, dtype=np.float64), np.asarray(counts2, dtype=np.float64)
    if c1.shape != c2.shape:
        msg = f"histograms with different binnings ({c1.shape} vs {c2.shape}); histogram both samples with the same edges"
        raise ValueError(msg)
    s1, s2 = float(c1.sum()), float(c2.sum())
    if s1 <= 0 or s2 <= 0:
        msg = "an empty histogram cannot be compared; check the selection and the binning range"
        raise ValueError(msg)
    w1 = c1 if sumw2_1 is None else np.asarray(sumw2_1, dtype=np.float64)
    w2 = c2 if sumw2_2 is None else np.asarray(sumw2_2, dtype=np.float64)
    n1, n2 = s1 * s1 / max(float(w1.sum()), 1e-300), s2 * s2 / max(float(w2.sum()), 1e-300)
    f1, f2 = c1 / s1, c2 / s2
    pooled = (n1 * f1 + n2 * f2) / (n1 + n2)
    mean_w1 = np.where(c1 > 0, w1 / np.where(c1 > 0, c1, 1.0), float(w1.sum()) / s1)
    mean_w2 = np.where(c2 > 0, w2 / np.where(c2 > 0, c2, 1.0), float(w2.sum()) / s2)
    v1, v2 = pooled * mean_w1 / s1, pooled * mean_w2 / s2
    use = (pooled > 0) & (v1 + v2 > 0)
    pull = np.zeros_like(f1)
    pull[use] = (f1[use] - f2[use]) / np.sqrt(v1[use] + v2[use])
    chi2 = float(np.sum(pull[use] ** 2))
    ndf = int(use.sum()) - 1
    p = float(stats.chi2.sf(chi2, ndf)) if ndf > 0 else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(f2 > 0, f1 / f2, np.nan)
        ratio_err = np.where(f2 > 0, np.sqrt(v1 + ratio**2 * v2) / f2, np.nan)
    return Chi2Result(chi2=chi2, ndf=ndf, p_value=p, f1=f1, f2=f2, err1=np.sqrt(v1), err2=np.sqrt(v2),
                      pull=pull, ratio=ratio, ratio_err=ratio_err)


# ----------------------------------------------------------------------------------------------
# Kolmogorov-Smirnov


@dataclass(frozen=True)
class KSResult:
    """A two-sample Kolmogorov-Smirnov test.

    Attributes:
        statistic: :math:`D = \\max|F_1 - F_2|`.
        p_value: from the Kolmogorov distribution at :math:`n = n_1 n_2/(n_1+n_2)`.
        n1, n2: the (Kish effective) sizes.
    """

    statistic: float
    p_value: float
    n1: float
    n2: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return to_jsonable(self)


def _ecdf_at(x: np.ndarray, w: np.ndarray, at: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    xs, cw = x[order], np.cumsum(w[order])
    idx = np.searchsorted(xs, at, side="right")
    return np.where(idx > 0, cw[np.maximum(idx - 1, 0)], 0.0) / cw[-1]


def ks_two_sample(
    x1: np.ndarray, x2: np.ndarray, w1: np.ndarray | None = None, w2: np.ndarray | None = None
) -> KSResult:
    r"""Two-sample Kolmogorov-Smirnov test with optional event weights.

    With weights the empirical CDFs are weighted and the sizes are Kish's effective
    sizes; the p-value is then approximate (exact for unit weights up to the
    discreteness of :math:`n`).

    Args:
        x1: sample 1 (generated), 1-D.
        x2: sample 2 (reference), 1-D.
        w1: weights of sample 1 (default unit).
        w2: weights of sample 2 (default unit).

    Returns:
        A :class:`KSResult`.

    Raises:
        ValueError: if a sample is empty or its total weight is not positive.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> ks_two_sample(rng.normal(size=5000), rng.normal(0.1, 1, size=5000)).p_value < 1e-3
        True
    """
    from scipy import stats

    a, b = np.asarray(x1, dtype=np.float64).ravel(), np.asarray(x2, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        msg = "a Kolmogorov-Smirnov test needs two non-empty samples; check the selection"
        raise ValueError(msg)
    wa = np.ones_like(a) if w1 is None else np.asarray(w1, dtype=np.float64).ravel()
    wb = np.ones_like(b) if w2 is None else np.asarray(w2, dtype=np.float64).ravel()
    if wa.sum() <= 0 or wb.sum() <= 0:
        msg = "the total weight of a sample is not positive; the KS test needs positive totals"
        raise ValueError(msg)
    at = np.concatenate([a, b])
    d = float(np.max(np.abs(_ecdf_at(a, wa, at) - _ecdf_at(b, wb, at))))
    n1 = kish_size(None if w1 is None else wa, a.size)
    n2 = kish_size(None if w2 is None else wb, b.size)
    ne = n1 * n2 / (n1 + n2)
    p = float(stats.kstwo.sf(d, max(int(round(ne)), 1))) if ne < 1e4 else float(stats.kstwobign.sf(d * np.sqrt(ne)))
    return KSResult(statistic=d, p_value=p, n1=n1, n2=n2)


# ----------------------------------------------------------------------------------------------
# AUC and the classifier test


def roc_auc(scores_pos: np.ndarray, scores_neg: np.ndarray,
            w_pos: np.ndarray | None = None, w_neg: np.ndarray | None = None) -> float:
    """The ROC AUC: the (weighted) probability that a positive scores above a negative,
    ties counting one half.

    Example:
        >>> roc_auc(np.array([0.9, 0.8, 0.3]), np.array([0.1, 0.4]))
        0.8333333333333334
    """
    sp, sn = np.asarray(scores_pos, dtype=np.float64), np.asarray(scores_neg, dtype=np.float64)
    wp = np.ones_like(sp) if w_pos is None else np.asarray(w_pos, dtype=np.float64)
    wn = np.ones_like(sn) if w_neg is None else np.asarray(w_neg, dtype=np.float64)
    order = np.argsort(sn, kind="stable")
    sn, cwn = sn[order], np.concatenate([[0.0], np.cumsum(wn[order])])
    below = cwn[np.searchsorted(sn, sp, side="left")]
    tied = cwn[np.searchsorted(sn, sp, side="right")] - below
    return float(np.sum(wp * (below + 0.5 * tied)) / (wp.sum() * cwn[-1]))


def delong_auc_variance(scores_pos: np.ndarray, scores_neg: np.ndarray) -> tuple[float, float]:
    """The AUC and DeLong's estimate of its variance (unit weights), in O(n log n).

    Returns:
        ``(auc, variance)``.
    """
    from scipy.stats import rankdata

    sp, sn = np.asarray(scores_pos, dtype=np.float64), np.asarray(scores_neg, dtype=np.float64)
    m, n = sp.size, sn.size
    allr = rankdata(np.concatenate([sp, sn]))
    rp, rn = rankdata(sp), rankdata(sn)
    v10 = (allr[:m] - rp) / n  # for each positive: fraction of negatives below it
    v01 = 1.0 - (allr[m:] - rn) / m  # for each negative: fraction of positives above it
    auc = float(v10.mean())
    var = float(v10.var(ddof=1) / m + v01.var(ddof=1) / n)
    return auc, var


@dataclass(frozen=True)
class ClassifierResult:
    r"""A classifier two-sample test (generated = label 1, reference = label 0).

    Attributes:
        auc, auc_err: the ROC AUC on the test half and its uncertainty.
        z, p_value: :math:`(\mathrm{AUC} - 0.5)/\sigma` and the one-sided p-value.
        method: ``"delong"`` or ``"bootstrap"`` (weighted reference).
        n_train, n_test: events (both classes) used to train and to test.
        features: the feature names.
        loss_history: the training loss per epoch.
        roc_fpr, roc_tpr: the ROC curve (at most 200 points) for the report.
    """

    auc: float
    auc_err: float
    z: float
    p_value: float
    method: str
    n_train: int
    n_test: int
    features: list[str] = field(default_factory=list)
    loss_history: list[float] = field(default_factory=list)
    roc_fpr: np.ndarray = field(default_factory=lambda: np.zeros(0))
    roc_tpr: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return to_jsonable(self)


def _roc_curve(sp: np.ndarray, sn: np.ndarray, wn: np.ndarray, wp: np.ndarray, npts: int = 200) -> tuple[np.ndarray, np.ndarray]:
    thr = np.quantile(np.concatenate([sp, sn]), np.linspace(0.0, 1.0, npts))[::-1]
    tpr = np.array([wp[sp > t].sum() for t in thr]) / wp.sum()
    fpr = np.array([wn[sn > t].sum() for t in thr]) / wn.sum()
    return np.concatenate([[0.0], fpr, [1.0]]), np.concatenate([[0.0], tpr, [1.0]])


def classifier_two_sample(
    generated: np.ndarray,
    reference: np.ndarray,
    *,
    reference_weights: np.ndarray | None = None,
    features: Sequence[str] = (),
    test_fraction: float = 0.5,
    hidden: Sequence[int] = (64, 64),
    epochs: int = 20,
    batch_size: int = 1024,
    learning_rate: float = 2e-3,
    max_events: int = 200_000,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> ClassifierResult:
    r"""Train a small MLP to separate generated from reference events; report its test AUC.

    Each sample is subsampled to at most ``max_events`` events and split, at random,
    into a training and a test part; the features are standardised with the training
    part's mean and standard deviation (transform heavy-tailed variables, e.g.
    :math:`\log p_T^{\mu\mu}`, before calling). The network (``hidden`` SiLU layers)
    is trained with Adam on the binary cross-entropy, each class weighted to the same
    total, the reference by its event weights, with a cosine learning-rate decay over
    ``epochs``. On the test part, a classifier that learned nothing has AUC = 0.5.

    Args:
        generated: generated events, shape ``(n, d)``.
        reference: held-out reference events, shape ``(m, d)``.
        reference_weights: event weights of the reference (default unit).
        features: names of the ``d`` columns, for the report.
        test_fraction: the fraction of each sample kept for the test.
        hidden: widths of the hidden layers.
        epochs: passes over the training part.
        batch_size: events per gradient step.
        learning_rate: Adam's initial learning rate.
        max_events: at most this many events of each sample are used.
        n_bootstrap: bootstrap replicas for the AUC uncertainty with weights.
        seed: the seed of the split, the initialisation and the batches.

    Returns:
        A :class:`ClassifierResult`.

    Raises:
        ValueError: if the shapes disagree or a sample is too small (< 50 events).
    """
    from ._optional import import_optional

    torch = import_optional("torch")
    g = np.asarray(generated, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    g, r = (g[:, None] if g.ndim == 1 else g), (r[:, None] if r.ndim == 1 else r)
    if g.shape[1] != r.shape[1]:
        msg = f"generated events have {g.shape[1]} features but the reference has {r.shape[1]}; pass the same columns"
        raise ValueError(msg)
    if min(len(g), len(r)) < 50:
        msg = f"too few events for a classifier test ({len(g)} generated, {len(r)} reference); use at least 50 each"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    wr = np.ones(len(r)) if reference_weights is None else np.asarray(reference_weights, dtype=np.float64)
    gi = rng.permutation(len(g))[:max_events]
    ri = rng.permutation(len(r))[:max_events]
    g, r, wr = g[gi], r[ri], wr[ri]
    ng_test, nr_test = int(len(g) * test_fraction), int(len(r) * test_fraction)
    x_tr = np.concatenate([g[ng_test:], r[nr_test:]])
    y_tr = np.concatenate([np.ones(len(g) - ng_test), np.zeros(len(r) - nr_test)])
    w_tr = np.concatenate([np.full(len(g) - ng_test, 1.0 / (len(g) - ng_test)), wr[nr_test:] / wr[nr_test:].sum()])
    w_tr = w_tr * len(w_tr) / w_tr.sum()
    mu, sd = x_tr.mean(axis=0), x_tr.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small MLP: threads cost more in synchronisation than they gain
    try:
        sp, sn, history = _train_and_score(torch, g, r, x_tr, y_tr, w_tr, mu, sd, ng_test, nr_test, hidden=hidden,
                                           epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed)
    finally:
        torch.set_num_threads(threads)
    return _auc_result(sp, sn, wr[:nr_test], rng, n_bootstrap, features, len(x_tr), ng_test + nr_test, history)


def _train_and_score(torch: Any, g: np.ndarray, r: np.ndarray, x_tr: np.ndarray, y_tr: np.ndarray, w_tr: np.ndarray,
                     mu: np.ndarray, sd: np.ndarray, ng_test: int, nr_test: int, *, hidden: Sequence[int], epochs: int,
                     batch_size: int, learning_rate: float, seed: int) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Train the MLP on the training part; scores of the generated and reference test parts."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        layers: list[Any] = []
        width = g.shape[1]
        for h in hidden:
            layers += [torch.nn.Linear(width, h), torch.nn.SiLU()]
            width = h
        layers.append(torch.nn.Linear(width, 1))
        net = torch.nn.Sequential(*layers)
        opt = torch.optim.Adam(net.parameters(), lr=learning_rate)
        steps = max(1, int(np.ceil(len(x_tr) / batch_size))) * epochs
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        xt = torch.from_numpy(((x_tr - mu) / sd).astype(np.float32))
        yt, wt = torch.from_numpy(y_tr.astype(np.float32)), torch.from_numpy(w_tr.astype(np.float32))
        lossf = torch.nn.BCEWithLogitsLoss(reduction="none")
        history = []
        for _ in range(epochs):
            perm = torch.randperm(len(xt))
            total = 0.0
            for s in range(0, len(xt), batch_size):
                idx = perm[s:s + batch_size]
                opt.zero_grad()
                loss = (lossf(net(xt[idx]).squeeze(1), yt[idx]) * wt[idx]).mean()
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(idx)
            history.append(total / len(xt))
        with torch.no_grad():
            sp = net(torch.from_numpy(((g[:ng_test] - mu) / sd).astype(np.float32))).squeeze(1).double().numpy()
            sn = net(torch.from_numpy(((r[:nr_test] - mu) / sd).astype(np.float32))).squeeze(1).double().numpy()
    return sp, sn, history


def _auc_result(sp: np.ndarray, sn: np.ndarray, wn: np.ndarray, rng: np.random.Generator, n_bootstrap: int,
                features: Sequence[str], n_train: int, n_test: int, history: list[float]) -> ClassifierResult:
    """The AUC, its uncertainty (DeLong, or a bootstrap with weights) and the ROC curve."""
    from scipy import stats

    if np.allclose(wn, wn[0], rtol=1e-9, atol=0.0):
        auc, var = delong_auc_variance(sp, sn)
        err, method = float(np.sqrt(var)), "delong"
    else:
        auc = roc_auc(sp, sn, None, wn)
        boot = []
        for _ in range(n_bootstrap):
            a_i, b_i = rng.integers(0, len(sp), len(sp)), rng.integers(0, len(sn), len(sn))
            boot.append(roc_auc(sp[a_i], sn[b_i], None, wn[b_i]))
        err, method = float(np.std(boot, ddof=1)), "bootstrap"
    z = (auc - 0.5) / err if err > 0 else 0.0
    fpr, tpr = _roc_curve(sp, sn, wn, np.ones_like(sp))
    return ClassifierResult(auc=auc, auc_err=err, z=float(z), p_value=float(stats.norm.sf(z)), method=method,
                            n_train=n_train, n_test=n_test, features=list(features),
                            loss_history=history, roc_fpr=fpr, roc_tpr=tpr)
