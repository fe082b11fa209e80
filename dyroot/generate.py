r"""Generated events straight into templates: torch (CPU or fused on CUDA), onnxruntime, SOFIE.

Orchestrates one generation job: the counter-based noise of :mod:`dyroot.random`
-> the bundle's flow (physical ``FLOW_FEATURES``) -> both muons
(:func:`dyroot.features.muons_from_dimuon`) -> the analysis :class:`~dyroot.features.Selection`
-> the :class:`~dyroot.features.CategoryScheme` -> histograms (:class:`~dyroot.templates.Templates`).
Boundary module (torch, onnxruntime, and ``dyroot.rdf`` for SOFIE); it never imports ROOT itself.

Backends (all write the same file format):

``torch``
    On CUDA the whole chain is FUSED on the device: the event indices advance on
    the device, the noise (Philox in int64), the flow, the kinematics (float64),
    cuts, categories and the histogram accumulation (``index_add_`` into one
    float64 accumulator; unit increments are exact below 2^53 per bin) never
    leave it, and there is no host synchronisation inside the loop (no
    ``.item()``, no boolean indexing: rejected events are routed to dump cells,
    spread over 4096 addresses so that their atomic adds do not contend).
    Only one batch is alive at a time, so memory does not grow with N. The
    matmuls run in FP32 by default (``tf32=False``), the precision the parity
    tests validate; ``tf32=True`` trades ~1e-3 relative error in the matmuls for
    speed on Ampere and later. ``compile=True`` wraps the step in
    ``torch.compile`` (fuses the Philox and kinematics kernels; first batch
    pays the compilation). The same code runs on CPU (with exact sub-batches).
``onnxruntime``
    The bundle's ``sampler.onnx`` in onnxruntime (CPU, or the CUDA execution
    provider when installed), numpy post-processing.
``sofie``
    SOFIE inside RDataFrame, through ``dyroot.rdf.fill_templates`` (the C++
    sampler with the C++ twin of the random streams).

Batches lie on a fixed grid of global event indices (batch ``k`` covers
``[k*B, (k+1)*B)``), so a shard whose range starts and ends on the grid sees
exactly the batches of a single-process run, and per-event results are
bit-identical however the job is split (see :mod:`dyroot.distributed`).

Example:
    >>> from dyroot.generate import resolve_extra_variables
    >>> [b.variable for b in resolve_extra_variables(["ptll", "yll"])]
    ['ptll', 'yll']
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import pathlib
import platform
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from .exceptions import BuildError, BundleError, ConfigError
from .features import (
    DEFAULT_BINNING,
    DEFAULT_CATEGORIES,
    DIMUON_COLUMNS,
    FLOW_FEATURES,
    MUON_COLUMNS,
    Binning,
    CategoryScheme,
    Selection,
    muons_from_dimuon,
)
from .random import NOISE_TAG, category_edges, choose_category, noise_at
from .templates import Templates, bin_index, histogram_names

__all__ = [
    "BACKENDS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_EXTRA_BINNINGS",
    "generate_templates",
    "resolve_bundle",
    "resolve_extra_variables",
    "batch_grid",
]

BACKENDS = ("sofie", "torch", "onnxruntime")
#: Default batch sizes: 10^3-10^4 is the CPU cache sweet spot; a GPU wants ~10^6.
DEFAULT_BATCH_SIZE = {"cpu": 8192, "cuda": 1 << 20}

#: Binnings used when a further variable is named without one (GeV, rad).
DEFAULT_EXTRA_BINNINGS: dict[str, Binning] = {
    "ptll": Binning(0.0, 200.0, 1.0, "ptll"),
    "yll": Binning(-2.5, 2.5, 0.05, "yll"),
    "costheta": Binning(-1.0, 1.0, 0.02, "costheta"),
    "phi_cs": Binning(-3.2, 3.2, 0.05, "phi_cs"),
    "phill": Binning(-3.2, 3.2, 0.05, "phill"),
    "mu1_pt": Binning(0.0, 200.0, 1.0, "mu1_pt"),
    "mu2_pt": Binning(0.0, 200.0, 1.0, "mu2_pt"),
    "mu1_eta": Binning(-2.7, 2.7, 0.05, "mu1_eta"),
    "mu2_eta": Binning(-2.7, 2.7, 0.05, "mu2_eta"),
    "mu1_phi": Binning(-3.2, 3.2, 0.05, "mu1_phi"),
    "mu2_phi": Binning(-3.2, 3.2, 0.05, "mu2_phi"),
}
_VARIABLES = tuple(c for c in MUON_COLUMNS if not c.endswith("charge")) + DIMUON_COLUMNS


def resolve_extra_variables(extra: Sequence[str | Binning]) -> tuple[Binning, ...]:
    """Binnings of the further variables: names take :data:`DEFAULT_EXTRA_BINNINGS`.

    Raises:
        ConfigError: for an unknown variable or ``mll`` (always histogrammed).
    """
    out = []
    for e in extra:
        b = e if isinstance(e, Binning) else DEFAULT_EXTRA_BINNINGS.get(str(e))
        name = e.variable if isinstance(e, Binning) else str(e)
        if b is None or name not in _VARIABLES or name == "mll":
            msg = f"cannot histogram {name!r}; choose among {', '.join(v for v in _VARIABLES if v != 'mll')}"
            raise ConfigError(msg)
        out.append(b)
    return tuple(out)


def batch_grid(first_event: int, n_events: int, batch_size: int) -> Iterator[tuple[int, int]]:
    """The ``[lo, hi)`` sub-ranges of ``[first_event, first_event + n_events)`` cut at
    multiples of ``batch_size`` (global index grid).

    Example:
        >>> list(batch_grid(5, 20, 8))
        [(5, 8), (8, 16), (16, 24), (24, 25)]
    """
    end = first_event + n_events
    lo = first_event
    while lo < end:
        hi = min(end, (lo // batch_size + 1) * batch_size)
        yield lo, hi
        lo = hi


def resolve_bundle(bundle: Any) -> Any:
    """A loaded bundle: a path goes through :func:`dyroot.bundle.load_bundle`;
    an object with ``config``/``hash`` is used as it is.

    Raises:
        BundleError: if the bundle cannot be loaded.
    """
    if isinstance(bundle, (str, os.PathLike)):
        try:
            from .bundle import load_bundle
        except ImportError as err:
            msg = f"cannot load the bundle {bundle}: dyroot.bundle is not available ({err})"
            raise BundleError(msg) from err
        return load_bundle(bundle)
    if not hasattr(bundle, "config"):
        msg = f"{bundle!r} is not a model bundle; pass the bundle directory made by `dyroot train`"
        raise BundleError(msg)
    return bundle


@dataclass
class _Plan:
    """Everything one generation job needs, resolved once."""

    seed: int
    first_event: int
    n_events: int
    dim: int
    selection: Selection
    scheme: CategoryScheme
    binnings: tuple[Binning, ...]
    context: dict[str, Any] | None
    batch_size: int

    @property
    def names(self) -> list[str]:
        return histogram_names(self.binnings, self.scheme.names)

    def offsets(self) -> list[int]:
        out, pos = [], 0
        for b in self.binnings:
            out.append(pos)
            pos += (len(self.scheme) + 1) * (b.nbins + 2)
        return out

    @property
    def size(self) -> int:
        return sum((len(self.scheme) + 1) * (b.nbins + 2) for b in self.binnings)


def _plan(bundle: Any, n_events: int, seed: int, first_event: int, binning: Binning,
          extra: Sequence[str | Binning], batch_size: int) -> _Plan:
    cfg: Mapping[str, Any] = bundle.config
    if n_events < 0 or first_event < 0:
        raise ConfigError(f"n_events ({n_events}) and first_event ({first_event}) must be non-negative")
    if not 0 <= seed < 2**64:
        raise ConfigError(f"seed {seed} must be an integer in [0, 2**64)")
    if batch_size < 1:
        raise ConfigError(f"batch size must be positive, got {batch_size}")
    features = tuple(cfg.get("features", FLOW_FEATURES))
    if features[: len(FLOW_FEATURES)] != FLOW_FEATURES:
        msg = f"the bundle's features {features} do not start with {FLOW_FEATURES}; re-export the bundle"
        raise BundleError(msg)
    sel = cfg.get("selection")
    cats = cfg.get("categories")
    selection = Selection.from_dict(sel) if sel else Selection()
    scheme = CategoryScheme.from_list(cats) if cats else DEFAULT_CATEGORIES
    ctx = cfg.get("context") or None
    if ctx is not None and ctx.get("kind") not in ("category", "one_hot"):
        msg = (f"the bundle's context {ctx!r} is not a category one-hot; generation draws only category contexts "
               "(context kind 'category' with 'fractions')")
        raise BundleError(msg)
    return _Plan(int(seed), int(first_event), int(n_events), len(features), selection, scheme,
                 (binning, *resolve_extra_variables(extra)), ctx, int(batch_size))


def _context(plan: _Plan, u: Any, xp: ModuleType, edges: Any = None) -> Any:
    """One-hot category context from the context draw (no host sync on a GPU)."""
    if plan.context is None:
        return None
    fractions = plan.context["fractions"]
    c = choose_category(u, fractions, xp=xp, edges=edges)
    k = len(fractions)
    if xp is np:
        return np.eye(k, dtype=np.float32)[c]
    return (c[:, None] == xp.arange(k, device=c.device)).to(xp.float32)


def _event_columns(x: Any, phill: Any, xp: ModuleType) -> dict[str, Any]:
    """Every event column from the flow output (float64) and the drawn azimuth."""
    xd = x.astype(np.float64) if xp is np else x.to(xp.float64)
    ev = {f: xd[:, k] for k, f in enumerate(FLOW_FEATURES)}
    ev["phill"] = phill
    ev.update(muons_from_dimuon(ev["mll"], ev["ptll"], ev["yll"], ev["costheta"], ev["phi_cs"], phill, xp=xp))
    return ev


def _flat_indices(plan: _Plan, ev: Mapping[str, Any], valid: Any, xp: ModuleType) -> Any:
    """Flat accumulator cells of every fill of a batch; rejected events go to the dump cell."""
    sel = plan.selection.mask(ev, xp=xp)
    if valid is not None:
        sel = sel & valid
    cat = plan.scheme.assign(ev, xp=xp)
    cat = cat.astype(np.int64) if xp is np else cat.to(xp.int64)
    in_cat = sel & (cat >= 0)
    dump = plan.size
    parts = []
    for off, b in zip(plan.offsets(), plan.binnings):
        bi = bin_index(ev[b.variable], b, xp=xp)
        parts.append(xp.where(sel, off + bi, dump))
        parts.append(xp.where(in_cat, off + (cat + 1) * (b.nbins + 2) + bi, dump))
    return np.concatenate(parts) if xp is np else xp.cat(parts)


# ---------------------------------------------------------------------------------------------- torch


def _torch_sampler(bundle: Any, device: str) -> Callable[[Any, Any], Any]:
    target = bundle if hasattr(bundle, "to") else getattr(bundle, "flow", None)
    if target is not None and hasattr(target, "to"):
        target.to(device)
    flow = getattr(bundle, "flow", None)
    if flow is not None and hasattr(flow, "eval"):
        flow.eval()
    if not hasattr(bundle, "sample"):
        raise BundleError("the bundle has no sample(noise, context) method; load it with dyroot.bundle.load_bundle")

    def sample(z: Any, c: Any) -> Any:
        return bundle.sample(z) if c is None else bundle.sample(z, c)

    return sample


#: Dump cells for rejected events on a GPU: spreading them avoids one hot atomic address.
_DUMP_CELLS_CUDA = 4096


def _fixed_grid(device: str) -> bool:
    """Whether the torch loop runs fixed-shape grid batches with a validity mask (GPU)."""
    return device.startswith("cuda")


def _run_torch(plan: _Plan, bundle: Any, device: str, threads: int | None, progress: bool, *,
               tf32: bool, compile: bool) -> np.ndarray:
    torch = _import("torch")
    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but torch sees no GPU; use --device cpu or a CUDA build of torch")
    sample = _torch_sampler(bundle, device)
    fixed = _fixed_grid(device)
    n_dump = _DUMP_CELLS_CUDA if fixed else 1
    acc = torch.zeros(plan.size + n_dump, dtype=torch.float64, device=device)
    first, end, B = plan.first_event, plan.first_event + plan.n_events, plan.batch_size
    n_fill = 2 * len(plan.binnings)
    ones = torch.ones(n_fill * B, dtype=torch.float64, device=device)
    dump = plan.size + (torch.arange(n_fill * B, device=device) % n_dump if fixed else torch.zeros(1, device=device))
    dump = dump.to(torch.int64)
    edges = None if plan.context is None else torch.tensor(
        category_edges(plan.context["fractions"]), dtype=torch.float64, device=device)

    def step(idx: Any, valid: Any) -> None:
        d = noise_at(plan.seed, idx, plan.dim)
        x = sample(d.normals, _context(plan, d.u_context, torch, edges))
        ev = _event_columns(x, d.phill, torch)
        cells = _flat_indices(plan, ev, valid, torch)
        m = cells.shape[0]
        cells = torch.where(cells == plan.size, dump[:m] if fixed else dump, cells)
        acc.index_add_(0, cells, ones[:m])

    fn = step
    if compile:
        fn = torch.compile(step, dynamic=False)
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.inference_mode())
        stack.enter_context(_torch_threads(torch, threads))
        if cuda:
            stack.enter_context(_tf32(torch, tf32))
        bar = stack.enter_context(_progress(plan.n_events, progress, f"torch[{device}]"))
        if fixed:
            # Fixed-shape grid batches with a validity mask: indices advance on the device, no host sync.
            lo_grid = (first // B) * B
            ar = torch.arange(B, device=device, dtype=torch.int64)
            base = torch.full((), lo_grid, dtype=torch.int64, device=device)
            for lo in range(lo_grid, end, B):
                idx = base + ar
                fn = _call(fn, step, idx, (idx >= first) & (idx < end))
                base += B
                bar.update(min(end, lo + B) - max(first, lo))
            if cuda:
                torch.cuda.synchronize()
        else:
            for lo, hi in batch_grid(first, plan.n_events, B):
                fn = _call(fn, step, torch.arange(lo, hi, dtype=torch.int64), None)
                bar.update(hi - lo)
    return acc[: plan.size].cpu().numpy()


def _call(fn: Callable[..., None], eager: Callable[..., None], *args: Any) -> Callable[..., None]:
    """Run one step. A compiled step compiles on its first call: if that fails, warn
    and continue eagerly (nothing was accumulated yet); later errors propagate."""
    if fn is eager or getattr(fn, "_dyroot_ok", False):
        fn(*args)
        return fn
    try:
        fn(*args)
    except Exception as err:  # torch._dynamo / inductor errors have no common public base
        import warnings

        from .warnings import PerformanceWarning

        warnings.warn(f"torch.compile of the generation step failed ({type(err).__name__}: {err}); "
                      "running eagerly", PerformanceWarning, stacklevel=3)
        eager(*args)
        return eager
    fn._dyroot_ok = True  # type: ignore[attr-defined]
    return fn


@contextlib.contextmanager
def _torch_threads(torch: ModuleType, threads: int | None) -> Iterator[None]:
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def _tf32(torch: ModuleType, enabled: bool) -> Iterator[None]:
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


# ---------------------------------------------------------------------------------------------- onnxruntime


def _ort_session(bundle: Any, device: str, threads: int | None) -> Any:
    ort = _import("onnxruntime")
    path = getattr(bundle, "onnx_path", None)
    if path is None or not pathlib.Path(path).exists():
        raise BundleError(f"the bundle's ONNX sampler ({path}) is missing; run `dyroot export BUNDLE`")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or 1)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ConfigError("onnxruntime has no CUDA execution provider here; `pip install onnxruntime-gpu` "
                              "or use --backend torch --device cuda")
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


def _run_onnxruntime(plan: _Plan, bundle: Any, device: str, threads: int | None, progress: bool) -> np.ndarray:
    sess = _ort_session(bundle, device, threads)
    inputs = {i.name for i in sess.get_inputs()}
    out_name = sess.get_outputs()[0].name
    if "noise" not in inputs:
        raise BundleError(f"the ONNX sampler's inputs are {sorted(inputs)}, expected 'noise'; re-export the bundle")
    if ("context" in inputs) != (plan.context is not None):
        raise BundleError("the ONNX sampler and bundle.json disagree on the context; re-export the bundle")
    acc = np.zeros(plan.size + 1, dtype=np.float64)
    with _progress(plan.n_events, progress, "onnxruntime") as bar:
        for lo, hi in batch_grid(plan.first_event, plan.n_events, plan.batch_size):
            d = noise_at(plan.seed, np.arange(lo, hi, dtype=np.int64), plan.dim)
            feed = {"noise": np.ascontiguousarray(d.normals)}
            ctx = _context(plan, d.u_context, np)
            if ctx is not None:
                feed["context"] = ctx
            x = sess.run([out_name], feed)[0]
            cells = _flat_indices(plan, _event_columns(x, d.phill, np), None, np)
            acc += np.bincount(cells, minlength=plan.size + 1)
            bar.update(hi - lo)
    return acc[: plan.size]


# ---------------------------------------------------------------------------------------------- public


def generate_templates(
    bundle: Any, n_events: int, seed: int, *,
    backend: str = "sofie", device: str = "cpu", threads: int | None = None,
    batch_size: int | None = None, first_event: int = 0, binning: Binning = DEFAULT_BINNING,
    extra_variables: Sequence[str | Binning] = (), progress: bool = True,
    tf32: bool = False, compile: bool = False,
) -> Templates:
    r"""Generate ``n_events`` events of the flow and histogram the selected ones.

    Args:
        bundle: a model bundle (directory, or a loaded bundle with ``config``,
            ``hash``, ``sample``, ``onnx_path``).
        n_events: events generated (before cuts).
        seed: stream seed in ``[0, 2**64)``; event ``i`` of a seed is the same
            whatever the backend's batching, threading or sharding.
        backend: ``"sofie"`` (SOFIE in RDataFrame), ``"torch"`` or ``"onnxruntime"``.
        device: ``"cpu"`` or ``"cuda"`` (torch; onnxruntime with its CUDA provider).
        threads: CPU threads (torch intra-op, onnxruntime intra-op, RDataFrame
            ImplicitMT); ``None``: the library default (onnxruntime: 1).
        batch_size: events per batch (default :data:`DEFAULT_BATCH_SIZE`).
        first_event: global index of the first event (shards).
        binning: the m_mumu binning (GeV).
        extra_variables: further variables (names or :class:`~dyroot.features.Binning`).
        progress: show a progress bar (events/s and ETA) on stderr.
        tf32: allow TF32 matmuls on CUDA (faster, ~1e-3 relative matmul error).
        compile: ``torch.compile`` the fused step (torch backend).

    Returns:
        Raw-count :class:`~dyroot.templates.Templates` with the provenance.

    Raises:
        ConfigError: for an unknown backend/device or invalid numbers.
        BundleError: if the bundle cannot be used.
        BuildError: if the SOFIE backend is not available.

    Example:
        >>> t = generate_templates("bundle/", 10**6, seed=1, backend="torch")  # doctest: +SKIP
        >>> t.normalised("xsec", lumi_fb=140.0).write("templates.root")  # doctest: +SKIP
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"unknown device {device!r}; choose 'cpu' or 'cuda'")
    bundle = resolve_bundle(bundle)
    kind = "cuda" if device.startswith("cuda") else "cpu"
    plan = _plan(bundle, int(n_events), int(seed), int(first_event), binning, extra_variables,
                 int(batch_size or DEFAULT_BATCH_SIZE[kind]))
    start = time.perf_counter()
    if backend == "sofie":
        templates = _run_sofie(plan, bundle, threads, progress)
    else:
        if backend == "torch":
            flat = _run_torch(plan, bundle, device, threads, progress, tf32=tf32, compile=compile)
        else:
            flat = _run_onnxruntime(plan, bundle, device, threads, progress)
        templates = Templates.from_flat(flat, plan.binnings, plan.scheme.names)
    wall = time.perf_counter() - start
    prov = _provenance(plan, bundle, backend, device, threads, templates, wall, tf32=tf32)
    prov["versions"] = {**(templates.provenance.get("versions") or {}), **prov["versions"]}
    prov.update({k: v for k, v in templates.provenance.items() if k not in prov})  # e.g. the SOFIE build record
    templates.provenance = prov
    return templates


