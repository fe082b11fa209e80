"""``dyroot demo``: the README's main job on the embedded default (no user data).

For now: simulate a default Drell-Yan reference sample into ``demo/`` and plot its
dimuon mass spectrum per category. A second run reuses the finished sample (and the
plot); ``--force`` redoes both. Later stages of the chain are added here as they land.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run", "REFERENCE_NAME", "PLOT_NAME"]

HELP = "run the main job on the embedded default: a reference sample and its m_mumu plot per category"

DESCRIPTION = """\
Simulate a default Pythia 8 Z/gamma* -> mu mu reference sample (analysis preset: leading and
subleading muon pT > 27/15 GeV, |eta| < 2.7, ATLAS-like smearing; generator window 100-500 GeV)
into <output-dir>/reference.root and plot the m_mumu spectrum of each of the six categories
to <output-dir>/mll_per_category.png (log scale, 110-160 GeV fit range marked).

Re-running reuses a finished sample made with the same --events and --seed; --force redoes it.
The default size (100000 events) takes about half a minute on two idle cores.
"""

REFERENCE_NAME = "reference.root"
PLOT_NAME = "mll_per_category.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``dyroot demo``."""
    parser.add_argument("--output-dir", default="demo", help="where the demo writes its files (default: demo/)")
    parser.add_argument("--events", "-n", type=int, default=100_000,
                        help="events in the reference sample, after selection (default 100000)")
    parser.add_argument("--seed", type=int, default=1, help="master seed (default 1)")
    parser.add_argument("--jobs", "-j", type=int, default=None, help="worker processes (default: the usable cores)")
    parser.add_argument("--force", action="store_true", help="redo every step even if its output exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _reusable(path: Path, n_events: int, seed: int) -> bool:
    """True when ``path`` is a finished dyroot sample made with the same size and seed."""
    from ..exceptions import DyrootError
    from ..io import read_provenance
    from ..simulate import preset_config

    if not path.exists():
        return False
    try:
        prov = read_provenance(path)
    except DyrootError:
        return False
    want = preset_config("analysis").to_dict()
    same_config = all(prov.get(k) == v for k, v in want.items())
    return same_config and prov.get("n_selected") == n_events and prov.get("seed") == seed


def run(args: argparse.Namespace) -> int:
    """Run the demo; prints a JSON summary (sorted keys) on stdout."""
    import numpy as np

    from ..exceptions import ConfigError
    from ..io import read_events, read_provenance
    from ..plots import plot_mll_per_category
    from ..simulate import preset_config, simulate

    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output-dir {out} exists and is not a directory; choose another one")
    out.mkdir(parents=True, exist_ok=True)
    sample = out / REFERENCE_NAME
    plot = out / PLOT_NAME
    steps: dict[str, Any] = {}
    if not args.force and _reusable(sample, args.events, args.seed):
        steps["simulate"] = "reused"
    else:
        if sample.exists() and not args.force:
            msg = (f"{sample} exists but was not made by this demo with --events {args.events} --seed {args.seed}; "
                   "pass --force to replace it, or choose another --output-dir")
            raise ConfigError(msg)
        jobs = args.jobs if args.jobs is not None else len(os.sched_getaffinity(0))
        print(f"dyroot demo: simulating {args.events} Drell-Yan events into {sample} ({jobs} processes)",
              file=sys.stderr)
        res = simulate(sample, args.events, preset_config("analysis"), seed=args.seed, jobs=jobs, force=True,
                       progress=not args.no_progress and sys.stderr.isatty())
        steps["simulate"] = {"seconds": round(res.seconds, 1), "generated_per_second": round(res.generated_per_second)}
    prov = read_provenance(sample)
    ev = read_events(sample)
    if args.force or steps["simulate"] != "reused" or not plot.exists():
        title = (f"Pythia 8 $Z/\\gamma^*\\to\\mu\\mu$, \u221as = {prov['sqrt_s_tev']:g} TeV, smeared; "
                 f"{len(ev['mll'])} events")
        plot_mll_per_category(ev, plot, force=True, title=title)
        steps["plot"] = "written"
    else:
        steps["plot"] = "reused"
    window = (ev["mll"] >= 110.0) & (ev["mll"] < 160.0)
    summary = {
        "reference_sample": str(sample),
        "plot": str(plot),
        "steps": steps,
        "n_events": int(len(ev["mll"])),
        "sigma_selected_pb": float(ev["weight"].sum()),
        "fraction_in_110_160": float(window.mean()),
        "events_in_110_160_per_category": np.bincount(ev["category"][window], minlength=6).tolist(),
    }
    print(json.dumps(summary, sort_keys=True, indent=1))
    return 0
