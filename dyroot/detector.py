r"""ATLAS-like muon momentum smearing for the reference simulation.

Pure module (numpy only, never ROOT). The curvature :math:`q/p_T` of each
generator-level muon is smeared by a Gaussian of relative width
:math:`\sigma/p_T = \sqrt{r_1^2 + (r_2\,p_T)^2}` that depends on :math:`|\eta|`
(physics.md §3):

.. math::

    (q/p_T)_\mathrm{reco} = (q/p_T)_\mathrm{true}\,(1 + \sigma\,z), \qquad z \sim N(0, 1).

So :math:`p_T^\mathrm{reco} = p_T / |1 + \sigma z|` and the reconstructed charge is
:math:`q\,\mathrm{sign}(1 + \sigma z)`: a curvature pushed through zero flips the
charge (charge mis-identification, only relevant far above 1 TeV with the default
table). :math:`\eta` and :math:`\phi` are not smeared.

The table is data (:class:`SmearingTable`), never constants in code: the default
(:data:`DEFAULT_SMEARING`) matches the measured 2.3 % (central) and 2.9 %
(:math:`|\eta| > 2.2`) resolution of muons from Z decays (arXiv:1603.05598) and gives
a dimuon mass resolution of about 2.2-2.8 GeV at 125 GeV.

Warning:
    Rows are selected by :math:`|\eta|` against ``eta_edges``. Muons beyond the last
    edge (the default table stops at 2.7, the edge of the ATLAS muon spectrometer)
    are smeared with the **last row**, i.e. the 2.0-2.7 resolution is extended flat.
    This only matters for loose pre-selections (the ``training`` preset of
    ``dyroot simulate`` keeps muons up to :math:`|\eta| < 3.5`); pass a table with an
    extra row to model the forward region differently.

References:
    ATLAS, "Muon reconstruction performance of the ATLAS detector in proton-proton
    collision data at sqrt(s) = 13 TeV", arXiv:1603.05598.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["SmearingTable", "DEFAULT_SMEARING", "smear_muons"]


@dataclass(frozen=True)
class SmearingTable:
    r"""Relative :math:`q/p_T` resolution per :math:`|\eta|` region.

    Row ``i`` covers ``eta_edges[i] <= |eta| < eta_edges[i + 1]``; muons above the
    last edge use the last row (documented extension, see the module warning).

    Args:
        eta_edges: increasing :math:`|\eta|` boundaries, starting at 0; one more
            than the number of rows.
        r1: constant (multiple-scattering) term per row, dimensionless.
        r2: term growing with :math:`p_T` (intrinsic resolution) per row, in 1/GeV.

    Raises:
        ValueError: if the lengths do not match, the edges do not start at 0 or do
            not increase, or a resolution term is negative or not finite.

    Example:
        >>> t = SmearingTable()
        >>> round(float(t.sigma(np.array([40.0]), np.array([0.5]))[0]), 5)
        0.02236
        >>> float(t.sigma(np.array([40.0]), np.array([2.9]))[0]) == float(t.sigma(np.array([40.0]), np.array([2.5]))[0])
        True
    """

    eta_edges: tuple[float, ...] = (0.0, 1.05, 2.0, 2.7)
    r1: tuple[float, ...] = (0.020, 0.023, 0.025)
    r2: tuple[float, ...] = (2.5e-4, 2.8e-4, 3.0e-4)

    def __post_init__(self) -> None:
        edges = tuple(float(e) for e in self.eta_edges)
        r1 = tuple(float(v) for v in self.r1)
        r2 = tuple(float(v) for v in self.r2)
        object.__setattr__(self, "eta_edges", edges)
        object.__setattr__(self, "r1", r1)
        object.__setattr__(self, "r2", r2)
        if len(r1) < 1 or len(r1) != len(r2) or len(edges) != len(r1) + 1:
            msg = (f"smearing table needs len(eta_edges) == len(r1) + 1 == len(r2) + 1, got "
                   f"{len(edges)} edges, {len(r1)} r1 and {len(r2)} r2 values; give one row per |eta| region")
            raise ValueError(msg)
        if edges[0] != 0.0 or any(b <= a for a, b in zip(edges, edges[1:])):
            msg = f"smearing table eta_edges must start at 0 and increase strictly, got {list(edges)}"
            raise ValueError(msg)
        if not all(np.isfinite(v) and v >= 0 for v in r1 + r2):
            msg = f"smearing terms must be finite and >= 0, got r1={list(r1)}, r2={list(r2)}"
            raise ValueError(msg)

    @property
    def nrows(self) -> int:
        """Number of :math:`|\\eta|` regions."""
        return len(self.r1)

    def row(self, eta: np.ndarray) -> np.ndarray:
        """The row index of each muon; :math:`|\\eta|` beyond the last edge gives the last row."""
        idx = np.searchsorted(np.asarray(self.eta_edges[1:-1]), np.abs(np.asarray(eta)), side="right")
        return idx.astype(np.intp)

    def sigma(self, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        r"""Relative resolution :math:`\sigma/p_T = \sqrt{r_1^2 + (r_2 p_T)^2}` (pt in GeV)."""
        i = self.row(eta)
        r1 = np.asarray(self.r1)[i]
        r2 = np.asarray(self.r2)[i]
        pt = np.asarray(pt, dtype=np.float64)
        return np.sqrt(r1 * r1 + (r2 * pt) ** 2)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (as stored in the provenance of simulated files)."""
        return {"eta_edges": list(self.eta_edges), "r1": list(self.r1), "r2": list(self.r2),
                "beyond_last_edge": "last row"}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SmearingTable":
        """Inverse of :meth:`to_dict` (extra keys are ignored)."""
        try:
            return cls(tuple(d["eta_edges"]), tuple(d["r1"]), tuple(d["r2"]))
        except KeyError as err:
            msg = f"smearing table is missing the key {err.args[0]!r}; give eta_edges, r1 and r2"
            raise ValueError(msg) from None

    @classmethod
    def from_json(cls, text: str) -> "SmearingTable":
        """Read a table from a JSON string, e.g. ``'{"eta_edges": [0, 2.7], "r1": [0.02], "r2": [3e-4]}'``."""
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[float, float, float]]) -> "SmearingTable":
        """Build a table from ``(eta_hi, r1, r2)`` rows, the first region starting at 0."""
        return cls((0.0,) + tuple(r[0] for r in rows), tuple(r[1] for r in rows), tuple(r[2] for r in rows))


