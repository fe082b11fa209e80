"""``dyroot init``: write a commented example configuration for ``dyroot run``."""

from __future__ import annotations

import argparse
import sys

__all__ = ["HELP", "add_arguments", "run"]

HELP = "write a commented example configuration (every key, at its default) for `dyroot run`"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``dyroot init``."""
    parser.add_argument("path", nargs="?", default="dyroot.toml", help="where to write it (default dyroot.toml; - = stdout)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")


def run(args: argparse.Namespace) -> int:
    """Write the example (atomically; never over an existing file without --force)."""
    import os
    from pathlib import Path

    from ..config import example_toml
    from ..exceptions import OutputExistsError

    text = example_toml()
    if args.path == "-":
        sys.stdout.write(text)
        return 0
    path = Path(args.path)
    if path.exists() and not args.force:
        raise OutputExistsError(f"{path} exists; pass --force to overwrite it, or give another path")
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text)
    os.replace(tmp, path)
    print(f"wrote {path}: edit it, then `dyroot run {path}`", file=sys.stderr)
    return 0
