r"""Template histograms: the :class:`Templates` container and its ROOT file format.

Boundary module for ROOT file I/O (through uproot; never ``import ROOT``), and a
plain numpy container every generator backend fills (SOFIE in RDataFrame, torch
on CPU or CUDA, onnxruntime, Dask shards).

File format (COMMON.md section 5; every backend writes exactly this)
    * ``TH1D`` ``mll_inclusive`` and ``mll_<category>`` for each category of the
      scheme, Sumw2 on, binning from :class:`~dyroot.features.Binning`
      (default 110-160 GeV in 0.1 GeV bins); events outside the binning sit in the
      under/overflow bins;
    * optional further variables as ``<var>_inclusive`` / ``<var>_<category>``;
    * a ``TNamed`` ``dyroot_provenance`` whose title is a JSON object: bundle
      hash, seed, first_event, n_events (generated, before cuts), n_selected per
      category, backend, device, threads, versions, binning, selection,
      categories, ``sigma_pb`` and ``normalisation``
      ``{"mode": "counts"|"unit"|"xsec"|"sidebands", "lumi_fb", "scale"}``.

Histograms hold raw generated counts unless a normalisation was asked for; a
consumer scales raw counts to a luminosity ``L`` (fb^-1) with
``scale = L * 1000 * sigma_pb / n_events``.

Bin convention (shared by every backend): exactly ROOT's ``TAxis::FindFixBin``
(:func:`bin_index`; a value on a bin edge opens that bin; NaN goes to the
overflow, as in ROOT); arrays carry the flow bins, index 0 is the underflow.

Example:
    >>> import numpy as np
    >>> t = Templates.empty(categories=["a", "b"])
    >>> t.fill({"mll": np.array([110.05, 125.0, 170.0])}, np.array([0, 1, -1]))
    >>> t.counts["mll_inclusive"].sum(), t.counts["mll_a"][1], t.counts["mll_inclusive"][-1]
    (np.float64(3.0), np.float64(1.0), np.float64(1.0))
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import uuid
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ._jsonutil import to_jsonable
from .exceptions import ConfigError, CorruptFileError, InputError, MissingBranchError, MissingInputError, OutputExistsError
from .features import DEFAULT_BINNING, DEFAULT_CATEGORIES, Binning

__all__ = [
    "PROVENANCE_KEY",
    "NORMALISATIONS",
    "Templates",
    "bin_index",
    "histogram_names",
]

#: Name of the provenance ``TNamed`` in a templates file.
PROVENANCE_KEY = "dyroot_provenance"
#: The normalisation modes of :meth:`Templates.normalised`.
NORMALISATIONS = ("counts", "unit", "xsec", "sidebands")

_LABELS = {
    "mll": "m_{#mu#mu} [GeV]", "ptll": "p_{T}^{#mu#mu} [GeV]", "yll": "y_{#mu#mu}",
    "costheta": "cos#theta*_{CS}", "phi_cs": "#phi*_{CS}", "phill": "#phi_{#mu#mu}",
    "mu1_pt": "p_{T}^{#mu1} [GeV]", "mu2_pt": "p_{T}^{#mu2} [GeV]", "mu1_eta": "#eta^{#mu1}", "mu2_eta": "#eta^{#mu2}",
}


def histogram_names(binnings: Sequence[Binning], categories: Sequence[str]) -> list[str]:
    """Histogram names in file order: for each variable, inclusive then each category.

    Example:
        >>> histogram_names([Binning()], ["a", "b"])
        ['mll_inclusive', 'mll_a', 'mll_b']
    """
    return [f"{b.variable}_{region}" for b in binnings for region in ("inclusive", *categories)]


def bin_index(x: Any, binning: Binning, *, xp: ModuleType = np) -> Any:
    """Index of each value in a flow-inclusive array, exactly as ROOT 6.40's ``TAxis::FindFixBin``.

    ``bin = 1 + int(nbins * (x - lo) / (hi - lo))``, then moved by one when ``x``
    lies beyond ``lo + bin * w`` or below ``lo + (bin - 1) * w`` (``w = (hi - lo) /
    nbins``), so that a value equal to a bin edge (``GetBinLowEdge``) always
    falls in the bin it opens; 0 below ``lo``, ``nbins + 1`` at or above ``hi``
    and for NaN (as ROOT). Computed in double.

    Args:
        x: values (numpy array or torch tensor; converted to float64).
        binning: the :class:`~dyroot.features.Binning`.
        xp: ``numpy`` or ``torch``.

    Returns:
        int64 indices in ``[0, nbins + 1]``.

    Example:
        >>> bin_index(np.array([109.0, 110.0, 110.1, 159.99, 160.0, np.nan]), DEFAULT_BINNING).tolist()
        [0, 1, 2, 500, 501, 501]
    """
    nb, lo, hi = binning.nbins, float(binning.lo), float(binning.hi)
    w = (hi - lo) / nb
    if xp is np:
        xd = np.asarray(x, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            inside = (xd >= lo) & (xd < hi)
            xs = np.where(inside, xd, lo)
            b = 1 + np.floor(nb * (xs - lo) / (hi - lo)).astype(np.int64)
            b = np.where((b <= nb) & (xs >= lo + b * w), b + 1, np.where((b > 1) & (xs < lo + (b - 1) * w), b - 1, b))
            return np.where(inside, b, np.where(xd < lo, 0, nb + 1)).astype(np.int64)
    xd = x.to(xp.float64)
    inside = (xd >= lo) & (xd < hi)
    xs = xp.where(inside, xd, xp.full_like(xd, lo))
    b = 1 + xp.floor(nb * (xs - lo) / (hi - lo)).to(xp.int64)
    bf = b.to(xp.float64)  # int64 tensor * Python float would promote to float32
    b = xp.where((b <= nb) & (xs >= lo + bf * w), b + 1, xp.where((b > 1) & (xs < lo + (bf - 1.0) * w), b - 1, b))
    return xp.where(inside, b, xp.where(xd < lo, xp.zeros_like(b), xp.full_like(b, nb + 1)))


@dataclass
class Templates:
    """Histograms of the generated events per category (numpy, flow bins included).

    Args:
        binnings: one :class:`~dyroot.features.Binning` per variable, ``mll`` first.
        categories: category names, in scheme order.
        counts: ``{histogram name: float64 [nbins + 2]}`` sums of weights.
        sumw2: ``{histogram name: float64 [nbins + 2]}`` sums of squared weights.
        entries: ``{histogram name: number of fills}`` (ROOT's ``GetEntries``).
        provenance: the JSON-able provenance record (see the module docstring).
    """

    binnings: tuple[Binning, ...]
    categories: tuple[str, ...]
    counts: dict[str, np.ndarray]
    sumw2: dict[str, np.ndarray]
    entries: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ construction

    @classmethod
    def empty(
        cls, binning: Binning = DEFAULT_BINNING, categories: Sequence[str] | None = None, *,
        extra: Sequence[Binning] = (), provenance: Mapping[str, Any] | None = None,
    ) -> "Templates":
        """Empty templates.

        Args:
            binning: the m_mumu binning (GeV).
            categories: category names (default: :data:`~dyroot.features.DEFAULT_CATEGORIES`).
            extra: binnings of further variables (their ``variable`` names the column).
            provenance: initial provenance record.

        Returns:
            Templates with every histogram zero.

        Raises:
            ConfigError: for a duplicated variable or category name.
        """
        cats = tuple(DEFAULT_CATEGORIES.names if categories is None else categories)
        binnings = (binning, *extra)
        problems = []
        variables = [b.variable for b in binnings]
        if len(set(variables)) != len(variables):
            problems.append(f"a variable is binned twice in {variables}; give each variable one Binning")
        if len(set(cats)) != len(cats) or "inclusive" in cats:
            problems.append(f"category names {list(cats)} must be distinct and not 'inclusive'")
        if problems:
            raise ConfigError(problems)
        names = histogram_names(binnings, cats)
        size = {f"{b.variable}_{r}": b.nbins + 2 for b in binnings for r in ("inclusive", *cats)}
        return cls(binnings, cats, {n: np.zeros(size[n]) for n in names}, {n: np.zeros(size[n]) for n in names},
                   {n: 0.0 for n in names}, dict(provenance or {}))

    @property
    def binning(self) -> Binning:
        """The m_mumu binning (the first)."""
        return self.binnings[0]

    @property
    def names(self) -> list[str]:
        """Histogram names in file order."""
        return histogram_names(self.binnings, self.categories)

    @property
    def normalisation(self) -> dict[str, Any]:
        """The normalisation record (``{"mode": "counts"}`` for raw counts)."""
        return dict(self.provenance.get("normalisation") or {"mode": "counts", "lumi_fb": None, "scale": 1.0})

    def fill(self, values: Mapping[str, np.ndarray], category: np.ndarray, weight: np.ndarray | None = None) -> None:
        """Add SELECTED events: every event to ``<var>_inclusive``, and to
        ``<var>_<category>`` when its category index is not -1.

        Args:
            values: ``{variable: [n]}`` for every binned variable (GeV).
            category: ``[n]`` category indices (-1: none).
            weight: ``[n]`` weights (default 1).

        Raises:
            MissingBranchError: if a binned variable is missing from ``values``.
        """
        cat = np.asarray(category, dtype=np.int64)
        w = None if weight is None else np.asarray(weight, dtype=np.float64)
        nreg = len(self.categories) + 1
        for b in self.binnings:
            if b.variable not in values:
                raise MissingBranchError("column", b.variable, values.keys(), "the values to fill")
            idx = bin_index(values[b.variable], b)
            nb2 = b.nbins + 2
            flat = np.concatenate([idx, np.where(cat >= 0, (cat + 1) * nb2 + idx, nreg * nb2)])
            ww = None if w is None else np.concatenate([w, w])
            c = np.bincount(flat, weights=ww, minlength=nreg * nb2 + 1)[: nreg * nb2].reshape(nreg, nb2)
            c2 = c if w is None else np.bincount(flat, weights=ww * ww, minlength=nreg * nb2 + 1)[
                : nreg * nb2].reshape(nreg, nb2)
            n = np.bincount(np.where(cat >= 0, cat + 1, nreg), minlength=nreg + 1)[:nreg]
            n[0] = len(cat)
            for r, region in enumerate(("inclusive", *self.categories)):
                name = f"{b.variable}_{region}"
                self.counts[name] += c[r]
                self.sumw2[name] += c2[r]
                self.entries[name] = self.entries.get(name, 0.0) + float(n[r])

    @classmethod
    def from_flat(
        cls, counts: np.ndarray, binnings: Sequence[Binning], categories: Sequence[str], *,
        sumw2: np.ndarray | None = None, provenance: Mapping[str, Any] | None = None,
    ) -> "Templates":
        """Templates from one flat accumulator of unit-weight fills, laid out as
        :func:`histogram_names` with ``nbins + 2`` cells each (what the fused
        torch path accumulates on the device).

        Args:
            counts: the flat counts (float64 or int64).
            binnings, categories: as :meth:`empty`.
            sumw2: flat sums of squared weights (default: ``counts``, unit weights).
            provenance: the provenance record.

        Raises:
            InputError: if the accumulator size does not match the layout.
        """
        t = cls.empty(binnings[0], categories, extra=tuple(binnings[1:]), provenance=provenance)
        counts = np.asarray(counts, dtype=np.float64)
        sw2 = counts if sumw2 is None else np.asarray(sumw2, dtype=np.float64)
        total = sum(t.counts[n].size for n in t.names)
        if counts.size != total or sw2.size != total:
            msg = f"flat accumulator has {counts.size} cells, the layout needs {total}; check binnings and categories"
            raise InputError(msg)
        pos = 0
        for name in t.names:
            size = t.counts[name].size
            t.counts[name] = counts[pos: pos + size].copy()
            t.sumw2[name] = sw2[pos: pos + size].copy()
            t.entries[name] = float(counts[pos: pos + size].sum())
            pos += size
        return t

    # ------------------------------------------------------------------ merging

    def _check_compatible(self, other: "Templates") -> None:
        if self.binnings != other.binnings or self.categories != other.categories:
            msg = ("cannot add templates with different binnings or categories "
                   f"({self.binnings}, {self.categories} vs {other.binnings}, {other.categories})")
            raise InputError(msg)
        for t in (self, other):
            if t.normalisation.get("mode", "counts") != "counts":
                msg = "only raw-count templates can be added; merge first, then normalise"
                raise InputError(msg)
        for key in ("seed", "bundle_hash"):
            a, b = self.provenance.get(key), other.provenance.get(key)
            if a is not None and b is not None and a != b:
                msg = f"cannot add templates with different {key} ({a} vs {b}): they are different samples"
                raise InputError(msg)

    def __add__(self, other: "Templates") -> "Templates":
        """Sum of two disjoint shards of the same stream (raw counts only).

        Raises:
            InputError: for different binnings/categories/seeds/bundles, normalised
                templates, or overlapping event ranges.
        """
        if not isinstance(other, Templates):
            return NotImplemented
        self._check_compatible(other)
        out = copy.deepcopy(self)
        for n in out.names:
            out.counts[n] = self.counts[n] + other.counts[n]
            out.sumw2[n] = self.sumw2[n] + other.sumw2[n]
            out.entries[n] = self.entries.get(n, 0.0) + other.entries.get(n, 0.0)
        out.provenance = _merge_provenance(self.provenance, other.provenance)
        return out

    @classmethod
    def merge(cls, parts: Iterable["Templates"]) -> "Templates":
        """Sum of shards (see :meth:`__add__`), in the order given.

        Raises:
            InputError: if ``parts`` is empty or the shards are incompatible.
        """
        parts = list(parts)
        if not parts:
            msg = "no templates to merge"
            raise InputError(msg)
        out = parts[0]
        for p in parts[1:]:
            out = out + p
        return out

    # ------------------------------------------------------------------ normalisation

    def normalised(
        self, mode: str = "counts", *, lumi_fb: float | None = None, sigma_pb: float | None = None,
        reference: "Templates | Mapping[str, np.ndarray] | None" = None,
        blind: tuple[float, float] = (120.0, 130.0),
    ) -> "Templates":
        r"""A normalised copy.

        Args:
            mode: ``"counts"`` (raw, unchanged), ``"unit"`` (each histogram to unit
                area in range), ``"xsec"`` (all scaled by
                :math:`L \cdot 1000 \cdot \sigma / N_{gen}`: events expected in
                ``lumi_fb`` fb^-1), ``"sidebands"`` (each region scaled so that its
                m_mumu sidebands, the bins outside ``blind``, match ``reference``).
            lumi_fb: integrated luminosity in fb^-1 (``xsec``).
            sigma_pb: cross-section in pb of the flow's full output (default: the
                provenance's ``sigma_pb``, i.e. the bundle's).
            reference: ``sidebands``: templates or ``{name: counts with flow bins}``
                holding ``mll_<region>`` histograms of the same binning.
            blind: the window excluded from the sidebands, GeV.

        Returns:
            New templates; counts scale by ``s``, sumw2 by ``s**2``; the provenance
            records ``{"mode", "lumi_fb", "scale"}`` (``scale`` a number, or a
            ``{histogram: scale}`` map for ``unit``/``sidebands``).

        Raises:
            ConfigError: for an unknown mode, a missing luminosity/cross-section/
                reference, or templates that are already normalised.
            MissingBranchError: if the reference lacks a histogram.
        """
        if mode not in NORMALISATIONS:
            raise ConfigError(f"unknown normalisation {mode!r}; choose one of {', '.join(NORMALISATIONS)}")
        if self.normalisation.get("mode", "counts") != "counts":
            raise ConfigError("these templates are normalised already; normalise raw counts (re-read the raw file)")
        out = copy.deepcopy(self)
        scales: dict[str, float] = {n: 1.0 for n in self.names}
        record: dict[str, Any] = {"mode": mode, "lumi_fb": lumi_fb, "scale": 1.0}
        if mode == "unit":
            for n in self.names:
                b = self._binning_of(n)
                area = float(self.counts[n][1: b.nbins + 1].sum())
                scales[n] = 1.0 / area if area > 0 else 1.0
            record["scale"] = scales
        elif mode == "xsec":
            sigma = self.provenance.get("sigma_pb") if sigma_pb is None else sigma_pb
            n_gen = self.provenance.get("n_events")
            if lumi_fb is None or not lumi_fb > 0:
                raise ConfigError("normalisation 'xsec' needs a positive luminosity: pass --lumi L (fb^-1)")
            if sigma is None or not float(sigma) > 0:
                raise ConfigError("normalisation 'xsec' needs sigma_pb > 0; the bundle (bundle.json) must give it")
            if not n_gen:
                raise ConfigError("normalisation 'xsec' needs n_events (generated) in the provenance")
            s = float(lumi_fb) * 1000.0 * float(sigma) / float(n_gen)
            scales = {n: s for n in self.names}
            record.update(scale=s, sigma_pb=float(sigma))
        elif mode == "sidebands":
            if reference is None:
                raise ConfigError("normalisation 'sidebands' needs a reference (e.g. --reference data.root)")
            ref = reference.counts if isinstance(reference, Templates) else reference
            b = self.binning
            centres = 0.5 * (b.edges()[1:] + b.edges()[:-1])
            side = np.concatenate([[False], (centres < blind[0]) | (centres >= blind[1]), [False]])
            for region in ("inclusive", *self.categories):
                name = f"{b.variable}_{region}"
                if name not in ref:
                    raise MissingBranchError("reference histogram", name, ref.keys(), "the reference")
                r = np.asarray(ref[name], dtype=np.float64)
                if r.shape != self.counts[name].shape:
                    raise ConfigError(f"reference {name} has {r.size} cells, the templates {self.counts[name].size}; "
                                      "use the same binning")
                mine = float(self.counts[name][side].sum())
                s = float(r[side].sum()) / mine if mine > 0 else 1.0
                for bb in self.binnings:
                    scales[f"{bb.variable}_{region}"] = s
            record.update(scale=scales, blind=list(blind))
        for n in self.names:
            out.counts[n] = self.counts[n] * scales[n]
            out.sumw2[n] = self.sumw2[n] * scales[n] ** 2
        out.provenance["normalisation"] = record
        return out

    def _binning_of(self, name: str) -> Binning:
        for b in self.binnings:
            if name.startswith(b.variable + "_"):
                return b
        raise MissingBranchError("histogram", name, self.names)

    # ------------------------------------------------------------------ I/O

    def write(self, path: str | os.PathLike[str], *, force: bool = False) -> pathlib.Path:
        """Write the ROOT file (TH1D with Sumw2 + the provenance TNamed), atomically.

        Args:
            path: output file.
            force: overwrite an existing file.

        Returns:
            The path written.

        Raises:
            OutputExistsError: if ``path`` exists and ``force`` is false.
        """
        uproot = _uproot()
        from uproot.writing.identify import to_TAxis, to_TH1x

        path = pathlib.Path(path)
        if path.exists() and not force:
            raise OutputExistsError(f"{path} exists; pass force=True (--force) to overwrite it, or choose another name")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with uproot.recreate(tmp) as f:
                for name in self.names:
                    b = self._binning_of(name)
                    region = name[len(b.variable) + 1:]
                    c, s2 = self.counts[name], self.sumw2[name]
                    centres = 0.5 * (b.edges()[1:] + b.edges()[:-1])
                    inner = c[1:-1]
                    label = _LABELS.get(b.variable, b.variable)
                    h = to_TH1x(
                        name, f"{label.split(' [')[0]}, {region}", c.astype(np.float64),
                        float(self.entries.get(name, c.sum())), float(inner.sum()), float(s2[1:-1].sum()),
                        float((inner * centres).sum()), float((inner * centres**2).sum()), s2.astype(np.float64),
                        to_TAxis("xaxis", label, b.nbins, float(b.lo), float(b.hi)),
                        fYaxis=to_TAxis("yaxis", f"Events / {b.width:g}", 1, 0.0, 1.0),
                    )
                    f[name] = h
                # strict JSON (no Infinity/NaN tokens), readable by any JSON parser
                record = to_jsonable(self._provenance_record())
                f[PROVENANCE_KEY] = _tnamed(PROVENANCE_KEY, json.dumps(record, sort_keys=True, allow_nan=False))
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    def _provenance_record(self) -> dict[str, Any]:
        rec = dict(self.provenance)
        rec.setdefault("normalisation", self.normalisation)
        rec["binning"] = _binning_dict(self.binning)
        rec["extra_binnings"] = [_binning_dict(b) for b in self.binnings[1:]]
        rec["categories"] = rec.get("categories") or list(self.categories)
        rec["category_names"] = list(self.categories)
        return rec

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> "Templates":
        """Read a templates file written by any backend.

        Args:
            path: the ROOT file.

        Returns:
            The templates (counts, sumw2, entries, provenance).

        Raises:
            MissingInputError: if the file does not exist.
            CorruptFileError: if it is not a ROOT file.
            MissingBranchError: if the provenance or a histogram is missing.
        """
        uproot = _uproot()
        path = pathlib.Path(path)
        if not path.exists():
            raise MissingInputError(f"templates file {path} does not exist; run `dyroot generate` first")
        try:
            f = uproot.open(path)
        except Exception as err:  # uproot raises ValueError/OSError variants for non-ROOT files
            raise CorruptFileError(f"{path} is not a readable ROOT file ({err})") from err
        with f:
            keys = [k.split(";")[0] for k in f.keys(recursive=False)]
            if PROVENANCE_KEY not in keys:
                raise MissingBranchError("object", PROVENANCE_KEY, keys, str(path))
            prov = json.loads(f[PROVENANCE_KEY].member("fTitle"))
            binnings = tuple(_binning_from(d) for d in [prov["binning"], *prov.get("extra_binnings", [])])
            cats = tuple(prov.get("category_names") or [c["name"] if isinstance(c, dict) else c
                                                        for c in prov["categories"]])
            t = cls.empty(binnings[0], cats, extra=binnings[1:], provenance=prov)
            for name in t.names:
                if name not in keys:
                    raise MissingBranchError("histogram", name, keys, str(path))
                h = f[name]
                t.counts[name] = np.asarray(h.values(flow=True), dtype=np.float64)
                t.sumw2[name] = np.asarray(h.variances(flow=True), dtype=np.float64)
                t.entries[name] = float(h.member("fEntries"))
        return t


def _uproot() -> ModuleType:
    from ._optional import import_optional

    return import_optional("uproot")


def _tnamed(name: str, title: str) -> Any:
    import uproot.models.TNamed
    import uproot.models.TObject

    tobject = uproot.models.TObject.Model_TObject.empty()
    tobject._members["@fUniqueID"] = 0
    tobject._members["@fBits"] = 0
    named = uproot.models.TNamed.Model_TNamed.empty()
    named._deeply_writable = True
    named._bases.append(tobject)
    named._members["fName"] = name
    named._members["fTitle"] = title
    return named


def _binning_dict(b: Binning) -> dict[str, Any]:
    return {"variable": b.variable, "lo": float(b.lo), "hi": float(b.hi), "width": float(b.width), "nbins": b.nbins}


def _binning_from(d: Mapping[str, Any]) -> Binning:
    return Binning(lo=float(d["lo"]), hi=float(d["hi"]), width=float(d["width"]), variable=str(d["variable"]))


def _merge_provenance(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(a)
    ranges = sorted([tuple(r) for r in a.get("event_ranges", [[a.get("first_event", 0), a.get("n_events", 0)]])]
                    + [tuple(r) for r in b.get("event_ranges", [[b.get("first_event", 0), b.get("n_events", 0)]])])
    merged: list[list[int]] = []
    for first, n in ranges:
        if merged and first < merged[-1][0] + merged[-1][1]:
            msg = (f"event ranges overlap ({merged[-1]} and {[first, n]}): the shards would count events twice; "
                   "merge disjoint shards of one stream")
            raise InputError(msg)
        if merged and first == merged[-1][0] + merged[-1][1]:
            merged[-1][1] += n
        else:
            merged.append([int(first), int(n)])
    out["first_event"] = merged[0][0]
    out["n_events"] = int(sum(n for _, n in merged))
    if len(merged) > 1:
        out["event_ranges"] = merged
    else:
        out.pop("event_ranges", None)
    sel_a, sel_b = a.get("n_selected") or {}, b.get("n_selected") or {}
    if sel_a or sel_b:
        out["n_selected"] = {k: int(sel_a.get(k, 0)) + int(sel_b.get(k, 0)) for k in {*sel_a, *sel_b}}
    for key in ("wall_s",):
        if key in a or key in b:
            out[key] = float(a.get(key, 0.0)) + float(b.get(key, 0.0))
    return out
