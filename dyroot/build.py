r"""Build ``libdyroot`` for a model bundle (CMake + SOFIE) and load it into PyROOT.

Boundary module (SOFIE code generation, CMake, the C++ compiler, PyROOT); ROOT is
imported only by :func:`load`.

What ``dyroot build BUNDLE`` does
    1. generates the bundle's sources in ``BUNDLE/build/generated``: SOFIE's C++ for
       ``sampler_sofie.onnx`` (``dyroot_model.hxx`` + its weights ``dyroot_model.dat``)
       and ``dyroot_bundle_config.hxx`` (the batch size, the context, ``sigma_pb``,
       the selection and the categories of ``bundle.json`` as C++, the Gemm calls of
       the model for the benchmark);
    2. configures ``dyroot/cpp/CMakeLists.txt`` in ``BUNDLE/build`` (ROOT through its
       ``ROOTConfig.cmake``, BLAS from pip ``scipy-openblas32`` or the system) and
       builds ``BUNDLE/build/libdyroot.so`` with ``-O3 -ffast-math [-march=native]``;
    3. records what it built in ``BUNDLE/build/dyroot-build.json``; the next call
       rebuilds only if the bundle (hash of ``bundle.json`` + ``weights.pt``, and the
       SOFIE ONNX), the C++ sources, the options, the compiler or the CPU changed.

A bundle directory that is not writable is built in a cache directory keyed by
its hash (``$DYROOT_CACHE`` or ``~/.cache/dyroot``). Concurrent builds of one bundle
(e.g. several Dask workers) wait for each other (a file lock).

Example:
    >>> context_edges([1.0, 2.0, 1.0])
    [0.25, 0.75, inf]
    >>> selection_cpp_expression(Selection())
    'dyroot::Selection{27.0, 15.0, 2.7, true, true, 110.0, 160.0}'
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from ._version import __version__
from .exceptions import BuildError, BundleError
from .features import FLOW_FEATURES, CategoryScheme, Selection

__all__ = [
    "CPP_DIR",
    "LIBRARY_NAME",
    "build",
    "load",
    "library_path",
    "build_dir_for",
    "generate_sources",
    "context_edges",
    "selection_cpp_expression",
    "categories_cpp_expression",
    "gemm_calls",
]

#: The C++ sources of dyroot (headers, the library's sources, its CMakeLists.txt).
CPP_DIR = Path(__file__).resolve().parent / "cpp"
#: File name of the built library in the build directory.
LIBRARY_NAME = "libdyroot.so"

_STAMP = "dyroot-build.json"
_VARIABLES = ("mu1_pt", "mu1_eta", "mu1_phi", "mu1_charge", "mu2_pt", "mu2_eta", "mu2_phi", "mu2_charge",
              "mll", "ptll", "yll", "costheta", "phi_cs", "phill", "max_abs_eta")
#: Generators already loaded in this process: library path -> (bundle hash, Generator).
_LOADED: dict[str, tuple[str, Any]] = {}


# ----------------------------------------------------------------------------------------------
# Pure helpers: bundle constants as C++


def context_edges(fractions: Sequence[float]) -> list[float]:
    """Cumulative category fractions as :func:`dyroot.random.choose_category` uses them.

    The running sum of ``f / fsum(f)``, left to right, the last edge ``+inf``.

    Args:
        fractions: category fractions (any positive scale).

    Returns:
        The edges; the category of a draw ``u`` is the first ``c`` with ``u < edges[c]``.

    Raises:
        BuildError: if a fraction is negative or not finite, or all are zero.
    """
    f = [float(x) for x in fractions]
    if not f or any(not math.isfinite(x) or x < 0 for x in f) or not sum(f) > 0:
        msg = f"category fractions {f} must be finite, non-negative and not all zero; check the bundle's context"
        raise BuildError(msg)
    total = math.fsum(f)
    out, acc = [], 0.0
    for x in f:
        acc += x / total
        out.append(acc)
    out[-1] = math.inf
    return out


def _cpp_double(x: float) -> str:
    if not math.isfinite(x):
        msg = f"cannot write {x} as a C++ constant"
        raise BuildError(msg)
    return repr(float(x))


def _cpp_string(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid C++ string literal for printable text


def selection_cpp_expression(selection: Selection) -> str:
    """A C++ expression constructing ``selection`` as a ``dyroot::Selection``.

    Example:
        >>> selection_cpp_expression(Selection(opposite_charge=False, mll_range=None))
        'dyroot::Selection{27.0, 15.0, 2.7, false, false, 0.0, 0.0}'
    """
    lo, hi = selection.mll_range if selection.mll_range is not None else (0.0, 0.0)
    parts = [_cpp_double(selection.lead_pt), _cpp_double(selection.sublead_pt), _cpp_double(selection.max_abs_eta),
             "true" if selection.opposite_charge else "false",
             "true" if selection.mll_range is not None else "false", _cpp_double(lo), _cpp_double(hi)]
    return "dyroot::Selection{" + ", ".join(parts) + "}"


def categories_cpp_expression(scheme: CategoryScheme) -> str:
    """A C++ expression constructing ``scheme`` as a ``dyroot::CategoryScheme``.

    Infinite edges become open edges (no bound), so the C++ stays exact under -ffast-math.

    Raises:
        BuildError: if a category cuts on a variable the C++ side does not know.

    Example:
        >>> from dyroot.features import Category
        >>> categories_cpp_expression(CategoryScheme((Category("a", {"ptll": (10.0, float("inf"))}),)))
        'dyroot::CategoryScheme{{dyroot::Category{"a", {dyroot::RangeCut{dyroot::VarFromName("ptll"), true, 10.0, false, 0.0}}}}}'
    """
    cats = []
    for c in scheme.categories:
        cuts = []
        for var, (lo, hi) in c.ranges.items():
            if var not in _VARIABLES:
                msg = (f"category {c.name!r} cuts on {var!r}, which the C++ generator does not know; "
                       f"use one of {', '.join(_VARIABLES)}")
                raise BuildError(msg)
            has_lo, has_hi = math.isfinite(lo), math.isfinite(hi)
            cuts.append(f"dyroot::RangeCut{{dyroot::VarFromName({_cpp_string(var)}), {'true' if has_lo else 'false'}, "
                        f"{_cpp_double(lo) if has_lo else '0.0'}, {'true' if has_hi else 'false'}, "
                        f"{_cpp_double(hi) if has_hi else '0.0'}}}")
        cats.append(f"dyroot::Category{{{_cpp_string(c.name)}, {{{', '.join(cuts)}}}}}")
    return "dyroot::CategoryScheme{{" + ", ".join(cats) + "}}"


def gemm_calls(header: str) -> list[tuple[bool, bool, int, int, int]]:
    """The BLAS Gemm calls of a SOFIE header: ``(transA, transB, m, n, k)`` in call order.

    Example:
        >>> gemm_calls("Gemm_Call(out, true, false, 64, 1024, 5, 1, w, x, 1,nullptr);")
        [(True, False, 64, 1024, 5)]
    """
    pat = re.compile(r"Gemm_Call\(\s*[\w\[\]+ ]+,\s*(true|false),\s*(true|false),\s*(\d+),\s*(\d+),\s*(\d+)\s*,")
    return [(a == "true", b == "true", int(m), int(n), int(k)) for a, b, m, n, k in pat.findall(header)]


# ----------------------------------------------------------------------------------------------
# The bundle


class _BundleInfo:
    """What the build needs from a bundle, read without torch."""

    def __init__(self, path: Path) -> None:
        try:
            from .bundle import FILES, bundle_hash, read_config
        except ImportError as err:  # pragma: no cover - dyroot.bundle ships with dyroot
            msg = f"dyroot.bundle is not available ({err}); reinstall dyroot"
            raise BuildError(msg) from err
        self.path = path
        self.config = read_config(path)
        self.hash = bundle_hash(path)
        files = {**FILES, **self.config.get("files", {})}
        self.sofie_onnx = path / files["sofie_onnx"]
        if not self.sofie_onnx.is_file():
            msg = f"the bundle {path} has no {self.sofie_onnx.name}: run `dyroot export {path}` first"
            raise BundleError(msg)
        self.batch = int(self.config["sofie_batch"])
        ctx = self.config.get("context")
        self.context = ctx
        self.context_dim = 0
        self.fractions: list[float] = []
        if ctx:
            if ctx.get("kind") not in ("category", "one_hot") or not ctx.get("fractions"):
                msg = (f"the bundle's context {ctx.get('kind')!r} cannot be drawn by the SOFIE generator; it draws "
                       "only category contexts (kind 'category' with 'fractions'); use --backend torch")
                raise BuildError(msg)
            self.fractions = [float(x) for x in ctx["fractions"]]
            self.context_dim = len(self.fractions)
        self.selection = Selection.from_dict(self.config["selection"])
        self.categories = CategoryScheme.from_list(self.config["categories"])
        sigma = self.config.get("sigma_pb")
        self.sigma_pb = float(sigma) if sigma is not None else 0.0


def _bundle_path(bundle: Any) -> Path:
    path = getattr(bundle, "path", bundle)
    if not isinstance(path, (str, os.PathLike)):
        msg = f"{bundle!r} is not a model bundle; pass the bundle directory made by `dyroot train`"
        raise BundleError(msg)
    return Path(path).resolve()


def build_dir_for(bundle: Any) -> Path:
    """The build directory of a bundle: ``BUNDLE/build`` if writable, else a cache directory
    ``$DYROOT_CACHE/builds/<hash>`` (default ``~/.cache/dyroot``)."""
    from .bundle import bundle_hash, read_config

    path = _bundle_path(bundle)
    read_config(path)  # a clear BundleError for anything that is not a bundle
    own = path / "build"
    if os.access(path, os.W_OK) or (own.is_dir() and os.access(own, os.W_OK)):
        return own
    cache = Path(os.environ.get("DYROOT_CACHE", Path.home() / ".cache" / "dyroot"))
    return cache / "builds" / bundle_hash(path)[:16]


def library_path(bundle: Any, build_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the bundle's library is (or will be) built."""
    return Path(build_dir or build_dir_for(bundle)) / LIBRARY_NAME


