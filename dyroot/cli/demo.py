"""``dyroot demo``: the README's main job, the whole chain on the embedded default (no user data).

It is ``dyroot run`` on :data:`dyroot.config.DEMO_CONFIG`: a Pythia 8 reference sample, the
signal shapes, the flow, 10^8 generated events through SOFIE in RDataFrame, the
spurious-signal scan, the validation and the report, in ``demo/``. A second run reuses
every finished stage.
"""

from __future__ import annotations

import argparse

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run"]

HELP = "run the whole chain on the embedded default (Pythia sample -> flow -> 1e8 events -> spurious signal)"

DESCRIPTION = """\
The main job on dyroot's embedded default, no user data needed: simulate a Drell-Yan
reference sample and gg->H->mumu signal samples with Pythia 8, train the flow, generate
10^8 events through SOFIE inside RDataFrame into m_mumu templates per category, run the
spurious-signal scan, validate the generated events, and write one report. About 10
minutes on two cores; every stage shows its progress, and a second run reuses the
finished stages. `dyroot init` writes the same configuration for your own runs
(`dyroot run`).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``dyroot demo``."""
    parser.add_argument("--output-dir", default=None, help="where the demo writes (default: demo/)")
    parser.add_argument("--force", action="store_true", help="redo every stage even if it is up to date")
    parser.add_argument("--print-config", action="store_true", help="print the demo's configuration as TOML and stop")


def run(args: argparse.Namespace) -> int:
    """Run the demo; the last line printed is the report's path."""
    from ..config import DEMO_CONFIG, validate

    raw = {sec: dict(keys) for sec, keys in DEMO_CONFIG.items()}
    if args.output_dir:
        raw["run"]["output"] = args.output_dir
    cfg = validate(raw)
    if args.print_config:
        from ..config import to_toml

        print(to_toml(raw))
        return 0
    from ..run import run_pipeline

    result = run_pipeline(cfg, force=args.force)
    print(f"report: {result.report}")
    return 0
