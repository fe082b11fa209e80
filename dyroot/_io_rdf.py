"""The RDataFrame reading backend of :mod:`dyroot.io` (``read_events(..., backend="rdataframe")``).

Boundary module (PyROOT). Mapping values are C++ expressions (RDataFrame ``Define``);
for a jagged mapping the pair is picked in C++ by ``dyroot_io::pick_pair`` with the
same rule as the uproot backend (the leading muon and the highest-pT muon of opposite
charge; ties go to the first muon in the collection). Each file is read in one
``AsNumpy`` call (use the uproot backend to stream files larger than memory).
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np

from ._io_expr import names_in
from .exceptions import ConfigError, DyrootError, MissingBranchError
from .features import MUON_COLUMNS

__all__ = ["iter_raw_rdf", "CPP_HELPERS"]

#: C++ declared once per process.
CPP_HELPERS = r"""
#include <cmath>
#include "ROOT/RVec.hxx"
namespace dyroot_io {
template <typename P, typename Q>
ROOT::RVecI pick_pair(const ROOT::RVec<P> &pt, const ROOT::RVec<Q> &q) {
   ROOT::RVecI out{-1, -1};
   const int n = static_cast<int>(pt.size());
   if (n < 2 || static_cast<int>(q.size()) != n) return out;
   int i = 0;
   for (int k = 1; k < n; ++k) if (pt[k] > pt[i]) i = k;
   int j = -1;
   for (int k = 0; k < n; ++k) {
      if (k == i || !(double(q[k]) * double(q[i]) < 0)) continue;
      if (j < 0 || pt[k] > pt[j]) j = k;
   }
   if (j < 0) return out;
   out[0] = i; out[1] = j;
   return out;
}
template <typename T>
bool any_nonfinite(const ROOT::RVec<T> &v) {
   for (auto x : v) if (!std::isfinite(static_cast<double>(x))) return true;
   return false;
}
}  // namespace dyroot_io
"""

_DECLARED = False
_JAGGED_KEYS = ("pt", "eta", "phi", "charge")


def _declare(root: Any) -> None:
    global _DECLARED
    if _DECLARED:
        return
    root.gSystem.Load("libROOTVecOps")
    if not root.gInterpreter.Declare(CPP_HELPERS):
        raise DyrootError("declaring dyroot's C++ reading helpers failed; use backend='uproot'")
    _DECLARED = True


def _check_names(exprs: Sequence[str], avail: Sequence[str], path: str, tree: str) -> None:
    for expr in exprs:
        try:
            names = names_in(expr)
        except ConfigError:
            continue  # C++ the Python parser does not know: RDataFrame will judge
        for name in sorted(names):
            if name not in avail and "::" not in expr:
                raise MissingBranchError("branch", name, avail, where=f"tree {tree!r} of {path!r}")


def iter_raw_rdf(path: str, tree: str, mapping: Any, other: Sequence[str], avail: Sequence[str],
                 entry_stop: int | None, summary: Any) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray,
                                                                          dict[str, np.ndarray], dict[str, Any]]]:
    """Read one file with RDataFrame.

    Yields:
        ``(muons, keep, bad, raw)``: the eight muon columns (float64), the events that
        have a muon pair, per-expression non-finite masks, and the other branches.
    """
    from ._optional import import_root

    root = import_root()
    _declare(root)
    _check_names(list(mapping.columns.values()), avail, path, tree)
    df = root.RDataFrame(tree, path)
    if entry_stop is not None:
        df = df.Range(int(entry_stop))
    cols: list[str] = []
    bad_cols: dict[str, str] = {}
    try:
        if mapping.kind == "flat":
            for c in MUON_COLUMNS:
                df = df.Define(f"_dy_{c}", f"static_cast<double>({mapping.columns[c]})")
                cols.append(f"_dy_{c}")
        else:
            ex = {k: mapping.columns[k] for k in _JAGGED_KEYS}
            df = df.Define("_dy_pair", f"dyroot_io::pick_pair({ex['pt']}, {ex['charge']})")
            df = df.Define("_dy_has", "_dy_pair[0] >= 0")
            cols.append("_dy_has")
            for k, expr in ex.items():
                for slot, tag in ((0, "mu1"), (1, "mu2")):
                    df = df.Define(f"_dy_{tag}_{k}",
                                   f"_dy_pair[{slot}] >= 0 ? static_cast<double>(({expr})[_dy_pair[{slot}]]) : 0.0")
                    cols.append(f"_dy_{tag}_{k}")
                df = df.Define(f"_dy_bad_{k}", f"dyroot_io::any_nonfinite({expr})")
                bad_cols[expr] = f"_dy_bad_{k}"
                cols.append(f"_dy_bad_{k}")
        data = df.AsNumpy(cols + list(other))
    except Exception as err:  # cppyy turns C++ exceptions into Python ones
        if isinstance(err, DyrootError):
            raise
        msg = (f"RDataFrame could not read {tree!r} of {path!r} with the mapping {dict(mapping.columns)} "
               f"({str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__}); "
               "mapping values must be C++ expressions with backend='rdataframe'")
        raise ConfigError(msg) from None
    mu = {c: np.asarray(data[f"_dy_{c}"], dtype=np.float64) for c in MUON_COLUMNS}
    n = len(mu["mu1_pt"])
    if mapping.kind == "flat":
        keep = np.ones(n, dtype=bool)
        bad = {mapping.columns[c]: ~np.isfinite(mu[c]) for c in MUON_COLUMNS}
    else:
        keep = np.asarray(data["_dy_has"], dtype=bool)
        summary.no_pair += int((~keep).sum())
        bad = {expr: np.asarray(data[c], dtype=bool) for expr, c in bad_cols.items()}
        for c in MUON_COLUMNS:
            mu[c] = np.where(keep, mu[c], 0.0)
    raw = {b: np.asarray(data[b]) for b in other}
    yield mu, keep, bad, raw