# ----------------------------------------------------------------------------------------------
# Sources


def _sofie_header(onnx_path: Path, outdir: Path) -> Any:
    """SOFIE's C++ for the fixed-batch ONNX, as ``outdir/dyroot_model.hxx`` (+ ``.dat``),
    by :func:`dyroot.sofie.generate_header` (namespace ``SOFIE_dyroot_model``)."""
    from .sofie import generate_header

    return generate_header(onnx_path, outdir, name="dyroot_model")


def _infer_call(inputs: Sequence[tuple[str, int]], context_dim: int, batch: int, h_batch: int) -> str:
    names = [n for n, _ in inputs]
    if names not in (["noise"], ["noise", "context"], ["context", "noise"]):
        msg = f"the SOFIE model's inputs are {names}; the sampler ONNX must take noise (+ context) and give x"
        raise BuildError(msg)
    widths = dict(inputs)
    if ("context" in widths) != (context_dim > 0) or widths.get("context", 0) != context_dim:
        msg = (f"the SOFIE model's inputs {dict(inputs)} do not match the bundle's context (dimension {context_dim}); "
               "re-export the bundle (`dyroot export`)")
        raise BuildError(msg)
    if widths["noise"] != len(FLOW_FEATURES) or h_batch != batch:
        msg = (f"the SOFIE model takes noise [{h_batch}, {widths['noise']}], the bundle says [{batch}, "
               f"{len(FLOW_FEATURES)}]; re-export the bundle (`dyroot export`)")
        raise BuildError(msg)
    return f"SOFIE_dyroot_model::doInfer(s, {', '.join(names)}, x);"


