r"""Reading events from any ROOT TTree into dyroot's event columns.

Boundary module (uproot by default; PyROOT's RDataFrame on request). The one
entry point is :func:`read_events` (everything in memory) with its streaming twin
:func:`iter_events` (chunks, for inputs larger than memory). Both return
``dict[str, numpy.ndarray]`` with ``MUON_COLUMNS`` (``mu1`` the leading muon; pT in
GeV, charges int32), ``DIMUON_COLUMNS`` (always recomputed with
:func:`dyroot.features.dimuon_from_muons`, so every source gives the same
definitions), ``category`` (int32), ``weight`` (float64) and any ``extra`` columns.

Mappings
    A mapping says where the muons are. :data:`MAPPING_PRESETS`:

    * ``"dyroot"`` (default): files written by ``dyroot simulate`` (tree ``events``,
      flat ``mu1_*``/``mu2_*`` branches, ``weight``).
    * ``"nanoaod"``: CMS NanoAOD-like jagged ``Muon_pt``, ``Muon_eta``, ``Muon_phi``,
      ``Muon_charge`` (tree ``Events``; unit weights unless ``weight=`` is given, e.g.
      ``"genWeight"``). The dimuon is the **leading muon and the highest-pT muon of
      opposite charge** to it; events without such a pair are skipped (counted in
      :attr:`ReadSummary.no_pair`).
    * ``"atlas"``: an ATLAS-like flat ntuple in MeV (tree ``DiMuonNtuple``,
      ``Muons_PT_Lead``, ``Muons_Eta_Lead``, ``Muons_Phi_Lead``, ``Muons_Charge_Lead``,
      the same with ``_Sub``, weight ``GlobalWeight``; names as in the ATLAS H->mumu
      group ntuples as far as recalled: override them for your files).

    A user mapping is a dict: flat, ``{"mu1_pt": expr, ..., "mu2_charge": expr}`` (the
    eight ``MUON_COLUMNS``; muons are re-ordered by pT if needed), or jagged,
    ``{"pt": branch, "eta": branch, "phi": branch, "charge": branch}``.

Expressions
    Mapping values are expressions over branches. With ``backend="uproot"`` they, and
    ``weight``, ``category`` and ``selection``, use dyroot's small expression language
    (:mod:`dyroot._io_expr`: Python or C++ arithmetic, ``&&``/``||``/``!``, ``abs``,
    ``sqrt``, ``where``...). With ``backend="rdataframe"`` the mapping values are C++
    (RDataFrame ``Define``); ``weight``/``category``/``selection`` are evaluated by
    dyroot in both backends. In ``weight``, ``category`` and ``selection`` the names of
    dyroot columns (``mll``, ``ptll``, ``mu1_pt``...) mean dyroot's values (GeV);
    every other name is a branch of the tree, in the file's own units.

Checks (each raises a :mod:`dyroot.exceptions` error saying what is wrong and how to fix it)
    missing file or empty glob (:class:`MissingInputError`), unreadable file
    (:class:`CorruptFileError`), missing tree or branch with the nearest names
    (:class:`MissingBranchError`), muon pT that looks like MeV while GeV was declared
    (median leading-muon pT > 1000) or like GeV while MeV was declared (median < 1 GeV)
    (:class:`UnitsError`), NaN/inf values (:class:`NonFiniteError`, counted over the
    whole input; ``nonfinite="drop"`` drops those events with an
    :class:`~dyroot.warnings.InputWarning`), an empty selection
    (:class:`EmptySelectionError`) and a non-positive total weight (:class:`WeightError`).
"""

from __future__ import annotations

import glob as glob_mod
import json
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from ._io_expr import evaluate, names_in
from ._optional import import_optional
from .exceptions import (
    ConfigError,
    CorruptFileError,
    DyrootError,
    EmptySelectionError,
    MissingBranchError,
    MissingInputError,
    NonFiniteError,
    UnitsError,
    WeightError,
    nearest,
)
from .features import DEFAULT_CATEGORIES, DIMUON_COLUMNS, MUON_COLUMNS, CategoryScheme, Selection, dimuon_from_muons
from .warnings import InputWarning

__all__ = [
    "EventMapping",
    "MAPPING_PRESETS",
    "ReadSummary",
    "read_events",
    "iter_events",
    "expand_sources",
    "read_provenance",
    "make_tnamed",
]

