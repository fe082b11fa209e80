"""``dyroot export``: (re)write a bundle's ONNX files, and optionally its SOFIE header."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run"]

HELP = "(re)write a bundle's ONNX sampler graphs (and optionally the SOFIE C++ header)"

DESCRIPTION = """\
Rewrite BUNDLE/sampler.onnx (dynamic batch) and BUNDLE/sampler_sofie.onnx (fixed batch
sofie_batch) from the bundle's weights, with the fix-ups SOFIE needs, and check them
(onnx.checker, onnxruntime against torch). With --sofie DIR, also generate the SOFIE
header (+ weights .dat) into DIR; with --compile, build and load it and compare it with
torch on tail noise.

Examples:
  dyroot export model/
  dyroot export model/ --sofie-batch 4096
  dyroot export model/ --sofie build/sofie --compile
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``dyroot export``."""
    parser.add_argument("bundle", help="the bundle directory")
    parser.add_argument("--sofie-batch", type=int, default=None, help="new fixed batch of the SOFIE graph")
    parser.add_argument("--sofie", default=None, metavar="DIR", help="also generate the SOFIE header into DIR")
    parser.add_argument("--compile", action="store_true", help="with --sofie: compile it and check parity with torch")


def run(args: argparse.Namespace) -> int:
    """Export, then print a JSON summary."""
    from ..export import export_bundle

    out = {k: str(v) for k, v in export_bundle(args.bundle, sofie_batch=args.sofie_batch).items()}
    if args.sofie:
        from ..sofie import check_parity, compile_model, generate_header

        header = generate_header(out["sofie_onnx"], args.sofie)
        out.update({k: str(v) for k, v in header.paths().items()})
        if args.compile:
            lib = compile_model(header)
            out["library"] = str(lib.library)
            out["parity_max_abs_diff_over_std"] = check_parity(args.bundle, lib)
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0
