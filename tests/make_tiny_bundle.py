"""Train and export a tiny model bundle (as the ``tiny_bundle`` fixture) into a directory.

Used by CTest's fixtures (the macro smoke test of the top-level CMakeLists.txt), so that
``ctest`` is self-contained. Usage: ``python tests/make_tiny_bundle.py OUTPUT_DIR``.
"""

from __future__ import annotations

import pathlib
import shutil
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from _fixtures_model import toy_dimuon_events  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/make_tiny_bundle.py OUTPUT_DIR", file=sys.stderr)
        return 2
    from dyroot.export import export_bundle
    from dyroot.flows import FlowConfig
    from dyroot.train import TrainConfig, train_bundle

    out = pathlib.Path(argv[0])
    if out.exists():
        shutil.rmtree(out)
    train_bundle(toy_dimuon_events(30_000, seed=11), out, flow=FlowConfig(layers=4, hidden=32, bins=8),
                 train=TrainConfig(epochs=3, batch_size=2048, seed=3, threads=1), progress=False, sofie_batch=256)
    export_bundle(out)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
