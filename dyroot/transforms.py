r"""Invertible pre-processing of the flow features: physical units <-> a standardised space.

Pure module (numpy and torch, never ROOT). The flow never sees GeV: each feature of
``FLOW_FEATURES`` is first mapped by a fixed (not learned), smooth, invertible function
to a variable that is close to a standard normal, and the flow only learns what is
left. The map of each feature is one of the :data:`KINDS`:

``probit_power`` (the mass)
    On a window :math:`[lo, hi]` the Drell-Yan spectrum falls roughly as a power law
    :math:`d\sigma/dm \propto m^{-k}`. Its probability integral transform

    .. math:: u = \frac{m^{1-k} - lo^{1-k}}{hi^{1-k} - lo^{1-k}}

    is uniform for an exact power law, and :math:`y = \Phi^{-1}(u)` is then an exact
    standard normal. ``k`` is fitted to the weighted training sample (maximum
    likelihood), so the flow learns only the small deviations from the power law (the
    Z tail, the acceptance). The inverse, :math:`m = (lo^{1-k} + \Phi(y)\,(hi^{1-k} -
    lo^{1-k}))^{1/(1-k)}`, always lands inside :math:`[lo, hi]`: the window edges are
    exact, never blurred. :math:`\Phi(y) = (1 + \mathrm{erf}(y/\sqrt 2))/2`.
``probit`` (bounded variables: ``costheta`` in [-1, 1], ``phi_cs`` in [-pi, pi])
    The same with :math:`k = 0` (a flat reference density).
``log`` (``ptll``)
    :math:`y = (\log(x + c) - \mu)/\sigma`; the inverse is positive by construction.
``standard`` (``yll``)
    :math:`y = (x - \mu)/\sigma`.
``probit_y`` (a preset)
    As ``probit``, with ``yll`` also a bounded ``probit`` within the muons' :math:`|\eta|`
    cut (the dimuon rapidity lies between the muons'). Measured on 10^6 events
    (``benchmarks/fidelity.py --preprocessing probit_y``): y_mumu chi2/ndf 2.0 against 1.6
    for ``standard``, so it is not the default; kept for comparisons.
``logit_power`` / ``logit``
    As the ``probit`` kinds with the logistic function in place of :math:`\Phi`
    (scaled by :math:`\pi/\sqrt 3` to unit variance); kept for comparisons.

The inverse (standardised -> physical) is part of the exported sampling graph, so it
uses only operators that SOFIE evaluates correctly (Erf, Sigmoid, Pow, Exp, Mul, Add,
Clip, Slice, Concat); the forward direction runs only in torch during training and may
use anything (``torch.special.ndtri``).

The presets of :func:`fit_preprocessing` are ``"probit"`` (the default above),
``"logit"``, and ``"none"`` (every feature ``standard``: the flow sees the raw,
standardised variables).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> m = 100.0 * (1.0 - rng.uniform(size=10000)) ** (-1.0 / 3.0)  # m^-4 above 100 GeV
    >>> spec = fit_feature("mll", m[m < 200.0], kind="probit_power", bounds=(100.0, 200.0))
    >>> round(spec.params["k"], 1)
    4.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .exceptions import InputError
from .features import FLOW_FEATURES

__all__ = [
    "KINDS",
    "PRESETS",
    "FeatureTransform",
    "fit_feature",
    "fit_preprocessing",
    "make_preprocessing",
]

#: The transform kinds a feature may use.
KINDS = ("probit_power", "probit", "logit_power", "logit", "log", "standard")

#: Named presets: the kind of each feature of ``FLOW_FEATURES``.
PRESETS: dict[str, dict[str, str]] = {
    "probit": {"mll": "probit_power", "ptll": "log", "yll": "standard", "costheta": "probit", "phi_cs": "probit"},
    "probit_y": {"mll": "probit_power", "ptll": "log", "yll": "probit", "costheta": "probit", "phi_cs": "probit"},
    "logit": {"mll": "logit_power", "ptll": "log", "yll": "standard", "costheta": "logit", "phi_cs": "logit"},
    "none": {name: "standard" for name in FLOW_FEATURES},
}

#: Default bounds of the bounded features.
_DEFAULT_BOUNDS = {"costheta": (-1.0, 1.0), "phi_cs": (-math.pi, math.pi)}

#: Clamp of u inside (0, 1) before Phi^-1 / logit in the forward direction.
_U_EPS = 1e-7

_LOGISTIC_SCALE = math.pi / math.sqrt(3.0)


@dataclass(frozen=True)
class FeatureTransform:
    """The fixed map of one feature; ``params`` holds its constants (JSON-able floats).

    Args:
        name: the feature (an entry of ``FLOW_FEATURES``).
        kind: one of :data:`KINDS`.
        params: ``lo``, ``hi``, ``k`` for the ``*_power`` kinds, ``lo``, ``hi`` for
            ``probit``/``logit``, ``offset``, ``mean``, ``std`` for ``log``, ``mean``,
            ``std`` for ``standard``; values in the feature's units (GeV for masses
            and momenta).
    """

    name: str
    kind: str
    params: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dictionary (the bundle stores it)."""
        return {"name": self.name, "kind": self.kind, "params": {k: float(v) for k, v in self.params.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FeatureTransform":
        """The inverse of :meth:`to_dict`."""
        if d.get("kind") not in KINDS:
            msg = f"unknown pre-processing kind {d.get('kind')!r} for {d.get('name')!r}; known kinds: {', '.join(KINDS)}"
            raise InputError(msg)
        return cls(str(d["name"]), str(d["kind"]), {k: float(v) for k, v in d["params"].items()})


# ----------------------------------------------------------------------------------------------
# Fitting the constants (numpy, weighted)


def _wstats(x: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    sw = float(np.sum(w))
    mean = float(np.sum(w * x) / sw)
    var = float(np.sum(w * (x - mean) ** 2) / sw)
    return mean, math.sqrt(max(var, 1e-24))


def _fit_power(x: np.ndarray, w: np.ndarray, lo: float, hi: float) -> float:
    """Weighted maximum-likelihood exponent k of a density proportional to m^-k on [lo, hi]."""
    from scipy.optimize import minimize_scalar

    logx = np.log(x)
    sw = float(np.sum(w))
    mean_log = float(np.sum(w * logx) / sw)
    llo, lhi = math.log(lo), math.log(hi)

    def nll(k: float) -> float:
        p = 1.0 - k
        if abs(p) < 1e-9:
            lognorm = math.log(lhi - llo)
        else:  # log |(hi^p - lo^p)/p|, computed stably
            lognorm = p * llo + math.log(abs(math.expm1(p * (lhi - llo)) / p))
        return k * mean_log + lognorm

    res = minimize_scalar(nll, bounds=(-5.0, 15.0), method="bounded", options={"xatol": 1e-6})
    k = float(res.x)
    if abs(1.0 - k) < 1e-3:  # the map divides by 1 - k: step off k = 1 (a negligible change of shape)
        k = 1.0 - 1e-3
    return k


def fit_feature(
    name: str,
    x: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    kind: str,
    bounds: tuple[float, float] | None = None,
    log_offset: float = 0.0,
) -> FeatureTransform:
    """Fit the constants of one feature's transform to a (weighted) sample.

    Negative weights are used as they are: the weighted moments and the weighted
    likelihood of the power law stay unbiased; only a non-positive total is refused.

    Args:
        name: the feature name.
        x: its values (units of the feature, GeV for masses).
        weights: per-event weights (``None``: unit weights).
        kind: one of :data:`KINDS`.
        bounds: ``(lo, hi)`` for the bounded kinds; every value must lie inside.
        log_offset: ``c`` in ``log(x + c)`` for the ``log`` kind (GeV).

    Returns:
        The fitted :class:`FeatureTransform`.

    Raises:
        InputError: unknown kind, values outside the bounds or not positive for
            ``log``, or a non-positive sum of weights.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    if kind not in KINDS:
        msg = f"unknown pre-processing kind {kind!r} for {name!r}; choose one of {', '.join(KINDS)}"
        raise InputError(msg)
    if x.size == 0 or not np.sum(w) > 0:
        msg = f"cannot fit the pre-processing of {name!r}: no events or a non-positive sum of weights"
        raise InputError(msg)
    if kind in ("probit_power", "probit", "logit_power", "logit"):
        if bounds is None:
            bounds = _DEFAULT_BOUNDS.get(name)
        if bounds is None:
            msg = f"the {kind!r} transform of {name!r} needs bounds (lo, hi); pass bounds= or set the training mll range"
            raise InputError(msg)
        lo, hi = float(bounds[0]), float(bounds[1])
        outside = int(np.count_nonzero((x < lo) | (x > hi)))
        if outside:
            msg = (f"{outside} values of {name!r} lie outside its pre-processing bounds [{lo}, {hi}]; "
                   "apply the training pre-selection first or widen the bounds")
            raise InputError(msg)
        params = {"lo": lo, "hi": hi}
        if kind.endswith("_power"):
            if lo <= 0:
                msg = f"the power-law transform of {name!r} needs lo > 0 (got {lo})"
                raise InputError(msg)
            params["k"] = _fit_power(x, w, lo, hi)
        return FeatureTransform(name, kind, params)
    if kind == "log":
        if np.any(x + log_offset <= 0):
            msg = (f"the log transform of {name!r} needs x + offset > 0; found {np.min(x)} "
                   f"with offset {log_offset}: set a positive log offset")
            raise InputError(msg)
        mean, std = _wstats(np.log(x + log_offset), w)
        return FeatureTransform(name, kind, {"offset": float(log_offset), "mean": mean, "std": std})
    mean, std = _wstats(x, w)
    return FeatureTransform(name, "standard", {"mean": mean, "std": std})


def fit_preprocessing(
    features: Mapping[str, np.ndarray],
    weights: np.ndarray | None = None,
    *,
    preset: str | Mapping[str, str] = "probit",
    mll_bounds: tuple[float, float] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    names: Sequence[str] = FLOW_FEATURES,
) -> list[FeatureTransform]:
    """Fit the transforms of every feature.

    Args:
        features: ``{name: values}`` (physical units).
        weights: per-event weights.
        preset: a name of :data:`PRESETS` or a ``{feature: kind}`` mapping.
        mll_bounds: the mass window in GeV (the training pre-selection); required by
            the power-law kinds.
        bounds: ``{feature: (lo, hi)}`` for other bounded features (e.g. ``yll`` within
            the muons' :math:`|\\eta|` cut, for the ``probit_y`` preset).
        names: the features, in order.

    Returns:
        One :class:`FeatureTransform` per feature, in ``names`` order.

    Raises:
        InputError: an unknown preset, or see :func:`fit_feature`.
    """
    if isinstance(preset, str):
        if preset not in PRESETS:
            msg = f"unknown pre-processing preset {preset!r}; choose one of {', '.join(PRESETS)}"
            raise InputError(msg)
        kinds = PRESETS[preset]
    else:
        kinds = dict(preset)
    out = []
    for name in names:
        kind = kinds.get(name, "standard")
        bounds_ = mll_bounds if name == "mll" else (bounds or {}).get(name)
        out.append(fit_feature(name, features[name], weights, kind=kind, bounds=bounds_))
    return out


# ----------------------------------------------------------------------------------------------
# The torch module


def make_preprocessing(specs: Sequence[FeatureTransform]) -> Any:
    """Build the torch module of a list of transforms (see :class:`_Preprocessing`)."""
    return _module_class()(specs)


_CLASS: Any = None


def _module_class() -> Any:
    """Define the torch module lazily, so that importing this module never imports torch."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    import torch
    from torch import nn

    class Preprocessing(nn.Module):
        """Fixed, invertible pre-processing of the flow features (no trainable parameter).

        ``forward(x) -> (y, logdet)`` maps physical features ``[N, D]`` to the
        standardised space and returns :math:`\\log|\\det \\partial y/\\partial x|`
        per event; ``inverse(y)`` maps back with ONNX/SOFIE-safe operators only.
        """

        def __init__(self, specs: Sequence[FeatureTransform]) -> None:
            super().__init__()
            self.specs = [FeatureTransform.from_dict(s.to_dict()) for s in specs]
            # Python floats (double), baked into the exported graph as constants.
            self.consts = [self._constants(s) for s in self.specs]

        @staticmethod
        def _constants(s: FeatureTransform) -> list[float]:
            p = s.params
            if s.kind.endswith("_power"):
                e = 1.0 - p["k"]
                a, b = p["lo"] ** e, p["hi"] ** e
                return [e, a, b - a, 1.0 / e]
            if s.kind in ("probit", "logit"):
                return [p["lo"], p["hi"] - p["lo"]]
            if s.kind == "log":
                return [p["offset"], p["mean"], p["std"]]
            return [p["mean"], p["std"]]

        # -- training direction (any torch op) -------------------------------------------
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            cols, logdet = [], torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
            for i, s in enumerate(self.specs):
                c = self.consts[i]
                v = x[:, i]
                if s.kind.endswith("_power") or s.kind in ("probit", "logit"):
                    if s.kind.endswith("_power"):
                        e, a, d = c[0], c[1], c[2]
                        u = (v.pow(e) - a) / d
                        logdet = logdet + torch.log(torch.abs(v.pow(e - 1.0) * (e / d)))
                    else:
                        u = (v - c[0]) / c[1]
                        logdet = logdet - math.log(c[1])
                    u = u.clamp(_U_EPS, 1.0 - _U_EPS)
                    if s.kind.startswith("probit"):
                        y = torch.special.ndtri(u)
                        logdet = logdet + 0.5 * y * y + 0.5 * math.log(2.0 * math.pi)  # dy/du = 1/phi(y)
                    else:
                        y = torch.log(u / (1.0 - u)) / _LOGISTIC_SCALE
                        logdet = logdet - torch.log(u * (1.0 - u)) - math.log(_LOGISTIC_SCALE)
                elif s.kind == "log":
                    t = torch.log(v + c[0])
                    y = (t - c[1]) / c[2]
                    logdet = logdet - t - math.log(c[2])
                else:
                    y = (v - c[0]) / c[1]
                    logdet = logdet - math.log(c[1])
                cols.append(y)
            return torch.stack(cols, dim=-1), logdet

        # -- sampling direction (ONNX/SOFIE-safe) ----------------------------------------
        def inverse(self, y: torch.Tensor) -> torch.Tensor:
            cols = []
            for i, s in enumerate(self.specs):
                c = self.consts[i]
                v = y[:, i : i + 1]
                if s.kind.endswith("_power") or s.kind in ("probit", "logit"):
                    if s.kind.startswith("probit"):
                        u = 0.5 + 0.5 * torch.special.erf(v * (1.0 / math.sqrt(2.0)))
                    else:
                        u = torch.sigmoid(v * _LOGISTIC_SCALE)
                    if s.kind.endswith("_power"):
                        e, a, d, inv_e = c
                        x = torch.pow(u * d + a, inv_e)
                    else:
                        x = u * c[1] + c[0]
                    # float32 rounding may step a few ulp outside: the window edges are exact
                    x = torch.clamp(x, s.params["lo"], s.params["hi"])
                elif s.kind == "log":
                    x = torch.exp(v * c[2] + c[1]) - c[0] if c[0] != 0.0 else torch.exp(v * c[2] + c[1])
                else:
                    x = v * c[1] + c[0]
                cols.append(x)
            return torch.cat(cols, dim=-1)

    _CLASS = Preprocessing
    return _CLASS
