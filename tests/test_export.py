"""Export parity: torch vs onnxruntime vs SOFIE on the same noise (tails included), the ONNX
fix-ups, and SOFIE's operator check. The SOFIE library is compiled once per session."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from dyroot.bundle import load_bundle  # noqa: E402
from dyroot.exceptions import ExportError  # noqa: E402
from dyroot.export import SOFIE_SAFE_OPS, check_ops, export_bundle, fix_graph, parity_noise  # noqa: E402

pytestmark = pytest.mark.onnx

#: Parity tolerance on the standardised outputs: |a - b| / std(column) <= 1e-4 (rtol = 0).
ATOL = 1e-4


@pytest.fixture(scope="module")
def wild_bundle(tiny_bundle, tmp_path_factory):
    """tiny_bundle with every spline (couplings and the mll marginal) pushed far from the identity, re-exported."""
    dst = tmp_path_factory.mktemp("wild") / "wild"
    shutil.copytree(tiny_bundle, dst)
    state = torch.load(dst / "weights.pt", weights_only=True)
    g = torch.Generator().manual_seed(8)
    for k, v in state.items():
        if k.endswith(("net.4.weight", "net.4.bias", "marginal.theta")):  # the splines' last layers
            state[k] = v + 0.25 * torch.randn(v.shape, generator=g)
    torch.save(state, dst / "weights.pt")
    export_bundle(dst)
    return dst


@pytest.fixture(scope="module")
def wild_sofie(wild_bundle, tmp_path_factory):
    pytest.importorskip("sofie")
    pytest.importorskip("scipy_openblas32")
    if shutil.which("g++") is None:
        pytest.skip("no g++")
    from dyroot.sofie import compile_model, generate_header

    header = generate_header(load_bundle(wild_bundle).sofie_onnx_path, tmp_path_factory.mktemp("sofie_wild"),
                             name="wild_model")
    return compile_model(header)


def _ref(bundle, z, ctx=None):
    return bundle.sample(z, ctx).numpy()


def _standardised_diff(a, ref):
    return float(np.max(np.abs(a - ref) / ref.std(axis=0)))


def _ort(path, z, ctx=None):
    ort = pytest.importorskip("onnxruntime")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    feeds = {"noise": z} if ctx is None else {"noise": z, "context": ctx}
    return sess.run(None, feeds)[0]


def test_graph_contract(wild_bundle):
    b = load_bundle(wild_bundle)
    for path, batch in ((b.onnx_path, None), (b.sofie_onnx_path, b.sofie_batch)):
        m = onnx.load(str(path))
        onnx.checker.check_model(m)
        ins = {i.name: i for i in m.graph.input}
        assert list(ins) == ["noise"] and [o.name for o in m.graph.output] == ["x"]
        dims = ins["noise"].type.tensor_type.shape.dim
        assert dims[1].dim_value == 5 and ins["noise"].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert (dims[0].dim_value == batch) if batch else dims[0].dim_param  # fixed vs dynamic batch
        ops = {n.op_type for n in m.graph.node}
        assert "Identity" not in ops and ops <= SOFIE_SAFE_OPS


def test_sofie_check_model(wild_bundle):
    sofie = pytest.importorskip("sofie")
    b = load_bundle(wild_bundle)
    from dyroot.sofie import _captured_stdout

    with _captured_stdout():
        assert sofie.onnx.check_model(str(b.sofie_onnx_path)) is True


@pytest.mark.parametrize("n", [1, 7, 1000])
def test_onnxruntime_parity(wild_bundle, n):
    b = load_bundle(wild_bundle)
    z = parity_noise(max(n, 30))[:n] if n < 30 else parity_noise(n)
    ref = _ref(b, z)
    got = _ort(b.onnx_path, z)
    scale = _ref(b, parity_noise(1000)).std(axis=0)
    assert np.max(np.abs(got - ref) / scale) <= ATOL


def test_sofie_parity(wild_bundle, wild_sofie):
    """torch vs onnxruntime vs SOFIE on one noise batch with |z| up to 5 in every coordinate."""
    b = load_bundle(wild_bundle)
    z = parity_noise(3 * b.sofie_batch + 17)  # several batches and a padded remainder
    ref = _ref(b, z)
    got = wild_sofie.infer(z)
    ort_out = _ort(b.onnx_path, z)
    assert _standardised_diff(got, ref) <= ATOL
    assert _standardised_diff(got, ort_out) <= ATOL
    assert np.all((got[:, 0] >= 108.0) & (got[:, 0] <= 162.0))
    # against torch in float64: SOFIE's float32 error is as small as torch's own
    with torch.no_grad():
        exact = b.flow.double()(torch.from_numpy(z).double()).numpy()
    assert float(np.max(np.abs(got - exact) / exact.std(axis=0))) <= ATOL


def test_conditional_parity(tiny_conditional_bundle, tmp_path):
    b = load_bundle(tiny_conditional_bundle)
    m = onnx.load(str(b.onnx_path))
    assert [i.name for i in m.graph.input] == ["noise", "context"]
    z = parity_noise(500)
    ctx = torch.nn.functional.one_hot(torch.arange(500) % b.context_dim, b.context_dim).float().numpy()
    assert _standardised_diff(_ort(b.onnx_path, z, ctx), _ref(b, z, ctx)) <= ATOL


def test_fix_graph_removes_identity_on_shared_constants(tmp_path):
    """The TorchScript exporter turns a buffer shared by value into Identity nodes; fix_graph removes them."""
    import warnings

    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("a", torch.eye(5))
            self.register_buffer("b", torch.eye(5))  # same values: the exporter shares them

        def forward(self, x):
            return torch.relu(x @ self.a) @ self.b + 1.0

    path = tmp_path / "t.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Twice(), (torch.randn(4, 5),), str(path), input_names=["x"], output_names=["y"],
                          dynamo=False, opset_version=17)
    m = onnx.load(str(path))
    fixed = fix_graph(m)
    assert "Identity" not in {n.op_type for n in fixed.graph.node}
    onnx.checker.check_model(fixed)
    onnx.save(fixed, str(path))
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    ort = pytest.importorskip("onnxruntime")
    y = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.allclose(y, np.maximum(x, 0) + 1.0, atol=1e-6)


def test_check_ops_refuses_gather():
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Gather", ["x", "i"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor("i", onnx.TensorProto.INT64, [1], [0])])
    with pytest.raises(ExportError, match="Gather"):
        check_ops(onnx.helper.make_model(graph))


def test_export_rewrites_and_resizes(wild_bundle, tmp_path):
    dst = tmp_path / "b"
    shutil.copytree(wild_bundle, dst)
    (dst / "sampler.onnx").unlink()
    out = export_bundle(dst, sofie_batch=64)
    assert out["onnx"].is_file()
    assert json.loads((dst / "bundle.json").read_text())["sofie_batch"] == 64
    m = onnx.load(str(out["sofie_onnx"]))
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 64


@pytest.mark.root
def test_compiled_model_from_pyroot(wild_bundle, wild_sofie):
    """The compiled model's C API, declared to cling, runs from ROOT and matches torch."""
    pytest.importorskip("ROOT")
    from dyroot.sofie import declare_in_root

    root = declare_in_root(wild_sofie)
    b = load_bundle(wild_bundle)
    z = parity_noise(b.sofie_batch)
    out = np.zeros((b.sofie_batch, 5), dtype=np.float32)
    session = root.dyroot_wild_model_create(str(wild_sofie.header.weights))
    root.dyroot_wild_model_infer(session, z, out)
    root.dyroot_wild_model_destroy(session)
    assert root.dyroot_wild_model_batch() == b.sofie_batch
    assert _standardised_diff(out, _ref(b, z)) <= ATOL
