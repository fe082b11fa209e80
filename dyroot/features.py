r"""Dimuon event variables: the one definition of every feature dyroot uses.

Pure module (numpy or torch, never ROOT). The same functions run on numpy arrays
and on torch tensors (pass ``xp=torch``), so training, the CUDA generator and the
tests share one implementation; ``dyroot/cpp/dyroot_kinematics.hxx`` is its C++
twin, checked against it by ``tests/test_features.py``.

The flow models the dimuon in the coordinates that make the per-mille shape of
:math:`m_{\mu\mu}` easy to learn: ``FLOW_FEATURES = (mll, ptll, yll, costheta,
phi_cs)``. The azimuth of the dimuon, ``phill``, is uniform by the azimuthal
symmetry of pp collisions and is drawn from the random stream, never learned.
From the six numbers both muon four-vectors follow exactly (:func:`muons_from_dimuon`),
so the analysis cuts are applied after generation, with sharp edges.

Collins-Soper frame (arXiv:hep-ph/0004042 convention, as CMS and ATLAS use it):
in the dimuon rest frame, :math:`\hat z` bisects the angle between the momentum of
beam 1 and the negative momentum of beam 2, :math:`\hat x` lies in the beam plane
perpendicular to :math:`\hat z` pointing along :math:`\vec p_T^{\mu\mu}`, and when
:math:`p_z^{\mu\mu} < 0` both :math:`\hat z` and :math:`\hat y` are flipped, so that
:math:`\hat z` follows the (likely) quark direction. :math:`\theta^*` and :math:`\phi^*`
are the polar and azimuthal angles of the **negative** muon.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Mapping, Sequence

import numpy as np

from ._jsonutil import to_jsonable

__all__ = [
    "MUON_MASS",
    "FLOW_FEATURES",
    "MUON_COLUMNS",
    "DIMUON_COLUMNS",
    "EVENT_COLUMNS",
    "dimuon_from_muons",
    "muons_from_dimuon",
    "Selection",
    "Category",
    "CategoryScheme",
    "DEFAULT_CATEGORIES",
    "Binning",
    "DEFAULT_BINNING",
]

#: Muon mass in GeV (PDG 2024).
MUON_MASS = 0.1056583755

#: The variables the flow learns, in this order everywhere (training columns,
#: ONNX output columns, RDataFrame columns, C++ arrays).
FLOW_FEATURES: tuple[str, ...] = ("mll", "ptll", "yll", "costheta", "phi_cs")

#: Per-muon columns; ``mu1`` is the leading (highest pT) muon.
MUON_COLUMNS: tuple[str, ...] = (
    "mu1_pt", "mu1_eta", "mu1_phi", "mu1_charge",
    "mu2_pt", "mu2_eta", "mu2_phi", "mu2_charge",
)
#: Dimuon columns: the flow features and the dimuon azimuth.
DIMUON_COLUMNS: tuple[str, ...] = FLOW_FEATURES + ("phill",)
#: Every column of an event (a simulated tree, a generated RDataFrame).
EVENT_COLUMNS: tuple[str, ...] = MUON_COLUMNS + DIMUON_COLUMNS + ("category",)


def _lib(xp: ModuleType | None, *arrays: Any) -> ModuleType:
    if xp is not None:
        return xp
    for a in arrays:
        if type(a).__module__.startswith("torch"):
            import torch

            return torch
    return np


def _four_vector(pt: Any, eta: Any, phi: Any, mass: float, xp: ModuleType) -> tuple[Any, Any, Any, Any]:
    px, py, pz = pt * xp.cos(phi), pt * xp.sin(phi), pt * xp.sinh(eta)
    e = xp.sqrt(px * px + py * py + pz * pz + mass * mass)
    return e, px, py, pz


def _cs_axes(e: Any, px: Any, py: Any, pz: Any, xp: ModuleType) -> tuple[tuple[Any, Any, Any], ...]:
    """Collins-Soper axes in the rest frame reached from the lab by a pure boost."""
    bx, by, bz = px / e, py / e, pz / e
    b2 = bx * bx + by * by + bz * bz
    gamma = 1.0 / xp.sqrt(1.0 - b2)
    units = []
    for sign in (1.0, -1.0):  # beam 1 along +z, beam 2 along -z; unit energy, massless
        bp = sign * bz  # beta . p for p = (0, 0, sign)
        k = (gamma - 1.0) * bp / b2 - gamma  # p' = p + beta * ((gamma-1) beta.p / b2 - gamma E)
        vx, vy, vz = k * bx, k * by, sign + k * bz
        norm = xp.sqrt(vx * vx + vy * vy + vz * vz)
        units.append((vx / norm, vy / norm, vz / norm))
    (ax, ay, az), (cx, cy, cz) = units
    zx, zy, zz = ax - cx, ay - cy, az - cz
    zn = xp.sqrt(zx * zx + zy * zy + zz * zz)
    zx, zy, zz = zx / zn, zy / zn, zz / zn
    xx, xy, xz = -(ax + cx), -(ay + cy), -(az + cz)
    xn = xp.sqrt(xx * xx + xy * xy + xz * xz)
    # Purely longitudinal dimuon: the x axis is arbitrary; take the lab x axis.
    tiny = xn < 1e-12
    safe = xp.where(tiny, xp.ones_like(xn), xn)
    xx = xp.where(tiny, xp.ones_like(xn), xx / safe)
    xy = xp.where(tiny, xp.zeros_like(xn), xy / safe)
    xz = xp.where(tiny, xp.zeros_like(xn), xz / safe)
    flip = xp.where(pz < 0, -xp.ones_like(pz), xp.ones_like(pz))
    zx, zy, zz = flip * zx, flip * zy, flip * zz
    yx, yy, yz = zy * xz - zz * xy, zz * xx - zx * xz, zx * xy - zy * xx
    return (xx, xy, xz), (yx, yy, yz), (zx, zy, zz)


def _boost(e: Any, px: Any, py: Any, pz: Any, bx: Any, by: Any, bz: Any, xp: ModuleType) -> tuple[Any, Any, Any, Any]:
    """Boost the four-vector (e, p) by velocity (bx, by, bz)."""
    b2 = bx * bx + by * by + bz * bz
    gamma = 1.0 / xp.sqrt(1.0 - b2)
    bp = bx * px + by * py + bz * pz
    safe_b2 = xp.where(b2 > 0, b2, xp.ones_like(b2))
    k = xp.where(b2 > 0, (gamma - 1.0) * bp / safe_b2, xp.zeros_like(b2)) + gamma * e
    return gamma * (e + bp), px + k * bx, py + k * by, pz + k * bz


def dimuon_from_muons(
    pt1: Any, eta1: Any, phi1: Any, q1: Any,
    pt2: Any, eta2: Any, phi2: Any, q2: Any,
    *, xp: ModuleType | None = None, mass: float = MUON_MASS,
) -> dict[str, Any]:
    r"""Dimuon variables from two muons (pt in GeV).

    Args:
        pt1, eta1, phi1, q1: first muon (any order; the charge decides which is
            the negative muon used for the Collins-Soper angles).
        pt2, eta2, phi2, q2: second muon.
        xp: ``numpy`` or ``torch``; inferred from the inputs when omitted.
        mass: muon mass in GeV.

    Returns:
        ``{"mll", "ptll", "yll", "costheta", "phi_cs", "phill"}``; ``phi_cs`` and
        ``phill`` in :math:`(-\pi, \pi]`.

    Example:
        >>> import numpy as np
        >>> d = dimuon_from_muons(np.array([45.0]), np.array([0.0]), np.array([0.0]), np.array([-1]),
        ...                       np.array([45.0]), np.array([0.0]), np.array([np.pi]), np.array([1]))
        >>> round(float(d["mll"][0]), 3), round(float(d["ptll"][0]), 6)
        (90.0, 0.0)
    """
    xp = _lib(xp, pt1)
    e1, x1, y1, z1 = _four_vector(pt1, eta1, phi1, mass, xp)
    e2, x2, y2, z2 = _four_vector(pt2, eta2, phi2, mass, xp)
    e, px, py, pz = e1 + e2, x1 + x2, y1 + y2, z1 + z2
    m2 = e * e - px * px - py * py - pz * pz
    mll = xp.sqrt(xp.where(m2 > 0, m2, xp.zeros_like(m2)))
    ptll = xp.sqrt(px * px + py * py)
    yll = 0.5 * xp.log((e + pz) / (e - pz))
    neg = q1 < 0
    ln = tuple(xp.where(neg, a, b) for a, b in ((e1, e2), (x1, x2), (y1, y2), (z1, z2)))
    le, lx, ly, lz = _boost(ln[0], ln[1], ln[2], ln[3], -px / e, -py / e, -pz / e, xp)
    (xx, xy, xz), (yx, yy, yz), (zx, zy, zz) = _cs_axes(e, px, py, pz, xp)
    p = xp.sqrt(lx * lx + ly * ly + lz * lz)
    costheta = (lx * zx + ly * zy + lz * zz) / p
    phi_cs = xp.arctan2(lx * yx + ly * yy + lz * yz, lx * xx + ly * xy + lz * xz)
    phill = xp.arctan2(py, px)
    return {"mll": mll, "ptll": ptll, "yll": yll, "costheta": costheta, "phi_cs": phi_cs, "phill": phill}


def muons_from_dimuon(
    mll: Any, ptll: Any, yll: Any, costheta: Any, phi_cs: Any, phill: Any,
    *, xp: ModuleType | None = None, mass: float = MUON_MASS,
) -> dict[str, Any]:
    r"""Both muons from the dimuon variables: the exact inverse of :func:`dimuon_from_muons`.

    Args:
        mll, ptll, yll: dimuon mass and pT in GeV, rapidity.
        costheta, phi_cs: Collins-Soper angles of the negative muon.
        phill: azimuth of the dimuon.
        xp: ``numpy`` or ``torch``; inferred from the inputs when omitted.
        mass: muon mass in GeV.

    Returns:
        The eight ``MUON_COLUMNS``, ``mu1`` the leading muon; charges are
        :math:`\pm 1` in the array type of the inputs. Masses below
        :math:`2 m_\mu` are clamped to threshold.
    """
    xp = _lib(xp, mll)
    mll = xp.where(mll > 2.0 * mass, mll, 2.0 * mass + xp.zeros_like(mll))
    mt = xp.sqrt(mll * mll + ptll * ptll)
    e, pz = mt * xp.cosh(yll), mt * xp.sinh(yll)
    px, py = ptll * xp.cos(phill), ptll * xp.sin(phill)
    (xx, xy, xz), (yx, yy, yz), (zx, zy, zz) = _cs_axes(e, px, py, pz, xp)
    pstar = xp.sqrt(xp.where(mll * mll > 4 * mass * mass, 0.25 * mll * mll - mass * mass, xp.zeros_like(mll)))
    sint = xp.sqrt(xp.where(costheta * costheta < 1, 1.0 - costheta * costheta, xp.zeros_like(costheta)))
    cx, cy, cz = sint * xp.cos(phi_cs), sint * xp.sin(phi_cs), costheta
    lx = pstar * (cx * xx + cy * yx + cz * zx)
    ly = pstar * (cx * xy + cy * yy + cz * zy)
    lz = pstar * (cx * xz + cy * yz + cz * zz)
    estar = 0.5 * mll
    bx, by, bz = px / e, py / e, pz / e
    muons = []
    for sign in (1.0, -1.0):  # negative muon, then positive (back to back in the rest frame)
        ee, mx, my, mz = _boost(estar, sign * lx, sign * ly, sign * lz, bx, by, bz, xp)
        pt = xp.sqrt(mx * mx + my * my)
        pabs = xp.sqrt(mx * mx + my * my + mz * mz)
        eta = 0.5 * xp.log((pabs + mz) / (pabs - mz))
        muons.append((pt, eta, xp.arctan2(my, mx)))
    (pt_n, eta_n, phi_n), (pt_p, eta_p, phi_p) = muons
    lead_neg = pt_n >= pt_p
    one = xp.ones_like(mll)
    return {
        "mu1_pt": xp.where(lead_neg, pt_n, pt_p),
        "mu1_eta": xp.where(lead_neg, eta_n, eta_p),
        "mu1_phi": xp.where(lead_neg, phi_n, phi_p),
        "mu1_charge": xp.where(lead_neg, -one, one),
        "mu2_pt": xp.where(lead_neg, pt_p, pt_n),
        "mu2_eta": xp.where(lead_neg, eta_p, eta_n),
        "mu2_phi": xp.where(lead_neg, phi_p, phi_n),
        "mu2_charge": xp.where(lead_neg, one, -one),
    }


# ----------------------------------------------------------------------------------------------
# Selection


@dataclass(frozen=True)
class Selection:
    """The analysis selection, applied to muons after generation (ATLAS-like defaults).

    Args:
        lead_pt: leading-muon pT threshold in GeV.
        sublead_pt: subleading-muon pT threshold in GeV.
        max_abs_eta: both muons must have :math:`|\\eta|` below this.
        opposite_charge: require opposite charges.
        mll_range: the fit range in GeV, ``(lo, hi)``; ``None`` keeps every mass.
    """

    lead_pt: float = 27.0
    sublead_pt: float = 15.0
    max_abs_eta: float = 2.7
    opposite_charge: bool = True
    mll_range: tuple[float, float] | None = (110.0, 160.0)

    def mask(self, ev: Mapping[str, Any], *, xp: ModuleType | None = None) -> Any:
        """Boolean mask of the events of ``ev`` (a mapping of event columns) that pass."""
        xp = _lib(xp, ev["mu1_pt"])
        ok = (ev["mu1_pt"] > self.lead_pt) & (ev["mu2_pt"] > self.sublead_pt)
        ok = ok & (xp.abs(ev["mu1_eta"]) < self.max_abs_eta) & (xp.abs(ev["mu2_eta"]) < self.max_abs_eta)
        if self.opposite_charge:
            ok = ok & (ev["mu1_charge"] * ev["mu2_charge"] < 0)
        if self.mll_range is not None:
            ok = ok & (ev["mll"] >= self.mll_range[0]) & (ev["mll"] < self.mll_range[1])
        return ok

    def to_dict(self) -> dict[str, Any]:
        return {"lead_pt": self.lead_pt, "sublead_pt": self.sublead_pt, "max_abs_eta": self.max_abs_eta,
                "opposite_charge": self.opposite_charge,
                "mll_range": None if self.mll_range is None else list(self.mll_range)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Selection":
        d = dict(d)
        if d.get("mll_range") is not None:
            d["mll_range"] = tuple(d["mll_range"])
        return cls(**d)


# ----------------------------------------------------------------------------------------------
# Categories

#: Derived variables a category may cut on, besides the event columns.
_DERIVED = {"max_abs_eta": lambda ev, xp: xp.maximum(xp.abs(ev["mu1_eta"]), xp.abs(ev["mu2_eta"]))}


@dataclass(frozen=True)
class Category:
    """One analysis category: a box in event variables, ``lo <= v < hi`` on each.

    Args:
        name: a short identifier, used in histogram names (``mll_<name>``).
        ranges: ``{variable: (lo, hi)}``; ``variable`` is an event column or
            ``max_abs_eta``; use ``float('inf')`` for an open edge.
    """

    name: str
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def mask(self, ev: Mapping[str, Any], *, xp: ModuleType | None = None) -> Any:
        xp = _lib(xp, ev["mll"])
        ok = xp.ones_like(ev["mll"]) > 0
        for var, (lo, hi) in self.ranges.items():
            v = _DERIVED[var](ev, xp) if var in _DERIVED else ev[var]
            ok = ok & (v >= lo) & (v < hi)
        return ok

    def expression(self) -> str:
        """The same cut as a C++ expression for RDataFrame ``Filter``/``Define``."""
        parts = []
        for var, (lo, hi) in self.ranges.items():
            v = "std::max(std::abs(mu1_eta), std::abs(mu2_eta))" if var == "max_abs_eta" else var
            if np.isfinite(lo):
                parts.append(f"{v} >= {lo!r}")
            if np.isfinite(hi):
                parts.append(f"{v} < {hi!r}")
        return " && ".join(parts) or "true"


@dataclass(frozen=True)
class CategoryScheme:
    """An ordered list of disjoint categories; an event's category is the index of
    the first category it falls in, or -1.

    Example:
        >>> [c.name for c in DEFAULT_CATEGORIES.categories][:2]
        ['central_lowpt', 'central_midpt']
    """

    categories: tuple[Category, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.categories]

    def __len__(self) -> int:
        return len(self.categories)

    def assign(self, ev: Mapping[str, Any], *, xp: ModuleType | None = None) -> Any:
        """The category index of every event (``-1`` if in none), as int32/int64."""
        xp = _lib(xp, ev["mll"])
        out = xp.zeros_like(ev["mll"]) - 1.0
        for i in reversed(range(len(self.categories))):
            out = xp.where(self.categories[i].mask(ev, xp=xp), float(i) + xp.zeros_like(out), out)
        return out.astype(np.int32) if xp is np else out.to(xp.int32)

    def expression(self) -> str:
        """A C++ expression giving the category index (for RDataFrame ``Define``)."""
        expr = "-1"
        for i in reversed(range(len(self.categories))):
            expr = f"(({self.categories[i].expression()}) ? {i} : {expr})"
        return expr

    def to_list(self) -> list[dict[str, Any]]:
        """The scheme as JSON-ready data (an open end as the string ``"inf"``/``"-inf"``:
        strict JSON has no Infinity); :meth:`from_list` reads it back."""
        return to_jsonable([{"name": c.name, "ranges": {k: [float(lo), float(hi)] for k, (lo, hi) in c.ranges.items()}}
                            for c in self.categories])

    @classmethod
    def from_list(cls, items: Sequence[Mapping[str, Any]]) -> "CategoryScheme":
        return cls(tuple(Category(it["name"], {k: (float(v[0]), float(v[1])) for k, v in it["ranges"].items()})
                         for it in items))


def _default_categories() -> CategoryScheme:
    inf = float("inf")
    cats = []
    for region, eta in (("central", (0.0, 1.0)), ("noncentral", (1.0, inf))):
        for label, pt in (("lowpt", (0.0, 15.0)), ("midpt", (15.0, 50.0)), ("highpt", (50.0, inf))):
            cats.append(Category(f"{region}_{label}", {"max_abs_eta": eta, "ptll": pt}))
    return CategoryScheme(tuple(cats))


#: The 2015-16 ATLAS kinematic scheme (arXiv:1705.04582): both muons central
#: (:math:`|\eta| < 1`) or not, times :math:`p_T^{\mu\mu}` < 15, 15-50, > 50 GeV.
DEFAULT_CATEGORIES = _default_categories()


# ----------------------------------------------------------------------------------------------
# Binning


@dataclass(frozen=True)
class Binning:
    """Uniform binning of a template variable (GeV).

    Example:
        >>> DEFAULT_BINNING.nbins
        500
    """

    lo: float = 110.0
    hi: float = 160.0
    width: float = 0.1
    variable: str = "mll"

    @property
    def nbins(self) -> int:
        n = round((self.hi - self.lo) / self.width)
        if n < 1 or abs(n * self.width - (self.hi - self.lo)) > 1e-9 * (self.hi - self.lo):
            msg = f"bin width {self.width} does not divide the range [{self.lo}, {self.hi}]; choose a divisor"
            raise ValueError(msg)
        return int(n)

    def edges(self) -> np.ndarray:
        return np.linspace(self.lo, self.hi, self.nbins + 1)


DEFAULT_BINNING = Binning()
