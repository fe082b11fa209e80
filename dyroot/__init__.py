"""dyroot: Drell-Yan dimuon templates from a normalizing flow, for the spurious-signal test.

The pipeline, each stage a module and a ``dyroot`` subcommand::

    ntuple.root / dyroot simulate  ->  dyroot train  ->  bundle/ (weights, ONNX)
    bundle/  ->  dyroot generate (SOFIE in RDataFrame, torch on CUDA, Dask)  ->  templates.root
    templates.root  ->  dyroot spurious (RooFit)  ->  workspace.root + the chosen function
    dyroot validate  ->  report/ (fidelity, amplification, memorisation, streams)

``import dyroot`` is light: it never imports ROOT, torch or onnx; each stage
imports what it needs when it runs.
"""

from __future__ import annotations

from ._version import __version__
from .features import DEFAULT_BINNING, DEFAULT_CATEGORIES, FLOW_FEATURES, Binning, CategoryScheme, Selection

__all__ = [
    "__version__",
    "FLOW_FEATURES",
    "Selection",
    "CategoryScheme",
    "Binning",
    "DEFAULT_CATEGORIES",
    "DEFAULT_BINNING",
]


def __dir__() -> list[str]:
    return __all__
