"""A small stand-in model bundle and its built library, shared by the C++ tests
(test_build, test_rdf, test_macros), built once per test session.

The bundle honours the bundle contract (COMMON.md section 3, ``dyroot.bundle``): a
``bundle.json`` that ``dyroot.bundle.read_config`` accepts, ``weights.pt``, and the
sampler ONNX files (``noise`` [B, 5] (+ ``context`` [B, C]) -> ``x`` [B, 5] physical
features) made from a tiny affine-coupling network with fixed random weights. Its
physics is only roughly Drell-Yan-like (m_mumu spread over 70-200 GeV), enough for
a good fraction of events to pass the default selection.
"""

from __future__ import annotations

import json
import pathlib
import warnings
from typing import Any

from dyroot.features import DEFAULT_CATEGORIES, FLOW_FEATURES, Selection

__all__ = ["make_standin_bundle", "standin_bundle", "standin_generator", "SIGMA_PB", "BATCH"]

SIGMA_PB = 2000.0
BATCH = 256
_CACHE: dict[tuple[str, bool], pathlib.Path] = {}


def _module(conditional: bool) -> Any:
    import torch
    from torch import nn

    class Coupling(nn.Module):
        def __init__(self, mask: list[float], ctx: int) -> None:
            super().__init__()
            m = torch.tensor(mask)
            self.register_buffer("mask", m)  # the masks differ between layers: no shared buffers, so
            self.register_buffer("inv", 1.0 - m)  # the exporter writes no Identity nodes (stack-notes trap 2)
            self.net = nn.Sequential(nn.Linear(5 + ctx, 32), nn.Tanh(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10))
            with torch.no_grad():
                self.net[4].weight.mul_(0.3)

        def forward(self, z: Any, c: Any = None) -> Any:
            h = z * self.mask
            h = self.net(h if c is None else torch.cat([h, c], dim=1))
            s, t = torch.tanh(h[:, :5]) * 0.5, h[:, 5:] * 0.5
            return z * self.mask + self.inv * (z * torch.exp(s) + t)

    class Flow(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            ctx = len(DEFAULT_CATEGORIES) if conditional else 0
            masks = [[1.0, 0, 1, 0, 1], [0.0, 1, 1, 0, 0], [1.0, 1, 0, 0, 0], [0.0, 0, 1, 1, 0]]  # masks and complements all distinct
            self.layers = nn.ModuleList([Coupling(m, ctx) for m in masks])

        def forward(self, noise: Any, context: Any = None) -> Any:
            z = noise
            for layer in self.layers:
                z = layer(z, context)
            mll = 70.0 + 40.0 * torch.exp(0.45 * z[:, 0:1])
            ptll = 18.0 * torch.exp(0.8 * z[:, 1:2])
            yll = 1.1 * z[:, 2:3]
            cost = torch.tanh(0.7 * z[:, 3:4])
            phi = 3.1415926 * torch.tanh(0.6 * z[:, 4:5])
            return torch.cat([mll, ptll, yll, cost, phi], dim=1)

    torch.manual_seed(11 if conditional else 7)
    return Flow().eval()


def make_standin_bundle(path: pathlib.Path, *, conditional: bool = False, batch: int = BATCH) -> pathlib.Path:
    """Write a stand-in bundle at ``path`` (a new directory) and return it."""
    import torch

    path.mkdir(parents=True, exist_ok=True)
    flow = _module(conditional)
    torch.save(flow.state_dict(), path / "weights.pt")
    ncat = len(DEFAULT_CATEGORIES)
    fractions = [0.3, 0.25, 0.05, 0.2, 0.15, 0.05]
    args: tuple[Any, ...] = (torch.randn(batch, 5),)
    names = ["noise"]
    if conditional:
        args = (torch.randn(batch, 5), torch.eye(ncat)[torch.arange(batch) % ncat])
        names = ["noise", "context"]
    for fname, dynamic in (("sampler.onnx", True), ("sampler_sofie.onnx", False)):
        axes = {n: {0: "B"} for n in [*names, "x"]} if dynamic else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(flow, args, str(path / fname), input_names=names, output_names=["x"],
                              dynamo=False, opset_version=17, dynamic_axes=axes)
    context = None
    if conditional:
        context = {"kind": "category", "names": DEFAULT_CATEGORIES.names, "dim": ncat, "fractions": fractions}
    config = {
        "format": "dyroot-bundle", "format_version": 1, "dyroot_version": "test",
        "features": list(FLOW_FEATURES),
        "preprocessing": [], "flow": {"architecture": "affine", "layers": 4, "depth": 2, "hidden": 32,
                                      "context": ncat if conditional else 0},
        "context": context,
        "selection": Selection().to_dict(), "categories": DEFAULT_CATEGORIES.to_list(),
        "training_selection": Selection(lead_pt=20.0, sublead_pt=10.0, mll_range=(60.0, 250.0)).to_dict(),
        "sigma_pb": SIGMA_PB, "sofie_batch": batch,
    }
    (path / "bundle.json").write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
    return path


def standin_bundle(tmp_path_factory: Any, *, conditional: bool = False) -> pathlib.Path:
    """The session's stand-in bundle (made once)."""
    key = (str(tmp_path_factory.getbasetemp()), conditional)
    if key not in _CACHE:
        _CACHE[key] = make_standin_bundle(tmp_path_factory.mktemp("cond_bundle" if conditional else "bundle"),
                                          conditional=conditional)
    return _CACHE[key]


def standin_generator(tmp_path_factory: Any, *, conditional: bool = False) -> tuple[pathlib.Path, Any]:
    """The stand-in bundle, built and loaded: ``(bundle path, dyroot::Generator)``."""
    from dyroot.build import load

    path = standin_bundle(tmp_path_factory, conditional=conditional)
    return path, load(path)
