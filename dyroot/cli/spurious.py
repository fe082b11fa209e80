"""``dyroot spurious``: the spurious-signal test on templates; choose the background function per category."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run"]

HELP = "spurious-signal test (RooFit): choose the background function of each category from the templates"

DESCRIPTION = """\
For every category of TEMPLATES (a `dyroot generate` file: TH1D mll_<category> +
provenance), every candidate background function and every Higgs mass of the scan: an
extended binned S+B fit (double-sided Crystal Ball + function) to the template scaled to
--lumi, the fitted (spurious) signal S, its expected uncertainty dS (Asimov fit), the part
due to the template's statistics Delta_MC, and the chi2 p-value of the background-only fit
with the template's own errors. A function passes if max(0, |S| - 2 Delta_MC) < 0.2 dS at
every m_H and p > 0.01 (thresholds below); the passing function with the fewest
parameters is chosen. Failed fits are reported, never used.

Outputs in --output: summary.json, summary.txt (the table), workspace.root (RooWorkspace
`dyroot`: per category the chosen background, the signal, the template as RooDataHist,
model_<category>), workspace.json (the same as HS3 JSON), plots/.

The signal (--signal): ggH samples from `dyroot simulate --process ggH` (one per m_H,
fitted per category; `file.root:125.5` gives the mass if the provenance lacks it), or a
JSON configuration (dyroot.signal.SignalModel format); default: dyroot's placeholder
shapes (physics.md section 4).

Examples:
  dyroot spurious templates.root --signal ggH_125.root --lumi 139 --output spurious/
  dyroot spurious templates.root --functions 'Epoly*,CoreEpoly*,BWZRedux' --masses 120:130:1
  dyroot spurious user.root --template-lumi 3000 --functions-file my_functions.toml
"""


def _masses(text: str) -> list[float]:
    if ":" in text:
        lo, hi, step = (float(x) for x in text.split(":"))
        n = int(round((hi - lo) / step))
        return [round(lo + i * step, 6) for i in range(n + 1)]
    return [float(x) for x in text.split(",") if x.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``dyroot spurious``."""
    parser.add_argument("templates", help="templates ROOT file (TH1D mll_<category> + dyroot_provenance)")
    g = parser.add_argument_group("inputs")
    g.add_argument("--signal", nargs="+", default=None, metavar="FILE",
                   help="ggH sample(s) to fit (FILE or FILE:MH), or one JSON signal configuration")
    g.add_argument("--lumi", type=float, default=139.0, help="data luminosity in fb^-1 (default 139)")
    g.add_argument("--template-lumi", type=float, default=None,
                   help="luminosity (fb^-1) the histograms correspond to (default: from the provenance)")
    g.add_argument("--template-scale", type=float, default=None, help="explicit factor to the data luminosity")
    g.add_argument("--categories", default=None, help="comma-separated subset of categories")
    g.add_argument("--effective-events", nargs="+", default=None, metavar="N|CAT=N",
                   help="the events a generated template is worth (N_eff from `dyroot validate`'s amplification): "
                        "one number for every category or CAT=N pairs; its errors (Delta_MC, the chi2) become "
                        "those of N_eff events. Default: the template's own statistics")
    g = parser.add_argument_group("scan")
    g.add_argument("--functions", default=None,
                   help="comma-separated names; 'Epoly*' selects a family (default: the whole catalogue)")
    g.add_argument("--functions-file", action="append", default=[], metavar="FILE",
                   help="TOML/JSON file of extra background functions (repeatable)")
    g.add_argument("--list-functions", action="store_true", help="print the catalogue and exit")
    g.add_argument("--masses", default="120:130:0.5", help="LO:HI:STEP or a comma list, GeV (default 120:130:0.5)")
    g.add_argument("--jobs", "-j", type=int, default=2, help="worker processes (default 2)")
    g.add_argument("--backend", default="cpu", choices=("cpu", "legacy"), help="RooFit evaluation backend")
    g = parser.add_argument_group("criteria")
    g.add_argument("--max-z", type=float, default=0.2, help="largest |S|/dS (default 0.2)")
    g.add_argument("--mc-sigmas", type=float, default=2.0, help="Delta_MC subtracted from |S| (default 2)")
    g.add_argument("--strict", action="store_true", help="do not subtract Delta_MC (|S| < max-z dS)")
    g.add_argument("--min-pvalue", type=float, default=0.01, help="smallest chi2 p-value (default 0.01)")
    g.add_argument("--max-s-over-sexp", type=float, default=None,
                   help="also pass when |S| < this x S_expected (default: off)")
    g = parser.add_argument_group("outputs")
    g.add_argument("--output", "-o", default="spurious", help="output directory (default ./spurious)")
    g.add_argument("--force", action="store_true", help="overwrite existing outputs")
    g.add_argument("--no-plots", action="store_true", help="skip the plots")
    g.add_argument("--no-workspace", action="store_true", help="skip workspace.root / workspace.json")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")


