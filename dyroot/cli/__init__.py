"""The ``dyroot`` command line: one subcommand per stage, each a thin parse -> call -> write.

Every subcommand lives in its own module ``dyroot/cli/<name>.py`` defining
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``; those
modules import nothing heavy at the top, so ``dyroot --help`` and
``dyroot --version`` answer in well under a second without ROOT or torch.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from typing import Sequence

from .._version import __version__

__all__ = ["main", "SUBCOMMANDS"]

#: Subcommands in pipeline order; a module that is not there is simply not offered.
SUBCOMMANDS = (
    "demo", "run", "init", "simulate", "train", "export", "build", "generate",
    "spurious", "validate", "bench",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dyroot",
        description="Drell-Yan dimuon templates from a normalizing flow, for the spurious-signal test.",
        epilog="Run `dyroot <command> --help` for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"dyroot {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in SUBCOMMANDS:
        modname = f"{__name__}.{name}"
        if importlib.util.find_spec(modname) is None:
            continue
        mod = importlib.import_module(modname)
        p = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dyroot`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    import warnings

    from ..exceptions import DyrootError

    # The PyPI ROOT wheel warns at import that it is an alpha distribution: noise for our users.
    warnings.filterwarnings("ignore", message=r"\s*This distribution of ROOT is in alpha stage", category=UserWarning)
    try:
        return int(args._module.run(args) or 0)
    except DyrootError as err:
        print(f"dyroot {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dyroot {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
