r"""How many true events is a generated sample worth? The amplification G.

Pure module (numpy only). Two measurements of the statistical worth of generated
events, both for a one-dimensional variable (the :math:`m_{\mu\mu}` template in
110-160 GeV, per category):

1. **Quantile MSE** (Butter et al., arXiv:2008.06545), when the truth is known or a
   large truth sample exists. Split the variable into :math:`N_q` quantiles that are
   equiprobable under the truth; with :math:`x_j` the fraction of the sample in
   quantile :math:`j`,

   .. math:: \mathrm{MSE} = \frac{1}{N_q}\sum_j \left(x_j - \frac{1}{N_q}\right)^2,
      \qquad E[\mathrm{MSE}] = \frac{1 - 1/N_q}{N_q\,n}\ \text{for $n$ i.i.d. true events}.

   The generator's MSE with :math:`n` generated events defines the number of true
   events :math:`n_\mathrm{equiv}` with the same expected MSE, and
   :math:`G = n_\mathrm{equiv}/n_\mathrm{train}`. When the quantile edges come from a
   finite truth sample of :math:`n_\mathrm{truth}` events, their own noise adds
   :math:`(1-1/N_q)/(N_q\,n_\mathrm{truth})` to every MSE; it is subtracted, and
   :math:`n_\mathrm{equiv}` cannot be measured far beyond :math:`n_\mathrm{truth}`.
   :func:`quantile_amplification` measures the MSE on disjoint chunks of :math:`n`
   generated events, for several :math:`n` (the curve :math:`G(n)`); with
   :math:`\mathrm{MSE}(n) = k/n + \beta`, :math:`k = (1-1/N_q)/N_q`, the model's own
   error :math:`\beta` gives the asymptotic :math:`N_\mathrm{eff} = k/\beta`.

2. **Ensemble variance** (Bahl et al., arXiv:2509.08048), without a truth sample.
   :math:`K` flows trained on bootstrap replicas (or disjoint subsets) of the
   training data each generate events; for a region (bin) with fraction :math:`I`,
   the variance of its generated fraction across the ensemble is
   :math:`I(1-I)/N_\mathrm{gen} + \sigma^2_\mathrm{model}`. Summed over the bins of
   the template, :math:`\mathrm{Var}(N_\mathrm{gen}) = a/N_\mathrm{gen} + c`, with
   :math:`a \simeq A = \sum_b I_b(1-I_b)` (a closure check) and
   :math:`N_\mathrm{eff} = A/c`, :math:`G = N_\mathrm{eff}/n_\mathrm{train}` where
   :math:`n_\mathrm{train}` is the training size of one member.

Both are the same quantity seen two ways: the sum over bins of the squared error of
the generated shape, written as the number of true events that would have it.
Keep in mind the bound of Watts & Crow (arXiv:2412.18041): the information of the
training set is only preserved for :math:`N_\mathrm{gen} \gtrsim N_\mathrm{train}^{3/2}`.

Warning:
    The quantile MSE of *one* model measures that model: its own deviation from the
    truth fluctuates from one training to the next (for a model that merely
    reproduces its training sample, like a :math:`\chi^2_{N_q-1}` variable, i.e. by
    :math:`\sqrt{2/(N_q-1)}` relative). Pass several models (ensemble members) to
    average it out, or quote that spread with the result.

Example:
    >>> from dyroot.toys import ToyDimuon
    >>> toy, rng = ToyDimuon(), np.random.default_rng(3)
    >>> edges = quantile_edges(ppf=toy.mll_ppf, n_quantiles=20)
    >>> res = quantile_amplification([toy.sample_mll(200_000, rng)], edges, n_train=10_000,
    ...                              n_gen=[1_000, 10_000, 100_000])
    >>> bool(0.7 < res.gain[1] < 1.4 and res.gain[2] > 4)   # true events: G = n_gen / n_train
    True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ._jsonutil import to_jsonable

__all__ = [
    "quantile_edges",
    "quantile_mse",
    "expected_mse",
    "n_equivalent",
    "QuantileAmplification",
    "quantile_amplification",
    "EnsembleAmplification",
    "ensemble_amplification",
    "watts_crow_bound",
    "default_n_gen_grid",
]


# ----------------------------------------------------------------------------------------------
# Quantile MSE


def quantile_edges(
    truth: np.ndarray | None = None,
    *,
    ppf: Callable[[np.ndarray], np.ndarray] | None = None,
    n_quantiles: int = 25,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    r"""Edges of ``n_quantiles`` bins equiprobable under the truth.

    Args:
        truth: a truth sample (1-D), e.g. held-out reference masses in GeV.
        ppf: or the truth's quantile function (inverse CDF), when it is known.
        n_quantiles: :math:`N_q` (>= 2).
        weights: per-event weights of ``truth`` (weighted quantiles).

    Returns:
        ``n_quantiles + 1`` increasing edges; the outer two are :math:`\mp\infty` so
        every event of a sample falls in some quantile.

    Raises:
        ValueError: without exactly one of ``truth`` and ``ppf``, or if ``n_quantiles < 2``.

    Example:
        >>> quantile_edges(np.arange(100.0), n_quantiles=4)[1:-1]
        array([24.5, 49.5, 74.5])
    """
    if (truth is None) == (ppf is None):
        msg = "give exactly one of `truth` (a sample) and `ppf` (the inverse CDF) to define the quantiles"
        raise ValueError(msg)
    if n_quantiles < 2:
        msg = f"n_quantiles={n_quantiles}: need at least 2 quantiles"
        raise ValueError(msg)
    probs = np.arange(1, n_quantiles) / n_quantiles
    if ppf is not None:
        inner = np.asarray(ppf(probs), dtype=np.float64)
    else:
        x = np.asarray(truth, dtype=np.float64).ravel()
        if x.size < n_quantiles:
            msg = f"a truth sample of {x.size} events cannot define {n_quantiles} quantiles; use fewer quantiles"
            raise ValueError(msg)
        order = np.argsort(x, kind="stable")
        xs = x[order]
        w = np.ones_like(xs) if weights is None else np.asarray(weights, dtype=np.float64).ravel()[order]
        cw = np.cumsum(w) - 0.5 * w  # mid-point convention: unweighted gives (i + 0.5) / n
        inner = np.interp(probs * w.sum(), cw, xs)
    return np.concatenate([[-np.inf], inner, [np.inf]])


def _chunk_fractions(x: np.ndarray, edges: np.ndarray, n: int) -> np.ndarray:
    """Fractions per bin of ``edges`` in each of the ``len(x) // n`` disjoint chunks of size ``n``."""
    m = len(x) // n
    nb = len(edges) - 1
    idx = np.clip(np.searchsorted(edges, x[: m * n], side="right") - 1, 0, nb - 1)
    chunk = np.repeat(np.arange(m), n)
    counts = np.bincount(chunk * nb + idx, minlength=m * nb).reshape(m, nb)
    return counts / n


