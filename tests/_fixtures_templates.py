"""Session fixtures of the templates stage (owned by that stage's tests).

``templates_bundle``: the model stage's ``tiny_bundle`` when that fixture exists,
otherwise :class:`StandInBundle`, a tiny analytic "flow" (a Gemm, Exp, Tanh: the
operators a real sampler uses) that honours the bundle contract of COMMON.md
section 3: ``config``, ``hash``, ``flow``, ``sample(noise, context=None)`` giving the
PHYSICAL ``FLOW_FEATURES`` (mll GeV, ptll GeV, yll, costheta, phi_cs), ``onnx_path``
(``sampler.onnx``: input ``noise`` float32 [B, 5], output ``x`` float32 [B, 5]).
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import warnings
from typing import Any

import pytest

from dyroot.features import DEFAULT_CATEGORIES, FLOW_FEATURES, Selection

#: Cross-section (pb) the stand-in claims its full output represents.
STANDIN_SIGMA_PB = 2000.0


def _module() -> Any:
    import torch

    class ToyFlow(torch.nn.Module):
        """noise -> physical features: mll ~ 125 + 15 h0 GeV, ptll ~ 15 exp(0.8 h1) GeV, ..."""

        def __init__(self) -> None:
            super().__init__()
            g = torch.Generator().manual_seed(7)
            self.lin = torch.nn.Linear(5, 5)
            with torch.no_grad():
                self.lin.weight.copy_(torch.eye(5) + 0.1 * torch.randn(5, 5, generator=g))
                self.lin.bias.copy_(0.05 * torch.randn(5, generator=g))
            self.register_buffer("scale", torch.tensor([15.0, 0.8, 1.0, 1.0, 1.0]))

        def forward(self, noise: torch.Tensor) -> torch.Tensor:
            h = self.lin(noise) * self.scale
            mll = 125.0 + h[:, 0:1]
            ptll = 15.0 * torch.exp(h[:, 1:2])
            yll = 2.0 * torch.tanh(0.6 * h[:, 2:3])
            costheta = torch.tanh(h[:, 3:4])
            phi_cs = 3.1 * torch.tanh(h[:, 4:5])
            return torch.cat([mll, ptll, yll, costheta, phi_cs], dim=1)

    return ToyFlow().eval()


class StandInBundle:
    """A tiny bundle honouring the contract, until the model stage's ``tiny_bundle`` exists.

    Args:
        directory: where ``bundle.json`` and ``sampler.onnx`` are written.
    """

    def __init__(self, directory: str | pathlib.Path) -> None:
        import torch

        self.path = pathlib.Path(directory)
        self.path.mkdir(parents=True, exist_ok=True)
        self.flow = _module()
        self.config = {
            "format": "dyroot-bundle-standin", "features": list(FLOW_FEATURES), "sigma_pb": STANDIN_SIGMA_PB,
            "selection": Selection().to_dict(), "categories": DEFAULT_CATEGORIES.to_list(),
            "onnx": "sampler.onnx",
        }
        self.onnx_path = self.path / "sampler.onnx"
        self.sofie_onnx_path = None
        if not self.onnx_path.exists():
            with warnings.catch_warnings():  # the legacy exporter is deprecated; SOFIE wants its output
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.onnx.export(self.flow, (torch.zeros(4, 5),), str(self.onnx_path), input_names=["noise"],
                                  output_names=["x"], dynamic_axes={"noise": {0: "B"}, "x": {0: "B"}},
                                  opset_version=17, dynamo=False)
        (self.path / "bundle.json").write_text(json.dumps(self.config, indent=1))
        h = hashlib.sha256()
        for name in ("bundle.json", "sampler.onnx"):
            h.update((self.path / name).read_bytes())
        self.hash = h.hexdigest()

    def to(self, device: Any) -> "StandInBundle":
        self.flow.to(device)
        return self

    def sample(self, noise: Any, context: Any = None) -> Any:
        import torch

        with torch.no_grad():
            return self.flow(noise)


@pytest.fixture(scope="session")
def standin_bundle(tmp_path_factory) -> StandInBundle:
    """The stand-in bundle (torch module + ONNX sampler) in a session directory."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    return StandInBundle(tmp_path_factory.mktemp("standin_bundle"))


@pytest.fixture(scope="session")
def templates_bundle(request, standin_bundle):
    """The model stage's ``tiny_bundle`` (loaded) if that fixture is defined, else the stand-in."""
    try:
        path = request.getfixturevalue("tiny_bundle")
    except pytest.FixtureLookupError:
        return standin_bundle
    from dyroot.bundle import load_bundle

    return load_bundle(path)


class KillWorkerOnce:
    """A shard hook (``dyroot.distributed`` ``hook=``) that kills its own worker process
    with SIGKILL the first time shard ``index`` starts, leaving ``marker`` behind.

    Args:
        marker: file created just before the kill; its existence disarms the hook.
        index: the shard to kill.
    """

    def __init__(self, marker: str | pathlib.Path, index: int) -> None:
        self.marker, self.index = str(marker), index

    def __call__(self, shard: Any) -> None:
        import os
        import signal

        if shard.index == self.index and not os.path.exists(self.marker):
            with open(self.marker, "w") as f:
                f.write(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)


class MustNotRun:
    """A shard hook that fails: proves every shard was skipped."""

    def __call__(self, shard: Any) -> None:
        raise RuntimeError(f"shard {shard.index} ran although its file was finished")