def _effective_events(values: list[str] | None) -> dict[str, float] | float | None:
    """``--effective-events`` as one number or ``{category: N}``."""
    from ..exceptions import ConfigError

    if not values:
        return None
    try:
        if len(values) == 1 and "=" not in values[0]:
            return float(values[0])
        pairs = [v.split("=", 1) for v in values]
        if any(len(p) != 2 for p in pairs):
            raise ValueError
        return {k.strip(): float(n) for k, n in pairs}
    except ValueError:
        raise ConfigError(f"--effective-events {' '.join(values)}: give one number (e.g. 5e5) or CAT=N pairs "
                          "(e.g. central_lowpt=4.8e3 noncentral_lowpt=1.8e4)") from None


def run(args: argparse.Namespace) -> int:
    """Run the scan; the table goes to stderr, a JSON line (chosen functions, outputs, timing) to stdout."""
    from ..fit import FitOptions
    from ..functions import available_functions, get_function, load_functions_file
    from ..scan import spurious_signal
    from ..spurious import Criteria

    for f in args.functions_file:
        load_functions_file(f)
    if args.list_functions:
        for name in available_functions():
            fn = get_function(name)
            print(f"{name:<12} {fn.n_params:>2}  {fn.expression}")
        return 0
    criteria = Criteria(max_z_spur=args.max_z, relax_mc=not args.strict, mc_sigmas=args.mc_sigmas,
                        min_chi2_pvalue=args.min_pvalue, max_s_over_sexp=args.max_s_over_sexp)

    def progress(done: int, total: int, scan: Any) -> None:
        if not args.quiet:
            state = "ok" if scan.background_ok and all(p.ok for p in scan.points) else "FIT FAILED"
            print(f"[{done}/{total}] {scan.category} {scan.function}: {state} ({scan.cpu_seconds:.1f} s CPU)",
                  file=sys.stderr, flush=True)

    result = spurious_signal(
        args.templates, signal=args.signal, lumi_fb=args.lumi, scale=args.template_scale,
        template_lumi_fb=args.template_lumi,
        categories=[c.strip() for c in args.categories.split(",")] if args.categories else None,
        functions=args.functions, masses=_masses(args.masses), criteria=criteria,
        fit=FitOptions(backend=args.backend), workers=args.jobs, progress=progress,
        effective_events=_effective_events(args.effective_events))
    paths = result.write(args.output, force=args.force, workspace=not args.no_workspace, plots=not args.no_plots)
    if not args.quiet:
        print(result.table(), file=sys.stderr)
    print(json.dumps({"chosen": result.chosen, "outputs": {k: str(v) for k, v in paths.items()},
                      "wall_seconds": round(result.wall_seconds, 2), "cpu_seconds": round(result.cpu_seconds, 2)},
                     sort_keys=True))
    return 0
