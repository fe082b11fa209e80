r"""Export a bundle's model to ONNX in the form ROOT SOFIE evaluates correctly.

Boundary module (torch -> ONNX). Two graphs per bundle, the same model:

* ``sampler.onnx``: input ``noise`` float32 [B, 5] (and ``context`` [B, C] for a
  conditional model), output ``x`` float32 [B, 5], the PHYSICAL features in
  ``FLOW_FEATURES`` order; ``B`` dynamic (onnxruntime, any batch).
* ``sampler_sofie.onnx``: the same with the fixed batch ``sofie_batch`` of
  ``bundle.json`` (SOFIE generates code for one batch size).

Exporter: the TorchScript exporter (``torch.onnx.export(..., dynamo=False,
opset_version=17)``). The dynamo exporter needs ``onnxscript``, which the stack does not
ship, and the TorchScript one gives a small, flat graph once fixed up. The fix-ups
(each found to give wrong numbers or a failure in SOFIE while ``check_model`` said True;
see ``stack-notes.md``):

1. ``Identity`` nodes: the exporter turns identical constants (the same knot matrices
   in several coupling layers) into ``Identity`` nodes on one initializer, and adds
   int64 ``Identity`` nodes that SOFIE cannot parse. Each is removed: an ``Identity``
   of an initializer or ``Constant`` becomes a copy under its output name, any other
   is bypassed.
2. The graph is checked against :data:`SOFIE_SAFE_OPS`, the operators verified here
   to give correct numbers in SOFIE; anything else (Gather, ScatterND, Where,
   Expand, Equal, Shape...) is an :class:`~dyroot.exceptions.ExportError`.
3. The model code avoids the other traps by construction (no sum of two MatMul
   outputs, which SOFIE would fuse into a broken Gemm; coordinate selection by
   constant matrices, no indexing).

After writing, the graph passes ``onnx.checker`` and, when onnxruntime is installed,
is run on a batch with tail noise (:math:`|z|` up to 5) and compared with torch.

Example:
    >>> "Gather" in SOFIE_SAFE_OPS
    False
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import _umask_mode
from .exceptions import BundleError, ExportError

__all__ = [
    "OPSET",
    "SOFIE_SAFE_OPS",
    "DEFAULT_SOFIE_BATCH",
    "export_model",
    "fix_graph",
    "check_ops",
    "export_bundle",
    "parity_noise",
]

OPSET = 17
#: The batch of ``sampler_sofie.onnx`` unless asked otherwise (1024-4096 is the
#: sweet spot of SOFIE on CPU caches; see stack-notes).
DEFAULT_SOFIE_BATCH = 1024

#: Operators that SOFIE evaluates correctly here (checked by tests/test_export.py).
SOFIE_SAFE_OPS = frozenset({
    "Gemm", "MatMul", "Relu", "Tanh", "Sigmoid", "Softplus", "Softmax", "Exp", "Log", "Erf", "Pow", "Sqrt",
    "Add", "Sub", "Mul", "Div", "Neg", "Abs", "Concat", "Slice", "Reshape", "CumSum", "ReduceSum",
    "GreaterOrEqual", "Greater", "Less", "LessOrEqual", "Cast", "Clip", "Constant",
})


def parity_noise(n: int, dim: int = 5, seed: int = 7) -> np.ndarray:
    """A float32 noise batch [n, dim] for parity checks: normals, plus tail rows.

    The first rows put one coordinate at +-3, +-4, +-5 (the others normal), so the
    spline tails and the pre-processing edges are exercised.
    """
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, dim)).astype(np.float32)
    row = 0
    for value in (5.0, -5.0, 4.0, -4.0, 3.0, -3.0):
        for j in range(dim):
            if row < n:
                z[row, j] = value
                row += 1
    return z


def fix_graph(model: Any) -> Any:
    """Remove every ``Identity`` node of an ONNX ``ModelProto`` (in place; returned).

    An ``Identity`` of an initializer or of a ``Constant`` becomes a copy under its
    output name; any other is bypassed by renaming its output in the consumers.
    Initializers left unused are dropped.
    """
    import onnx

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consts = {n.output[0]: n for n in graph.node if n.op_type == "Constant"}
    outputs = {o.name for o in graph.output}
    rename: dict[str, str] = {}
    for node in [n for n in graph.node if n.op_type == "Identity"]:
        src, dst = node.input[0], node.output[0]
        src = rename.get(src, src)
        if src in inits:
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[src])
            copy.name = dst
            graph.initializer.append(copy)
            inits[dst] = copy
        elif src in consts:
            new = onnx.NodeProto()
            new.CopyFrom(consts[src])
            del new.output[:]
            new.output.append(dst)
            new.name = f"{consts[src].name}_copy_{dst}"
            graph.node.insert(list(graph.node).index(node), new)
            consts[dst] = new
        elif dst in outputs:
            continue  # keep: a graph output must be produced by a node
        else:
            rename[dst] = src
        graph.node.remove(node)
    if rename:
        for node in graph.node:
            for i, name in enumerate(node.input):
                if name in rename:
                    node.input[i] = rename[name]
    used = {i for n in graph.node for i in n.input} | outputs
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)
    return model


def check_ops(model: Any) -> None:
    """Raise :class:`ExportError` if the graph uses an operator outside :data:`SOFIE_SAFE_OPS`."""
    bad = sorted({n.op_type for n in model.graph.node} - SOFIE_SAFE_OPS)
    if bad:
        msg = (f"the exported graph uses {bad}, which SOFIE does not evaluate correctly; "
               "rewrite the model with constant matrices, masks and clamps (see dyroot.flows)")
        raise ExportError(msg)


class _Wrapper:  # the torch module is defined lazily
    pass


def _wrapper(model: Any, conditional: bool) -> Any:
    from torch import nn

    class Sampler(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, noise: Any, context: Any = None) -> Any:
            return self.model(noise, context)

    class CondSampler(Sampler):
        def forward(self, noise: Any, context: Any) -> Any:  # noqa: D102 - both inputs required
            return self.model(noise, context)

    return CondSampler() if conditional else Sampler()


def export_model(model: Any, path: str | os.PathLike[str], *, batch: int | None = None,
                 check: bool = True) -> Path:
    """Export a ``FlowModel`` to ONNX (atomically), fix it up and check it.

    Args:
        model: the torch ``FlowModel`` (noise, context -> physical features).
        path: the ``.onnx`` file to write (replaced if it exists).
        batch: a fixed batch size (for SOFIE), or ``None`` for a dynamic batch.
        check: run ``onnx.checker`` and, if onnxruntime is installed, compare with torch.

    Returns:
        The path written.

    Raises:
        ExportError: the graph uses operators SOFIE gets wrong, or onnxruntime
            disagrees with torch.
    """
    import torch

    onnx = _import("onnx")
    path = Path(path)
    conditional = bool(model.config.context)
    dim = model.config.features
    n = batch or 64
    noise = torch.from_numpy(parity_noise(n, dim))
    args: tuple[Any, ...] = (noise,)
    names = ["noise"]
    if conditional:
        ctx = _example_context(model, n)
        args = (noise, ctx)
        names.append("context")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    model.cpu()
    wrapper = _wrapper(model, conditional)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(
                wrapper, args, tmp, input_names=names, output_names=["x"], opset_version=OPSET,
                dynamo=False, do_constant_folding=True,
                dynamic_axes=None if batch else {k: {0: "batch"} for k in names + ["x"]},
            )
        proto = fix_graph(onnx.load(tmp))
        check_ops(proto)
        proto.doc_string = "dyroot sampler: noise [B,5] (+ context [B,C]) -> physical (mll, ptll, yll, costheta, phi_cs)"
        onnx.save(proto, tmp)
        if check:
            onnx.checker.check_model(tmp)
            _compare_with_onnxruntime(tmp, model, args)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        model.to(device)
        model.train(was_training)
    return path


def _import(name: str) -> Any:
    from ._optional import import_optional

    return import_optional(name)


def _example_context(model: Any, n: int) -> Any:
    import torch

    spec = model.context_spec
    if spec.kind == "category":
        idx = torch.arange(n) % spec.dim
        return torch.nn.functional.one_hot(idx, spec.dim).to(torch.float32)
    mean = torch.tensor(spec.mean, dtype=torch.float32)
    std = torch.tensor(spec.std, dtype=torch.float32)
    g = torch.Generator().manual_seed(3)
    return mean + std * torch.randn(n, spec.dim, generator=g)


def _compare_with_onnxruntime(path: str, model: Any, args: tuple[Any, ...], atol: float = 1e-3) -> None:
    """Run the graph in onnxruntime (when installed) and compare with torch, relative to each column's spread."""
    try:
        import onnxruntime as ort
    except ModuleNotFoundError:
        return
    import torch

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feeds = {"noise": args[0].numpy()}
    if len(args) > 1:
        feeds["context"] = args[1].numpy()
    got = sess.run(None, feeds)[0]
    with torch.no_grad():
        ref = model(*args).numpy()
    scale = np.maximum(ref.std(axis=0), 1e-6)
    worst = float(np.max(np.abs(got - ref) / scale))
    if not np.all(np.isfinite(got)) or worst > atol:
        msg = (f"onnxruntime disagrees with torch on the exported graph {path} (max |diff|/std = {worst:.2e} > "
               f"{atol}); please report this with the bundle")
        raise ExportError(msg)


def export_bundle(path: str | os.PathLike[str], *, sofie_batch: int | None = None) -> dict[str, Path]:
    """(Re)write a bundle's ``sampler.onnx`` and ``sampler_sofie.onnx``.

    Args:
        path: the bundle directory.
        sofie_batch: a new fixed batch for the SOFIE graph (stored in bundle.json);
            ``None`` keeps the bundle's.

    Returns:
        ``{"onnx": path, "sofie_onnx": path}``.

    Raises:
        BundleError: the bundle cannot be loaded.
        ExportError: see :func:`export_model`.
    """
    from .bundle import FILES, load_bundle, write_json

    bundle = load_bundle(path)
    if sofie_batch is not None:
        if sofie_batch < 1:
            raise BundleError(f"sofie_batch must be a positive batch size, not {sofie_batch}")
        if sofie_batch != bundle.sofie_batch:
            config = dict(bundle.config)
            config["sofie_batch"] = int(sofie_batch)
            write_json(bundle.path / FILES["config"], config)
            bundle = load_bundle(path)
    out = {
        "onnx": export_model(bundle.flow, bundle.file("onnx")),
        "sofie_onnx": export_model(bundle.flow, bundle.file("sofie_onnx"), batch=bundle.sofie_batch),
    }
    return out
