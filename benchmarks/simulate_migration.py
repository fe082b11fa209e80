"""How much of the reconstructed 110-160 GeV template comes from outside a generator mass window?

Method (stratified generation, resmearing):
  1. Generate Drell-Yan events (truth level: bare muons after QED FSR, and the true
     gamma*/Z mass) in strata of the true mass, e.g. [30, 80], [80, 95], ...,
     [700, 13000] GeV, N events each; every event of stratum s has weight sigma_s / N
     (Pythia's cross-section of that stratum). Together the strata are one sample
     with a very wide generator window (30 GeV - sqrt(s)).
  2. Smear every event K times (independent draws, dyroot.detector) and apply the
     reconstructed selection of a preset (analysis: 27/15 GeV, |eta| < 2.7, opposite
     charge; training: 20/10 GeV, |eta| < 3). Resmearing multiplies the statistics of
     the resolution tails by K (the FSR tails are generation-limited).
  3. T = weighted number of events with reco mll in the window (110-160 for analysis,
     95-180 for training). For a candidate lower cut X, the migration from below is
     the weighted number of those events with mll_true < X, divided by T; from above
     for a cut Y, those with mll_true > Y. Errors: each generated event contributes
     w * (fraction of its K smearings that pass), summed in quadrature.

The default window of ``dyroot simulate`` is the narrowest candidate pair with both
fractions below 1e-4 (with their error); see DEFAULT_MASS_WINDOW / TRAINING_MASS_WINDOW in
dyroot/simulate.py.

Usage:  python benchmarks/simulate_migration.py [--events-per-stratum 30000] [--resmear 20] [--jobs 2]
Runtime: ~2 min on two idle cores with the defaults (330k generated events).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
import time

import numpy as np

from dyroot.simulate import generate_truth, preset_config, reconstruct

STRATA = [(30, 80), (80, 95), (95, 100), (100, 105), (105, 110), (110, 160), (160, 180), (180, 250),
          (250, 400), (400, 700), (700, 13000)]
LOWER = {"analysis": [90, 95, 98, 100, 102, 104, 106, 108], "training": [60, 70, 75, 80, 83, 85, 88]}
UPPER = {"analysis": [180, 200, 250, 300, 350, 400, 500, 700], "training": [200, 250, 300, 400, 500, 600, 700, 1000]}
WINDOW = {"analysis": (110.0, 160.0), "training": (95.0, 180.0)}


def _stratum(args: tuple[int, tuple[float, float], int]) -> dict[str, np.ndarray]:
    k, (lo, hi), n = args
    cfg = preset_config("analysis", mass_window=(float(lo), float(hi)))
    d = generate_truth(n, cfg, seed=12345, shard=k)
    d["w"] = np.full(n, float(d["sigma_pb"]) / n)
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events-per-stratum", type=int, default=30_000)
    ap.add_argument("--resmear", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
        strata = list(pool.map(_stratum, [(k, s, args.events_per_stratum) for k, s in enumerate(STRATA)]))
    gen_s = time.perf_counter() - t0
    ntot = args.events_per_stratum * len(STRATA)
    print(f"generated {ntot} events in {len(STRATA)} strata in {gen_s:.0f} s "
          f"({ntot / gen_s:.0f} ev/s on {args.jobs} processes)")
    print("stratum [GeV]   sigma [pb]")
    for (lo, hi), d in zip(STRATA, strata):
        print(f"  {lo:5.0f}-{hi:<6.0f} {float(d['sigma_pb']):10.4g}")
    rng = np.random.default_rng(7)
    for preset in ("analysis", "training"):
        cfg = preset_config(preset)
        sel = cfg.selection
        wlo, whi = WINDOW[preset]
        mtrue, contrib = [], []
        for d in strata:
            passed = np.zeros(len(d["w"]))
            for _ in range(args.resmear):
                ev = reconstruct(d, cfg, rng, keep_all=True)
                ok = ev["selected"] & (ev["mll"] >= wlo) & (ev["mll"] < whi)
                passed += ok
            mtrue.append(d["mll_true"])
            contrib.append(d["w"] * passed / args.resmear)
        m = np.concatenate(mtrue)
        c = np.concatenate(contrib)
        total = c.sum()
        print(f"\n[{preset}] selection {sel.to_dict()}: T = sigma x eff in reco {wlo:.0f}-{whi:.0f} GeV "
              f"= {total:.4g} pb")
        print("  lower cut X: fraction of T with mll_true < X")
        for x in LOWER[preset]:
            f = c[m < x].sum() / total
            e = np.sqrt((c[m < x] ** 2).sum()) / total
            print(f"    X = {x:5.0f} GeV: {f:.2e} +- {e:.1e}")
        print("  upper cut Y: fraction of T with mll_true > Y")
        for y in UPPER[preset]:
            f = c[m > y].sum() / total
            e = np.sqrt((c[m > y] ** 2).sum()) / total
            print(f"    Y = {y:5.0f} GeV: {f:.2e} +- {e:.1e}")
        lo_gen, hi_gen = cfg.mass_window
        inside = (m >= lo_gen) & (m < hi_gen)
        print(f"  dyroot default window {lo_gen:.0f}-{hi_gen:.0f} GeV: missing below "
              f"{c[m < lo_gen].sum() / total:.2e}, above {c[m >= hi_gen].sum() / total:.2e}; "
              f"kept {c[inside].sum() / total:.6f} of T")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