_JAGGED_KEYS = ("pt", "eta", "phi", "charge")


@dataclass(frozen=True)
class EventMapping:
    """Where dyroot's muons are in a tree.

    Args:
        kind: ``"flat"`` (one value per event for each of the eight ``MUON_COLUMNS``)
            or ``"jagged"`` (per-muon collections ``pt``, ``eta``, ``phi``, ``charge``).
        columns: dyroot name -> expression (see the module docstring).
        tree: the tree name to use when ``read_events`` gets none.
        weight: the default weight expression (``None``: unit weights).
        units: the default units of the muon pT, ``"GeV"`` or ``"MeV"``.
    """

    kind: str
    columns: Mapping[str, str]
    tree: str | None = None
    weight: str | None = None
    units: str = "GeV"

    def __post_init__(self) -> None:
        want = set(MUON_COLUMNS) if self.kind == "flat" else set(_JAGGED_KEYS)
        if self.kind not in ("flat", "jagged"):
            raise ConfigError(f"mapping kind must be 'flat' or 'jagged', got {self.kind!r}")
        if set(self.columns) != want:
            msg = (f"a {self.kind} mapping needs exactly the keys {sorted(want)}; "
                   f"missing {sorted(want - set(self.columns))}, unknown {sorted(set(self.columns) - want)}")
            raise ConfigError(msg)
        if self.units not in ("GeV", "MeV"):
            raise ConfigError(f"units must be 'GeV' or 'MeV', got {self.units!r}")

    @classmethod
    def from_user(cls, mapping: "str | EventMapping | Mapping[str, str] | None") -> "EventMapping":
        """A preset name, an :class:`EventMapping`, or a plain dict (kind inferred from its keys)."""
        if mapping is None:
            return MAPPING_PRESETS["dyroot"]
        if isinstance(mapping, EventMapping):
            return mapping
        if isinstance(mapping, str):
            if mapping not in MAPPING_PRESETS:
                raise ConfigError(f"unknown mapping preset {mapping!r}; choose one of {sorted(MAPPING_PRESETS)} "
                                  "or pass a dict")
            return MAPPING_PRESETS[mapping]
        keys = set(mapping)
        kind = "jagged" if keys <= set(_JAGGED_KEYS) else "flat"
        return cls(kind, dict(mapping))


def _atlas_columns() -> dict[str, str]:
    out = {}
    for mu, tag in (("mu1", "Lead"), ("mu2", "Sub")):
        for var, name in (("pt", "PT"), ("eta", "Eta"), ("phi", "Phi"), ("charge", "Charge")):
            out[f"{mu}_{var}"] = f"Muons_{name}_{tag}"
    return out


#: Named mappings (see the module docstring).
MAPPING_PRESETS: dict[str, EventMapping] = {
    "dyroot": EventMapping("flat", {c: c for c in MUON_COLUMNS}, tree="events", weight="weight"),
    "nanoaod": EventMapping("jagged", {"pt": "Muon_pt", "eta": "Muon_eta", "phi": "Muon_phi",
                                       "charge": "Muon_charge"}, tree="Events"),
    "atlas": EventMapping("flat", _atlas_columns(), tree="DiMuonNtuple", weight="GlobalWeight", units="MeV"),
}


@dataclass
class ReadSummary:
    """Counts gathered while reading (``read_events(..., summary=ReadSummary())`` fills it).

    Attributes:
        files: the files read.
        entries: tree entries read.
        no_pair: events without an opposite-charge muon pair (jagged mappings).
        nonfinite: per expression, the number of events with a NaN/inf value.
        nonfinite_events: events with at least one NaN/inf value (dropped, or refused).
        selected: events returned.
        sum_weights: their total weight.
    """

    files: list[str] = field(default_factory=list)
    entries: int = 0
    no_pair: int = 0
    nonfinite: dict[str, int] = field(default_factory=dict)
    nonfinite_events: int = 0
    selected: int = 0
    sum_weights: float = 0.0


# ----------------------------------------------------------------------------------------------
# Files and trees