_CONFIG_TEMPLATE = """// Generated by dyroot.build from {bundle} (dyroot {version}): do not edit.
#ifndef DYROOT_BUNDLE_CONFIG_HXX
#define DYROOT_BUNDLE_CONFIG_HXX

#include "dyroot_model.hxx"

#include "dyroot_engine.hxx"

#include <memory>
#include <string>

namespace dyroot_bundle {{

using Session = SOFIE_dyroot_model::Session;

inline Session *NewSession(const std::string &dir)
{{
   return new Session({session_args});
}}

inline void Infer(Session &s, const float *noise, const float *context, float *x)
{{
   (void)context;
   {infer}
}}

inline void Sgemm(const char *ta, const char *tb, const int *m, const int *n, const int *k, const float *alpha,
                  const float *A, const int *lda, const float *B, const int *ldb, const float *beta, float *C,
                  const int *ldc)
{{
   SOFIE_dyroot_model::BLAS::sgemm_(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}}

inline dyroot::impl::ModelInfo MakeInfo()
{{
   dyroot::impl::ModelInfo info;
   info.hash = {hash};
   info.batch = {batch};
   info.dim = {dim};
   info.contextDim = {context_dim};
   info.contextEdges = {{{edges}}};
   info.sigmaPb = {sigma};
   info.selection = {selection};
   info.categories = {categories};
   info.selectionJson = {selection_json};
   info.categoriesJson = {categories_json};
   info.contextJson = {context_json};
   info.buildJson = std::string({build_json_head}) + ", \\"flags\\": \\"" DYROOT_BUILD_FLAGS "\\"}}";
   info.gemms = {{{gemms}}};
   return info;
}}

}} // namespace dyroot_bundle

#endif
"""


