r"""ONNX -> SOFIE C++ code -> a compiled library, loaded from Python (ctypes) or PyROOT.

Boundary module (SOFIE, a C++ compiler, BLAS). Three steps, each usable alone:

1. :func:`generate_header` parses a fixed-batch ONNX graph (``sampler_sofie.onnx``)
   with standalone SOFIE and writes ``<name>.hxx`` (the inference code, namespace
   ``SOFIE_<name>``) and ``<name>.dat`` (the weights, read by the ``Session``
   constructor). This is the function the CMake build reuses.
2. :func:`compile_model` writes a small C API next to it
   (``dyroot_<name>_create(weights_path)``, ``dyroot_<name>_infer(session, noise,
   [context,] out)``, ``dyroot_<name>_destroy``) and compiles both into
   ``lib<name>.so`` with ``g++ -O3 -march=native -ffast-math`` (``-ffast-math`` is
   what vectorises ``exp``/``tanh``/``erf`` through libmvec: 5-7x faster, same accuracy
   here; override with ``cxxflags=`` or ``$DYROOT_SOFIE_CXXFLAGS``) against pip
   ``scipy-openblas32``: ``-Dsgemm_=scipy_sgemm_ -Dsgemv_=scipy_sgemv_`` renames the
   BLAS calls of the generated code, so the library references only ``scipy_sgemm_``
   and ``scipy_sgemv_``, symbols that torch's MKL does not export: loading torch first
   cannot interpose its multi-threaded ``sgemm_`` (the trap of stack-notes).
   Rebuilt only when the header, the flags or the compiler change.
3. :class:`SofieModel` loads the library with ctypes and runs any number of events
   (chunked into the fixed batch, the last chunk padded). :func:`declare_in_root`
   declares the C API to PyROOT's interpreter, so RDataFrame code can call the
   compiled model (never JIT-compile the header in cling: unoptimised, ~10x slower).

``OPENBLAS_NUM_THREADS=1`` matters: with OpenBLAS's own threads the batch of 1024 events
ran 3.3x slower here (26k vs 86k events/s on a loaded 2-core machine); :class:`SofieModel`
sets it (unless already set) before loading the library.

Example:
    >>> DEFAULT_CXXFLAGS
    '-O3 -march=native -ffast-math'
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .exceptions import BuildError

__all__ = [
    "DEFAULT_CXXFLAGS",
    "SofieHeader",
    "SofieModel",
    "generate_header",
    "compile_model",
    "blas_flags",
    "declare_in_root",
    "check_parity",
]

#: Compiler flags of the model library (``-march=native``: build where you run).
DEFAULT_CXXFLAGS = "-O3 -march=native -ffast-math"


@dataclass(frozen=True)
class SofieHeader:
    """A generated SOFIE model.

    Attributes:
        header: the ``.hxx`` file.
        weights: the ``.dat`` file the ``Session`` reads.
        name: the model name (namespace ``SOFIE_<name>``).
        batch: the fixed batch size.
        inputs: ``[(name, width), ...]`` in the order of ``doInfer``'s arguments.
        output_width: columns of the output (5).
    """

    header: Path
    weights: Path
    name: str
    batch: int
    inputs: tuple[tuple[str, int], ...]
    output_width: int

    @property
    def namespace(self) -> str:
        """The C++ namespace of the generated code."""
        return f"SOFIE_{self.name}"

    def paths(self) -> dict[str, Path]:
        """``{"header": ..., "weights": ...}``."""
        return {"header": self.header, "weights": self.weights}


class _Captured:
    text = ""


@contextlib.contextmanager
def _captured_stdout() -> Iterator[_Captured]:
    """Capture what C++ code prints on file descriptor 1 (SOFIE lists every operator)."""
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    out = _Captured()
    with tempfile.TemporaryFile(mode="w+b") as buf:
        os.dup2(buf.fileno(), 1)
        try:
            yield out
        finally:
            try:
                libc = ctypes.CDLL(None)
                libc.fflush(None)
            except OSError:
                pass
            os.dup2(saved, 1)
            os.close(saved)
            buf.seek(0)
            out.text = buf.read().decode(errors="replace")


def _shape(value_info: Any) -> list[int]:
    return [d.dim_value if d.HasField("dim_value") else -1 for d in value_info.type.tensor_type.shape.dim]


def generate_header(onnx_path: str | os.PathLike[str], outdir: str | os.PathLike[str], *,
                    name: str = "dyroot_model") -> SofieHeader:
    """Generate the SOFIE C++ code of a fixed-batch ONNX graph.

    Args:
        onnx_path: the ONNX file (``sampler_sofie.onnx``; every dimension fixed).
        outdir: where to write ``<name>.hxx`` and ``<name>.dat`` (created).
        name: model name; the code lives in namespace ``SOFIE_<name>``.

    Returns:
        The :class:`SofieHeader`.

    Raises:
        BuildError: the graph has a dynamic dimension, or SOFIE rejects it
            (``sofie.onnx.check_model`` lists the unsupported operators).
    """
    from ._optional import import_optional

    onnx = import_optional("onnx")
    sofie = import_optional("sofie")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise BuildError(f"model name {name!r} must be a C++ identifier")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    proto = onnx.load(str(onnx_path))
    inits = {t.name for t in proto.graph.initializer}
    inputs = [(i.name, _shape(i)) for i in proto.graph.input if i.name not in inits]
    out_shape = _shape(proto.graph.output[0])
    if any(d < 1 for _, s in inputs for d in s) or any(d < 1 for d in out_shape):
        msg = (f"{onnx_path} has a dynamic dimension ({inputs} -> {out_shape}); SOFIE needs a fixed batch: "
               "use the bundle's sampler_sofie.onnx")
        raise BuildError(msg)
    work = outdir / f"{name}.onnx"
    if Path(onnx_path).resolve() != work.resolve():
        shutil.copyfile(onnx_path, work)
    with _captured_stdout() as log:
        ok = sofie.onnx.check_model(str(work), verbose=False)
    if not ok:
        raise BuildError(f"SOFIE does not support every operator of {onnx_path}:\n{log.text[-3000:]}")
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=outdir))
    try:
        try:
            with _captured_stdout() as log:
                model = sofie.onnx.parse(str(work))
                model.generate()
                model.output_generated(str(tmpdir / f"{name}.hxx"))  # also writes <name>.dat beside it
        except Exception as err:  # noqa: BLE001 - SOFIE raises plain RuntimeError
            raise BuildError(f"SOFIE failed to generate code for {onnx_path}: {err}\n{log.text[-3000:]}") from err
        if not (tmpdir / f"{name}.dat").is_file():
            raise BuildError(f"SOFIE wrote no weight file next to the header of {onnx_path}")
        header, weights = outdir / f"{name}.hxx", outdir / f"{name}.dat"
        os.replace(tmpdir / f"{name}.dat", weights)
        os.replace(tmpdir / f"{name}.hxx", header)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return SofieHeader(header, weights, name, int(inputs[0][1][0]),
                       tuple((n, int(s[1])) for n, s in inputs), int(out_shape[1]))


def blas_flags() -> tuple[list[str], list[str]]:
    """Compile and link flags for pip ``scipy-openblas32`` (renamed symbols, rpath)."""
    from ._optional import import_optional

    sob = import_optional("scipy_openblas32")
    libdir = sob.get_lib_dir()
    return (["-Dsgemm_=scipy_sgemm_", "-Dsgemv_=scipy_sgemv_"],
            [f"-L{libdir}", "-lscipy_openblas", f"-Wl,-rpath,{libdir}"])


def _capi(h: SofieHeader) -> str:
    ns = h.namespace
    args = ", ".join(f"const float* in{i}" for i in range(len(h.inputs)))
    call = ", ".join(f"in{i}" for i in range(len(h.inputs)))
    p = f"dyroot_{h.name}"
    return f"""// Generated by dyroot.sofie: a C API around the SOFIE model {h.name} (batch {h.batch}).
