"""``dyroot build``: compile a bundle's libdyroot (SOFIE model + event machinery) with CMake."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run"]

HELP = "compile a bundle's flow (SOFIE) and the C++ event generator into BUNDLE/build/libdyroot.so"

DESCRIPTION = """\
Generate the SOFIE C++ code of BUNDLE/sampler_sofie.onnx and the bundle's constants
(batch, context, selection, categories, cross-section), then configure and build
dyroot/cpp/CMakeLists.txt (ROOT from its ROOTConfig.cmake, BLAS from pip
scipy-openblas32 or the system) into BUNDLE/build/libdyroot.so, with
-O3 -ffast-math -march=native. Nothing is rebuilt when the bundle, the sources, the
options, the compiler and the CPU are unchanged. The library is what
`dyroot generate --backend sofie`, dyroot.rdf.generated_events and
macros/dy_fill_templates.C use. Prints a JSON summary (the library path under "library").

Examples:
  dyroot build model/
  dyroot build model/ --force --no-native     # for a cluster whose nodes have other CPUs
  dyroot build model/ --sources-only gen/     # only the generated C++ (for your own CMake)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``dyroot build``."""
    parser.add_argument("bundle", help="the bundle directory (made by `dyroot train`, exported)")
    parser.add_argument("--build-dir", default=None, metavar="DIR",
                        help="build directory (default: BUNDLE/build, or a cache directory if BUNDLE is read-only)")
    parser.add_argument("--force", action="store_true", help="rebuild even if the build is up to date")
    parser.add_argument("--no-native", dest="native", action="store_false",
                        help="do not compile with -march=native (portable across CPUs)")
    parser.add_argument("--werror", action="store_true", help="treat compiler warnings as errors")
    parser.add_argument("--build-type", default="Release", help="CMake build type (default Release)")
    parser.add_argument("--jobs", "-j", type=int, default=None, help="parallel compile jobs (default: all cores)")
    parser.add_argument("--sources-only", default=None, metavar="DIR",
                        help="only write the generated sources (SOFIE header, weights, bundle constants) into DIR")
    parser.add_argument("--verbose", action="store_true", help="print CMake's and the compiler's output")


def run(args: argparse.Namespace) -> int:
    """Build (or generate the sources), then print a JSON summary."""
    from ..build import build, build_dir_for, generate_sources

    if args.sources_only:
        config = generate_sources(args.bundle, args.sources_only)
        out = {"generated": str(config.parent), "config": str(config)}
    else:
        bdir = build_dir_for(args.bundle) if args.build_dir is None else args.build_dir
        start = time.perf_counter()
        stamp = pathlib.Path(bdir) / "dyroot-build.json"
        before = stamp.stat().st_mtime_ns if stamp.is_file() else None
        lib = build(args.bundle, build_dir=args.build_dir, force=args.force, native=args.native,
                    werror=args.werror, build_type=args.build_type, jobs=args.jobs, quiet=not args.verbose)
        after = stamp.stat().st_mtime_ns if stamp.is_file() else None
        out = {"library": str(lib), "build_dir": str(lib.parent), "rebuilt": before != after,
               "seconds": round(time.perf_counter() - start, 3)}
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0