def generate_sources(bundle: Any, outdir: str | os.PathLike[str]) -> Path:
    """Write the bundle's generated C++ into ``outdir``: ``dyroot_model.hxx`` and
    ``dyroot_model.dat`` (SOFIE), ``dyroot_bundle_config.hxx`` (the bundle's constants).

    Args:
        bundle: the bundle directory (or a loaded :class:`~dyroot.bundle.Bundle`).
        outdir: where to write.

    Returns:
        The path of ``dyroot_bundle_config.hxx``.

    Raises:
        BundleError: if the bundle is incomplete (no ``sampler_sofie.onnx``...).
        BuildError: if SOFIE cannot translate the model or the bundle cannot be expressed in C++.
    """
    info = _BundleInfo(_bundle_path(bundle))
    out = Path(outdir)
    h = _sofie_header(info.sofie_onnx, out)
    header = Path(h.header).read_text()
    has_file = re.search(r"Session\(std::string filename", header) is not None
    session_args = 'dir + "/dyroot_model.dat"' if has_file else ""
    infer = _infer_call(h.inputs, info.context_dim, info.batch, h.batch)
    edges = context_edges(info.fractions) if info.fractions else []
    gemms = gemm_calls(header)
    build_head = json.dumps({"dyroot": __version__, "bundle": str(info.path), "bundle_hash": info.hash,
                             "sofie_batch": info.batch, "context_dim": info.context_dim,
                             "gemm_flops_per_event": sum(2 * m * n * k for _, _, m, n, k in gemms) / info.batch,
                             }, sort_keys=True)[:-1]  # the C++ appends the compiler flags and closes it
    text = _CONFIG_TEMPLATE.format(
        bundle=info.path, version=__version__, session_args=session_args,
        infer=infer,
        hash=_cpp_string(info.hash), batch=info.batch, dim=len(FLOW_FEATURES), context_dim=info.context_dim,
        edges=", ".join("1e300" if math.isinf(e) else repr(e) for e in edges),
        sigma=_cpp_double(info.sigma_pb), selection=selection_cpp_expression(info.selection),
        categories=categories_cpp_expression(info.categories),
        selection_json=_raw_string(json.dumps(info.selection.to_dict(), sort_keys=True)),
        categories_json=_raw_string(json.dumps(info.categories.to_list(), sort_keys=True)),
        context_json=_raw_string(json.dumps(info.context, sort_keys=True)),
        build_json_head=_raw_string(build_head),
        gemms=", ".join(f"{{{str(a).lower()}, {str(b).lower()}, {m}, {n}, {k}}}" for a, b, m, n, k in gemms),
    )
    config = out / "dyroot_bundle_config.hxx"
    _write_if_changed(config, text)
    return config