def quantile_mse(sample: np.ndarray, edges: np.ndarray) -> float:
    """The quantile MSE of one sample (its fractions per quantile against ``1/N_q``).

    Args:
        sample: the (generated) values, 1-D.
        edges: quantile edges from :func:`quantile_edges`.

    Returns:
        :math:`(1/N_q) \\sum_j (x_j - 1/N_q)^2`.
    """
    x = np.asarray(sample, dtype=np.float64).ravel()
    nq = len(edges) - 1
    f = _chunk_fractions(x, edges, len(x))[0]
    return float(np.mean((f - 1.0 / nq) ** 2))


def expected_mse(n: float | np.ndarray, n_quantiles: int, n_truth: float | None = None) -> np.ndarray:
    r"""The expected quantile MSE of ``n`` i.i.d. true events: :math:`(1-1/N_q)/(N_q n)`,
    plus the edges' own noise :math:`(1-1/N_q)/(N_q n_\mathrm{truth})` when they come from a sample.

    Example:
        >>> round(float(expected_mse(1000, 10)), 12)
        9e-05
    """
    k = (1.0 - 1.0 / n_quantiles) / n_quantiles
    extra = 0.0 if n_truth is None else k / n_truth
    return k / np.asarray(n, dtype=np.float64) + extra


def n_equivalent(mse: float | np.ndarray, n_quantiles: int, n_truth: float | None = None) -> np.ndarray:
    r"""The number of true events whose expected quantile MSE is ``mse`` (inf if ``mse`` is
    at or below the truth edges' own noise).

    Example:
        >>> float(n_equivalent(expected_mse(1000, 10), 10))
        1000.0
    """
    k = (1.0 - 1.0 / n_quantiles) / n_quantiles
    excess = np.asarray(mse, dtype=np.float64) - (0.0 if n_truth is None else k / n_truth)
    with np.errstate(divide="ignore"):
        return np.where(excess > 0, k / np.where(excess > 0, excess, 1.0), np.inf)