#include "{h.header.name}"

extern "C" {{
void* {p}_create(const char* weights) {{
   try {{ return new {ns}::Session(weights); }} catch (...) {{ return nullptr; }}
}}
void {p}_infer(void* session, {args}, float* out) {{
   {ns}::doInfer(*static_cast<{ns}::Session*>(session), {call}, out);
}}
void {p}_destroy(void* session) {{ delete static_cast<{ns}::Session*>(session); }}
int {p}_batch() {{ return {h.batch}; }}
}}
"""


def compile_model(header: SofieHeader, *, cxxflags: str | None = None, cxx: str | None = None,
                  force: bool = False) -> "SofieModel":
    """Compile a generated model with its C API into ``lib<name>.so`` and load it.

    Args:
        header: from :func:`generate_header`.
        cxxflags: optimisation flags (default ``$DYROOT_SOFIE_CXXFLAGS`` or
            :data:`DEFAULT_CXXFLAGS`).
        cxx: the compiler (default ``$CXX`` or ``g++``).
        force: rebuild even if an up-to-date library exists.

    Returns:
        The loaded :class:`SofieModel`.

    Raises:
        BuildError: the compiler is missing or fails.
    """
    cxxflags = cxxflags if cxxflags is not None else os.environ.get("DYROOT_SOFIE_CXXFLAGS", DEFAULT_CXXFLAGS)
    cxx = cxx or os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        raise BuildError(f"no C++ compiler {cxx!r} found: install g++ (or set $CXX)")
    outdir = header.header.parent
    src = outdir / f"{header.name}_capi.cxx"
    src.write_text(_capi(header))
    lib = outdir / f"lib{header.name}.so"
    bflags, lflags = blas_flags()
    cmd = [cxx, *shlex.split(cxxflags), "-std=c++17", "-shared", "-fPIC", *bflags, str(src), "-o", "LIB", *lflags]
    key = hashlib.sha256(("\0".join(cmd) + header.header.read_text()).encode()).hexdigest()
    stamp = lib.with_suffix(".so.sha256")
    if force or not (lib.is_file() and stamp.is_file() and stamp.read_text() == key):
        tmp = outdir / f".lib{header.name}.{os.getpid()}.so"
        res = subprocess.run([str(tmp) if c == "LIB" else c for c in cmd], capture_output=True, text=True)
        if res.returncode != 0:
            tmp.unlink(missing_ok=True)
            msg = f"compiling the SOFIE model failed ({' '.join(cmd)}):\n{res.stderr[-3000:]}"
            raise BuildError(msg)
        os.replace(tmp, lib)
        stamp.write_text(key)
    return SofieModel(lib, header)


class SofieModel:
    """A compiled SOFIE model, called through ctypes.

    Example:
        >>> m = SofieModel(lib_path, header)           # doctest: +SKIP
        >>> x = m.infer(noise)                          # [N, 5] float32, any N  # doctest: +SKIP
    """

    def __init__(self, library: Path, header: SofieHeader) -> None:
        self.library = Path(library)
        self.header = header
        # One BLAS thread per session (OpenBLAS reads this when it is loaded): with its own
        # threads on a busy machine the model runs 3x slower.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        self._lib = ctypes.CDLL(str(self.library.resolve()))
        p = f"dyroot_{header.name}"
        self._create = getattr(self._lib, f"{p}_create")
        self._create.restype = ctypes.c_void_p
        self._create.argtypes = [ctypes.c_char_p]
        self._infer = getattr(self._lib, f"{p}_infer")
        self._infer.argtypes = [ctypes.c_void_p] * (len(header.inputs) + 2)
        self._infer.restype = None
        self._destroy = getattr(self._lib, f"{p}_destroy")
        self._destroy.argtypes = [ctypes.c_void_p]
        self._session = self._create(str(header.weights.resolve()).encode())
        if not self._session:
            raise BuildError(f"the SOFIE session could not read its weights {header.weights}")

    def __del__(self) -> None:
        if getattr(self, "_session", None):
            self._destroy(self._session)
            self._session = None

    @property
    def batch(self) -> int:
        """The fixed batch of the compiled code."""
        return self.header.batch

    def infer_batch(self, *inputs: np.ndarray) -> np.ndarray:
        """Run exactly one batch (each input C-contiguous float32 [batch, width])."""
        arrs = [np.ascontiguousarray(a, dtype=np.float32) for a in inputs]
        out = np.empty((self.batch, self.header.output_width), dtype=np.float32)
        self._infer(self._session, *[a.ctypes.data for a in arrs], out.ctypes.data)
        return out

    def infer(self, noise: np.ndarray, context: np.ndarray | None = None) -> np.ndarray:
        """Run any number of events (chunked; the last chunk is padded with zeros)."""
        ins = [np.asarray(noise, dtype=np.float32)] + ([] if context is None else [np.asarray(context, np.float32)])
        if len(ins) != len(self.header.inputs):
            raise BuildError(f"the model takes {len(self.header.inputs)} inputs {self.header.inputs}, got {len(ins)}")
        n, b = len(ins[0]), self.batch
        out = np.empty((n, self.header.output_width), dtype=np.float32)
        for s in range(0, n, b):
            chunk = [a[s : s + b] for a in ins]
            m = len(chunk[0])
            if m < b:
                chunk = [np.concatenate([c, np.zeros((b - m, c.shape[1]), np.float32)]) for c in chunk]
            out[s : s + m] = self.infer_batch(*chunk)[:m]
        return out


def declare_in_root(model: SofieModel) -> Any:
    """Load the compiled model into PyROOT and declare its C API to cling.

    After this, C++ code in ROOT (``RDataFrame.Define`` strings, macros) can call
    ``dyroot_<name>_create/infer/destroy``; the code runs compiled, not JIT-ed.

    Returns:
        The ``ROOT`` module.

    Raises:
        BuildError: ``gSystem.Load`` or ``gInterpreter.Declare`` fails.
    """
    from ._optional import import_root

    root = import_root()
    if root.gSystem.Load(str(model.library.resolve())) < 0:
        raise BuildError(f"ROOT could not load {model.library}")
    p = f"dyroot_{model.header.name}"
    args = ", ".join("const float*" for _ in model.header.inputs)
    decl = (f'extern "C" {{ void* {p}_create(const char*); void {p}_infer(void*, {args}, float*); '
            f"void {p}_destroy(void*); int {p}_batch(); }}")
    if not root.gInterpreter.Declare(decl):
        raise BuildError(f"cling rejected the declaration of the C API of {model.library}")
    return root


def check_parity(bundle: Any, model: SofieModel, n: int | None = None) -> float:
    """Max over events and columns of ``|SOFIE - torch| / std(column)`` on tail noise.

    Args:
        bundle: a :class:`dyroot.bundle.Bundle` or its path.
        model: the compiled model of that bundle.
        n: events (default: one batch).
    """
    from .bundle import Bundle, load_bundle
    from .export import _example_context, parity_noise

    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    n = n or model.batch
    z = parity_noise(n, model.header.inputs[0][1])
    ctx = None if not b.context_dim else _example_context(b.flow, n).numpy()
    ref = b.sample(z, ctx).cpu().numpy()
    got = model.infer(z, ctx)
    return float(np.max(np.abs(got - ref) / np.maximum(ref.std(axis=0), 1e-6)))