def _raw_string(s: str) -> str:
    if ")dyroot\"" in s:
        msg = "a bundle string contains the C++ raw-string delimiter )dyroot\"; rename it"
        raise BuildError(msg)
    return f'R"dyroot({s})dyroot"'


def _write_if_changed(path: Path, text: str) -> None:
    if path.is_file() and path.read_text() == text:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------
# Build


def _sha256_files(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return hashlib.sha256(line.encode()).hexdigest()[:16]
    except OSError:
        pass
    import platform

    return platform.machine()


def _compiler_id() -> str:
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or ""
    if not cxx:
        msg = "no C++ compiler found: install g++ (or set CXX)"
        raise BuildError(msg)
    try:
        ver = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError) as err:
        msg = f"the C++ compiler {cxx} does not run ({err})"
        raise BuildError(msg) from err
    return f"{cxx}: {ver}"


def _root_id() -> str:
    """Where ROOT is and which version: a new ROOT in the same place rebuilds."""
    d = _root_cmake_dir()
    if d is None:
        return os.environ.get("ROOTSYS", "")
    version = Path(d) / "ROOTConfig-version.cmake"
    return d + ":" + (hashlib.sha256(version.read_bytes()).hexdigest()[:16] if version.is_file() else "")


def _root_cmake_dir() -> str | None:
    spec = importlib.util.find_spec("ROOT")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "cmake"
    return str(d) if (d / "ROOTConfig.cmake").is_file() else None


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run(cmd: list[str], log: Path, what: str) -> None:
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-25:])
        msg = f"{what} failed (exit {proc.returncode}); full log in {log}:\n{tail}"
        raise BuildError(msg)