def _fit_inverse(n: np.ndarray, y: np.ndarray, sigma: np.ndarray, w: np.ndarray | None = None) -> dict[str, Any]:
    """Weighted least squares of ``y = a/n + c*w`` (``w = 1`` by default).

    Returns ``a, c``, their covariance (scaled by chi2/ndf when that exceeds 1,
    PDG-style), ``chi2`` and ``ndf``.
    """
    w = np.ones_like(y) if w is None else w
    design = np.column_stack([1.0 / n, w])
    sw = 1.0 / sigma
    coef, *_ = np.linalg.lstsq(design * sw[:, None], y * sw, rcond=None)
    cov = np.linalg.inv((design * sw[:, None] ** 2).T @ design)
    resid = (y - design @ coef) / sigma
    chi2, ndf = float(resid @ resid), max(len(y) - 2, 0)
    scale = chi2 / ndf if ndf > 0 and chi2 > ndf else 1.0
    return {"a": float(coef[0]), "c": float(coef[1]), "cov": cov * scale, "chi2": chi2, "ndf": ndf, "scale": scale}


def default_n_gen_grid(n_max: int, n_min: int = 100, per_decade: int = 3) -> list[int]:
    """A geometric grid of sample sizes from ``n_min`` to ``n_max`` (both included).

    Example:
        >>> default_n_gen_grid(10_000)
        [100, 215, 464, 1000, 2154, 4642, 10000]
    """
    if n_max < n_min:
        return [int(n_max)]
    k = int(np.floor(np.log10(n_max / n_min) * per_decade + 1e-9))
    grid = [int(round(n_min * 10 ** (i / per_decade))) for i in range(k + 1)]
    if grid[-1] != n_max:  # end on n_max; drop a point too close to it (it would repeat the same events)
        if len(grid) > 1 and n_max / grid[-1] < 1.5:
            grid.pop()
        grid.append(int(n_max))
    return sorted(set(grid))


