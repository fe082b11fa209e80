r"""Coupling normalizing flows whose sampling graph runs in ROOT SOFIE.

Pure module (torch, never ROOT). A :class:`Flow` maps standard-normal noise
:math:`z \in \mathbb R^D` to the standardised features :math:`y` (see
:mod:`dyroot.transforms`) through ``layers`` coupling transforms, optionally
conditioned on a context vector :math:`c` (a one-hot category, or user variables):

.. math:: y = g_{L-1} \circ \dots \circ g_0(z; c), \qquad
          \log p(y \mid c) = \log \mathcal N(z) - \sum_l \log|\det \partial g_l / \partial z_l|.

The mass comes first (``marginal=0``, the default): its distribution is modelled by
its own one-dimensional spline (32 bins; free parameters, or an MLP of :math:`c`),
and every coupling layer is conditioned on it and transforms only the other
coordinates, so :math:`p(y \mid c) = p(m \mid c)\, p(y_{\ne m} \mid m, c)`. The
:math:`m_{\mu\mu}` spectrum, the quantity the project is judged on, is then learned
directly by a 1-D density instead of emerging from the composition of all layers:
on 10^6 training events this removed a 2-3 % deficit at 145-160 GeV that the plain
coupling flows (4 or 6 layers) had (``benchmarks/fidelity.py``).

Each coupling transforms a subset :math:`A_l` of the coordinates, element-wise and
monotonically, with parameters given by an MLP (the conditioner) of the other
coordinates and of :math:`c`; the subsets alternate (layer :math:`2p` transforms
:math:`A_p`, layer :math:`2p+1` its complement) and are chosen from binary codes of
the coordinates, so that every pair of coordinates is split by some pair of layers
(given ``layers >= 2 * ceil(log2(D + 1))``).

Two element-wise transforms:

``spline`` (default)
    Monotonic rational-quadratic splines with ``bins`` bins on :math:`[-B, B]`,
    identity outside (Durkan et al., "Neural Spline Flows", arXiv:1906.04032;
    as zuko's ``NSF``). The sampling direction evaluates the rational function (no
    square root); the bin is found with comparisons against the knots and a one-hot
    mask, and the bin's parameters are picked by a masked sum (no Gather,
    searchsorted, Where or ScatterND, which SOFIE evaluates wrongly). The density
    direction (training) solves the quadratic in torch.
``affine``
    :math:`y = z\,e^{s} + t` with :math:`s` bounded by a scaled tanh (RealNVP,
    arXiv:1605.08803).

Coordinate selection and merging are Slice + Concat, the knots a Concat of slices of
the cumulative widths (no indexing, no Pad, no shape-dependent constants), so the
exported graph is Gemm, Relu, Softmax, Softplus, CumSum, comparisons + Cast,
ReduceSum, Clip, Slice, Concat, Reshape and arithmetic. (Products with constant 0/1
matrices give the same numbers, but tiny MatMuls are slow in BLAS.)

The last layer of every conditioner starts at zero: a new flow is the identity map.

References:
    C. Durkan, A. Bekasov, I. Murray, G. Papamakarios, "Neural Spline Flows",
    NeurIPS 2019, arXiv:1906.04032.

Example:
    >>> import torch
    >>> flow = build_flow(FlowConfig(features=5, layers=2, hidden=16, bins=4))
    >>> z = torch.randn(3, 5)
    >>> y = flow.generate(z)
    >>> back, logdet = flow.normalise(y)
    >>> bool(torch.allclose(back, z, atol=1e-5))
    True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from .exceptions import ConfigError

__all__ = ["ARCHITECTURES", "FlowConfig", "ContextSpec", "coupling_masks", "build_flow", "build_model"]

#: The element-wise transforms a coupling layer can use.
ARCHITECTURES = ("spline", "affine")


@dataclass(frozen=True)
class FlowConfig:
    r"""Hyper-parameters of a :class:`Flow` (all JSON-able; stored in the bundle).

    Args:
        features: the dimension ``D`` of the flow (5 for ``FLOW_FEATURES``).
        context: the dimension ``C`` of the context vector (0: unconditional).
        architecture: ``"spline"`` or ``"affine"``.
        layers: number of coupling layers.
        hidden: width of the conditioner's hidden layers.
        depth: number of hidden layers of each conditioner.
        bins: spline bins.
        bound: the spline acts on ``[-bound, bound]``, identity outside.
        min_bin: smallest bin width and height, as a fraction of ``2 * bound / bins``.
        min_derivative: smallest knot derivative of the splines.
        scale_cap: bound of the log-scale of the affine couplings.
        marginal: the coordinate (0 = mll) whose distribution is modelled first, by its
            own spline (of the context only), and conditions every coupling layer, which
            transform the other coordinates: :math:`p(x) = p(x_m)\,p(x_{\ne m} \mid x_m)`.
            ``None``: every coordinate goes through the couplings.
        marginal_bins: bins of that spline.
        masks: the transformed coordinates of each layer; ``None`` computes them
            (:func:`coupling_masks`, over the coordinates other than ``marginal``).
    """

    features: int = 5
    context: int = 0
    architecture: str = "spline"
    layers: int = 6
    hidden: int = 64
    depth: int = 2
    bins: int = 8
    bound: float = 5.0
    min_bin: float = 1e-2
    min_derivative: float = 1e-3
    scale_cap: float = 3.0
    marginal: int | None = 0
    marginal_bins: int = 32
    masks: tuple[tuple[int, ...], ...] | None = field(default=None)

    def __post_init__(self) -> None:
        problems = []
        if self.architecture not in ARCHITECTURES:
            problems.append(f"architecture {self.architecture!r} is unknown; choose one of {', '.join(ARCHITECTURES)}")
        for name in ("features", "layers", "hidden", "depth", "bins"):
            if int(getattr(self, name)) < (2 if name in ("features", "bins") else 1):
                problems.append(f"{name} = {getattr(self, name)} is too small")
        if self.context < 0:
            problems.append(f"context = {self.context} must be >= 0")
        if not self.bound > 0:
            problems.append(f"bound = {self.bound} must be > 0")
        if not 0 < self.min_bin < 1:
            problems.append(f"min_bin = {self.min_bin} must be in (0, 1)")
        if self.marginal is not None and not 0 <= int(self.marginal) < int(self.features):
            problems.append(f"marginal = {self.marginal} is not a coordinate index (0 .. {self.features - 1}) or None")
        if self.marginal is not None and self.features < 3:
            problems.append("a separate marginal needs at least 3 features")
        if self.marginal_bins < 2:
            problems.append(f"marginal_bins = {self.marginal_bins} is too small")
        if problems:
            raise ConfigError(problems)
        others = [i for i in range(self.features) if i != self.marginal]
        if self.masks is None:
            masks = tuple(tuple(others[i] for i in m) for m in coupling_masks(len(others), self.layers))
            object.__setattr__(self, "masks", masks)
        else:
            masks = tuple(tuple(int(i) for i in m) for m in self.masks)
            if len(masks) != self.layers or any(not m or len(m) >= len(others) + (self.marginal is not None)
                                                or not set(m) <= set(others) for m in masks):
                msg = (f"masks must list, for each of the {self.layers} layers, a proper non-empty subset of the "
                       f"coordinates {others}")
                raise ConfigError(msg)
            object.__setattr__(self, "masks", masks)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dictionary."""
        d = asdict(self)
        d["masks"] = [list(m) for m in self.masks or ()]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FlowConfig":
        """The inverse of :meth:`to_dict`; unknown keys are an error."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown flow settings {unknown}; known: {sorted(known)}")
        d = dict(d)
        if d.get("masks") is not None:
            d["masks"] = tuple(tuple(m) for m in d["masks"])
        return cls(**d)


def coupling_masks(features: int, layers: int) -> tuple[tuple[int, ...], ...]:
    """The coordinates transformed by each coupling layer.

    Coordinate ``i`` gets the binary code ``i + 1``; the pair of layers ``(2p, 2p+1)``
    transforms the coordinates whose bit ``p mod P`` is set, then the others
    (``P = ceil(log2(features + 1))``). Distinct codes differ in some bit, so with
    ``layers >= 2P`` every coordinate is transformed conditioned on every other.

    Example:
        >>> coupling_masks(5, 6)
        ((0, 2, 4), (1, 3), (1, 2), (0, 3, 4), (3, 4), (0, 1, 2))
    """
    nbits = max(1, math.ceil(math.log2(features + 1)))
    out = []
    for layer in range(layers):
        bit = (layer // 2) % nbits
        chosen = tuple(i for i in range(features) if ((i + 1) >> bit) & 1)
        if layer % 2:
            chosen = tuple(i for i in range(features) if i not in chosen)
        out.append(chosen)
    return tuple(out)


@dataclass(frozen=True)
class ContextSpec:
    """What the context vector of a conditional flow holds.

    Args:
        kind: ``"category"`` (a one-hot vector of the category index under the
            bundle's ``CategoryScheme``) or ``"variables"`` (user event columns,
            fed in their own units and standardised inside the model).
        names: the category names, or the variable names, in context order.
        fractions: for ``"category"``, the weighted fraction of the training
            sample in each category (what a generator draws the category from).
        mean, std: for ``"variables"``, the standardisation constants.
    """

    kind: str
    names: tuple[str, ...]
    fractions: tuple[float, ...] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("category", "variables"):
            raise ConfigError(f"context kind {self.kind!r} is unknown; choose 'category' or 'variables'")
        if not self.names:
            raise ConfigError("a context needs at least one category or variable name")
        n = len(self.names)
        for name in ("fractions", "mean", "std"):
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise ConfigError(f"context {name} has {len(v)} entries for {n} names")
        if self.kind == "variables" and (self.mean is None or self.std is None):
            raise ConfigError("a 'variables' context needs its mean and std")

    @property
    def dim(self) -> int:
        """The length ``C`` of the context vector."""
        return len(self.names)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dictionary."""
        d: dict[str, Any] = {"kind": self.kind, "names": list(self.names), "dim": self.dim}
        for name in ("fractions", "mean", "std"):
            v = getattr(self, name)
            if v is not None:
                d[name] = [float(x) for x in v]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ContextSpec":
        """The inverse of :meth:`to_dict`."""
        def opt(name: str) -> tuple[float, ...] | None:
            return None if d.get(name) is None else tuple(float(x) for x in d[name])

        return cls(str(d["kind"]), tuple(str(x) for x in d["names"]), opt("fractions"), opt("mean"), opt("std"))


