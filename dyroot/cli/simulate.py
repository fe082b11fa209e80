"""``dyroot simulate``: a Drell-Yan (or gg->H) reference sample from Pythia 8, smeared, in a ROOT file."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run"]

HELP = "simulate a Z/gamma*->mumu (or gg->H->mumu) reference sample with Pythia 8 into a ROOT file"

DESCRIPTION = """\
Simulate pp -> Z/gamma* -> mu mu (or gg -> H -> mu mu with --process ggH) with Pythia 8 at
parton level (ISR and FSR including QED radiation off the muons; MPI and hadronisation off
unless --mpi / --hadronisation), smear each muon's q/pT with the ATLAS-like table, select
two opposite-charge muons, assign the six kinematic categories and write a TTree `events`
(+ TNamed `dyroot_provenance`) to --output.

--events counts the events WRITTEN (after the selection). The same --seed gives the same
events for any --jobs (the sample is cut into shards of --shard-size events, each with its
own Pythia seed). The weight branch is in pb per event: sum(weight) = sigma x efficiency.

Presets:
  analysis  leading/subleading pT > 27/15 GeV, |eta| < 2.7, every reco mass kept,
            generator window 100-500 GeV: of the reco 110-160 GeV events, (9 +- 4)e-5
            come from below 100 GeV and 3e-6 from above 500 GeV in a wide-window sample
            (benchmarks/simulate_migration.py); reco masses below 110 GeV are incomplete.
  training  the looser pre-selection a flow is trained on: 20/10 GeV, |eta| < 3.5 (the
            smearing table's 2.0-2.7 row is used beyond 2.7), reco 105 <= mll < 170 GeV,
            generator window 95-500 GeV.

Examples:
  dyroot simulate --events 200000 --seed 1 --output ref.root
  dyroot simulate --preset training --events 1000000 --output train.root --jobs 2
  dyroot simulate --process ggH --mh 125 --events 50000 --output ggH.root
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``dyroot simulate``."""
    g = parser.add_argument_group("sample")
    g.add_argument("--preset", choices=("analysis", "training"), default="analysis",
                   help="selection and generator window preset (default: analysis)")
    g.add_argument("--process", choices=("dy", "ggH"), default="dy", help="dy: Z/gamma*->mumu; ggH: gg->H->mumu")
    g.add_argument("--mh", type=float, default=125.0, help="Higgs mass in GeV for --process ggH (default 125)")
    g.add_argument("--events", "-n", type=int, default=100_000, help="events to write, after selection (default 100000)")
    g.add_argument("--seed", type=int, default=1, help="master seed (default 1)")
    g.add_argument("--output", "-o", default=None, help="output ROOT file (default dyroot_<process>_<preset>.root)")
    g.add_argument("--force", action="store_true", help="overwrite an existing output")
    g.add_argument("--jobs", "-j", type=int, default=None,
                   help="worker processes, one Pythia each (default: the usable cores)")
    g = parser.add_argument_group("generator")
    g.add_argument("--sqrt-s", type=float, default=13.0, help="centre-of-mass energy in TeV (default 13)")
    g.add_argument("--mass-window", type=float, nargs=2, metavar=("LO", "HI"), default=None,
                   help="generator gamma*/Z mass window in GeV (PhaseSpace:mHatMin/Max; default from the preset)")
    g.add_argument("--mpi", action="store_true", help="multiparton interactions on (~30x slower)")
    g.add_argument("--hadronisation", action="store_true", help="hadronisation on")
    g.add_argument("--pythia", action="append", default=[], metavar="'KEY = VALUE'",
                   help="extra Pythia setting, applied last (repeatable)")
    g.add_argument("--shard-size", type=int, default=10_000,
                   help="selected events per shard: defines the random streams (default 10000)")
    g = parser.add_argument_group("detector and selection")
    g.add_argument("--lead-pt", type=float, default=None, help="leading-muon pT cut in GeV (analysis: 27)")
    g.add_argument("--sublead-pt", type=float, default=None, help="subleading-muon pT cut in GeV (analysis: 15)")
    g.add_argument("--max-eta", type=float, default=None, help="|eta| cut for both muons (analysis: 2.7)")
    g.add_argument("--mll-window", type=float, nargs=2, metavar=("LO", "HI"), default=None,
                   help="keep only reco LO <= mll < HI GeV (training preset: 95 180)")
    g.add_argument("--no-mll-window", action="store_true", help="keep every reco mass (drops the preset's window)")
    g.add_argument("--smearing", default=None, metavar="JSON",
                   help='q/pT resolution table: a JSON file or string {"eta_edges": [...], "r1": [...], "r2": [...]}')
    g.add_argument("--truth", action="store_true", help="also write generator-level muon pT (mu1_pt_true, mu2_pt_true)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _config(args: argparse.Namespace) -> Any:
    from ..detector import SmearingTable
    from ..exceptions import ConfigError
    from ..features import Selection
    from ..simulate import PRESETS, preset_config

    base: Selection = PRESETS[args.preset]["selection"]
    mll = base.mll_range
    if args.mll_window is not None:
        mll = tuple(args.mll_window)
    if args.no_mll_window:
        mll = None
    sel = Selection(
        lead_pt=base.lead_pt if args.lead_pt is None else args.lead_pt,
        sublead_pt=base.sublead_pt if args.sublead_pt is None else args.sublead_pt,
        max_abs_eta=base.max_abs_eta if args.max_eta is None else args.max_eta,
        opposite_charge=True, mll_range=mll,
    )
    kw: dict[str, Any] = {"process": args.process, "sqrt_s": args.sqrt_s, "mh": args.mh, "mpi": args.mpi,
                          "hadronisation": args.hadronisation, "selection": sel, "truth": args.truth,
                          "extra_settings": tuple(args.pythia), "shard_size": args.shard_size}
    if args.mass_window is not None:
        kw["mass_window"] = tuple(args.mass_window)
    if args.smearing is not None:
        text = args.smearing
        if os.path.isfile(text):
            with open(text) as fh:
                text = fh.read()
        try:
            kw["smearing"] = SmearingTable.from_json(text)
        except ValueError as err:
            raise ConfigError(f"--smearing: {err}") from None
    return preset_config(args.preset, **kw)


def run(args: argparse.Namespace) -> int:
    """Run ``dyroot simulate``; prints a JSON summary (sorted keys) on stdout."""
    import numpy as np

    from ..io import read_events
    from ..simulate import simulate

    config = _config(args)
    output = args.output or f"dyroot_{args.process}_{args.preset}.root"
    jobs = args.jobs if args.jobs is not None else len(os.sched_getaffinity(0))
    res = simulate(output, args.events, config, seed=args.seed, jobs=jobs, force=args.force,
                   progress=not args.no_progress and sys.stderr.isatty())
    ev = read_events(res.path, check_units=False)
    in_window = (ev["mll"] >= 110.0) & (ev["mll"] < 160.0)
    summary = {
        "output": str(res.path),
        "process": config.process,
        "preset": config.preset,
        "n_selected": res.n_selected,
        "n_generated": res.n_generated,
        "sigma_pb": res.sigma_pb,
        "sigma_selected_pb": res.sigma_selected_pb,
        "seconds": round(res.seconds, 2),
        "cpu_seconds": round(res.cpu_seconds, 2),
        "jobs": jobs,
        "generated_per_second": round(res.generated_per_second, 1),
        "generated_per_cpu_second": round(res.n_generated / res.cpu_seconds, 1) if res.cpu_seconds > 0 else None,
        "selected_per_second": round(res.n_selected / res.seconds, 1) if res.seconds > 0 else None,
        "fraction_in_110_160": float(np.mean(in_window)),
        "sigma_in_110_160_pb": float(ev["weight"][in_window].sum()),
        "events_per_category": np.bincount(ev["category"] + 1, minlength=len(config.categories) + 1)[1:].tolist(),
        "no_category": int((ev["category"] < 0).sum()),
    }
    print(json.dumps(summary, sort_keys=True, indent=1))
    return 0
