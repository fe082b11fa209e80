r"""Toy distributions with known answers, to validate the validation.

Pure module (numpy only). The statistical checks of :mod:`dyroot.amplification`,
:mod:`dyroot.twosample`, :mod:`dyroot.memorisation` and :mod:`dyroot.streams_check`
are tested against toys whose truth is known exactly, so that each check is seen to
pass where it must and fail where it must:

* :class:`ToyDimuon`: a five-variable stand-in for the Drell-Yan phase space in
  ``FLOW_FEATURES`` order, whose :math:`m_{\mu\mu}` is a falling exponential in
  110-160 GeV with an analytic CDF and quantile function (the "truth" of the
  quantile-MSE method), the other variables independent of it.
* :func:`resampling_generator`: a fake "generator" that draws from its training
  set with replacement. It has memorised everything: it must fail the
  memorisation test and its amplification must be :math:`G \le 1`.
* :func:`tilted_generator`: a generator of the truth re-weighted by
  :math:`1 + \epsilon\,(m - 135\,\mathrm{GeV})/25\,\mathrm{GeV}`, the shape error a
  flow might make; the fidelity tests must see it.

Example:
    >>> toy = ToyDimuon()
    >>> x = toy.sample(1000, np.random.default_rng(1))
    >>> x.shape, bool(((x[:, 0] >= 110) & (x[:, 0] < 160)).all())
    ((1000, 5), True)
    >>> round(float(toy.mll_cdf(toy.mll_ppf(0.3))), 12)
    0.3
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ToyDimuon", "resampling_generator", "tilted_generator", "jittered_resampler"]


@dataclass(frozen=True)
class ToyDimuon:
    r"""A toy dimuon phase space with an exactly known :math:`m_{\mu\mu}` distribution.

    Columns (``FLOW_FEATURES`` order): ``mll`` in GeV, truncated exponential
    :math:`\propto e^{-m/\lambda}` on ``[lo, hi)``; ``ptll`` in GeV, a gamma
    distribution of shape 1.5 and scale ``pt_scale``; ``yll`` normal of width
    ``y_width``; ``costheta`` with density :math:`\propto 1 + c^2` on [-1, 1];
    ``phi_cs`` uniform on :math:`(-\pi, \pi]`. The columns are independent.

    Args:
        slope: :math:`\lambda` in GeV (the Drell-Yan spectrum in 110-160 GeV falls
            roughly like :math:`e^{-m/20\,\mathrm{GeV}}`).
        lo: lower edge of the mass range in GeV.
        hi: upper edge of the mass range in GeV.
        pt_scale: scale of the ``ptll`` gamma distribution in GeV.
        y_width: standard deviation of ``yll``.
    """

    slope: float = 20.0
    lo: float = 110.0
    hi: float = 160.0
    pt_scale: float = 12.0
    y_width: float = 1.2

    def _z(self) -> float:
        return float(-np.expm1(-(self.hi - self.lo) / self.slope))

    def mll_cdf(self, m: np.ndarray | float) -> np.ndarray:
        """The CDF of ``mll`` (GeV) on ``[lo, hi)``, clipped to [0, 1] outside."""
        m = np.clip(np.asarray(m, dtype=np.float64), self.lo, self.hi)
        return -np.expm1(-(m - self.lo) / self.slope) / self._z()

    def mll_ppf(self, u: np.ndarray | float) -> np.ndarray:
        """The quantile function of ``mll`` (GeV): the inverse of :meth:`mll_cdf`."""
        u = np.asarray(u, dtype=np.float64)
        return self.lo - self.slope * np.log1p(-u * self._z())

    def sample_mll(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` masses in GeV by inversion of the CDF."""
        return self.mll_ppf(rng.random(n))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` events, shape ``(n, 5)``, columns in ``FLOW_FEATURES`` order."""
        mll = self.sample_mll(n, rng)
        ptll = rng.gamma(1.5, self.pt_scale, n)
        yll = rng.normal(0.0, self.y_width, n)
        # 1 + c^2 on [-1, 1] by rejection (acceptance 2/3).
        c = np.empty(0)
        while c.size < n:
            trial = rng.uniform(-1.0, 1.0, 2 * (n - c.size) + 16)
            keep = rng.uniform(0.0, 2.0, trial.size) < 1.0 + trial * trial
            c = np.concatenate([c, trial[keep]])
        phi = np.pi - rng.uniform(0.0, 2.0 * np.pi, n)
        return np.column_stack([mll, ptll, yll, c[:n], phi])


def resampling_generator(training: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A fake generator that memorised its training set: ``n`` draws with replacement.

    Args:
        training: the training events, shape ``(n_train, d)`` (or ``(n_train,)``).
        n: how many events to "generate".
        rng: the random generator.

    Returns:
        ``training[idx]`` for ``n`` random indices.
    """
    return training[rng.integers(0, len(training), n)]


def jittered_resampler(training: np.ndarray, n: int, rng: np.random.Generator, scale: float = 1e-3) -> np.ndarray:
    """A memorising generator that hides its copies under a small Gaussian jitter.

    Args:
        training: the training events, shape ``(n_train, d)``.
        n: how many events to "generate".
        rng: the random generator.
        scale: the jitter, as a fraction of each column's standard deviation.

    Returns:
        Resampled training events plus ``scale * std * N(0, 1)`` noise per column.
    """
    x = resampling_generator(training, n, rng)
    return x + scale * training.std(axis=0) * rng.standard_normal(x.shape)


def tilted_generator(toy: ToyDimuon, n: int, rng: np.random.Generator, epsilon: float = 0.05) -> np.ndarray:
    r"""Events of ``toy`` whose mass spectrum is tilted by :math:`1 + \epsilon\,(m - 135)/25`.

    The tilt changes the ratio of the spectrum at 160 GeV to that at 110 GeV by
    :math:`(1+\epsilon)/(1-\epsilon)`; :math:`|\epsilon| < 1`. Accept-reject on
    :meth:`ToyDimuon.sample`, so every other column keeps its truth.

    Args:
        toy: the truth.
        n: how many events.
        rng: the random generator.
        epsilon: the size of the tilt.

    Returns:
        An array of shape ``(n, 5)``.

    Raises:
        ValueError: if ``|epsilon| >= 1``.
    """
    if not abs(epsilon) < 1.0:
        msg = f"epsilon={epsilon} must lie in (-1, 1) for the tilt to stay a density"
        raise ValueError(msg)
    out: list[np.ndarray] = []
    got = 0
    mid, half = 0.5 * (toy.lo + toy.hi), 0.5 * (toy.hi - toy.lo)
    while got < n:
        x = toy.sample(2 * (n - got) + 64, rng)
        w = (1.0 + epsilon * (x[:, 0] - mid) / half) / (1.0 + abs(epsilon))
        x = x[rng.random(len(x)) < w]
        out.append(x)
        got += len(x)
    return np.concatenate(out)[:n]