def build_flow(config: FlowConfig) -> Any:
    """A new :class:`Flow` (a ``torch.nn.Module``) for ``config``."""
    return _classes()["Flow"](config)


def build_model(config: FlowConfig, preprocessing: Sequence[Any], context: ContextSpec | None = None) -> Any:
    """A new :class:`FlowModel`: noise (+ context) -> physical features.

    Args:
        config: the flow hyper-parameters; ``config.context`` must equal the context
            dimension.
        preprocessing: the :class:`dyroot.transforms.FeatureTransform` of each feature.
        context: what the context holds (``None``: unconditional).

    Raises:
        ConfigError: the context dimension and ``config.context`` disagree.
    """
    if (context.dim if context else 0) != config.context:
        msg = f"the flow expects a context of dimension {config.context}, the context spec has {context.dim if context else 0}"
        raise ConfigError(msg)
    return _classes()["FlowModel"](config, preprocessing, context)


_CLASSES: dict[str, Any] = {}


def _classes() -> dict[str, Any]:  # noqa: C901 - the torch classes, defined once, lazily
    """Define the torch modules on first use, so that importing this module never imports torch."""
    if _CLASSES:
        return _CLASSES
    import torch
    import torch.nn.functional as F
    from torch import nn

    def _runs(idx: Sequence[int]) -> list[tuple[int, int]]:
        """Consecutive runs [a, b) of a list of column indices (fewer Slice nodes)."""
        out: list[tuple[int, int]] = []
        for i in idx:
            if out and out[-1][1] == i:
                out[-1] = (out[-1][0], i + 1)
            else:
                out.append((i, i + 1))
        return out

    def _columns(v: torch.Tensor, runs: list[tuple[int, int]]) -> torch.Tensor:
        parts = [v[:, a:b] for a, b in runs]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    class Conditioner(nn.Module):
        """An MLP with ReLU; its last layer starts at zero."""

        def __init__(self, n_in: int, n_out: int, hidden: int, depth: int) -> None:
            super().__init__()
            mods: list[nn.Module] = []
            for k in range(depth):
                mods += [nn.Linear(n_in if k == 0 else hidden, hidden), nn.ReLU()]
            last = nn.Linear(hidden, n_out)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            mods.append(last)
            self.net = nn.Sequential(*mods)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

    class SplineBase(nn.Module):
        """Monotonic rational-quadratic spline pieces on [-B, B] with ``bins`` bins."""

        def _setup_spline(self, config: FlowConfig, bins: int) -> None:
            self.bins = int(bins)
            self.bound = float(config.bound)
            self.min_bin = float(config.min_bin)
            self.min_d = config.min_derivative
            self.d_shift = math.log(math.expm1(1.0 - config.min_derivative))  # raw 0 -> derivative 1
            # added to the knots: sentinels -(B+1), B+1 at the ends, for the bin search
            sentinel = torch.zeros(self.bins + 1)
            sentinel[0], sentinel[self.bins] = -1.0, 1.0
            self.register_buffer("sentinel", sentinel, persistent=False)

        def _knots(self, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
            """Knots [M, K+1] (x, y, x with sentinels, y with sentinels) and derivatives [M, K+1]."""
            k = self.bins
            mb = self.min_bin
            w = mb / k + (1.0 - mb) * torch.softmax(h[:, :k], dim=-1)
            hh = mb / k + (1.0 - mb) * torch.softmax(h[:, k : 2 * k], dim=-1)
            cw, ch = torch.cumsum(w, dim=-1), torch.cumsum(hh, dim=-1)
            # knots x_0..x_K = -B, -B + 2B cw_0, ..., -B + 2B cw_{K-2}, B (the ends exact), by Slice + Concat
            zero = cw[:, :1] * 0.0
            one = zero + 1.0
            two_b = 2.0 * self.bound
            xk = torch.cat([zero, cw[:, : k - 1], one], dim=-1) * two_b - self.bound
            yk = torch.cat([zero, ch[:, : k - 1], one], dim=-1) * two_b - self.bound
            xs = xk + self.sentinel
            ys = yk + self.sentinel
            dk = torch.cat([one, self.min_d + F.softplus(h[:, 2 * k :] + self.d_shift), one], dim=-1)
            return xk, yk, xs, ys, dk

        def _pick(self, onehot: torch.Tensor, knots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """Left and right knot of the selected bin, as [M, 1]."""
            k = self.bins  # a Python int: no Shape op in the exported graph
            lo = (onehot * knots[:, :k]).sum(dim=-1, keepdim=True)
            hi = (onehot * knots[:, 1:]).sum(dim=-1, keepdim=True)
            return lo, hi

        def _onehot(self, v: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
            ge = (v >= search).to(v.dtype)  # [M, K+1], 1...1 0...0
            k = self.bins
            return ge[:, :k] - ge[:, 1:]

        def _spline_forward(self, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """Sampling direction z -> y on flattened [M, 1] inputs; returns y and log dy/dz."""
            b = self.bound
            xk, yk, xs, _, dk = self._knots(h)
            zc = torch.clamp(z, -b, b)
            oh = self._onehot(zc, xs)
            x0, x1 = self._pick(oh, xk)
            y0, y1 = self._pick(oh, yk)
            d0, d1 = self._pick(oh, dk)
            wk, hk = x1 - x0, y1 - y0
            s = hk / wk
            xi = (zc - x0) / wk
            t = xi * (1.0 - xi)
            den = s + (d1 + d0 - 2.0 * s) * t
            y = y0 + hk * (s * xi * xi + d0 * t) / den + (z - zc)
            deriv = s * s * (d1 * xi * xi + 2.0 * s * t + d0 * (1.0 - xi) * (1.0 - xi)) / (den * den)
            inside = (torch.abs(z) < b).to(z.dtype)
            return y, inside * torch.log(deriv)

        def _spline_inverse(self, y: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """Density direction y -> z (quadratic solve); returns z and log dy/dz (at z)."""
            b = self.bound
            xk, yk, _, ys, dk = self._knots(h)
            yc = torch.clamp(y, -b, b)
            oh = self._onehot(yc, ys)
            x0, x1 = self._pick(oh, xk)
            y0, y1 = self._pick(oh, yk)
            d0, d1 = self._pick(oh, dk)
            wk, hk = x1 - x0, y1 - y0
            s = hk / wk
            dy = yc - y0
            c2 = d1 + d0 - 2.0 * s
            qa = hk * (s - d0) + dy * c2
            qb = hk * d0 - dy * c2
            qc = -s * dy
            disc = torch.clamp(qb * qb - 4.0 * qa * qc, min=0.0)
            xi = (2.0 * qc) / (-qb - torch.sqrt(disc))
            xi = torch.clamp(xi, 0.0, 1.0)
            z = x0 + xi * wk + (y - yc)
            t = xi * (1.0 - xi)
            den = s + c2 * t
            deriv = s * s * (d1 * xi * xi + 2.0 * s * t + d0 * (1.0 - xi) * (1.0 - xi)) / (den * den)
            inside = (torch.abs(y) < b).to(y.dtype)
            return z, inside * torch.log(deriv)

    class Coupling(SplineBase):
        """One coupling layer: coordinates ``mask`` transformed given the others (and the context)."""

        def __init__(self, config: FlowConfig, mask: tuple[int, ...]) -> None:
            super().__init__()
            d = config.features
            self.cfg = config
            self.tr = tuple(mask)
            self.cond = tuple(i for i in range(d) if i not in mask)
            # column selection and merging by Slice + Concat (exact, and cheaper than tiny MatMuls)
            self.tr_runs = _runs(self.tr)
            self.cond_runs = _runs(self.cond)
            order = self.tr + self.cond  # the columns of concat(transformed, conditioning)
            self.merge_runs = _runs([order.index(i) for i in range(d)])
            self.n_tr = len(self.tr)
            self.n_par = 3 * config.bins - 1 if config.architecture == "spline" else 2
            self.conditioner = Conditioner(len(self.cond) + config.context, self.n_tr * self.n_par,
                                           config.hidden, config.depth)
            if config.architecture == "spline":
                self._setup_spline(config, config.bins)

        # ---- the coupling ---------------------------------------------------------------
        def _params(self, v: torch.Tensor, context: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
            x_tr = _columns(v, self.tr_runs)
            x_cond = _columns(v, self.cond_runs)
            inp = x_cond if context is None else torch.cat([x_cond, context], dim=-1)
            return x_tr, x_cond, self.conditioner(inp)

        def _merge(self, t: torch.Tensor, x_cond: torch.Tensor) -> torch.Tensor:
            return _columns(torch.cat([t, x_cond], dim=-1), self.merge_runs)

        def generate(self, z: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
            """Sampling direction: returns the output and log|det| of this layer."""
            z_tr, z_cond, h = self._params(z, context)
            if self.cfg.architecture == "spline":
                y, ld = self._spline_forward(z_tr.reshape(-1, 1), h.reshape(-1, self.n_par))
                y = y.reshape(-1, self.n_tr)
                ld = ld.reshape(-1, self.n_tr)
            else:
                shift = h[:, : self.n_tr]
                log_scale = self.cfg.scale_cap * torch.tanh(h[:, self.n_tr :] * (1.0 / self.cfg.scale_cap))
                y = z_tr * torch.exp(log_scale) + shift
                ld = log_scale
            return self._merge(y, z_cond), ld.sum(dim=-1)

        def normalise(self, y: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
            """Density direction: returns the input and log|det dy/dz| of this layer."""
            y_tr, y_cond, h = self._params(y, context)
            if self.cfg.architecture == "spline":
                z, ld = self._spline_inverse(y_tr.reshape(-1, 1), h.reshape(-1, self.n_par))
                z = z.reshape(-1, self.n_tr)
                ld = ld.reshape(-1, self.n_tr)
            else:
                shift = h[:, : self.n_tr]
                log_scale = self.cfg.scale_cap * torch.tanh(h[:, self.n_tr :] / self.cfg.scale_cap)
                z = (y_tr - shift) * torch.exp(-log_scale)
                ld = log_scale
            return self._merge(z, y_cond), ld.sum(dim=-1)

    class Marginal(SplineBase):
        """The spline of the ``marginal`` coordinate: free parameters, or an MLP of the context."""

        def __init__(self, config: FlowConfig) -> None:
            super().__init__()
            self._setup_spline(config, config.marginal_bins)
            self.index = int(config.marginal or 0)
            d = config.features
            self.before = [(0, self.index)] if self.index > 0 else []
            self.after = [(self.index + 1, d)] if self.index + 1 < d else []
            n_par = 3 * self.bins - 1
            if config.context:
                self.conditioner = Conditioner(config.context, n_par, config.hidden, config.depth)
            else:
                self.theta = nn.Parameter(torch.zeros(n_par))

        def _h(self, v: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
            if context is not None:
                return self.conditioner(context)
            return v * 0.0 + self.theta  # [M, 1] + [P] -> [M, P] (no Expand in the graph)

        def _put(self, full: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
            parts = [full[:, a:b] for a, b in self.before] + [col] + [full[:, a:b] for a, b in self.after]
            return torch.cat(parts, dim=-1)

        def generate(self, z: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
            v = z[:, self.index : self.index + 1]
            y, ld = self._spline_forward(v, self._h(v, context))
            return self._put(z, y), ld[:, 0]

        def normalise(self, y: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
            v = y[:, self.index : self.index + 1]
            z, ld = self._spline_inverse(v, self._h(v, context))
            return self._put(y, z), ld[:, 0]

    class Flow(nn.Module):
        """The flow: noise -> standardised features, and its density.

        Methods: ``generate(z, context)`` (sampling, SOFIE-safe), ``normalise(y,
        context) -> (z, log|det dz/dy|)``, ``log_prob(y, context)``,
        ``sample(n, context)``.
        """

        def __init__(self, config: FlowConfig) -> None:
            super().__init__()
            self.config = config
            self.marginal = Marginal(config) if config.marginal is not None else None
            self.couplings = nn.ModuleList(Coupling(config, m) for m in config.masks or ())

        def _layers(self) -> list[Any]:
            """The transforms in sampling order: the marginal spline, then the couplings."""
            return ([self.marginal] if self.marginal is not None else []) + list(self.couplings)

        def _check_context(self, context: torch.Tensor | None) -> None:
            if self.config.context and context is None:
                msg = f"this flow is conditional: pass a context of shape [N, {self.config.context}]"
                raise ConfigError(msg)
            if not self.config.context and context is not None:
                raise ConfigError("this flow is unconditional: do not pass a context")

        def generate(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
            """Map noise ``z`` [N, D] to standardised features [N, D]."""
            self._check_context(context)
            for c in self._layers():
                z, _ = c.generate(z, context)
            return z

        def generate_with_logdet(self, z: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
            """As :meth:`generate`, also returning log|det dy/dz| per event."""
            self._check_context(context)
            total = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
            for c in self._layers():
                z, ld = c.generate(z, context)
                total = total + ld
            return z, total

        def normalise(self, y: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
            """Map features ``y`` to noise; returns ``(z, log|det dz/dy|)``."""
            self._check_context(context)
            total = torch.zeros(y.shape[0], dtype=y.dtype, device=y.device)
            for c in reversed(self._layers()):
                y, ld = c.normalise(y, context)
                total = total - ld
            return y, total

        def log_prob(self, y: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
            """log p(y | context) per event (standardised space)."""
            z, ld = self.normalise(y, context)
            d = z.shape[-1]
            return -0.5 * (z * z).sum(dim=-1) - 0.5 * d * math.log(2.0 * math.pi) + ld

        def sample(self, n: int, context: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
            """``n`` samples in the standardised space."""
            p = next(self.parameters())
            z = torch.randn(n, self.config.features, generator=generator, device=p.device, dtype=p.dtype)
            return self.generate(z, context)

    class FlowModel(nn.Module):
        """Pre-processing + flow: the model a bundle holds.

        ``forward(noise, context=None)`` maps standard-normal noise [N, D] (and the
        context [N, C], in physical units for ``"variables"``) to the PHYSICAL
        features [N, D] (``FLOW_FEATURES`` order, GeV); this is the exported sampling
        graph. ``log_prob(x, context)`` is the density of physical features
        (per GeV^2 for (mll, ptll), including the pre-processing Jacobian).
        """

        def __init__(self, config: FlowConfig, preprocessing: Sequence[Any], context: ContextSpec | None) -> None:
            super().__init__()
            from .transforms import make_preprocessing

            self.config = config
            self.context_spec = context
            self.flow = Flow(config)
            self.preprocessing = make_preprocessing(preprocessing)
            if context is not None and context.kind == "variables":
                self.register_buffer("ctx_mean", torch.tensor(context.mean, dtype=torch.float32))
                self.register_buffer("ctx_scale", 1.0 / torch.tensor(context.std, dtype=torch.float32))

        def standardise_context(self, context: torch.Tensor | None) -> torch.Tensor | None:
            """The context as the flow sees it."""
            if context is None or self.context_spec is None or self.context_spec.kind != "variables":
                return context
            return (context - self.ctx_mean.to(context.dtype)) * self.ctx_scale.to(context.dtype)

        def forward(self, noise: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
            y = self.flow.generate(noise, self.standardise_context(context))
            return self.preprocessing.inverse(y)

        def log_prob(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
            y, ld = self.preprocessing(x)
            return self.flow.log_prob(y, self.standardise_context(context)) + ld

    _CLASSES.update(Flow=Flow, Coupling=Coupling, Marginal=Marginal, Conditioner=Conditioner, FlowModel=FlowModel)
    return _CLASSES