@dataclass(frozen=True)
class QuantileAmplification:
    r"""Result of :func:`quantile_amplification` (arrays indexed like ``n_gen``).

    Attributes:
        n_quantiles: :math:`N_q`.
        n_train: training-set size the gain refers to.
        n_truth: size of the truth sample that defined the edges (``None``: exact truth).
        n_models: how many models' samples were averaged.
        n_gen: the generated-sample sizes :math:`n` probed.
        mse, mse_err: mean quantile MSE at each :math:`n` and its uncertainty.
        mse_iid: the MSE expected for :math:`n` i.i.d. true events (plus the edges' noise).
        n_equiv, n_equiv_lo, n_equiv_hi: :math:`n_\mathrm{equiv}` and its 68 % interval.
        gain, gain_lo, gain_hi: :math:`G = n_\mathrm{equiv}/n_\mathrm{train}` and its interval.
        beta, beta_err: the model's own MSE :math:`\beta` (the :math:`n \to \infty`
            limit of :math:`\mathrm{MSE}(n) = k/n + \beta`, :math:`k = (1-1/N_q)/N_q`).
        n_eff, n_eff_lo, n_eff_hi: the asymptotic :math:`N_\mathrm{eff} = k/\beta` (68 %
            interval; ``n_eff_hi`` is inf when β is compatible with zero; lower ends, here
            and for ``n_equiv_lo``, use the excess clipped at 0 plus the error, so that a
            negative fluctuation never yields an arbitrarily strong limit).
        n_eff_limit95: one-sided 95 % lower limit on :math:`N_\mathrm{eff}`.
        g_eff, g_eff_lo, g_eff_hi, g_eff_limit95: the same divided by ``n_train``.
    """

    n_quantiles: int
    n_train: float
    n_truth: float | None
    n_models: int
    n_gen: np.ndarray
    mse: np.ndarray
    mse_err: np.ndarray
    mse_iid: np.ndarray
    n_equiv: np.ndarray
    n_equiv_lo: np.ndarray
    n_equiv_hi: np.ndarray
    gain: np.ndarray
    gain_lo: np.ndarray
    gain_hi: np.ndarray
    beta: float
    beta_err: float
    n_eff: float
    n_eff_lo: float
    n_eff_hi: float
    n_eff_limit95: float
    g_eff: float
    g_eff_lo: float
    g_eff_hi: float
    g_eff_limit95: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (arrays as lists, inf as the string ``"inf"``)."""
        return to_jsonable(asdict(self))


def _mse_sampling_err(mse: float, n: float, nq: int) -> float:
    r"""Sampling uncertainty of one MSE of ``n`` events: :math:`T = n N_q^2 \mathrm{MSE}` is
    non-central :math:`\chi^2_{N_q-1}(\lambda)` with variance :math:`2(N_q - 1 + 2\lambda)`."""
    t, k = n * nq * nq * mse, nq - 1.0
    lam = max(t - k, 0.0)
    return float(np.sqrt(2.0 * (k + 2.0 * lam)) / (n * nq * nq))


def quantile_amplification(
    samples: Sequence[np.ndarray],
    edges: np.ndarray,
    *,
    n_train: float,
    n_gen: Sequence[int] | None = None,
    n_truth: float | None = None,
) -> QuantileAmplification:
    r"""The amplification of a generator by the quantile-MSE method of Butter et al.

    For each :math:`n` in ``n_gen``, every model's sample is cut into disjoint chunks
    of :math:`n` events; the MSE is averaged over chunks and models. Its uncertainty
    is the spread of the chunk MSEs when there are at least 8 chunks, else the
    non-central :math:`\chi^2` variance of the MSE statistic. This gives the curve
    :math:`G(n)`. The asymptote, the model's own error
    :math:`\beta = \mathrm{MSE}(N) - k/N` with :math:`k = (1-1/N_q)/N_q` (the
    multinomial noise of :math:`N` events is known, so it is subtracted rather than
    fitted), is taken from each model's full sample and averaged over models; its
    uncertainty is the spread over models when there are 3 or more (so it includes
    the model-to-model fluctuation), else the sampling uncertainty; the truth edges'
    own noise adds :math:`\sqrt{2/(N_q-1)}\,k/n_\mathrm{truth}` in quadrature.

    Args:
        samples: one 1-D array of generated values per model (unit weights), e.g.
            :math:`m_{\mu\mu}` in GeV of the events in one category and in 110-160 GeV.
        edges: quantile edges equiprobable under the truth (:func:`quantile_edges`).
        n_train: the training-set size (events in the same category and window).
        n_gen: the sample sizes to probe; default a geometric grid up to the smallest sample.
        n_truth: size of the truth sample that defined ``edges``; ``None`` if they
            come from the exact truth (a known CDF).

    Returns:
        A :class:`QuantileAmplification`.

    Raises:
        ValueError: if no sample is given or a requested ``n`` exceeds the smallest sample.
    """
    xs = [np.asarray(s, dtype=np.float64).ravel() for s in samples]
    if not xs or min(len(x) for x in xs) < 2:
        msg = "quantile_amplification needs at least one sample of two or more generated values"
        raise ValueError(msg)
    n_min = min(len(x) for x in xs)
    grid = np.array(default_n_gen_grid(n_min) if n_gen is None else sorted(set(int(v) for v in n_gen)))
    if grid.max() > n_min:
        msg = f"n_gen up to {grid.max()} asked for, but the smallest generated sample has {n_min} events"
        raise ValueError(msg)
    nq = len(edges) - 1
    kq = (1.0 - 1.0 / nq) / nq
    mse, err = np.empty(len(grid)), np.empty(len(grid))
    for i, n in enumerate(grid):
        per_chunk = np.concatenate([np.mean((_chunk_fractions(x, edges, int(n)) - 1.0 / nq) ** 2, axis=1) for x in xs])
        mse[i] = per_chunk.mean()
        if per_chunk.size >= 8:
            err[i] = per_chunk.std(ddof=1) / np.sqrt(per_chunk.size)
        else:
            err[i] = _mse_sampling_err(float(mse[i]), float(n), nq) / np.sqrt(per_chunk.size)
    truth_term = 0.0 if n_truth is None else kq / n_truth
    betas = np.array([quantile_mse(x, edges) - kq / len(x) - truth_term for x in xs])
    beta = float(betas.mean())
    if len(xs) >= 3:
        beta_err = float(betas.std(ddof=1) / np.sqrt(len(xs)))
    else:
        beta_err = float(np.sqrt(np.mean([_mse_sampling_err(quantile_mse(x, edges), len(x), nq) ** 2 for x in xs])
                                 / len(xs)))
    beta_err = float(np.hypot(beta_err, truth_term * np.sqrt(2.0 / max(nq - 1, 1))))

    def _neff(b: float) -> float:
        return kq / b if b > 0 else np.inf

    n_eq = n_equivalent(mse, nq, n_truth)
    # Lower ends from max(excess, 0) + error: an excess that fluctuated below zero must not turn into
    # an arbitrarily strong lower limit (the interval would otherwise flip near the boundary).
    n_lo = n_equivalent(np.maximum(mse, truth_term) + err, nq, n_truth)
    n_hi = n_equivalent(np.maximum(mse - err, 0.0), nq, n_truth)
    b0 = max(beta, 0.0)
    n_eff, n_eff_lo, n_eff_hi = _neff(beta), _neff(b0 + beta_err), _neff(beta - beta_err)
    n_lim = _neff(b0 + 1.6448536 * beta_err)
    return QuantileAmplification(
        n_quantiles=nq, n_train=float(n_train), n_truth=n_truth, n_models=len(xs), n_gen=grid,
        mse=mse, mse_err=err, mse_iid=expected_mse(grid, nq, n_truth),
        n_equiv=n_eq, n_equiv_lo=n_lo, n_equiv_hi=n_hi,
        gain=n_eq / n_train, gain_lo=n_lo / n_train, gain_hi=n_hi / n_train,
        beta=beta, beta_err=beta_err, n_eff=n_eff, n_eff_lo=n_eff_lo, n_eff_hi=n_eff_hi, n_eff_limit95=n_lim,
        g_eff=n_eff / n_train, g_eff_lo=n_eff_lo / n_train, g_eff_hi=n_eff_hi / n_train,
        g_eff_limit95=n_lim / n_train,
    )


# ----------------------------------------------------------------------------------------------
# Ensemble variance


@dataclass(frozen=True)
class EnsembleAmplification:
    r"""Result of :func:`ensemble_amplification` (arrays indexed like ``n_gen``).

    Attributes:
        n_members: :math:`K`.
        n_train: training size of one member.
        edges: the region (bin) edges.
        fractions: the ensemble-mean fraction :math:`I_b` per bin.
        a_expected: :math:`A = \sum_b I_b (1 - I_b)`.
        n_gen: the generated sizes probed.
        variance, variance_err: :math:`\sum_b \mathrm{Var}_b` measured at each size.
        weight: the factor :math:`w = M(K-1)/(KM-1)` multiplying :math:`c` when
            :math:`M` chunks per member are pooled.
        a, a_err, c, c_err: the fit :math:`\mathrm{Var}(N) = a/N + c\,w`.
        chi2, ndf: of that fit.
        n_eff, n_eff_lo, n_eff_hi: :math:`N_\mathrm{eff} = A/c` and its 68 % interval
            (``n_eff_hi`` inf when :math:`c` is compatible with 0; the lower ends use
            :math:`\max(c, 0)` plus the error, so a negative fluctuation of :math:`c`
            does not make the limit arbitrarily strong).
        n_eff_limit95: one-sided 95 % lower limit on :math:`N_\mathrm{eff}`.
        gain, gain_lo, gain_hi, gain_limit95: the same divided by ``n_train``.
        model_var_per_bin: :math:`c_b` per bin from the largest size (the model's
            variance of each bin fraction).
    """

    n_members: int
    n_train: float
    edges: np.ndarray
    fractions: np.ndarray
    a_expected: float
    n_gen: np.ndarray
    variance: np.ndarray
    variance_err: np.ndarray
    weight: np.ndarray
    a: float
    a_err: float
    c: float
    c_err: float
    chi2: float
    ndf: int
    n_eff: float
    n_eff_lo: float
    n_eff_hi: float
    n_eff_limit95: float
    gain: float
    gain_lo: float
    gain_hi: float
    gain_limit95: float
    model_var_per_bin: np.ndarray

    def n_equiv_at(self, n_gen: float | np.ndarray) -> np.ndarray:
        r""":math:`n_\mathrm{equiv}(N_\mathrm{gen}) = A / (A/N_\mathrm{gen} + c)` (c clipped at 0)."""
        n = np.asarray(n_gen, dtype=np.float64)
        return self.a_expected / (self.a_expected / n + max(self.c, 0.0))

    def gain_at(self, n_gen: float | np.ndarray) -> np.ndarray:
        """:math:`G(N_\\mathrm{gen}) = n_\\mathrm{equiv}(N_\\mathrm{gen}) / n_\\mathrm{train}`."""
        return self.n_equiv_at(n_gen) / self.n_train

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (arrays as lists, inf as the string ``"inf"``)."""
        return to_jsonable(asdict(self))


