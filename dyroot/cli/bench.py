"""``dyroot bench``: events/s per backend per core, FLOPs, fraction of fp32 peak, against Pythia."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run"]

HELP = "benchmark generation per core (sofie, onnxruntime, torch) against dyroot simulate"
DESCRIPTION = """\
Measure, one core each and in one run: end-to-end generation (noise, flow, muons, cuts,
categories, histograms) for SOFIE in RDataFrame, onnxruntime and torch; the flow alone
with its Gemm FLOPs per event and the fraction of this core's fp32 peak; dyroot simulate
(Pythia 8); and the speed-up per event selected in 110-160 GeV (target >= 100x).
Each measurement runs in its own process with one thread. Prints a table, and the
figures as JSON with --json.

examples:
  dyroot bench model/
  dyroot bench                      # trains the default model first (cached in --workdir)
  dyroot bench model/ --events 1e6 --json bench.json
"""


def _count(text: str) -> int:
    value = float(text)
    if value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive whole number")
    return int(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dyroot bench``."""
    parser.add_argument("bundle", nargs="?", default=None,
                        help="model bundle (default: the default architecture, trained briefly in --workdir)")
    parser.add_argument("--events", type=_count, default=200_000, help="generated events per backend (default 2e5)")
    parser.add_argument("--sim-events", type=_count, default=20_000,
                        help="events written by the Pythia run (default 2e4: its start-up is then < 5 %% of the time)")
    parser.add_argument("--backends", default="sofie,onnxruntime,torch", help="comma-separated backends to measure")
    parser.add_argument("--workdir", default=None, help="scratch/cache directory (default: a temporary one)")
    parser.add_argument("--peak-gflops", type=float, default=None,
                        help="fp32 peak of one core in GFLOP/s (default: clock x FLOP/cycle from /proc/cpuinfo)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON ('-': stdout)")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")


def run(args: argparse.Namespace) -> int:
    """Run ``dyroot bench``."""
    from ..benchmark import BENCH_BACKENDS, format_table, run_benchmark
    from ..exceptions import ConfigError

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in backends if b not in BENCH_BACKENDS]
    if unknown:
        raise ConfigError(f"unknown backend(s) {unknown}; choose among {', '.join(BENCH_BACKENDS)}")
    result = run_benchmark(args.bundle, events=args.events, sim_events=args.sim_events, backends=backends,
                           workdir=args.workdir, peak_gflops=args.peak_gflops, progress=not args.quiet)
    print(format_table(result))
    if args.json == "-":
        print(json.dumps(result, indent=1, sort_keys=True))
    elif args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        print(f"figures written to {args.json}", file=sys.stderr)
    return 0
