"""``dyroot train``: train a normalizing flow on dimuon events and write a model bundle."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run"]

HELP = "train a normalizing flow on dimuon events and write a model bundle (weights + ONNX)"

DESCRIPTION = """\
Train a flow on the dimuon variables (mll, ptll, yll, costheta, phi_cs) of DATA (a file
from `dyroot simulate`, ideally `--preset training`, or any ntuple through the ingest
mapping) and write the bundle directory --output: weights.pt, bundle.json,
provenance.json, losses.csv/png, sampler.onnx (+ sampler_sofie.onnx, fixed batch).

The training pre-selection (default: leading/subleading pT > 20/10 GeV, |eta| < 3.5,
108 <= mll < 162 GeV) is looser than the analysis cuts, which generators apply after
generation. A checkpoint is written after every epoch: after an interruption, rerun the
same command with --resume. Weighted events, negative weights included, are handled by
a weighted likelihood (see dyroot.train).

With --ensemble K, K complete bundles are trained on bootstrap replicas (or disjoint
subsets, --ensemble-mode disjoint) into --output/member_00 ... with --output/ensemble.json.

Examples:
  dyroot train train.root --output model/
  dyroot train train.root --output model/ --epochs 40 --events 1000000 --threads 2
  dyroot train train.root --output model/ --resume
  dyroot train train.root --output ens/ --ensemble 5 --epochs 10
  dyroot train nano.root --mapping nanoaod --weight genWeight --output model/ --context category
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``dyroot train``."""
    parser.add_argument("data", nargs="+", help="input ROOT file(s) or glob(s)")
    parser.add_argument("--output", "-o", required=True, help="the bundle directory to write")
    parser.add_argument("--force", action="store_true", help="overwrite an existing bundle")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted training from its checkpoint")
    g = parser.add_argument_group("input")
    g.add_argument("--tree", default=None, help="tree name (default: the mapping's, or the file's only tree)")
    g.add_argument("--mapping", default=None, help="ingest mapping: dyroot (default), nanoaod, atlas")
    g.add_argument("--weight", default=None, help="weight expression (default: the mapping's); 1 for unit weights")
    g.add_argument("--events", "-n", type=int, default=None, help="use at most this many input entries per file")
    g.add_argument("--mll-range", type=float, nargs=2, metavar=("LO", "HI"), default=None,
                   help="training mass window in GeV (default 108 162)")
    g.add_argument("--lead-pt", type=float, default=None, help="training leading-muon pT cut, GeV (default 20)")
    g.add_argument("--sublead-pt", type=float, default=None, help="training subleading-muon pT cut, GeV (default 10)")
    g.add_argument("--max-eta", type=float, default=None, help="training |eta| cut (default 3.5)")
    g = parser.add_argument_group("model")
    g.add_argument("--architecture", choices=("spline", "affine"), default="spline", help="coupling type (default spline)")
    g.add_argument("--layers", type=int, default=6, help="coupling layers (default 6)")
    g.add_argument("--hidden", type=int, default=64, help="conditioner width (default 64)")
    g.add_argument("--depth", type=int, default=2, help="conditioner hidden layers (default 2)")
    g.add_argument("--bins", type=int, default=8, help="spline bins (default 8)")
    g.add_argument("--preprocessing", choices=("probit", "probit_y", "logit", "none"), default="probit",
                   help="pre-transforms of the features (default probit; see dyroot.transforms)")
    g.add_argument("--context", default="none",
                   help="conditioning: none (default), category, or comma-separated event columns")
    g.add_argument("--sofie-batch", type=int, default=None, help="fixed batch of sampler_sofie.onnx (default 1024)")
    g = parser.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=None, help="maximum epochs (default 20)")
    g.add_argument("--batch-size", type=int, default=None, help="events per step (default 4096)")
    g.add_argument("--lr", type=float, default=None, help="initial learning rate (default 3e-3)")
    g.add_argument("--patience", type=int, default=None, help="early-stopping patience in epochs (default 6)")
    g.add_argument("--val-fraction", type=float, default=None, help="validation fraction (default 0.1)")
    g.add_argument("--seed", type=int, default=1, help="seed of the weights, split and shuffles (default 1)")
    g.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    g.add_argument("--ensemble", type=int, default=None, metavar="K", help="train K members (for dyroot validate)")
    g.add_argument("--ensemble-mode", choices=("bootstrap", "disjoint"), default="bootstrap",
                   help="members on bootstrap replicas (default) or disjoint subsets")
    parser.add_argument("--no-export", action="store_true", help="do not write the ONNX files")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _read(args: argparse.Namespace, context_vars: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    from ..bundle import sha256_file
    from ..io import expand_sources, read_events, read_provenance

    files = expand_sources(args.data)
    events = read_events(files, args.tree, mapping=args.mapping, weight=args.weight, entry_stop=args.events,
                         extra=context_vars or None)
    source: dict[str, Any] = {"files": [str(f) for f in files], "sha256": [sha256_file(f) for f in files],
                              "n_read": int(len(events["mll"])), "tree": args.tree, "mapping": args.mapping,
                              "weight": args.weight, "entry_stop": args.events}
    try:
        source["input_provenance"] = read_provenance(files[0])
    except Exception:  # noqa: BLE001 - a foreign ntuple has none; that is fine
        source["input_provenance"] = None
    return events, source


def run(args: argparse.Namespace) -> int:
    """Train, write the bundle, export its ONNX files."""
    from dataclasses import replace

    from ..exceptions import ConfigError
    from ..flows import FlowConfig
    from ..train import DEFAULT_TRAINING_SELECTION, TrainConfig, train_bundle, train_ensemble

    context = args.context.strip()
    context_vars = [] if context in ("none", "category") else [c.strip() for c in context.split(",") if c.strip()]
    sel = DEFAULT_TRAINING_SELECTION
    overrides = {k: v for k, v in (("lead_pt", args.lead_pt), ("sublead_pt", args.sublead_pt),
                                   ("max_abs_eta", args.max_eta)) if v is not None}
    if args.mll_range is not None:
        if not args.mll_range[0] < args.mll_range[1]:
            raise ConfigError(f"--mll-range {args.mll_range}: LO must be below HI")
        overrides["mll_range"] = tuple(args.mll_range)
    sel = replace(sel, **overrides)
    tkw = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size), ("lr", args.lr),
                             ("patience", args.patience), ("val_fraction", args.val_fraction)) if v is not None}
    train = TrainConfig(seed=args.seed, device=args.device, threads=args.threads, **tkw)
    flow = FlowConfig(architecture=args.architecture, layers=args.layers, hidden=args.hidden, depth=args.depth,
                      bins=args.bins)
    t0 = time.time()
    events, source = _read(args, context_vars)
    kwargs: dict[str, Any] = dict(flow=flow, preprocessing=args.preprocessing, training_selection=sel,
                                  context=(context_vars or None) if context not in ("none", "category") else context,
                                  source=source, progress=not args.no_progress)
    if args.sofie_batch is not None:
        kwargs["sofie_batch"] = args.sofie_batch

    def export(path: Any) -> None:
        if not args.no_export:
            from ..export import export_bundle

            export_bundle(path)

    if args.ensemble:
        paths = train_ensemble(events, args.output, args.ensemble, mode=args.ensemble_mode, train=train,
                               force=args.force, resume=args.resume, on_member=export, **kwargs)
    else:
        paths = [train_bundle(events, args.output, train=train, force=args.force, resume=args.resume, **kwargs)]
        export(paths[0])
    summary = {"output": str(args.output), "members": [str(p) for p in paths] if args.ensemble else None,
               "seconds": round(time.time() - t0, 1)}
    for p in paths:
        cfg = json.loads((p / "bundle.json").read_text())
        summary.setdefault("bundles", []).append({"path": str(p), "best_epoch": cfg["training"]["best_epoch"],
                                                  "best_val_loss": cfg["training"]["best_val_loss"],
                                                  "sigma_pb": cfg["sigma_pb"], "n_train": cfg["n_train"]})
    json.dump(summary, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0
