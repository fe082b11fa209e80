r"""Training a flow on weighted dimuon events, and writing the model bundle.

Pure module (numpy and torch, never ROOT; files through :mod:`dyroot.bundle`). The
entry points are :func:`train_bundle` (one model) and :func:`train_ensemble` (K
models on bootstrap replicas or disjoint subsets); the ONNX export is a separate
step (:func:`dyroot.export.export_bundle`, which ``dyroot train`` runs at the end).

Weighted likelihood and negative weights
    The flow maximises the weighted log-likelihood of the training events. With event
    weights :math:`w_i` (pb, possibly negative for NLO generators), the loss

    .. math:: L(\theta) = -\frac{\sum_i w_i \log p_\theta(x_i)}{\sum_i w_i}

    is an unbiased estimate of the cross-entropy :math:`-E_{\sigma}[\log p_\theta]`
    of the true (signed-weight) distribution, whose minimum over all densities is the
    true density: negative weights are kept in the loss as they are, never dropped or
    clipped. A mini-batch may have a negative (or tiny) sum of weights, so the batch
    loss is normalised not by its own sum but by the expected one,
    :math:`n_\text{batch}\cdot\bar w` with :math:`\bar w = \sum w / N` over the whole
    training set: each batch then gives an unbiased, well-scaled estimate of
    :math:`L`. Only a non-positive total weight is refused (:class:`WeightError`).
    The validation loss is the same quantity on the validation events.

Training
    AdamW, a cosine learning-rate decay per step from ``lr`` to ``lr_final`` over
    ``epochs``, gradient-norm clipping, a validation split (``val_fraction``), early
    stopping after ``patience`` epochs without improvement (the bundle keeps the best
    validation epoch), a checkpoint after every epoch (``checkpoint.pt``, written
    atomically) and ``resume=True`` to continue after an interruption: the result equals
    that of an uninterrupted run. Deterministic under ``seed`` (the initial weights, the
    split and each epoch's shuffle derive from it) for a given device and thread count.
    A progress bar (tqdm) shows the losses.

Example:
    >>> cfg = TrainConfig(epochs=3, batch_size=512)
    >>> cfg.to_dict()["batch_size"]
    512
"""

from __future__ import annotations

import csv
import io
import math
import os
import platform
import sys
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import _version
from .bundle import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    ENSEMBLE_FORMAT,
    FILES,
    atomic_torch_save,
    prepare_output,
    write_json,
)
from .exceptions import ConfigError, EmptySelectionError, InputError, WeightError
from .features import DEFAULT_CATEGORIES, FLOW_FEATURES, MUON_COLUMNS, CategoryScheme, Selection
from .flows import ContextSpec, FlowConfig
from .transforms import fit_preprocessing
from .warnings import DyrootWarning

__all__ = [
    "TrainConfig",
    "DEFAULT_TRAINING_SELECTION",
    "training_arrays",
    "category_context",
    "variables_context",
    "train_bundle",
    "train_ensemble",
    "split_indices",
    "fit_flow",
]

#: The default training pre-selection: looser than the analysis cuts (flows blur hard
#: edges; the analysis cuts are applied after generation, exactly), matching
#: ``dyroot simulate --preset training``, with a mass window of 108-162 GeV around the
#: 110-160 GeV fit range. The window edges are exact in generated events (see
#: :mod:`dyroot.transforms`), so no margin is needed against blurring; the 2 GeV guard a
#: slightly moved fit range. A narrow window makes generation efficient: of the events
#: generated in 108-162 GeV, 73 % pass the analysis cuts in 110-160 GeV (56 % for a
#: 105-170 GeV window; measured on ``dyroot simulate --preset training`` events). The
#: :math:`|\eta| < 3.5` cut keeps the flow's blurred edge away from the analysis's 2.7:
#: with :math:`|\eta| < 3` generated y_mumu was 2-5 % low in the outer 0.3 of rapidity
#: (chi2/ndf 1.64), with 3.5 it is 1.28 (``benchmarks/fidelity.py``, 10^6 events).
DEFAULT_TRAINING_SELECTION = Selection(lead_pt=20.0, sublead_pt=10.0, max_abs_eta=3.5, opposite_charge=True,
                                       mll_range=(108.0, 162.0))


