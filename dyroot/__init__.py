"""dyroot: Drell-Yan dimuon templates from a normalizing flow, for the spurious-signal test.

The pipeline, each stage a module and a ``dyroot`` subcommand::

    ntuple.root / dyroot simulate  ->  dyroot train  ->  bundle/ (weights, ONNX)
    bundle/  ->  dyroot generate (SOFIE in RDataFrame, torch on CUDA, Dask)  ->  templates.root
    templates.root  ->  dyroot spurious (RooFit)  ->  workspace.root + the chosen function
    dyroot validate  ->  report/ (fidelity, amplification, memorisation, streams)
    dyroot run CONFIG  ->  all of the above, reusing finished stages

``import dyroot`` is light: it never imports ROOT, torch or onnx. The entry points
below are imported on first use, each with what its stage needs.

Example:
    >>> import dyroot
    >>> dyroot.FLOW_FEATURES
    ('mll', 'ptll', 'yll', 'costheta', 'phi_cs')
    >>> dyroot.DEFAULT_BINNING.nbins, len(dyroot.DEFAULT_CATEGORIES)
    (500, 6)
"""

from __future__ import annotations

import importlib
from typing import Any

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
    "read_events",
    "train_bundle",
    "load_bundle",
    "generate_templates",
    "generated_events",
    "Templates",
    "spurious_signal",
    "run_validation",
    "load_config",
    "run_pipeline",
]

#: The entry points imported on first use: name -> module.
_LAZY = {
    "read_events": "io",
    "train_bundle": "train",
    "load_bundle": "bundle",
    "generate_templates": "generate",
    "generated_events": "rdf",
    "Templates": "templates",
    "spurious_signal": "scan",
    "run_validation": "validate",
    "load_config": "config",
    "run_pipeline": "run",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    msg = f"module 'dyroot' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return __all__