def _variance_curve(xs: Sequence[np.ndarray], edges: np.ndarray, grid: np.ndarray) -> dict[str, Any]:
    """Pooled chunk variances of the bin fractions of members ``xs`` at each size of ``grid``."""
    k = len(xs)
    n_min = min(len(x) for x in xs)
    xs = [x[:n_min] for x in xs]  # every member contributes the same chunks
    frac = np.concatenate([_chunk_fractions(x, edges, n_min) for x in xs]).mean(axis=0)
    a_b = frac * (1.0 - frac)
    var, wts, m_of = np.empty(len(grid)), np.empty(len(grid)), np.empty(len(grid))
    per_bin = np.zeros_like(frac)
    for i, n in enumerate(grid):
        f = np.stack([_chunk_fractions(x, edges, int(n)) for x in xs])  # (K, M, B)
        m = f.shape[1]
        s2 = f.reshape(k * m, -1).var(axis=0, ddof=1)
        var[i], m_of[i], wts[i] = s2.sum(), m, m * (k - 1) / (k * m - 1)
        if i == len(grid) - 1:
            per_bin = (s2 - a_b / n) / wts[i]
    return {"frac": frac, "a_b": a_b, "var": var, "w": wts, "m": m_of, "per_bin": per_bin}


def _variance_errors(curve: dict[str, Any], grid: np.ndarray, k: int, c_total: float) -> np.ndarray:
    """Uncertainty of each pooled variance under the random-effects model (between + within parts)."""
    a_b = curve["a_b"]
    c_b = max(c_total, 0.0) * a_b / max(float(a_b.sum()), 1e-300)  # model variance shared like the binomial one
    out = np.empty(len(grid))
    for i, n in enumerate(grid):
        m = curve["m"][i]
        sig2 = a_b / n
        between = ((k - 1) * m) ** 2 * 2.0 * (c_b + sig2 / m) ** 2 / (k - 1)
        within = k * (m - 1) * 2.0 * sig2**2
        out[i] = np.sqrt(np.sum((between + within) / (k * m - 1) ** 2))
    return out