@dataclass(frozen=True)
class TrainConfig:
    """Options of the training loop (JSON-able; stored in the bundle).

    Args:
        epochs: maximum number of passes over the training events.
        batch_size: events per gradient step (large batches use CPUs best).
        lr: the initial learning rate (AdamW).
        lr_final: the learning rate at the end of the cosine decay.
        weight_decay: AdamW weight decay.
        grad_clip: maximum gradient norm.
        val_fraction: fraction of the events held out for validation.
        patience: stop after this many epochs without a better validation loss.
        min_delta: the improvement that counts as better.
        seed: seeds the initial weights, the split and the shuffles.
        device: ``"cpu"`` or ``"cuda"`` (``"cuda:1"``...).
        threads: torch CPU threads (``None``: torch's default).
    """

    epochs: int = 20
    batch_size: int = 4096
    lr: float = 3e-3
    lr_final: float = 3e-5
    weight_decay: float = 0.0
    grad_clip: float = 10.0
    val_fraction: float = 0.1
    patience: int = 6
    min_delta: float = 1e-4
    seed: int = 1
    device: str = "cpu"
    threads: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs = {self.epochs}: train at least one epoch")
        if self.batch_size < 2:
            problems.append(f"batch_size = {self.batch_size} is too small")
        if not 0.0 < self.val_fraction < 0.9:
            problems.append(f"val_fraction = {self.val_fraction} must be in (0, 0.9)")
        if not (self.lr > 0 and self.lr_final > 0):
            problems.append("lr and lr_final must be positive")
        if self.patience < 1:
            problems.append(f"patience = {self.patience} must be >= 1")
        if self.threads is not None and self.threads < 1:
            problems.append(f"threads = {self.threads} must be >= 1")
        if problems:
            raise ConfigError(problems)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dictionary."""
        return asdict(self)


# ----------------------------------------------------------------------------------------------
# Data


def training_arrays(
    events: Mapping[str, np.ndarray],
    selection: Selection = DEFAULT_TRAINING_SELECTION,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The flow features and weights of the events that pass the training pre-selection.

    Args:
        events: event columns (``FLOW_FEATURES``, and ``MUON_COLUMNS`` for the muon
            cuts; ``weight`` optional, unit weights otherwise).
        selection: the training pre-selection; without muon columns only its mass
            window is applied.

    Returns:
        ``(x [N, 5] float64, weights [N] float64, mask over the input events)``.

    Raises:
        InputError: a feature column is missing or not finite.
        EmptySelectionError: no event passes.
        WeightError: the total weight is not positive, or weights are not finite.
    """
    missing = [c for c in FLOW_FEATURES if c not in events]
    if missing:
        msg = f"the training events lack the columns {missing}; read them with dyroot.io.read_events"
        raise InputError(msg)
    n = len(events["mll"])
    if all(c in events for c in MUON_COLUMNS):
        mask = np.asarray(selection.mask(events), dtype=bool)
    else:
        mask = np.ones(n, dtype=bool)
        if selection.mll_range is not None:
            lo, hi = selection.mll_range
            mask &= (events["mll"] >= lo) & (events["mll"] < hi)
    x = np.stack([np.asarray(events[c], dtype=np.float64)[mask] for c in FLOW_FEATURES], axis=1)
    w = np.asarray(events["weight"], dtype=np.float64)[mask] if "weight" in events else np.ones(len(x))
    if len(x) == 0:
        msg = f"no event of {n} passes the training pre-selection {selection.to_dict()}; loosen it"
        raise EmptySelectionError(msg)
    if not np.all(np.isfinite(x)):
        raise InputError("the training features contain NaN or infinite values; read with nonfinite='drop'")
    if not np.all(np.isfinite(w)):
        raise WeightError("the training weights contain NaN or infinite values")
    if not np.sum(w) > 0:
        msg = f"the total weight of the {len(w)} training events is {np.sum(w):.6g} <= 0: check the weight column"
        raise WeightError(msg)
    return x, w, mask


