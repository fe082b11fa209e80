r"""The signal shape of the spurious-signal test: a double-sided Crystal Ball per category.

Boundary module: the model (:class:`DSCB`, :class:`SignalModel`) and the numpy shape
(:func:`dscb`) are pure; :func:`fit_signal_samples` fits RooFit's ``RooCrystalBall`` to
``dyroot simulate --process ggH`` samples and imports ROOT inside the function.

The shape (ROOT's ``RooCrystalBall`` convention, physics.md section 4), with
:math:`t = (m - \mu_{CB})/\sigma_{CB}`:

.. math::
    f(t) = \begin{cases}
      A_L (B_L - t)^{-n_L} & t < -\alpha_L \\
      e^{-t^2/2} & -\alpha_L \le t \le \alpha_H \\
      A_H (B_H + t)^{-n_H} & t > \alpha_H
    \end{cases},\quad A = (n/\alpha)^n e^{-\alpha^2/2},\ B = n/\alpha - \alpha.

A :class:`SignalModel` holds, per category, the DSCB parameters at one or more Higgs
masses and the expected signal cross-section in the category (pb); between the masses
every parameter is interpolated linearly in :math:`m_H`. With one mass point the shape
moves with :math:`m_H`: :math:`\mu_{CB} - m_H` is kept and :math:`\sigma_{CB}` scales
like :math:`m_H` (the muon momentum resolution).

Example:
    >>> model = SignalModel.default(["central_lowpt"])
    >>> p = model.at("central_lowpt", 127.0)
    >>> round(p.mean, 3), round(p.sigma, 4)
    (126.9, 2.54)
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from .exceptions import ConfigError, EmptySelectionError, FitError, MissingBranchError, MissingInputError

__all__ = [
    "DSCB",
    "SignalModel",
    "dscb",
    "dscb_bin_fractions",
    "fit_signal_samples",
]


def dscb(m: Any, mean: float, sigma: float, alpha_lo: float, n_lo: float, alpha_hi: float, n_hi: float) -> np.ndarray:
    """The (unnormalised) double-sided Crystal Ball at masses ``m`` (GeV), as ``RooCrystalBall``.

    Example:
        >>> float(dscb(125.0, 125.0, 2.5, 1.5, 3.0, 1.6, 10.0))
        1.0
    """
    t = (np.asarray(m, dtype=np.float64) - mean) / sigma
    # A (B -+ t)^-n in log form, A = (n/a)^n exp(-a^2/2), B = n/a - a: stable for n ~ 100 and more
    with np.errstate(all="ignore"):
        left = np.exp(-0.5 * alpha_lo**2 - n_lo * np.log1p(-(alpha_lo + t) * alpha_lo / n_lo))
        right = np.exp(-0.5 * alpha_hi**2 - n_hi * np.log1p((t - alpha_hi) * alpha_hi / n_hi))
        return np.where(t < -alpha_lo, left, np.where(t > alpha_hi, right, np.exp(-0.5 * t * t)))


@dataclass(frozen=True)
class DSCB:
    """Double-sided Crystal Ball parameters (GeV for ``mean`` and ``sigma``)."""

    mean: float
    sigma: float
    alpha_lo: float
    n_lo: float
    alpha_hi: float
    n_hi: float

    def __post_init__(self) -> None:
        if not (self.sigma > 0 and self.alpha_lo > 0 and self.alpha_hi > 0 and self.n_lo > 1 and self.n_hi > 1):
            raise ConfigError(f"invalid DSCB parameters {self}: need sigma, alpha > 0 and n > 1")

    def __call__(self, m: Any) -> np.ndarray:
        return dscb(m, self.mean, self.sigma, self.alpha_lo, self.n_lo, self.alpha_hi, self.n_hi)


def dscb_bin_fractions(shape: DSCB, edges: np.ndarray) -> np.ndarray:
    """Fraction of the signal in each bin, normalised to the bins' sum (two-node Gauss-Legendre).

    The fits normalise the signal the same way, so a fitted yield is the number of
    signal events inside the binned range.
    """
    from .functions import gauss_legendre_nodes

    lo, hi = gauss_legendre_nodes(edges)
    v = 0.5 * (shape(lo) + shape(hi)) * np.diff(edges)
    return v / v.sum()


_KEYS = ("mean", "sigma", "alpha_lo", "n_lo", "alpha_hi", "n_hi")


@dataclass
class SignalModel:
    r"""DSCB parameters per category at one or more Higgs masses, and signal cross-sections.

    Args:
        points: ``{category: {m_H: DSCB}}``.
        sigma_pb: ``{category: {m_H: cross-section x efficiency into the category, pb}}``
            (optional: then :math:`S_{expected}` is unknown).
        source: where the numbers come from (``"configuration"``, file names...).
    """

    points: dict[str, dict[float, DSCB]]
    sigma_pb: dict[str, dict[float, float]] = field(default_factory=dict)
    source: str = "configuration"

    @classmethod
    def default(cls, categories: Sequence[str], *, mh: float = 125.0) -> "SignalModel":
        r"""Placeholder shapes from physics.md section 4 (recalled numbers; fit a ggH sample for real work).

        :math:`\sigma_{CB}` = 2.5 GeV for categories whose name starts with ``central``,
        3.1 GeV otherwise; :math:`\mu_{CB} = m_H - 0.1` GeV; tails
        :math:`\alpha_L = 1.5, n_L = 3, \alpha_H = 1.6, n_H = 10`. No cross-sections.
        """
        pts = {c: {float(mh): DSCB(mh - 0.1, 2.5 if c.startswith("central") else 3.1, 1.5, 3.0, 1.6, 10.0)}
               for c in categories}
        return cls(pts, {}, "configuration (dyroot defaults, physics.md section 4)")

    @property
    def categories(self) -> list[str]:
        return list(self.points)

    def _check(self, category: str) -> dict[float, DSCB]:
        if category not in self.points:
            raise MissingBranchError("signal category", category, self.points, self.source)
        return self.points[category]

    def at(self, category: str, mh: float) -> DSCB:
        """The DSCB of ``category`` at Higgs mass ``mh`` (GeV), interpolated linearly."""
        pts = self._check(category)
        masses = sorted(pts)
        if len(masses) == 1:
            m0 = masses[0]
            p = pts[m0]
            return replace(p, mean=p.mean + (mh - m0), sigma=p.sigma * mh / m0)
        i = int(np.clip(np.searchsorted(masses, mh) - 1, 0, len(masses) - 2))
        m0, m1 = masses[i], masses[i + 1]
        w = (mh - m0) / (m1 - m0)
        a, b = pts[m0], pts[m1]
        return DSCB(**{k: (1 - w) * getattr(a, k) + w * getattr(b, k) for k in _KEYS})

    def expected_sigma_pb(self, category: str, mh: float) -> float | None:
        """Signal cross-section x efficiency into ``category`` at ``mh`` (pb), or ``None``."""
        xs = self.sigma_pb.get(category)
        if not xs:
            return None
        masses = sorted(xs)
        return float(np.interp(mh, masses, [xs[k] for k in masses]))

    def relative_resolution(self, category: str, mh: float = 125.0) -> float:
        r""":math:`\sigma_{CB}/m_H`: the category's mass resolution (used by the Drell-Yan core)."""
        return self.at(category, mh).sigma / mh

    # ------------------------------------------------------------------ (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "dyroot-signal-model", "source": self.source,
            "categories": {c: {"points": [{"mh": mh, **asdict(p)} for mh, p in sorted(pts.items())],
                               "sigma_pb": [{"mh": mh, "value": v} for mh, v in sorted(self.sigma_pb.get(c, {}).items())]}
                           for c, pts in self.points.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SignalModel":
        """Read :meth:`to_dict`'s format (a JSON configuration).

        Raises:
            ConfigError: for a malformed record.
        """
        try:
            pts = {c: {float(p["mh"]): DSCB(**{k: float(p[k]) for k in _KEYS}) for p in v["points"]}
                   for c, v in d["categories"].items()}
            xs = {c: {float(p["mh"]): float(p["value"]) for p in v.get("sigma_pb", [])} for c, v in d["categories"].items()}
        except (KeyError, TypeError) as err:
            raise ConfigError(f"signal model: missing or malformed entry ({err}); expected "
                              '{"categories": {name: {"points": [{"mh", "mean", "sigma", "alpha_lo", "n_lo", '
                              '"alpha_hi", "n_hi"}], "sigma_pb": [{"mh", "value"}]}}}') from err
        if not pts or any(not v for v in pts.values()):
            raise ConfigError("signal model: every category needs at least one point")
        return cls(pts, {c: v for c, v in xs.items() if v}, str(d.get("source", "configuration")))

    @classmethod
    def read_json(cls, path: str | os.PathLike[str]) -> "SignalModel":
        """Read a JSON signal configuration (:meth:`to_dict` format)."""
        path = pathlib.Path(path)
        if not path.is_file():
            raise MissingInputError(f"signal configuration {path} does not exist")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path} is not JSON ({err})") from err


