"""``dyroot validate``: are the generated events statistically sound? An HTML + JSON report."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run"]

HELP = "validate a model's generated events against held-out events: fidelity, amplification, memorisation, streams"

DESCRIPTION = """\
Generate events with the bundle (torch, counter-based streams) and compare them with
held-out reference events that the model never saw, then write a report folder
(index.html, PNG figures, report.json, figures/*.json, validation.json):

  fidelity        chi2/ndf with pulls and KS per variable and category, category
                  fractions, a classifier two-sample test (AUC with DeLong's error)
  amplification   G = N_eff/N_train of the m_mumu template per category: quantile MSE
                  against the held-out events; with --ensemble, the variance fit a/N + c
  spurious        S_spur's template-statistics and model (ensemble) uncertainties, next
                  to S_spur of the training-size sample (needs RooFit)
  memorisation    nearest-training distances, generated vs held-out; exact duplicates
  streams         shared noise vectors, shard-to-shard correlation, bit-identical reruns

The training events default to the file named in the bundle's provenance; without
them, G and memorisation are skipped. The exit status is 0 when every verdict passes,
1 when one fails (the report is written either way), 2 for an error.

examples:
  dyroot simulate --seed 2 -n 1000000 -o heldout.root          # events never trained on
  dyroot validate model/ --reference heldout.root --output report/
  dyroot validate model/ --reference heldout.root --ensemble ens/ --events 1e6 -o report/
  dyroot validate model/ --reference heldout.root --training train.root --no-classifier -o report/
"""


def _count(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of events (e.g. 1e6)") from None
    if value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive whole number of events")
    return int(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dyroot validate``."""
    parser.add_argument("bundle", nargs="?", default=None, help="model bundle directory (from `dyroot train`)")
    parser.add_argument("--bundle", dest="bundle_opt", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--reference", "-r", required=True, nargs="+",
                        help="held-out reference events (ROOT file(s) or glob), never trained on")
    parser.add_argument("--output", "-o", required=True, help="report folder to write")
    parser.add_argument("--training", "-t", nargs="+", default=None,
                        help="the training events (default: the file in the bundle's provenance)")
    parser.add_argument("--ensemble", default=None, help="ensemble directory (`dyroot train --ensemble K`)")
    parser.add_argument("--templates", default=None, help="templates file of this bundle (`dyroot generate`)")
    parser.add_argument("--events", "-n", type=_count, default=200_000,
                        help="events to generate for the checks, before cuts (default 2e5)")
    parser.add_argument("--template-events", type=_count, default=None,
                        help="events of the nominal template generated for the spurious-signal split when no "
                             "--templates is given (default: --events)")
    parser.add_argument("--ensemble-events", type=_count, default=200_000,
                        help="events per ensemble member, before cuts (default 2e5)")
    parser.add_argument("--seed", type=int, default=1, help="stream seed of the generated events (default 1)")
    parser.add_argument("--alpha", type=float, default=1e-3, help="family-wise significance level (default 1e-3)")
    parser.add_argument("--quantiles", type=int, default=25, help="quantiles of the quantile-MSE method (default 25)")
    parser.add_argument("--region-width", type=float, default=2.0,
                        help="region width in GeV of the ensemble-variance method (default 2)")
    parser.add_argument("--lumi", type=float, default=140.0, help="luminosity in fb^-1 for the spurious signal (140)")
    parser.add_argument("--no-classifier", action="store_true", help="skip the classifier two-sample test")
    parser.add_argument("--classifier-epochs", type=int, default=20, help="classifier epochs (default 20)")
    parser.add_argument("--no-streams", action="store_true", help="skip the stream and shard checks")
    parser.add_argument("--no-spurious", action="store_true", help="skip the spurious-signal uncertainty split")
    parser.add_argument("--spurious-functions", default=None, metavar="F[,F...]",
                        help="candidate functions scanned on the nominal template "
                             "(default Epoly2,Epoly3,Bernstein3,Power1,CoreEpoly1)")
    parser.add_argument("--workers", type=int, default=1, help="processes of the RooFit scan (default 1)")
    parser.add_argument("--device", default="cpu", help="torch device for generation (cpu or cuda)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--force", action="store_true", help="replace an existing report folder")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    """Run ``dyroot validate``; 0 all verdicts pass, 1 one fails (report written)."""
    from ..exceptions import ConfigError
    from ..report import check_output
    from ..validate import ValidationConfig, run_validation
    from ..validate_report import build_report

    bundle = args.bundle or args.bundle_opt
    if bundle is None:
        raise ConfigError("no model bundle given: `dyroot validate BUNDLE --reference HELDOUT.root --output DIR`")
    check_output(args.output, force=args.force)
    extra: dict[str, Any] = {"spurious_workers": args.workers, "template_events": args.template_events}
    if args.spurious_functions:
        extra["spurious_functions"] = tuple(f.strip() for f in args.spurious_functions.split(",") if f.strip())
    cfg = ValidationConfig(**extra, n_generate=args.events, seed=args.seed, alpha=args.alpha, classifier=not args.no_classifier,
                           classifier_epochs=args.classifier_epochs, n_quantiles=args.quantiles,
                           region_width=args.region_width, ensemble_events=args.ensemble_events,
                           spurious=not args.no_spurious, streams=not args.no_streams, lumi_fb=args.lumi, device=args.device)
    cfg.check()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    start = time.perf_counter()

    def log(line: str) -> None:
        if not args.quiet:
            print(f"[validate {time.perf_counter() - start:7.1f} s] {line}", file=sys.stderr, flush=True)

    one = (lambda v: None if v is None else (v[0] if len(v) == 1 else v))
    res = run_validation(bundle, one(args.reference), training=one(args.training), ensemble=args.ensemble,
                         templates=args.templates, config=cfg, log=log)
    log("writing the report")
    command = "dyroot validate " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "dyroot validate"
    rep = build_report(res, subtitle=f"`{command}`")
    rep.attach("validation.json", res.to_dict())
    out = rep.write(args.output, force=args.force)
    verdicts: dict[str, Any] = res.verdicts()
    print("  ".join(f"{k}: {'PASS' if v else 'FAIL' if v is False else '-'}" for k, v in verdicts.items()))
    print(f"report: {out / 'index.html'}")
    return 1 if any(v is False for v in verdicts.values()) else 0
