r"""Spurious-signal criteria on fitted numbers, and the choice of the background function.

Pure module (numpy/scipy, never ROOT): :mod:`dyroot.fit` produces the numbers, this
module decides. Every threshold is an argument of :class:`Criteria` (physics.md
section 6, ATLAS practice, recalled values as defaults):

* signal: for every :math:`m_H` of the scan,
  :math:`\max(0, |\hat N_S| - k\,\Delta_{MC}) < z_{max}\,\delta S` (``relax_mc=True``,
  :math:`k` = ``mc_sigmas`` = 2, :math:`z_{max}` = ``max_z_spur`` = 0.2), or the strict
  :math:`|\hat N_S| < z_{max}\,\delta S` (``relax_mc=False``); optionally also passed when
  :math:`|\hat N_S| < r_{max} S_{expected}` (``max_s_over_sexp``, off by default);
* goodness of fit: the background-only fit's :math:`\chi^2` p-value, computed with the
  template's OWN statistical errors, exceeds ``min_chi2_pvalue`` = 0.01;
* every fit converged (a failed fit fails the function, it is never used silently).

Among the passing functions of a category the one with the fewest parameters is chosen
(ties: the smaller relaxed :math:`Z_{spur}`, then catalogue order).

Definitions: :math:`\hat N_S(m_H)` the fitted signal (events at the data luminosity);
:math:`S_{spur} = \max_{m_H} |\hat N_S|`; :math:`\delta S(m_H)` the expected statistical
uncertainty of the signal yield at the data luminosity (Asimov fit);
:math:`\Delta_{MC}(m_H)` the part of the uncertainty of :math:`\hat N_S` due to the
template's own statistics; :math:`Z_{spur} = \max_{m_H} |\hat N_S| / \delta S`.

Example:
    >>> pts = [MassPoint(125.0, n_sig=10.0, n_sig_error=100.0, delta_s=100.0, delta_mc=1.0)]
    >>> scan = FunctionScan("cat", "Epoly3", 3, points=pts, chi2=480.0, ndf=496, chi2_pvalue=0.7)
    >>> v = evaluate(scan, Criteria())
    >>> v.passed, round(v.z_spur, 3)
    (True, 0.1)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .exceptions import ConfigError

__all__ = [
    "Criteria",
    "MassPoint",
    "FunctionScan",
    "Verdict",
    "evaluate",
    "choose",
    "chi2_test",
    "delta_s_formula",
    "format_table",
]


@dataclass(frozen=True)
class Criteria:
    """Thresholds of the spurious-signal test (all documented defaults, physics.md section 6).

    Args:
        max_z_spur: largest accepted :math:`|S|/\\delta S` (0.2).
        relax_mc: use :math:`\\max(0, |S| - k\\Delta_{MC})` instead of :math:`|S|` (True).
        mc_sigmas: :math:`k`, the number of :math:`\\Delta_{MC}` subtracted (2).
        min_chi2_pvalue: smallest accepted p-value of the background-only fit (0.01).
        max_s_over_sexp: if set, :math:`|S| < r S_{expected}` also passes the signal criterion
            (ATLAS H->gamma gamma uses 0.1); ``None`` (default) disables it.
    """

    max_z_spur: float = 0.2
    relax_mc: bool = True
    mc_sigmas: float = 2.0
    min_chi2_pvalue: float = 0.01
    max_s_over_sexp: float | None = None

    def __post_init__(self) -> None:
        if not self.max_z_spur > 0 or self.mc_sigmas < 0 or not 0 <= self.min_chi2_pvalue < 1:
            raise ConfigError(f"invalid criteria {self}: need max_z_spur > 0, mc_sigmas >= 0, 0 <= min_chi2_pvalue < 1")
        if self.max_s_over_sexp is not None and not self.max_s_over_sexp > 0:
            raise ConfigError("max_s_over_sexp must be positive (or None to disable it)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MassPoint:
    """The numbers of one S+B fit at Higgs mass ``mh`` (GeV); yields in events at the data luminosity.

    Args:
        mh: Higgs mass of the signal shape.
        n_sig: fitted signal yield.
        n_sig_error: its HESSE error in the fit to the scaled template (data-like errors).
        delta_s: expected uncertainty from the Asimov fit.
        delta_mc: the part due to the template's statistics.
        s_expected: expected signal yield, if known.
        ok: the fits converged.
        message: what failed.
    """

    mh: float
    n_sig: float = float("nan")
    n_sig_error: float = float("nan")
    delta_s: float = float("nan")
    delta_mc: float = float("nan")
    s_expected: float | None = None
    ok: bool = True
    message: str = ""


@dataclass
class FunctionScan:
    """All fits of one background function in one category."""

    category: str
    function: str
    n_params: int
    points: list[MassPoint] = field(default_factory=list)
    chi2: float = float("nan")
    ndf: int = 0
    chi2_pvalue: float = float("nan")
    background_ok: bool = True
    message: str = ""
    values: dict[str, float] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    n_bkg: float = float("nan")
    prediction: list[float] = field(default_factory=list)
    family: str = ""
    cpu_seconds: float = 0.0

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-mass numbers as arrays (``mh``, ``n_sig``, ``delta_s``, ``delta_mc``, ...)."""
        keys = ("mh", "n_sig", "n_sig_error", "delta_s", "delta_mc")
        return {k: np.array([getattr(p, k) for p in self.points], dtype=np.float64) for k in keys}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["points"] = [asdict(p) for p in self.points]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FunctionScan":
        d = dict(d)
        d["points"] = [MassPoint(**p) for p in d.get("points", [])]
        return cls(**d)