def _run_sofie(plan: _Plan, bundle: Any, threads: int | None, progress: bool = False) -> Templates:
    try:
        from . import rdf
    except ImportError as err:
        msg = (f"the sofie backend needs dyroot.rdf (SOFIE in RDataFrame), which is not available here ({err}); "
               "use --backend torch or --backend onnxruntime")
        raise BuildError(msg) from err
    fill = getattr(rdf, "fill_templates", None)
    if fill is None:
        raise BuildError("dyroot.rdf has no fill_templates; use --backend torch or --backend onnxruntime")
    t: Templates = fill(bundle, plan.n_events, plan.seed, first_event=plan.first_event, binning=plan.binnings[0],
                        threads=threads, extra_variables=plan.binnings[1:], progress=progress)
    return t


def _provenance(plan: _Plan, bundle: Any, backend: str, device: str, threads: int | None,
                t: Templates, wall: float, *, tf32: bool) -> dict[str, Any]:
    n_sel = {region: int(round(t.counts[f"{plan.binnings[0].variable}_{region}"].sum()))
             for region in ("inclusive", *plan.scheme.names)}
    cfg = bundle.config
    return {
        "bundle_hash": getattr(bundle, "hash", None),
        "seed": plan.seed,
        "first_event": plan.first_event,
        "n_events": plan.n_events,
        "n_selected": n_sel,
        "backend": backend,
        "device": device,
        "threads": threads,
        "batch_size": plan.batch_size,
        "precision": "tf32" if (tf32 and device.startswith("cuda")) else "fp32",
        "versions": _versions(backend),
        "selection": plan.selection.to_dict(),
        "categories": plan.scheme.to_list(),
        "sigma_pb": cfg.get("sigma_pb"),
        "normalisation": {"mode": "counts", "lumi_fb": None, "scale": 1.0},
        "random": {"generator": "philox4x32-10", "tag": NOISE_TAG, "layout": "dyroot.random"},
        "context": plan.context,
        "host": platform.node(),
        "wall_s": wall,
    }


def _versions(backend: str) -> dict[str, str]:
    out = {}
    pkgs = ["dyroot", "numpy", "torch"] + (["onnxruntime"] if backend == "onnxruntime" else []) + (
        ["root", "sofie"] if backend == "sofie" else [])
    for p in pkgs:
        try:
            out[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            continue
    out["python"] = platform.python_version()
    return out


def _import(name: str) -> ModuleType:
    from ._optional import import_optional

    return import_optional(name)


@contextlib.contextmanager
def _progress(total: int, enabled: bool, desc: str) -> Iterator[Any]:
    if not enabled:
        yield _NoBar()
        return
    tqdm = _import("tqdm").tqdm
    with tqdm(total=total, unit="ev", unit_scale=True, desc=desc, mininterval=0.5, smoothing=0.1,
              dynamic_ncols=True) as bar:
        yield bar


class _NoBar:
    def update(self, n: int) -> None:
        del n
