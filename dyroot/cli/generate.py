"""``dyroot generate``: generated events straight into TH1D templates (one file)."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run"]

HELP = "generate events from a model bundle into TH1D templates of m_mumu per category"
DESCRIPTION = """\
Generate N events from a model bundle and histogram the selected ones: TH1D of m_mumu
(inclusive and per category, Sumw2 on) and optional further variables, with a provenance
TNamed. Event i of a seed is the same on every backend, thread count and shard
(counter-based Philox streams), so the output is reproducible.

examples:
  dyroot generate model/ --events 100000000 --seed 1 --output templates.root
  dyroot generate model/ --events 1e9 --seed 1 --backend torch --device cuda --output t.root
  dyroot generate model/ --events 1e9 --seed 1 --shards 64 --scheduler tcp://head:8786 -o t.root
  dyroot generate model/ --events 1e8 --seed 1 --normalise xsec --lumi 140 -o t.root
"""


def _count(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of events (e.g. 1e8)") from None
    if value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive whole number of events")
    return int(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dyroot generate``."""
    parser.add_argument("bundle", help="model bundle directory (from `dyroot train`)")
    parser.add_argument("--events", "-n", type=_count, required=True, help="events to generate (before cuts), e.g. 1e8")
    parser.add_argument("--seed", type=int, required=True, help="stream seed, 0 <= S < 2**64")
    parser.add_argument("--output", "-o", required=True, help="templates ROOT file to write")
    parser.add_argument("--backend", choices=("sofie", "torch", "onnxruntime"), default="sofie",
                        help="sofie: SOFIE in RDataFrame (default); torch: CPU or CUDA; onnxruntime")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (torch; onnxruntime with its CUDA provider)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (RDataFrame ImplicitMT, torch/onnxruntime intra-op); per shard when sharded")
    parser.add_argument("--batch-size", type=int, default=None, help="events per batch (CPU 8192, CUDA 2^20)")
    parser.add_argument("--first-event", type=int, default=0, help="global index of the first event (default 0)")
    parser.add_argument("--bins", default=None, metavar="LO:HI:WIDTH",
                        help="m_mumu binning in GeV (default 110:160:0.1)")
    parser.add_argument("--extra", default="", metavar="VAR[,VAR...]",
                        help="further variables to histogram, e.g. ptll,yll,costheta")
    parser.add_argument("--normalise", choices=("counts", "unit", "xsec", "sidebands"), default="counts",
                        help="counts (raw, default), unit area, xsec (sigma x L, needs --lumi), "
                             "sidebands (to --reference outside 120-130 GeV)")
    parser.add_argument("--lumi", type=float, default=None, help="integrated luminosity in fb^-1 (--normalise xsec)")
    parser.add_argument("--reference", default=None,
                        help="templates-format ROOT file whose mll_<region> histograms set the sideband scale")
    dist = parser.add_argument_group("distributed (Dask)")
    dist.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                      help="run shards on this Dask scheduler")
    dist.add_argument("--shards", type=int, default=None,
                      help="split into K shards (without --scheduler: a LocalCluster on this machine's cores)")
    dist.add_argument("--workers", type=int, default=None, help="LocalCluster worker processes (default: cores)")
    gpu = parser.add_argument_group("CUDA (torch backend)")
    gpu.add_argument("--tf32", action="store_true", help="allow TF32 matmuls (faster, ~1e-3 relative matmul error)")
    gpu.add_argument("--compile", action="store_true", help="torch.compile the fused step")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output (and foreign shard files)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the provenance as JSON on stdout")


def _binning(text: str | None) -> Any:
    from ..exceptions import ConfigError
    from ..features import DEFAULT_BINNING, Binning

    if text is None:
        return DEFAULT_BINNING
    try:
        lo, hi, width = (float(x) for x in text.split(":"))
        b = Binning(lo, hi, width)
        b.nbins  # noqa: B018 - validates the width
    except ValueError as err:
        raise ConfigError(f"--bins {text!r}: give LO:HI:WIDTH in GeV with WIDTH dividing HI-LO ({err})") from err
    return b


def run(args: argparse.Namespace) -> int:
    """Run ``dyroot generate``."""
    from ..exceptions import ConfigError, OutputExistsError
    from ..templates import Templates

    output = pathlib.Path(args.output)
    if output.exists() and not args.force:
        raise OutputExistsError(f"{output} exists; pass --force to overwrite it, or choose another --output")
    if args.normalise == "xsec" and args.lumi is None:
        raise ConfigError("--normalise xsec needs --lumi L (fb^-1)")
    if args.normalise == "sidebands" and args.reference is None:
        raise ConfigError("--normalise sidebands needs --reference FILE")
    reference = Templates.read(args.reference) if args.reference else None
    extra = tuple(v.strip() for v in args.extra.split(",") if v.strip())
    common = dict(backend=args.backend, device=args.device, threads=args.threads, batch_size=args.batch_size,
                  first_event=args.first_event, binning=_binning(args.bins), extra_variables=extra,
                  progress=not args.no_progress)
    if args.shards is not None or args.scheduler is not None:
        if args.tf32 or args.compile:
            raise ConfigError("--tf32/--compile are for a single-process CUDA run; drop them with --shards/--scheduler")
        from ..distributed import generate_distributed

        templates = generate_distributed(args.bundle, args.events, args.seed, output, shards=args.shards,
                                         scheduler=args.scheduler, workers=args.workers, force=args.force,
                                         **common)  # type: ignore[arg-type]
    else:
        from ..generate import generate_templates

        templates = generate_templates(args.bundle, args.events, args.seed, tf32=args.tf32, compile=args.compile,
                                       **common)  # type: ignore[arg-type]
    if args.normalise != "counts":
        templates = templates.normalised(args.normalise, lumi_fb=args.lumi, reference=reference)
    templates.write(output, force=args.force)
    p = templates.provenance
    rate = p["n_events"] / p["wall_s"] if p.get("wall_s") else float("nan")
    print(f"wrote {output}: {p['n_events']:,} events generated, {p['n_selected']['inclusive']:,} selected "
          f"({p['backend']}, {rate:,.0f} events/s)", file=sys.stderr)
    if args.json:
        print(json.dumps(p, sort_keys=True, indent=1, default=str))
    return 0