def _fit_members(xs: Sequence[np.ndarray], edges: np.ndarray, grid: np.ndarray) -> tuple[dict[str, Any], dict[str, Any]]:
    curve = _variance_curve(xs, edges, grid)
    g = grid.astype(np.float64)
    fit = _fit_inverse(g, curve["var"], _variance_errors(curve, grid, len(xs), 0.0), curve["w"])
    curve["err"] = _variance_errors(curve, grid, len(xs), fit["c"])
    return _fit_inverse(g, curve["var"], curve["err"], curve["w"]), curve


def ensemble_amplification(
    members: Sequence[np.ndarray],
    edges: np.ndarray,
    *,
    n_train: float,
    n_gen: Sequence[int] | None = None,
) -> EnsembleAmplification:
    r"""The amplification from the spread of an ensemble of generators (Bahl et al.).

    Each member's sample is cut into :math:`M = \lfloor N_\mathrm{min}/n \rfloor`
    disjoint chunks of :math:`n` events; the sample variance of every bin fraction
    over all :math:`KM` chunks, summed over bins, estimates :math:`a/n + c\,w` with
    :math:`w = M(K-1)/(KM-1)` (the chunks of one member share its model error). The
    points are fitted by weighted least squares, each weighted by its uncertainty
    under the same random-effects model (between- and within-member parts, iterated
    once with the fitted :math:`c`). Because every size reuses the same events, the
    points are correlated and the fit's covariance is too optimistic. The
    uncertainty of :math:`c` is therefore that of the largest size, where each member
    is one chunk: :math:`\sigma_c^2 = 2\sum_b (a_b/N + c_b)^2/(K-1)` with
    :math:`c_b` shared like :math:`a_b`; that of :math:`a` (a closure check) comes from
    a delete-one jackknife over the members. Both are calibrated on toys
    (``tests/test_amplification.py``; the jackknife for :math:`c` had heavy tails for
    :math:`K \le 6`).

    Args:
        members: one 1-D array of generated values (e.g. :math:`m_{\mu\mu}` in GeV in
            one category and in 110-160 GeV) per ensemble member, unit weights. At
            least 3 members; 5-10 make the estimate useful.
        edges: the regions, e.g. 2-GeV bins of the template range in GeV (values
            outside the edges are ignored).
        n_train: the number of training events of ONE member in the same category and
            window (the full training size for bootstrap replicas, the subset size for
            disjoint subsets).
        n_gen: the sizes to probe; default a geometric grid up to the smallest member.

    Returns:
        An :class:`EnsembleAmplification`.

    Raises:
        ValueError: with fewer than 3 members or a size larger than the smallest member.
    """
    xs = []
    for s in members:
        x = np.asarray(s, dtype=np.float64).ravel()
        xs.append(x[(x >= edges[0]) & (x < edges[-1])])
    if len(xs) < 3:
        msg = (f"ensemble_amplification needs at least 3 ensemble members, got {len(xs)} "
               "(train them with `dyroot train --ensemble K`, K >= 3; 5-10 is better)")
        raise ValueError(msg)
    n_min = min(len(x) for x in xs)
    grid = np.array(default_n_gen_grid(n_min) if n_gen is None else sorted(set(int(v) for v in n_gen)))
    if grid.max() > n_min:
        msg = f"n_gen up to {grid.max()} asked for, but the smallest member has {n_min} events in the range"
        raise ValueError(msg)
    k = len(xs)
    fit, curve = _fit_members(xs, edges, grid)
    jack = np.array([_fit_members(xs[:i] + xs[i + 1:], edges, grid)[0]["a"] for i in range(k)])
    a_err = float(np.sqrt((k - 1) / k * np.sum((jack - jack.mean()) ** 2)))
    # c is set by the largest size (one chunk per member): the spread of K member fractions, whose
    # variance 2 sum_b (a_b/N + c_b)^2 / (K - 1) is the random-effects error of that point.
    c_err = float(curve["err"][-1] / curve["w"][-1])
    a_exp, c = float(curve["a_b"].sum()), fit["c"]

    def _neff(cv: float) -> float:
        return a_exp / cv if cv > 0 else np.inf

    c0 = max(c, 0.0)  # lower ends from max(c, 0) + error: no over-strong limit when c fluctuates negative
    n_eff, n_lo, n_hi, n_lim = _neff(c), _neff(c0 + c_err), _neff(c - c_err), _neff(c0 + 1.6448536 * c_err)
    return EnsembleAmplification(
        n_members=k, n_train=float(n_train), edges=np.asarray(edges, dtype=np.float64), fractions=curve["frac"],
        a_expected=a_exp, n_gen=grid, variance=curve["var"], variance_err=curve["err"], weight=curve["w"],
        a=fit["a"], a_err=a_err, c=c, c_err=c_err, chi2=fit["chi2"], ndf=fit["ndf"],
        n_eff=n_eff, n_eff_lo=n_lo, n_eff_hi=n_hi, n_eff_limit95=n_lim,
        gain=n_eff / n_train, gain_lo=n_lo / n_train, gain_hi=n_hi / n_train, gain_limit95=n_lim / n_train,
        model_var_per_bin=curve["per_bin"],
    )


def watts_crow_bound(n_train: float) -> float:
    r""":math:`N_\mathrm{train}^{3/2}`: the generated size beyond which, by Watts & Crow
    (arXiv:2412.18041), the training set's information is preserved.

    Example:
        >>> watts_crow_bound(1e4)
        1000000.0
    """
    return float(n_train) ** 1.5
