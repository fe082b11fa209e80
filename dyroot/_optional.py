"""Import optional dependencies with an error that says how to install them."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["import_root", "import_optional"]

_HINTS = {
    "ROOT": (
        "dyroot needs ROOT (PyROOT) for this. Either `pip install 'dyroot[root]'` "
        "(the official ROOT wheel from PyPI), or keep your LCG/conda ROOT: source its "
        "thisroot.sh (or activate the conda env) and create the virtual environment "
        "with --system-site-packages."
    ),
    "torch": "dyroot needs PyTorch: `pip install torch` (CUDA users: the build from pytorch.org for your CUDA).",
    "onnx": "dyroot needs onnx for this: `pip install 'dyroot[onnx]'`.",
    "onnxruntime": "dyroot needs onnxruntime for this: `pip install 'dyroot[onnx]'`.",
    "sofie": "dyroot needs SOFIE for this: `pip install 'dyroot[sofie]'` (standalone SOFIE and scipy-openblas32).",
    "scipy_openblas32": "dyroot needs a BLAS for SOFIE: `pip install scipy-openblas32` (or `dyroot[sofie]`).",
    "pythia8mc": "dyroot simulate needs Pythia 8: `pip install 'dyroot[sim]'` (pythia8mc==8.317.2 has a binary wheel).",
    "uproot": "dyroot needs uproot for this: `pip install uproot`.",
    "dask": "distributed generation needs Dask: `pip install 'dask[distributed]'`.",
    "distributed": "distributed generation needs Dask: `pip install 'dask[distributed]'`.",
    "matplotlib": "plots need matplotlib: `pip install matplotlib mplhep`.",
    "scipy": "dyroot needs scipy for this: `pip install scipy`.",
}


def import_optional(name: str) -> ModuleType:
    """Import ``name`` or raise ``ModuleNotFoundError`` whose text is the install command."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        top = name.split(".")[0]
        if err.name is not None and err.name.split(".")[0] != top:
            raise
        msg = _HINTS.get(top, f"dyroot needs {top!r} for this: `pip install {top}`.")
        raise ModuleNotFoundError(msg, name=top) from err


def import_root() -> ModuleType:
    """Import PyROOT in batch mode, quietly, and return the ``ROOT`` module."""
    import warnings

    with warnings.catch_warnings():
        # The PyPI wheel warns at import that it is an alpha distribution.
        warnings.filterwarnings("ignore", message=r"\s*This distribution of ROOT is in alpha stage",
                                category=UserWarning)
        root = import_optional("ROOT")
    if not getattr(root.gROOT, "IsBatch", lambda: True)():
        root.gROOT.SetBatch(True)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    return root