def category_context(events: Mapping[str, np.ndarray], mask: np.ndarray, weights: np.ndarray,
                     categories: CategoryScheme) -> tuple[np.ndarray, ContextSpec]:
    """One-hot context of the category of each training event.

    The category is recomputed with ``categories`` from the event's muons. Events in
    no category (index -1) get an extra last slot named ``"none"`` if there are any.

    Returns:
        ``(context [N, C] float32, spec)``; ``spec.fractions`` are the weighted
        fractions (negative ones clipped to zero, then renormalised).
    """
    idx = np.asarray(categories.assign({k: np.asarray(v)[mask] for k, v in events.items()
                                        if np.ndim(v) == 1 and len(v) == len(mask)}), dtype=np.int64)
    names = list(categories.names)
    if np.any(idx < 0):
        names.append("none")
        idx = np.where(idx < 0, len(names) - 1, idx)
    onehot = np.zeros((len(idx), len(names)), dtype=np.float32)
    onehot[np.arange(len(idx)), idx] = 1.0
    frac = np.array([weights[idx == i].sum() for i in range(len(names))]) / weights.sum()
    if np.any(frac < 0):
        warnings.warn(f"negative weighted category fractions {frac} clipped to zero", DyrootWarning, stacklevel=2)
        frac = np.clip(frac, 0.0, None)
        frac = frac / frac.sum()
    return onehot, ContextSpec("category", tuple(names), fractions=tuple(float(f) for f in frac))


