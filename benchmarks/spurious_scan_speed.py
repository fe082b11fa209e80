"""Benchmark: the full spurious-signal scan (6 categories x the default catalogue x 21 masses).

Builds a templates file of the six default categories from a known Drell-Yan-like truth
(the LO core convolved with a 2-2.8 % resolution times exp(polynomial), Poisson-fluctuated
raw counts, 2e8 per category by default), then runs ``dyroot.scan.spurious_signal`` with
the requested worker counts and prints wall and CPU seconds (this process plus its
workers, start-up included), the chosen function per category and the failed fits.

Usage::

    python benchmarks/spurious_scan_speed.py                  # 2 workers, every default function
    python benchmarks/spurious_scan_speed.py --workers 1 2     # compare
    python benchmarks/spurious_scan_speed.py --functions 'Epoly*,Power*' --events 1e9 --asimov

The machine is shared: give the CPU seconds with the wall seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import tempfile
import time

import numpy as np

from dyroot.features import DEFAULT_BINNING, DEFAULT_CATEGORIES
from dyroot.functions import dy_core, gauss_legendre_nodes, get_function
from dyroot.templates import Templates

#: Truth per category: (a1, a2 of CoreEpoly2, relative resolution, share of the events).
TRUTH = {
    "central_lowpt": (-1.10, 0.12, 0.020, 0.22), "central_midpt": (-1.00, 0.10, 0.021, 0.20),
    "central_highpt": (-0.85, 0.08, 0.022, 0.08), "noncentral_lowpt": (-1.05, 0.11, 0.026, 0.22),
    "noncentral_midpt": (-0.95, 0.09, 0.027, 0.20), "noncentral_highpt": (-0.80, 0.07, 0.028, 0.08),
}


def make_templates(path: pathlib.Path, events: float, *, asimov: bool, seed: int = 1) -> pathlib.Path:
    """A templates file whose categories follow CoreEpoly2 truths (raw counts, sigma_pb = 25)."""
    edges = DEFAULT_BINNING.edges()
    lo, hi = gauss_legendre_nodes(edges)
    truth = get_function("CoreEpoly2")
    rng = np.random.default_rng(seed)
    n_events = int(events / 0.25)  # generated events: a quarter is selected into 110-160 GeV
    t = Templates.empty(categories=DEFAULT_CATEGORIES.names,
                        provenance={"sigma_pb": 25.0, "n_events": n_events, "backend": "benchmark"})
    for cat, (a1, a2, res, share) in TRUTH.items():
        mu = truth.bin_average(edges, {"a1": a1, "a2": a2}, (dy_core(lo, res), dy_core(hi, res)))
        mu *= events * share / mu.sum()
        n = mu if asimov else rng.poisson(mu).astype(np.float64)
        t.counts[f"mll_{cat}"][1:-1] = n
        t.sumw2[f"mll_{cat}"][1:-1] = n
        t.counts["mll_inclusive"][1:-1] += n
        t.sumw2["mll_inclusive"][1:-1] += n
    return t.write(path, force=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, nargs="+", default=[2])
    ap.add_argument("--functions", default=None, help="default: the whole default catalogue")
    ap.add_argument("--events", type=float, default=2e8, help="raw template events in 110-160 GeV (all categories)")
    ap.add_argument("--asimov", action="store_true", help="expected contents instead of Poisson counts")
    ap.add_argument("--lumi", type=float, default=139.0)
    ap.add_argument("--output", default=None, help="also write the outputs (summary, workspace, plots) here")
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from dyroot.scan import spurious_signal
    from dyroot.signal import SignalModel

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = make_templates(pathlib.Path(tmp) / "templates.root", args.events, asimov=args.asimov)
        print(f"templates: {args.events:.3g} raw events ({'Asimov' if args.asimov else 'Poisson'}), "
              f"built in {time.perf_counter() - t0:.1f} s")
        for w in args.workers:
            t0 = time.perf_counter()
            res = spurious_signal(path, signal=SignalModel.default(list(TRUTH)), lumi_fb=args.lumi,
                                  functions=args.functions, workers=w)
            n_fits = sum(len(s.points) for s in res.scans)
            failed = [f"{s.category}/{s.function}" for s in res.scans
                      if not (s.background_ok and all(p.ok for p in s.points))]
            print(json.dumps({
                "workers": w, "categories": len(res.inputs), "functions": len(res.config.functions),
                "masses": len(res.config.masses), "splusb_fits": n_fits,
                "wall_seconds": round(res.wall_seconds, 1), "cpu_seconds": round(res.cpu_seconds, 1),
                "elapsed_with_imports": round(time.perf_counter() - t0, 1), "chosen": res.chosen,
                "failed": failed, "load_average": os.getloadavg()[0]}, sort_keys=True))
            if args.output:
                res.write(args.output, force=True)
                print(res.table())


if __name__ == "__main__":
    main()