@dataclass
class Verdict:
    """The decision for one function in one category."""

    category: str
    function: str
    n_params: int
    passed: bool
    reasons: list[str]
    s_spur: float
    mh_at_max: float
    z_spur: float
    z_relaxed: float
    s_over_sexp: float | None
    chi2_pvalue: float
    fits_ok: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(x: float) -> bool:
    return x is not None and math.isfinite(x)


def evaluate(scan: FunctionScan, criteria: Criteria = Criteria()) -> Verdict:
    """Apply the criteria to one function's scan.

    Args:
        scan: the fitted numbers.
        criteria: the thresholds.

    Returns:
        The verdict, with the reasons of a failure.
    """
    reasons: list[str] = []
    fits_ok = scan.background_ok and bool(scan.points) and all(p.ok for p in scan.points)
    if not scan.background_ok:
        reasons.append(f"background-only fit failed ({scan.message})")
    bad = [p for p in scan.points if not p.ok]
    if bad:
        reasons.append(f"{len(bad)} S+B fit(s) failed (first at m_H = {bad[0].mh:g} GeV: {bad[0].message})")
    good = [p for p in scan.points if p.ok and _finite(p.n_sig) and _finite(p.delta_s) and p.delta_s > 0]
    if not scan.points:
        reasons.append("no mass point was scanned")
    s_spur = mh_max = z = zr = float("nan")
    ratio: float | None = None
    if good:
        a = np.array([abs(p.n_sig) for p in good])
        ds = np.array([p.delta_s for p in good])
        mc = np.array([p.delta_mc if _finite(p.delta_mc) else 0.0 for p in good])
        i = int(np.argmax(a))
        s_spur, mh_max = float(a[i]), float(good[i].mh)
        z = float(np.max(a / ds))
        relaxed = np.maximum(0.0, a - criteria.mc_sigmas * mc) if criteria.relax_mc else a
        zr = float(np.max(relaxed / ds))
        sexp = np.array([p.s_expected if p.s_expected else np.nan for p in good])
        if np.all(np.isfinite(sexp)) and np.all(sexp > 0):
            ratio = float(np.max(a / sexp))
        signal_ok = zr < criteria.max_z_spur
        if not signal_ok and criteria.max_s_over_sexp is not None and ratio is not None:
            signal_ok = ratio < criteria.max_s_over_sexp
        if not signal_ok:
            what = "max(0, |S| - %g Delta_MC)/dS" % criteria.mc_sigmas if criteria.relax_mc else "|S|/dS"
            reasons.append(f"spurious signal: {what} = {zr:.3f} >= {criteria.max_z_spur:g} "
                           f"(|S| = {s_spur:.4g} at m_H = {mh_max:g} GeV)")
    if not _finite(scan.chi2_pvalue) or scan.chi2_pvalue <= criteria.min_chi2_pvalue:
        if scan.background_ok:
            reasons.append(f"chi2 p-value {scan.chi2_pvalue:.3g} <= {criteria.min_chi2_pvalue:g} "
                           f"(chi2/ndf = {scan.chi2:.1f}/{scan.ndf})")
    return Verdict(scan.category, scan.function, scan.n_params, fits_ok and not reasons, reasons, s_spur, mh_max,
                   z, zr, ratio, float(scan.chi2_pvalue), fits_ok)


def choose(verdicts: Iterable[Verdict]) -> Verdict | None:
    """The passing function with the fewest parameters (ties: smaller relaxed Z, then order given).

    Returns:
        The chosen verdict, or ``None`` when nothing passes.
    """
    passing = [(v.n_params, v.z_relaxed, i, v) for i, v in enumerate(verdicts) if v.passed]
    return min(passing, key=lambda t: t[:3])[3] if passing else None