#: The default table of physics.md §3.
DEFAULT_SMEARING = SmearingTable()


def smear_muons(
    pt: np.ndarray,
    eta: np.ndarray,
    charge: np.ndarray,
    rng: np.random.Generator,
    table: SmearingTable = DEFAULT_SMEARING,
    *,
    z: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Smear the curvature of muons: returns reconstructed ``(pt, charge)``.

    Args:
        pt: generator-level transverse momenta in GeV (any shape).
        eta: pseudorapidities (selects the table row).
        charge: charges (:math:`\pm 1`).
        rng: the numpy generator that draws :math:`z`; the draws are
            ``rng.standard_normal(pt.shape)``, so a seeded generator gives identical
            results on every machine.
        table: the resolution table.
        z: pre-drawn standard normals (then ``rng`` is not used), for tests.

    Returns:
        ``(pt_reco, charge_reco)``: float64 GeV and int32. A curvature that
        crosses zero flips the charge; an exactly zero curvature (probability
        zero) is clamped to ``1e-12`` so that :math:`p_T` stays finite.

    Example:
        >>> pt, q = smear_muons(np.array([50.0]), np.array([0.0]), np.array([1]), None,
        ...                     z=np.array([1.0]))
        >>> round(float(pt[0]), 4), int(q[0])
        (48.8479, 1)
    """
    pt = np.asarray(pt, dtype=np.float64)
    if z is None:
        if rng is None:
            msg = "smear_muons needs a numpy Generator (np.random.default_rng(seed)) or explicit z"
            raise ValueError(msg)
        z = rng.standard_normal(pt.shape)
    factor = 1.0 + table.sigma(pt, eta) * np.asarray(z, dtype=np.float64)
    sign = np.where(factor < 0, -1, 1)
    mag = np.maximum(np.abs(factor), 1e-12)
    return pt / mag, (np.asarray(charge) * sign).astype(np.int32)