def variables_context(events: Mapping[str, np.ndarray], mask: np.ndarray, weights: np.ndarray,
                      names: Sequence[str]) -> tuple[np.ndarray, ContextSpec]:
    """Context of user event variables (standardised inside the model with weighted moments)."""
    missing = [n for n in names if n not in events]
    if missing:
        msg = f"context variables {missing} are not among the event columns; read them with extra=..."
        raise InputError(msg)
    cols = np.stack([np.asarray(events[n], dtype=np.float64)[mask] for n in names], axis=1)
    sw = weights.sum()
    mean = (weights[:, None] * cols).sum(0) / sw
    std = np.sqrt(np.maximum((weights[:, None] * (cols - mean) ** 2).sum(0) / sw, 1e-24))
    spec = ContextSpec("variables", tuple(names), mean=tuple(map(float, mean)), std=tuple(map(float, std)))
    return cols.astype(np.float32), spec


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices of ``n`` events (a seeded random split).

    Example:
        >>> tr, va = split_indices(10, 0.2, seed=1)
        >>> len(tr), len(va), sorted(np.concatenate([tr, va]).tolist()) == list(range(10))
        (8, 2, True)
    """
    perm = np.random.default_rng(np.random.SeedSequence([int(seed), 0xD7])).permutation(n)
    n_val = max(1, int(round(val_fraction * n)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


# ----------------------------------------------------------------------------------------------
# The loop


def _cosine(step: int, total: int, lr: float, lr_final: float) -> float:
    t = min(step / max(total, 1), 1.0)
    return lr_final + 0.5 * (lr - lr_final) * (1.0 + math.cos(math.pi * t))


def _epoch_generator(seed: int, epoch: int) -> Any:
    import torch

    return torch.Generator().manual_seed(int(np.random.SeedSequence([int(seed), int(epoch), 0x5F]).generate_state(1)[0]))


def _write_losses_csv(path: Path, history: list[dict[str, float]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["epoch", "train_loss", "val_loss", "lr", "seconds"])
    for h in history:
        w.writerow([h["epoch"], f"{h['train_loss']:.7g}", f"{h['val_loss']:.7g}", f"{h['lr']:.4g}", f"{h['seconds']:.2f}"])
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, path)


def _plot_losses(path: Path, history: list[dict[str, float]], best_epoch: int) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError:
        warnings.warn("matplotlib is not installed: losses.png not written (pip install matplotlib)",
                      DyrootWarning, stacklevel=2)
        return
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ep, [h["train_loss"] for h in history], "o-", label="training")
    ax.plot(ep, [h["val_loss"] for h in history], "s-", label="validation")
    ax.axvline(best_epoch, color="grey", ls=":", label=f"best (epoch {best_epoch})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(r"weighted NLL per event (standardised space)")
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def _weighted_nll(model: Any, y: Any, w: Any, c: Any, norm: float) -> Any:
    return -(w * model.flow.log_prob(y, c)).sum() / norm


def _evaluate(model: Any, y: Any, w: Any, c: Any, batch: int) -> float:
    import torch

    total = 0.0
    with torch.no_grad():
        for s in range(0, len(y), batch):
            cc = None if c is None else c[s : s + batch]
            total += float(_weighted_nll(model, y[s : s + batch], w[s : s + batch], cc, 1.0))
    return total / float(w.sum())


def fit_flow(model: Any, data: Mapping[str, Any], cfg: TrainConfig, outdir: str | os.PathLike[str], *,
             resume: bool = False, progress: bool = True, fingerprint: Mapping[str, Any] | None = None,
             pause: float = 0.0) -> dict[str, Any]:
    """The training loop on prepared tensors (used by :func:`train_bundle`).

    Args:
        model: a ``FlowModel`` (its ``flow`` is trained; the pre-processing is fixed).
        data: tensors on the training device: ``y_train``, ``w_train``, ``c_train`` and
            ``y_val``, ``w_val``, ``c_val`` (standardised features [N, D], weights [N],
            standardised context [N, C] or ``None``).
        cfg: the training options.
        outdir: where ``checkpoint.pt`` and ``losses.csv`` go.
        resume: continue from ``outdir/checkpoint.pt`` if it exists.
        progress: show progress bars.
        fingerprint: what must match for a resume (data and options).
        pause: seconds to sleep after each checkpoint (tests kill the process there).

    Returns:
        The final state: ``best_state`` (state dict of the best validation epoch),
        ``best_epoch``, ``best_val``, ``epoch``, ``history``, ``stopped_early``.

    Raises:
        ConfigError: the checkpoint does not match ``fingerprint``.
        InputError: the loss became non-finite.
    """
    outdir = Path(outdir)
    fingerprint = dict(fingerprint or {})
    import torch

    ckpt_path = outdir / FILES["checkpoint"]
    dev = torch.device(cfg.device)
    yt, wt, ct = data["y_train"], data["w_train"], data["c_train"]
    yv, wv, cv = data["y_val"], data["w_val"], data["c_val"]
    n = len(yt)
    steps_per_epoch = max(1, n // cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    wbar = float(wt.sum()) / n
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    state: dict[str, Any] = {"epoch": 0, "step": 0, "best_val": math.inf, "best_epoch": 0, "bad_epochs": 0,
                             "history": [], "stopped_early": False}
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location=dev, weights_only=True)
        if ck.get("fingerprint") != fingerprint:
            msg = (f"the checkpoint {ckpt_path} was made with other data or options than this run: resume with the "
                   "same command, or start afresh with --force")
            raise ConfigError(msg)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        best_state = ck["best_state"]
        state = {k: ck[k] for k in state}
    from tqdm.auto import tqdm

    start_epoch = int(state["epoch"])
    bar = tqdm(total=cfg.epochs, initial=start_epoch, desc="epochs", unit="ep", disable=not progress,
               dynamic_ncols=True, file=sys.stderr)
    try:
        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            if state["stopped_early"]:
                break
            t0 = time.perf_counter()
            model.train()
            perm = torch.randperm(n, generator=_epoch_generator(cfg.seed, epoch)).to(dev)
            run, seen = 0.0, 0
            inner = tqdm(total=steps_per_epoch, desc=f"epoch {epoch}", leave=False, disable=not progress,
                         dynamic_ncols=True, file=sys.stderr)
            for b in range(steps_per_epoch):
                idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                lr = _cosine(int(state["step"]), total_steps, cfg.lr, cfg.lr_final)
                for g in opt.param_groups:
                    g["lr"] = lr
                loss = _weighted_nll(model, yt[idx], wt[idx], None if ct is None else ct[idx], len(idx) * wbar)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                state["step"] = int(state["step"]) + 1
                run += float(loss.detach()) * len(idx)
                seen += len(idx)
                inner.update(1)
                if b % 10 == 0:
                    inner.set_postfix(loss=f"{run / seen:.4f}")
            inner.close()
            model.eval()
            val = _evaluate(model, yv, wv, cv, max(cfg.batch_size, 8192))
            train_loss = run / max(seen, 1)
            if not math.isfinite(val) or not math.isfinite(train_loss):
                msg = (f"the loss became {train_loss} / {val} at epoch {epoch}: lower --lr, or check the weights "
                       "for extreme values")
                raise InputError(msg)
            if val < float(state["best_val"]) - cfg.min_delta:
                state.update(best_val=val, best_epoch=epoch, bad_epochs=0)
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                state["bad_epochs"] = int(state["bad_epochs"]) + 1
                if state["bad_epochs"] >= cfg.patience:
                    state["stopped_early"] = True
            state["epoch"] = epoch
            state["history"] = list(state["history"]) + [{
                "epoch": epoch, "train_loss": train_loss, "val_loss": val,
                "lr": _cosine(int(state["step"]), total_steps, cfg.lr, cfg.lr_final),
                "seconds": time.perf_counter() - t0}]
            atomic_torch_save({**state, "model": model.state_dict(), "optimizer": opt.state_dict(),
                               "best_state": best_state, "fingerprint": fingerprint}, ckpt_path)
            _write_losses_csv(outdir / FILES["losses_csv"], state["history"])
            bar.update(1)
            bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val:.4f}", best=state["best_epoch"])
            if pause > 0:
                time.sleep(pause)
    finally:
        bar.close()
    state["best_state"] = best_state
    return state


# ----------------------------------------------------------------------------------------------
# One bundle


def _versions() -> dict[str, str]:
    import torch

    return {"dyroot": _version.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


def train_bundle(
    events: Mapping[str, np.ndarray],
    output: str | os.PathLike[str],
    *,
    flow: FlowConfig | None = None,
    train: TrainConfig | None = None,
    preprocessing: str | Mapping[str, str] = "probit",
    training_selection: Selection = DEFAULT_TRAINING_SELECTION,
    selection: Selection | None = None,
    categories: CategoryScheme = DEFAULT_CATEGORIES,
    context: str | Sequence[str] | None = None,
    sofie_batch: int = 1024,
    extra_weights: np.ndarray | None = None,
    sigma_pb: float | None = None,
    source: Mapping[str, Any] | None = None,
    force: bool = False,
    resume: bool = False,
    progress: bool = True,
    _pause_after_epoch: float = 0.0,
) -> Path:
    """Train a flow on events and write the bundle (without its ONNX files).

    Args:
        events: event columns (as :func:`dyroot.io.read_events` returns them).
        output: the bundle directory.
        flow: the flow hyper-parameters (``context`` is set from ``context``).
        train: the training options.
        preprocessing: a preset of :data:`dyroot.transforms.PRESETS` or a mapping.
        training_selection: the pre-selection applied before training; its mass
            window bounds the mass pre-transform.
        selection: the analysis selection stored in the bundle (default: ATLAS-like
            ``Selection()``).
        categories: the analysis categories stored in the bundle (and the category
            context).
        context: ``None``/``"none"`` (unconditional), ``"category"``, or a list of
            event columns (user variables).
        sofie_batch: the fixed batch of the SOFIE graph.
        extra_weights: per-event factors multiplying the weights (bootstrap counts),
            over the input events.
        sigma_pb: the cross-section the model represents; default the sum of weights
            of the pre-selected events (times ``extra_weights``).
        source: provenance of the input (paths, sha256, the input file's record).
        force: overwrite an existing bundle.
        resume: continue from ``checkpoint.pt`` in ``output``.
        progress: show progress bars.

    Returns:
        The bundle directory.

    Raises:
        OutputExistsError: ``output`` is not empty and neither ``force`` nor ``resume``.
        InputError, WeightError, EmptySelectionError: unusable events.
        ConfigError: invalid options, or a checkpoint from another configuration.
    """
    import torch

    from .flows import build_model

    t_start = time.time()
    train = train or TrainConfig()
    flow = flow or FlowConfig()
    selection = selection or Selection()
    outdir = prepare_output(output, force=force, resume=resume)
    if resume:
        (outdir / FILES["config"]).unlink(missing_ok=True)  # unfinished until rewritten
    x, w, mask = training_arrays(events, training_selection)
    if extra_weights is not None:
        w = w * np.asarray(extra_weights, dtype=np.float64)[mask]
        keep = w != 0
        x, w, mask_idx = x[keep], w[keep], np.flatnonzero(mask)[keep]
        mask = np.zeros_like(mask)
        mask[mask_idx] = True
    total_w = float(w.sum())
    if not total_w > 0:
        raise WeightError(f"the total weight of the training events is {total_w:.6g} <= 0")

    ctx_arr, ctx_spec = None, None
    if context == "category":
        ctx_arr, ctx_spec = category_context(events, mask, w, categories)
    elif context not in (None, "none"):
        names = [context] if isinstance(context, str) else list(context)
        ctx_arr, ctx_spec = variables_context(events, mask, w, names)
    flow = replace(flow, context=ctx_spec.dim if ctx_spec else 0, features=len(FLOW_FEATURES))

    tr, va = split_indices(len(x), train.val_fraction, train.seed)
    if len(tr) < train.batch_size:
        train = replace(train, batch_size=max(2, len(tr)))
    mll_bounds = training_selection.mll_range
    if mll_bounds is None:
        lo, hi = float(x[:, 0].min()), float(x[:, 0].max())
        mll_bounds = (lo - 1e-6 * lo, hi + 1e-6 * hi)
    # The dimuon rapidity lies between the muons' rapidities, and |y_mu| <= |eta_mu|: the
    # training |eta| cut bounds yll (used by the presets that treat yll as bounded).
    eta = training_selection.max_abs_eta
    pre = fit_preprocessing({c: x[tr, i] for i, c in enumerate(FLOW_FEATURES)}, w[tr], preset=preprocessing,
                            mll_bounds=mll_bounds, bounds=None if eta is None else {"yll": (-float(eta), float(eta))})
    if train.threads:
        torch.set_num_threads(train.threads)
    dev = torch.device(train.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but torch sees no CUDA device; use --device cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train.seed)
        model = build_model(flow, pre, ctx_spec)
    model.to(dev)
    with torch.no_grad():
        y64, _ = model.preprocessing(torch.from_numpy(x))
    y = y64.to(torch.float32)
    ct = None if ctx_arr is None else model.standardise_context(torch.from_numpy(ctx_arr).to(dev))
    wt = torch.from_numpy(w).to(torch.float32)
    data = {"y_train": y[tr].to(dev), "w_train": wt[tr].to(dev), "c_train": None if ct is None else ct[tr],
            "y_val": y[va].to(dev), "w_val": wt[va].to(dev), "c_val": None if ct is None else ct[va]}
    fingerprint = {"flow": flow.to_dict(), "train": {k: v for k, v in train.to_dict().items() if k not in ("device", "threads")},
                   "n": int(len(x)), "sum_w": round(total_w, 9), "pre": [p.to_dict() for p in pre],
                   "source_sha256": (source or {}).get("sha256")}
    state = fit_flow(model, data, train, outdir, resume=resume, progress=progress, fingerprint=fingerprint,
                 pause=_pause_after_epoch)

    model.load_state_dict(state["best_state"])
    model.cpu()
    atomic_torch_save(model.state_dict(), outdir / FILES["weights"])
    _write_losses_csv(outdir / FILES["losses_csv"], state["history"])
    _plot_losses(outdir / FILES["losses_png"], state["history"], int(state["best_epoch"]))
    hist = state["history"]
    training_record = {
        "config": train.to_dict(), "n_train": int(len(tr)), "n_val": int(len(va)), "epochs_run": int(state["epoch"]),
        "best_epoch": int(state["best_epoch"]), "best_val_loss": float(state["best_val"]),
        "stopped_early": bool(state["stopped_early"]),
        "seconds": float(sum(h["seconds"] for h in hist)),
        "train_loss": float(hist[-1]["train_loss"]) if hist else None,
    }
    provenance = {
        "source": dict(source or {}), "versions": _versions(), "seed": train.seed, "training": training_record,
        "preprocessing_preset": preprocessing if isinstance(preprocessing, str) else dict(preprocessing),
        "sum_weights": total_w, "n_events": int(len(x)), "n_negative_weights": int(np.sum(w < 0)),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t_start)),
        "wall_seconds": time.time() - t_start, "device": train.device,
        "threads": torch.get_num_threads(),
    }
    write_json(outdir / FILES["provenance"], provenance)
    config = {
        "format": BUNDLE_FORMAT, "format_version": BUNDLE_VERSION, "dyroot_version": _version.__version__,
        "features": list(FLOW_FEATURES),
        "preprocessing": [p.to_dict() for p in pre],
        "flow": flow.to_dict(),
        "context": None if ctx_spec is None else ctx_spec.to_dict(),
        "selection": selection.to_dict(),
        "categories": categories.to_list(),
        "training_selection": training_selection.to_dict(),
        "sigma_pb": float(sigma_pb) if sigma_pb is not None else total_w,
        "n_train": int(len(tr)), "n_val": int(len(va)),
        "sofie_batch": int(sofie_batch),
        "phill": {"distribution": "uniform", "range": [-math.pi, math.pi]},
        "files": dict(FILES),
        "onnx": {"inputs": ["noise"] + (["context"] if ctx_spec else []), "output": "x", "opset": 17,
                 "exporter": "torch.onnx TorchScript (dynamo=False) + dyroot.export fix-ups"},
        "training": {k: training_record[k] for k in ("best_epoch", "epochs_run", "best_val_loss", "stopped_early")},
    }
    write_json(outdir / FILES["config"], config)  # last: marks the bundle complete
    return outdir


# ----------------------------------------------------------------------------------------------
# Ensembles


def train_ensemble(
    events: Mapping[str, np.ndarray],
    output: str | os.PathLike[str],
    k: int,
    *,
    mode: str = "bootstrap",
    train: TrainConfig | None = None,
    force: bool = False,
    resume: bool = False,
    on_member: Callable[[Path], None] | None = None,
    **kwargs: Any,
) -> list[Path]:
    """Train ``k`` bundles on bootstrap replicas or disjoint subsets of the events.

    Layout: ``output/ensemble.json`` (``{"format": "dyroot-ensemble", "format_version": 1,
    "mode", "k", "seeds", "members": ["member_00", ...]}``) and the complete bundles
    ``output/member_00`` ... Member ``i`` uses the seed ``train.seed + i``.

    ``"bootstrap"``: each event's weight is multiplied by a Poisson(1) count (seeded per
    member), the weighted form of resampling with replacement; ``sigma_pb`` is the
    replica's sum of weights. ``"disjoint"``: the events are split at random into ``k``
    parts of equal size; ``sigma_pb`` is ``k`` times the part's sum of weights. Both are
    unbiased estimates of the cross-section, fluctuating like the sample does.

    Args:
        events: as :func:`train_bundle`.
        output: the ensemble directory.
        k: number of members (>= 2).
        mode: ``"bootstrap"`` or ``"disjoint"``.
        train: training options (the seed is shifted per member).
        force, resume: as :func:`train_bundle`; with ``resume``, finished members are kept.
        on_member: called with each finished member's path (e.g. to export its ONNX).
        **kwargs: passed to :func:`train_bundle`.

    Returns:
        The member directories.
    """
    if k < 2:
        raise ConfigError(f"an ensemble needs k >= 2 members, got {k}")
    if mode not in ("bootstrap", "disjoint"):
        raise ConfigError(f"ensemble mode {mode!r} is unknown; choose 'bootstrap' or 'disjoint'")
    train = train or TrainConfig()
    outdir = prepare_output(output, force=force, resume=resume)
    n = len(events["mll"])
    base_w = np.asarray(events["weight"], dtype=np.float64) if "weight" in events else np.ones(n)
    if mode == "disjoint":
        part = np.random.default_rng(np.random.SeedSequence([train.seed, 0xE5])).permutation(n) % k
    members, seeds = [], []
    for i in range(k):
        name = f"member_{i:02d}"
        path = outdir / name
        seeds.append(train.seed + i)
        members.append(path)
        if resume and (path / FILES["config"]).is_file():
            continue
        if mode == "bootstrap":
            factor = np.random.default_rng(np.random.SeedSequence([train.seed, i, 0xB0])).poisson(1.0, n).astype(np.float64)
            sigma = None
        else:
            factor = (part == i).astype(np.float64)
            sel = training_arrays(events, kwargs.get("training_selection", DEFAULT_TRAINING_SELECTION))[2]
            sigma = float(k * np.sum((base_w * factor)[sel]))
        train_bundle(events, path, train=replace(train, seed=train.seed + i), extra_weights=factor,
                     sigma_pb=sigma, force=force, resume=resume, **kwargs)
        if on_member is not None:
            on_member(path)
    write_json(outdir / "ensemble.json", {"format": ENSEMBLE_FORMAT, "format_version": 1, "mode": mode, "k": k,
                                          "seeds": seeds, "members": [p.name for p in members]})
    return members