def chi2_test(counts: Sequence[float], sumw2: Sequence[float], expected: Sequence[float], n_params: int, *,
              min_expected: float = 5.0) -> tuple[float, int, float]:
    r"""Pearson :math:`\chi^2` of a fit with the histogram's OWN statistical errors, and its p-value.

    Per bin the effective weight :math:`k_i = \sum w^2 / \sum w` converts to raw
    counts; the variance is :math:`k_i \nu_i` (:math:`\nu_i` the expectation in the
    histogram's units), i.e. Pearson's :math:`\chi^2` in effective counts. Adjacent bins
    are merged until each group expects at least ``min_expected`` effective counts.

    Args:
        counts, sumw2: the histogram (any scale).
        expected: the fitted expectation per bin (same scale).
        n_params: fitted parameters (shape parameters + normalisation).
        min_expected: smallest expected effective count per group.

    Returns:
        ``(chi2, ndf, p_value)``.

    Raises:
        ConfigError: if the arrays differ in length or nothing is left for the test.

    Example:
        >>> c, ndf, p = chi2_test([100, 100], [100, 100], [100, 100], 1)
        >>> c, ndf, p
        (0.0, 1, 1.0)
    """
    from scipy.special import gammaincc

    n = np.asarray(counts, dtype=np.float64)
    w2 = np.asarray(sumw2, dtype=np.float64)
    nu = np.asarray(expected, dtype=np.float64)
    if not (n.shape == w2.shape == nu.shape):
        raise ConfigError(f"chi2_test: arrays of different lengths {n.shape}, {w2.shape}, {nu.shape}")
    kbar = float(w2.sum() / n.sum()) if n.sum() > 0 else 1.0
    k = np.where(n > 0, w2 / np.where(n > 0, n, 1.0), kbar)
    k = np.where(k > 0, k, kbar)
    eff = nu / k
    groups: list[tuple[float, float, float]] = []  # (sum n, sum nu, sum k*nu)
    acc = [0.0, 0.0, 0.0, 0.0]
    for i in range(n.size):
        acc[0] += n[i]
        acc[1] += nu[i]
        acc[2] += k[i] * nu[i]
        acc[3] += eff[i]
        if acc[3] >= min_expected:
            groups.append((acc[0], acc[1], acc[2]))
            acc = [0.0, 0.0, 0.0, 0.0]
    if acc[3] > 0 and groups:
        g = groups.pop()
        groups.append((g[0] + acc[0], g[1] + acc[1], g[2] + acc[2]))
    ndf = len(groups) - int(n_params)
    if ndf < 1:
        raise ConfigError(f"chi2_test: {len(groups)} groups for {n_params} parameters; lower min_expected "
                          "or use a template with more events")
    g = np.array(groups)
    chi2 = float(np.sum((g[:, 0] - g[:, 1]) ** 2 / g[:, 2]))
    return chi2, ndf, float(gammaincc(0.5 * ndf, 0.5 * chi2))


def delta_s_formula(signal_fractions: Sequence[float], background: Sequence[float]) -> float:
    r""":math:`\delta S \approx (\sum_i s_i^2 / b_i)^{-1/2}`, the cross-check of the Asimov fit.

    It ignores the correlation of the signal with the background parameters, so it is
    smaller than the Asimov :math:`\delta S` (by a few to tens of percent).

    Args:
        signal_fractions: the signal's fraction per bin (sums to 1).
        background: expected background per bin at the data luminosity.

    Example:
        >>> round(delta_s_formula([0.5, 0.5], [100.0, 100.0]), 6)
        14.142136
    """
    s = np.asarray(signal_fractions, dtype=np.float64)
    b = np.asarray(background, dtype=np.float64)
    ok = b > 0
    return float(np.sum(s[ok] ** 2 / b[ok]) ** -0.5)


def format_table(verdicts: Sequence[Verdict], chosen: Mapping[str, str | None]) -> str:
    """A readable fixed-width table, one row per category x function, the chosen ones marked."""
    head = f"{'category':<18} {'function':<12} {'npar':>4} {'S_spur':>10} {'m_H':>6} {'Z_spur':>7} {'Z_relax':>7} " \
           f"{'S/S_exp':>8} {'chi2 p':>7}  result"
    lines = [head, "-" * len(head)]
    for v in verdicts:
        mark = "CHOSEN" if chosen.get(v.category) == v.function else ("pass" if v.passed else "fail")
        ratio = f"{v.s_over_sexp:8.3f}" if v.s_over_sexp is not None else f"{'-':>8}"
        why = "" if v.passed else "  (" + "; ".join(v.reasons) + ")"
        lines.append(f"{v.category:<18} {v.function:<12} {v.n_params:>4} {v.s_spur:>10.4g} {v.mh_at_max:>6.1f} "
                     f"{v.z_spur:>7.3f} {v.z_relaxed:>7.3f} {ratio} {v.chi2_pvalue:>7.3f}  {mark}{why}")
    none = [c for c, f in chosen.items() if f is None]
    if none:
        lines.append(f"no function passes in: {', '.join(none)}")
    return "\n".join(lines)