def build(
    bundle: Any, *, build_dir: str | os.PathLike[str] | None = None, force: bool = False, native: bool = True,
    werror: bool = False, build_type: str = "Release", jobs: int | None = None, quiet: bool = True,
) -> Path:
    """Build ``libdyroot.so`` for a bundle, unless an up-to-date build exists.

    Args:
        bundle: the bundle directory (or a loaded :class:`~dyroot.bundle.Bundle`).
        build_dir: where to build (default :func:`build_dir_for`: ``BUNDLE/build``).
        force: rebuild even if the recorded build is up to date.
        native: compile for this CPU (``-march=native``); turn off for clusters whose
            nodes have different CPUs and share the build.
        werror: compiler warnings are errors.
        build_type: CMake build type.
        jobs: parallel compile jobs (default: the CPU count).
        quiet: do not print CMake's output (it goes to ``build.log`` in the build directory).

    Returns:
        The path of the library.

    Raises:
        BundleError: if the bundle is incomplete.
        BuildError: if SOFIE, CMake or the compiler fail (the message shows the end
            of the log and where the full log is).

    Example:
        >>> lib = build("model/")  # doctest: +SKIP
        >>> lib.name  # doctest: +SKIP
        'libdyroot.so'
    """
    path = _bundle_path(bundle)
    info = _BundleInfo(path)
    bdir = Path(build_dir).resolve() if build_dir else build_dir_for(path)
    lib = bdir / LIBRARY_NAME
    if shutil.which("cmake") is None:
        msg = "cmake is not installed: `pip install cmake` or your system's package (cmake >= 3.16)"
        raise BuildError(msg)
    sources = [p for p in CPP_DIR.iterdir() if p.suffix in (".hxx", ".cxx") or p.name == "CMakeLists.txt"]
    key = {
        "bundle_hash": info.hash,
        "sofie_onnx": _sha256_files([info.sofie_onnx]),
        "sources": _sha256_files(sources),
        "options": {"native": native, "werror": werror, "build_type": build_type},
        "compiler": _compiler_id(),
        "cpu": _cpu_flags() if native else "generic",
        "root": _root_id(),
        "dyroot": __version__,
    }
    with _lock(bdir.parent / f".{bdir.name}.lock"):
        stamp = bdir / _STAMP
        if not force and lib.is_file() and stamp.is_file():
            try:
                if json.loads(stamp.read_text()).get("key") == key:
                    return lib
            except ValueError:
                pass
        bdir.mkdir(parents=True, exist_ok=True)
        log = bdir / "build.log"
        log.write_text(f"dyroot build of {path} ({time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        start = time.perf_counter()
        gen = bdir / "generated"
        generate_sources(path, gen)
        cfg = ["cmake", "-S", str(CPP_DIR), "-B", str(bdir), f"-DDYROOT_GENERATED_DIR={gen}",
               f"-DCMAKE_BUILD_TYPE={build_type}", f"-DDYROOT_NATIVE={'ON' if native else 'OFF'}",
               f"-DDYROOT_WERROR={'ON' if werror else 'OFF'}", f"-DPython3_EXECUTABLE={sys.executable}"]
        root_dir = _root_cmake_dir()
        if root_dir:
            cfg.append(f"-DROOT_DIR={root_dir}")
        if shutil.which("ninja") and not (bdir / "CMakeCache.txt").is_file():
            cfg += ["-G", "Ninja"]
        _run(cfg, log, "configuring the build (cmake)")
        _run(["cmake", "--build", str(bdir), "-j", str(jobs or os.cpu_count() or 1)], log, "compiling libdyroot")
        if not lib.is_file():
            msg = f"the build finished but {lib} is missing; see {log}"
            raise BuildError(msg)
        record = {"key": key, "library": str(lib), "bundle": str(path), "seconds": time.perf_counter() - start}
        _write_if_changed(stamp, json.dumps(record, indent=1, sort_keys=True) + "\n")
        if not quiet:
            print(log.read_text(), file=sys.stderr)
    return lib


# ----------------------------------------------------------------------------------------------
# Load into PyROOT


def load(bundle: Any, *, build_dir: str | os.PathLike[str] | None = None, **build_options: Any) -> Any:
    """Build the bundle's library if needed, load it into PyROOT and return its ``dyroot::Generator``.

    Args:
        bundle: the bundle directory (or a loaded :class:`~dyroot.bundle.Bundle`).
        build_dir: as :func:`build`.
        **build_options: passed to :func:`build` (``force``, ``native``...).

    Returns:
        The C++ ``dyroot::Generator`` (a PyROOT proxy): ``Events(n, seed, first)``,
        ``FillTemplates(...)``, ``Generate(...)``...

    Raises:
        BuildError: if building or loading fails, or if this process loaded an older
            build of the same library (a rebuilt library needs a new process).
    """
    from ._optional import import_root

    lib = build(bundle, build_dir=build_dir, **build_options)
    key = str(lib)
    info_hash = _BundleInfo(_bundle_path(bundle)).hash
    if key in _LOADED:
        loaded_hash, gen = _LOADED[key]
        if loaded_hash != info_hash:
            msg = (f"{lib} was rebuilt for a changed bundle after this process loaded it; a loaded library "
                   "cannot be replaced: start a new Python process")
            raise BuildError(msg)
        return gen
    ROOT = import_root()
    for dep in ("libROOTVecOps", "libROOTDataFrame"):
        if ROOT.gSystem.Load(dep) < 0:
            msg = f"gSystem.Load({dep!r}) failed: the ROOT installation is incomplete"
            raise BuildError(msg)
    if not hasattr(ROOT, "dyroot") or not hasattr(ROOT.dyroot, "Open"):
        if not ROOT.gInterpreter.Declare(f'#include "{CPP_DIR / "dyroot_api.hxx"}"'):
            msg = f"cling could not compile {CPP_DIR / 'dyroot_api.hxx'}"
            raise BuildError(msg)
    rc = ROOT.gSystem.Load(key)
    if rc < 0:
        msg = f"gSystem.Load({key!r}) failed (code {rc}); rebuild with `dyroot build --force`"
        raise BuildError(msg)
    try:
        gen = ROOT.dyroot.Open(key)
    except Exception as err:  # std::runtime_error from the C++ side
        msg = f"cannot open the generator in {lib}: {err}"
        raise BuildError(msg) from err
    if str(gen.BundleHash()) != info_hash:
        msg = (f"{lib} holds the bundle {str(gen.BundleHash())[:12]}, not {info_hash[:12]}: the library was "
               "loaded before the bundle changed; start a new Python process")
        raise BuildError(msg)
    _LOADED[key] = (info_hash, gen)
    return gen

