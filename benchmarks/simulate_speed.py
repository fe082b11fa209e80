"""Throughput of ``dyroot simulate`` per core, against Pythia's own, and the fraction in 110-160 GeV.

Measures, in one process each (so the numbers share the machine's load):
  1. Pythia alone: ``pythia.next()`` in a loop with dyroot's settings (parton level, analysis
     window), events per CPU-second: the ceiling.
  2. dyroot's shard loop (Pythia + following the bottom copies to the muons + smearing +
     selection + categories + saving): generated events per CPU-second and per wall-second,
     with jobs=1 and jobs=2 through ``simulate`` (writing the ROOT file included in wall time).
  3. The fraction of written events with reco 110 <= mll < 160 GeV and sigma x eff there.

CPU-seconds (``time.process_time`` of the worker) are what "per core" means on a machine
that other jobs share; the wall-clock rate is printed too.

Usage:  python benchmarks/simulate_speed.py [--events 50000] [--output-dir /tmp]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


from dyroot.io import read_events
from dyroot.simulate import _make_pythia, _pythia_seed, preset_config, simulate


def pythia_alone(n: int) -> float:
    py = _make_pythia(preset_config("analysis"), _pythia_seed(99, 0))
    c0 = time.process_time()
    for _ in range(n):
        py.next()
    return n / (time.process_time() - c0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=50_000, help="selected events per simulate run")
    ap.add_argument("--output-dir", default=None)
    args = ap.parse_args()
    out = Path(args.output_dir or tempfile.mkdtemp(prefix="dyroot-speed-"))
    ceiling = pythia_alone(10_000)
    print(f"Pythia alone (next() only, parton level, 100-500 GeV): {ceiling:8.0f} events / CPU-second")
    for jobs in (1, 2):
        path = out / f"speed_j{jobs}.root"
        t0 = time.perf_counter()
        res = simulate(path, args.events, preset_config("analysis"), seed=1, jobs=jobs, force=True)
        wall = time.perf_counter() - t0
        ev = read_events(path)
        win = (ev["mll"] >= 110.0) & (ev["mll"] < 160.0)
        per_cpu = res.n_generated / res.cpu_seconds
        print(f"simulate --jobs {jobs}: {res.n_selected} written from {res.n_generated} generated; "
              f"{per_cpu:8.0f} generated / CPU-second ({per_cpu / ceiling:.0%} of Pythia alone), "
              f"{res.n_generated / wall:8.0f} generated / wall-second incl. writing "
              f"({res.n_selected / wall:.0f} written / s)")
        print(f"    fraction of written events in reco 110-160 GeV: {win.mean():.4f}; "
              f"sigma x eff there {ev['weight'][win].sum():.3f} pb (all written: {res.sigma_selected_pb:.3f} pb, "
              f"generator sigma {res.sigma_pb:.2f} pb); template events per generated event "
              f"{win.sum() / res.n_generated:.3f}")
    print(f"files in {out}")


if __name__ == "__main__":
    main()