def expand_sources(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """Expand a file, a glob, or a list of them into a list of paths (globs sorted).

    Remote URLs (``root://``, ``https://``...) pass through unchecked.

    Raises:
        MissingInputError: a file does not exist, or a glob matches nothing (the
            message lists the nearest file names of that directory).
    """
    items = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    if not items:
        raise MissingInputError("no input files given; pass a path, a glob such as 'data/*.root', or a list")
    out: list[str] = []
    for item in items:
        s = os.fspath(item)
        if "://" in s:
            out.append(s)
            continue
        if any(ch in s for ch in "*?["):
            hits = sorted(glob_mod.glob(s))
            if not hits:
                raise MissingInputError(f"the glob {s!r} matches no file{_nearby(s)}")
            out.extend(hits)
        elif not os.path.isfile(s):
            what = "is a directory, not a file" if os.path.isdir(s) else "does not exist"
            raise MissingInputError(f"input file {s!r} {what}{_nearby(s)}")
        else:
            out.append(s)
    return out


def _nearby(path: str) -> str:
    d = os.path.dirname(path) or "."
    if not os.path.isdir(d):
        return f" (the directory {d!r} does not exist either)"
    names = sorted(os.listdir(d))
    close = nearest(os.path.basename(path), names)
    if close:
        return f"; did you mean {', '.join(repr(os.path.join(d, c)) for c in close)}?"
    roots = [n for n in names if n.endswith(".root")][:10]
    return f"; ROOT files in {d!r}: {', '.join(roots)}" if roots else f"; {d!r} has no .root file"


def _open(path: str) -> Any:
    uproot = import_optional("uproot")
    try:
        f = uproot.open(path)
        f.classnames()  # reads the keys: fails on truncated files
        return f
    except DyrootError:
        raise
    except Exception as err:  # uproot raises OSError, ValueError, DeserializationError...
        msg = (f"cannot read {path!r} as a ROOT file ({type(err).__name__}: {str(err).splitlines()[0]}); "
               "it may be truncated (an interrupted copy or job) or not a ROOT file at all: copy it again, "
               "or check it with `root -l -b -q` / `rootls`")
        raise CorruptFileError(msg) from None


def _trees(f: Any) -> list[str]:
    return sorted({k.split(";")[0] for k, c in f.classnames().items() if c in ("TTree", "TNtuple", "TChain")})


def _pick_tree(f: Any, path: str, tree: str | None, mapping: EventMapping) -> str:
    trees = _trees(f)
    if tree is not None:
        if tree not in trees:
            raise MissingBranchError("tree", tree, trees, where=path)
        return tree
    if mapping.tree in trees:
        return str(mapping.tree)
    if len(trees) == 1:
        return trees[0]
    if not trees:
        raise MissingBranchError("tree", mapping.tree or "<any>", [], where=path)
    msg = f"{path!r} has several trees ({', '.join(trees)}); pass tree=... to choose one"
    raise ConfigError(msg)


def read_provenance(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``dyroot_provenance`` JSON record of a dyroot file (simulated events or templates).

    Raises:
        MissingInputError, CorruptFileError: as :func:`read_events`.
        MissingBranchError: the file has no provenance record.
    """
    p = expand_sources(path)[0]
    f = _open(p)
    keys = [k.split(";")[0] for k in f.keys()]
    if "dyroot_provenance" not in keys:
        raise MissingBranchError("object", "dyroot_provenance", keys, where=p)
    obj = f["dyroot_provenance"]
    text = obj if isinstance(obj, str) else obj.member("fTitle")  # TObjString or TNamed
    try:
        return dict(json.loads(text))
    except (ValueError, TypeError) as err:
        raise CorruptFileError(f"the dyroot_provenance record of {p!r} is not valid JSON ({err})") from None


def make_tnamed(name: str, title: str) -> Any:
    """A ``TNamed`` that uproot can write (``file[name] = make_tnamed(name, text)``).

    uproot writes plain strings as ``TObjString``; dyroot's provenance records are
    ``TNamed`` (name = the key, title = the JSON text), which ROOT, uproot and
    ``rootls`` all read.
    """
    uproot = import_optional("uproot")
    tobject = uproot.models.TObject.Model_TObject.empty()
    tnamed = uproot.models.TNamed.Model_TNamed.empty()
    tnamed._deeply_writable = True
    tnamed._bases.append(tobject)
    tnamed._members["fName"] = str(name)
    tnamed._members["fTitle"] = str(title)
    return tnamed


# ----------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class _Plan:
    mapping: EventMapping
    units: str
    weight: str | None
    category: str | None
    selection: str | Selection | None
    extra: dict[str, str]
    categories: CategoryScheme
    nonfinite: str
    check_units: bool


_DYROOT_NAMES = frozenset(MUON_COLUMNS) | frozenset(DIMUON_COLUMNS)


def _raw_names(plan: _Plan) -> tuple[set[str], set[str]]:
    """Branches read for the mapping, and the branches read by weight/category/selection/extra."""
    mapping_names: set[str] = set()
    for expr in plan.mapping.columns.values():
        mapping_names |= names_in(expr)
    other: set[str] = set()
    for expr in (plan.weight, plan.category, plan.selection if isinstance(plan.selection, str) else None):
        if expr is not None:
            other |= names_in(expr) - _DYROOT_NAMES
    for expr in plan.extra.values():
        other |= names_in(expr) - _DYROOT_NAMES
    return mapping_names, other


def _pick_pair(coll: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The leading muon and the highest-pT muon of opposite charge, from jagged collections.

    Returns ``(has_pair, values)`` with ``values["mu1_pt"]`` ... ``values["mu2_charge"]``
    (float64 numpy; zeros where there is no pair).
    """
    ak = import_optional("awkward")
    order = ak.argsort(coll["pt"], axis=1, ascending=False, stable=True)
    s = {k: coll[k][order] for k in _JAGGED_KEYS}
    local = ak.local_index(s["charge"], axis=1)
    lead_q = ak.fill_none(ak.firsts(s["charge"]), 0)
    partner = ak.firsts(local[s["charge"] * lead_q < 0])
    has = ~ak.to_numpy(ak.is_none(partner))
    partner = ak.fill_none(partner, -1)
    out: dict[str, np.ndarray] = {}
    for k in _JAGGED_KEYS:
        lead = ak.fill_none(ak.firsts(s[k]), 0)
        sub = ak.fill_none(ak.firsts(s[k][local == partner]), 0)
        out[f"mu1_{k}"] = np.where(has, ak.to_numpy(lead).astype(np.float64), 0.0)
        out[f"mu2_{k}"] = np.where(has, ak.to_numpy(sub).astype(np.float64), 0.0)
    return has, out


def _muons_uproot(raw: Mapping[str, Any], plan: _Plan, bad: dict[str, np.ndarray],
                  summary: ReadSummary) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The eight muon columns and a keep-mask (events with a pair)."""
    m = plan.mapping
    n = len(next(iter(raw.values()))) if raw else 0
    if m.kind == "flat":
        mu: dict[str, np.ndarray] = {}
        for c in MUON_COLUMNS:
            v = np.asarray(evaluate(m.columns[c], raw), dtype=np.float64)
            mu[c] = np.broadcast_to(v, (n,)).copy()
            bad[m.columns[c]] = ~np.isfinite(mu[c])
        return mu, np.ones(n, dtype=bool)
    ak = import_optional("awkward")
    coll = {k: evaluate(m.columns[k], raw) for k in _JAGGED_KEYS}
    for k in _JAGGED_KEYS:
        bad[m.columns[k]] = ~ak.to_numpy(ak.all(np.isfinite(coll[k]), axis=1))
    has, mu = _pick_pair(coll)
    summary.no_pair += int((~has).sum())
    return mu, has


def _finish(mu: dict[str, np.ndarray], raw: Mapping[str, Any], keep: np.ndarray, bad: dict[str, np.ndarray],
            plan: _Plan, summary: ReadSummary, state: dict[str, bool]) -> dict[str, np.ndarray]:
    """Units, ordering, dimuon columns, weight, category, selection for one chunk."""
    n = len(keep)
    if plan.units == "MeV":
        for c in ("mu1_pt", "mu2_pt"):
            mu[c] = mu[c] * 1.0e-3
    for c in ("mu1_charge", "mu2_charge"):
        mu[c] = np.rint(mu[c]).astype(np.int32)
    swap = mu["mu2_pt"] > mu["mu1_pt"]
    if swap.any():
        for var in ("pt", "eta", "phi", "charge"):
            a, b = mu[f"mu1_{var}"], mu[f"mu2_{var}"]
            mu[f"mu1_{var}"], mu[f"mu2_{var}"] = np.where(swap, b, a), np.where(swap, a, b)
    ev: dict[str, np.ndarray] = dict(mu)
    with np.errstate(all="ignore"):
        ev.update(dimuon_from_muons(*(mu[c] for c in MUON_COLUMNS)))
    ns = {**{k: v for k, v in raw.items() if k not in _DYROOT_NAMES}, **ev}
    if plan.weight is None:
        w = np.ones(n)
    else:
        w = np.broadcast_to(np.asarray(evaluate(plan.weight, ns), dtype=np.float64), (n,)).copy()
        bad[f"weight: {plan.weight}"] = ~np.isfinite(w)
    for name, expr in plan.extra.items():
        v = np.broadcast_to(np.asarray(evaluate(expr, ns)), (n,)).copy()
        ev[name] = v
        if v.dtype.kind == "f":
            bad[f"{name}: {expr}"] = ~np.isfinite(v)
    ev["weight"] = w
    bad_any = np.zeros(n, dtype=bool)
    for key, b in bad.items():
        b = b & keep
        if b.any():
            summary.nonfinite[key] = summary.nonfinite.get(key, 0) + int(b.sum())
            bad_any |= b
    good = keep & ~bad_any
    if plan.check_units and not state.get("units_checked") and good.any():
        _check_units(ev["mu1_pt"][good], plan.units)  # on the first chunk that has events
        state["units_checked"] = True
    if plan.category is not None:
        ns.update(ev)
        cat = np.broadcast_to(np.asarray(evaluate(plan.category, ns)), (n,))
        with np.errstate(invalid="ignore"):
            ev["category"] = np.where(np.isfinite(cat), cat, -1).astype(np.int32)
    else:
        with np.errstate(invalid="ignore"):
            ev["category"] = plan.categories.assign(ev)
    if plan.selection is None:
        sel = np.ones(n, dtype=bool)
    elif isinstance(plan.selection, Selection):
        with np.errstate(invalid="ignore"):
            sel = np.asarray(plan.selection.mask(ev), dtype=bool)
    else:
        ns.update(ev)
        with np.errstate(invalid="ignore"):
            sel = np.broadcast_to(np.asarray(evaluate(plan.selection, ns), dtype=bool), (n,))
    summary.nonfinite_events += int(bad_any.sum())
    final = good & sel
    return {k: np.ascontiguousarray(v[final]) for k, v in ev.items()}


def _check_units(pt: np.ndarray, units: str) -> None:
    med = float(np.median(pt))
    if units == "GeV" and med > 1000.0:
        msg = (f"the median leading-muon pT is {med:.4g} 'GeV': these values look like MeV; "
               "pass units='MeV' (--units MeV), or check_units=False if TeV muons are really intended")
        raise UnitsError(msg)
    if units == "MeV" and med < 1.0:
        msg = (f"the median leading-muon pT is {med:.4g} GeV after converting from MeV: the values look like "
               "GeV already; pass units='GeV'")
        raise UnitsError(msg)


def _check_branches(names: set[str], available: Sequence[str], path: str, tree: str) -> None:
    for name in sorted(names):
        if name not in available:
            raise MissingBranchError("branch", name, available, where=f"tree {tree!r} of {path!r}")


def _iter_raw_uproot(path: str, tree_name: str, branches: set[str], step_size: Any,
                     entry_stop: int | None) -> Iterator[dict[str, Any]]:
    f = _open(path)
    tree = f[tree_name]
    _check_branches(branches, list(tree.keys()), path, tree_name)
    try:
        for chunk in tree.iterate(sorted(branches), step_size=step_size, library="ak", entry_stop=entry_stop):
            yield {b: chunk[b] for b in branches}
    except DyrootError:
        raise
    except Exception as err:
        msg = (f"reading tree {tree_name!r} of {path!r} failed ({type(err).__name__}: {str(err).splitlines()[0]}); "
               "the file is probably truncated or corrupt: copy it again")
        raise CorruptFileError(msg) from None


def _flatten_raw(raw: dict[str, Any]) -> dict[str, Any]:
    """Numpy arrays for flat branches, awkward arrays kept for jagged ones."""
    ak = import_optional("awkward")
    return {k: (ak.to_numpy(v) if v.ndim == 1 else v) for k, v in raw.items()}


def _iter_chunks(files: list[str], tree: str | None, plan: _Plan, step_size: Any, backend: str,
                 entry_stop: int | None, summary: ReadSummary) -> Iterator[dict[str, np.ndarray]]:
    mapping_names, other = _raw_names(plan)
    state: dict[str, bool] = {}
    for path in files:
        summary.files.append(path)
        if backend == "rdataframe":
            from ._io_rdf import iter_raw_rdf

            f = _open(path)
            tname = _pick_tree(f, path, tree, plan.mapping)
            avail = list(f[tname].keys())
            _check_branches(other, avail, path, tname)
            for mu, keep, bad, raw in iter_raw_rdf(path, tname, plan.mapping, sorted(other), avail, entry_stop,
                                                   summary):
                summary.entries += len(keep)
                yield _finish(mu, raw, keep, bad, plan, summary, state)
            continue
        f = _open(path)
        tname = _pick_tree(f, path, tree, plan.mapping)
        for raw in _iter_raw_uproot(path, tname, mapping_names | other, step_size, entry_stop):
            raw = _flatten_raw(raw)
            n = len(next(iter(raw.values())))
            summary.entries += n
            bad: dict[str, np.ndarray] = {}
            mu, keep = _muons_uproot(raw, plan, bad, summary)
            yield _finish(mu, raw, keep, bad, plan, summary, state)


def _make_plan(mapping: Any, units: str | None, weight: Any, category: str | None, selection: Any,
               extra: Any, categories: CategoryScheme, nonfinite: str, check_units: bool,
               backend: str) -> _Plan:
    m = EventMapping.from_user(mapping)
    if nonfinite not in ("raise", "drop"):
        raise ConfigError(f"nonfinite must be 'raise' or 'drop', got {nonfinite!r}")
    if backend not in ("uproot", "rdataframe"):
        raise ConfigError(f"backend must be 'uproot' or 'rdataframe', got {backend!r}")
    u = units or m.units
    if u not in ("GeV", "MeV"):
        raise ConfigError(f"units must be 'GeV' or 'MeV', got {u!r}")
    w = m.weight if weight is None else (None if weight in (1, 1.0, "1") else str(weight))
    if weight is False:
        w = None
    ex = {e: e for e in extra} if extra is not None and not isinstance(extra, Mapping) else dict(extra or {})
    if selection is not None and not isinstance(selection, (str, Selection)):
        raise ConfigError(f"selection must be an expression string or a dyroot Selection, got {type(selection)}")
    return _Plan(m, u, w, category, selection, ex, categories, nonfinite, check_units)


def iter_events(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    tree: str | None = None,
    *,
    mapping: str | EventMapping | Mapping[str, str] | None = None,
    units: str | None = None,
    weight: str | float | bool | None = None,
    category: str | None = None,
    categories: CategoryScheme = DEFAULT_CATEGORIES,
    selection: str | Selection | None = None,
    extra: Sequence[str] | Mapping[str, str] | None = None,
    nonfinite: str = "raise",
    step_size: int | str = "100 MB",
    backend: str = "uproot",
    entry_stop: int | None = None,
    check_units: bool = True,
    summary: ReadSummary | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Stream events chunk by chunk (same arguments as :func:`read_events`).

    Chunks with no selected event are skipped. Errors about the whole input (an
    empty selection, a non-positive total weight, non-finite values under
    ``nonfinite="raise"``) are raised when the input is exhausted; chunks read before
    a non-finite value was met have been yielded by then.

    Yields:
        ``dict[str, numpy.ndarray]`` per chunk (see :func:`read_events`).
    """
    plan = _make_plan(mapping, units, weight, category, selection, extra, categories, nonfinite, check_units,
                      backend)
    files = expand_sources(source)
    summary = summary if summary is not None else ReadSummary()
    found_bad = False
    for chunk in _iter_chunks(files, tree, plan, step_size, backend, entry_stop, summary):
        if summary.nonfinite and plan.nonfinite == "raise":
            found_bad = True  # keep counting to the end, then refuse
            continue
        n = len(chunk["weight"])
        if n:
            summary.selected += n
            summary.sum_weights += float(chunk["weight"].sum())
            yield chunk
    if summary.nonfinite:
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(summary.nonfinite.items()))
        if plan.nonfinite == "raise" or found_bad:
            msg = (f"NaN or infinite values in {summary.nonfinite_events} events (per expression: {counts}) "
                   f"in {', '.join(summary.files)}; fix the input, or pass nonfinite='drop' to drop those events")
            raise NonFiniteError(msg)
        warnings.warn(f"dropped {summary.nonfinite_events} events with NaN or infinite values ({counts})",
                      InputWarning, stacklevel=2)
    if summary.selected == 0:
        msg = (f"no event passed the selection (read {summary.entries} entries from {len(summary.files)} file(s); "
               f"{summary.no_pair} without an opposite-charge muon pair; selection: {plan.selection!r}); "
               "check the selection expression, the tree and the mapping")
        raise EmptySelectionError(msg)
    if not summary.sum_weights > 0:
        msg = (f"the total weight of the {summary.selected} selected events is {summary.sum_weights:.6g} "
               f"(weight expression {plan.weight!r}); templates need a positive total: check the weight "
               "expression (e.g. a missing cross-section factor), or pass weight=1 for unit weights")
        raise WeightError(msg)


def read_events(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    tree: str | None = None,
    *,
    mapping: str | EventMapping | Mapping[str, str] | None = None,
    units: str | None = None,
    weight: str | float | bool | None = None,
    category: str | None = None,
    categories: CategoryScheme = DEFAULT_CATEGORIES,
    selection: str | Selection | None = None,
    extra: Sequence[str] | Mapping[str, str] | None = None,
    nonfinite: str = "raise",
    step_size: int | str = "100 MB",
    backend: str = "uproot",
    entry_stop: int | None = None,
    check_units: bool = True,
    summary: ReadSummary | None = None,
) -> dict[str, np.ndarray]:
    r"""Read events from ROOT files into dyroot's columns.

    Args:
        source: a file, a glob (``"data/*.root"``) or a list of them.
        tree: the tree name; default: the mapping's tree if the file has it, else the
            file's only tree.
        mapping: a preset name (``"dyroot"``, ``"nanoaod"``, ``"atlas"``), an
            :class:`EventMapping` or a dict (see the module docstring). Default ``"dyroot"``.
        units: units of the muon pT in the file, ``"GeV"`` or ``"MeV"`` (default: the
            mapping's).
        weight: a weight expression; default the mapping's (``"weight"`` for dyroot
            files, none for NanoAOD); ``1`` or ``False`` for unit weights.
        category: an expression giving the category index per event (e.g. a branch);
            default: computed from the kinematics with ``categories``.
        categories: the category scheme used when ``category`` is not given.
        selection: an expression (``"mll > 110 && mll < 160"``) or a
            :class:`~dyroot.features.Selection`; default keeps every event.
        extra: more columns to return: branch names, or ``{name: expression}``.
        nonfinite: ``"raise"`` (default) refuses NaN/inf in any value used;
            ``"drop"`` drops those events and warns.
        step_size: chunk size for uproot (entries, or a size like ``"100 MB"``).
        backend: ``"uproot"`` (default) or ``"rdataframe"`` (mapping values in C++).
        entry_stop: read at most this many entries per file.
        check_units: refuse pT values that look like the wrong units.
        summary: a :class:`ReadSummary` to fill with counts.

    Returns:
        ``dict[str, numpy.ndarray]``: ``MUON_COLUMNS`` (pT in GeV, charges int32,
        ``mu1`` leading), ``DIMUON_COLUMNS`` (float64), ``category`` (int32),
        ``weight`` (float64) and the ``extra`` columns.

    Raises:
        MissingInputError: no such file, or a glob that matches nothing.
        CorruptFileError: a file that is not readable ROOT (truncated, text...).
        MissingBranchError: a missing tree or branch (the message lists the nearest names).
        UnitsError: pT values that look like MeV while GeV was declared (or the reverse).
        NonFiniteError: NaN/inf values with ``nonfinite="raise"``.
        EmptySelectionError: no event selected.
        WeightError: the total weight is not positive.
        ConfigError: an invalid argument or expression.

    Example:
        >>> ev = read_events("ref.root")  # doctest: +SKIP
        >>> ev = read_events("nano_*.root", mapping="nanoaod", weight="genWeight",
        ...                  selection="mll > 110 && mll < 160")  # doctest: +SKIP
        >>> ev = read_events("atlas.root", mapping="atlas")  # MeV, tree DiMuonNtuple  # doctest: +SKIP
    """
    chunks = list(iter_events(source, tree, mapping=mapping, units=units, weight=weight, category=category,
                              categories=categories, selection=selection, extra=extra, nonfinite=nonfinite,
                              step_size=step_size, backend=backend, entry_stop=entry_stop,
                              check_units=check_units, summary=summary))
    if len(chunks) == 1:
        return chunks[0]
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