# ----------------------------------------------------------------------------------------------
# Fitting signal samples (RooFit)


def _sample_mh(path: str, prov: Mapping[str, Any], mh: float | None) -> float:
    if mh is not None:
        return float(mh)
    if prov.get("process") not in (None, "ggH"):
        raise ConfigError(f"{path} is a {prov.get('process')!r} sample, not ggH; pass a ggH sample as the signal")
    if prov.get("mh_gev") is None:
        raise ConfigError(f"{path} does not record its Higgs mass (provenance 'mh_gev'); give it as PATH:MH")
    return float(prov["mh_gev"])


def fit_signal_samples(
    samples: Sequence[str | os.PathLike[str]] | Mapping[float, str | os.PathLike[str]],
    categories: Sequence[str] | None = None, *, fit_range: tuple[float, float] = (110.0, 160.0),
    min_events: int = 50, backend: str = "cpu",
) -> SignalModel:
    r"""Fit a DSCB per category to ggH samples (``dyroot simulate --process ggH``).

    Each sample is an unbinned, weighted maximum-likelihood fit per category
    (``RooCrystalBall``; the binning trap of RooFit does not arise unbinned). The
    category cross-section is :math:`\sum w` of the category's events (pb).

    Args:
        samples: paths (Higgs mass from the provenance's ``mh_gev``, or given as
            ``"path:125.5"``) or ``{m_H: path}``.
        categories: category names in index order (default: the sample's provenance).
        fit_range: the mass window of the fit (GeV).
        min_events: categories with fewer events raise.
        backend: RooFit evaluation backend.

    Returns:
        The fitted :class:`SignalModel`.

    Raises:
        EmptySelectionError: a category has fewer than ``min_events`` events.
        FitError: a fit fails after retries (its result attached).
    """
    from ._optional import import_root
    from .io import read_events, read_provenance

    items: list[tuple[str, float | None]] = []
    if isinstance(samples, Mapping):
        items = [(str(p), float(mh)) for mh, p in samples.items()]
    else:
        for s in samples:
            text = str(s)
            head, _, tail = text.rpartition(":")
            items.append((head, float(tail)) if head and _is_number(tail) else (text, None))
    ROOT = import_root()
    ROOT.RooMsgService.instance().setGlobalKillBelow(ROOT.RooFit.WARNING)
    points: dict[str, dict[float, DSCB]] = {}
    xsec: dict[str, dict[float, float]] = {}
    for path, mh_given in items:
        prov = read_provenance(path)
        mh = _sample_mh(path, prov, mh_given)
        cats = list(categories) if categories is not None else [c["name"] if isinstance(c, dict) else str(c)
                                                                 for c in prov.get("categories", [])]
        if not cats:
            raise ConfigError(f"{path}: no category names; pass categories=[...] in index order")
        ev = read_events(path, category="category")
        for idx, cat in enumerate(cats):
            sel = (ev["category"] == idx) & (ev["mll"] >= fit_range[0]) & (ev["mll"] < fit_range[1])
            n = int(sel.sum())
            if n < min_events:
                raise EmptySelectionError(f"{path}: category {cat!r} has {n} events in {fit_range} GeV "
                                          f"(< {min_events}); simulate more ggH events")
            w = ev["weight"][sel]
            points.setdefault(cat, {})[mh] = _fit_dscb(ROOT, ev["mll"][sel], w, mh, fit_range, backend, f"{cat}_{mh:g}")
            xsec.setdefault(cat, {})[mh] = float(w.sum())
    return SignalModel(points, xsec, "fit to " + ", ".join(p for p, _ in items))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _fit_dscb(ROOT: Any, mll: np.ndarray, w: np.ndarray, mh: float, fit_range: tuple[float, float],
              backend: str, tag: str) -> DSCB:
    m = ROOT.RooRealVar(f"m_{tag}", "m", fit_range[0], fit_range[1])
    wv = ROOT.RooRealVar(f"w_{tag}", "w", 1.0)
    uniform = np.allclose(w, w.mean(), rtol=1e-9)
    arrays = {m.GetName(): np.ascontiguousarray(mll, dtype=np.float64)}
    if not uniform:
        arrays[wv.GetName()] = np.ascontiguousarray(w / w.mean(), dtype=np.float64)
    data = ROOT.RooDataSet.from_numpy(arrays, [m] if uniform else [m, wv], weight_name=None if uniform else wv.GetName())
    par = {
        "mean": ROOT.RooRealVar(f"mean_{tag}", "", mh - 0.1, mh - 3.0, mh + 2.0),
        "sigma": ROOT.RooRealVar(f"sigma_{tag}", "", 2.8, 0.5, 10.0),
        "alpha_lo": ROOT.RooRealVar(f"alo_{tag}", "", 1.5, 0.2, 10.0),
        "n_lo": ROOT.RooRealVar(f"nlo_{tag}", "", 3.0, 1.01, 200.0),
        "alpha_hi": ROOT.RooRealVar(f"ahi_{tag}", "", 1.6, 0.2, 10.0),
        "n_hi": ROOT.RooRealVar(f"nhi_{tag}", "", 10.0, 1.01, 200.0),
    }
    pdf = ROOT.RooCrystalBall(f"dscb_{tag}", "", m, par["mean"], par["sigma"], par["alpha_lo"], par["n_lo"],
                              par["alpha_hi"], par["n_hi"])
    starts = [{}, {"n_lo": 10.0, "n_hi": 20.0}, {"alpha_lo": 1.0, "alpha_hi": 1.0, "n_lo": 5.0, "n_hi": 5.0}]
    last = None
    for attempt, start in enumerate(starts):
        for k, v in par.items():
            v.setVal({"mean": mh - 0.1, "sigma": 2.8, "alpha_lo": 1.5, "n_lo": 3.0, "alpha_hi": 1.6, "n_hi": 10.0}[k])
        for k, v in start.items():
            par[k].setVal(v)
        res = pdf.fitTo(data, Save=True, PrintLevel=-1, Strategy=1 if attempt == 0 else 2, EvalBackend=backend,
                        SumW2Error=False if uniform else True, Minimizer=("Minuit2", "migrad"))
        last = res
        if res.status() == 0 and res.covQual() >= 2:
            return DSCB(**{k: float(v.getVal()) for k, v in par.items()})
    raise FitError(f"the DSCB fit of {tag} did not converge after {len(starts)} attempts (status {last.status()}, "
                   f"covQual {last.covQual()}); check the sample or give the shape in a JSON configuration", last)
