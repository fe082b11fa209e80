"""``dyroot run CONFIG``: every stage from one TOML configuration, reusing finished ones."""

from __future__ import annotations

import argparse
import json

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run"]

HELP = "run every stage (sample, signal, train, generate, spurious, validate, report) from a TOML file"

DESCRIPTION = """\
Reads CONFIG (write a commented one with `dyroot init run.toml`), checks it entirely
(every problem is listed before any long work starts), then runs the stages:

  sample    reference events (Pythia 8, or your ntuples), split into training / held-out
  signal    gg->H->mumu samples and a double-sided Crystal Ball per category
  train     the normalizing flow (and the ensemble for the model uncertainty)
  generate  the m_mumu templates (SOFIE in RDataFrame, torch on CUDA, or Dask)
  spurious  the spurious-signal scan and the chosen background function per category
  validate  fidelity, amplification, memorisation and random-stream checks
  report    one HTML page joining every stage

Each stage writes below [run] output and records what it read; a rerun reuses every
stage whose inputs did not change. The last line printed is the report's path.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``dyroot run``."""
    parser.add_argument("config", help="the TOML configuration (see `dyroot init`)")
    parser.add_argument("--output", "-o", help="override [run] output")
    parser.add_argument("--until", metavar="STAGE", help="stop after this stage (e.g. train)")
    parser.add_argument("--force", action="store_true", help="rerun every stage, even those that are up to date")
    parser.add_argument("--check", action="store_true", help="only check the configuration and print it as JSON")


def run(args: argparse.Namespace) -> int:
    """Check the configuration, run the pipeline, print the report's path."""
    from ..config import load_config, validate

    cfg = load_config(args.config)
    if args.output:
        cfg["run"]["output"] = args.output
        cfg = validate(cfg)
    if args.check:
        print(json.dumps(cfg, indent=2, sort_keys=True))
        return 0
    from ..run import run_pipeline

    result = run_pipeline(cfg, force=args.force, until=args.until)
    if "report" in result.stages:
        print(f"report: {result.report}")
    return 0
