r"""The model bundle: one directory holding everything a generator needs.

Layout of a bundle directory (format ``dyroot-bundle``, version 1)::

    BUNDLE/
      bundle.json        the definition: format/version, dyroot version, features
                         (FLOW_FEATURES order), pre-processing constants, flow
                         hyper-parameters, context spec (or null), the analysis
                         Selection and CategoryScheme (dicts), the training
                         pre-selection, sigma_pb, the file names, sofie_batch
      weights.pt         the model's state_dict (torch.save; read with weights_only=True)
      provenance.json    input file(s) and sha256, configuration, versions, seed, timings
      losses.csv         epoch, train_loss, val_loss, lr, seconds
      losses.png         the loss curves
      sampler.onnx       noise [B,5] float32 (+ context [B,C]) -> x [B,5] float32,
                         PHYSICAL features (mll GeV, ptll GeV, yll, costheta, phi_cs);
                         B dynamic
      sampler_sofie.onnx the same graph with the fixed batch ``sofie_batch`` (for SOFIE)
      checkpoint.pt      the last training state (for ``dyroot train --resume`` or
                         continuing with more epochs); not part of the model

An ensemble (``dyroot train --ensemble K``) is a directory with ``ensemble.json`` and
the complete member bundles ``member_00``, ``member_01``, ... (see :func:`load_ensemble`).

``bundle.json`` is written last: a directory without it is an unfinished training.
The bundle hash (:attr:`Bundle.hash`) is the sha256 of ``bundle.json`` and
``weights.pt``, the files that define the model; the ONNX files are derived from
them (``dyroot export`` rewrites them).

``phill`` is not in the model: generators draw it uniform in (-pi, pi].

Example:
    >>> import dyroot.bundle as b
    >>> b.BUNDLE_FORMAT, b.BUNDLE_VERSION
    ('dyroot-bundle', 1)
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

from .exceptions import BundleError, OutputExistsError
from .features import FLOW_FEATURES, CategoryScheme, Selection

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "ENSEMBLE_FORMAT",
    "FILES",
    "Bundle",
    "load_bundle",
    "load_ensemble",
    "is_ensemble",
    "read_config",
    "bundle_hash",
    "prepare_output",
    "config_summary",
    "write_json",
    "atomic_torch_save",
    "sha256_file",
]

BUNDLE_FORMAT = "dyroot-bundle"
#: Incremented when a change makes older dyroot unable to read new bundles.
BUNDLE_VERSION = 1
ENSEMBLE_FORMAT = "dyroot-ensemble"

#: The file of each role, relative to the bundle directory.
FILES = {
    "config": "bundle.json",
    "weights": "weights.pt",
    "provenance": "provenance.json",
    "losses_csv": "losses.csv",
    "losses_png": "losses.png",
    "onnx": "sampler.onnx",
    "sofie_onnx": "sampler_sofie.onnx",
    "checkpoint": "checkpoint.pt",
}


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """The hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON with sorted keys, atomically (temporary file + rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, _umask_mode())  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` to a temporary file in the same directory, then rename."""
    import torch

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Bundle:
    """A loaded model bundle (see the module docstring for the layout).

    Attributes:
        path: the bundle directory.
        config: the parsed ``bundle.json``.
        hash: sha256 of ``bundle.json`` + ``weights.pt`` (hex).
        flow: the torch model (``FlowModel``): ``flow(noise, context)`` gives the
            physical features; ``flow.log_prob(x, context)`` their density.
    """

    def __init__(self, path: Path, config: dict[str, Any], flow: Any, hash_: str) -> None:
        self.path = path
        self.config = config
        self.flow = flow
        self.hash = hash_

    def __repr__(self) -> str:
        f = self.config["flow"]
        return (f"<dyroot Bundle {str(self.path)!r} {f['architecture']} x{f['layers']} "
                f"context={self.context_dim} hash={self.hash[:12]}>")

    # ---- the contract's accessors ---------------------------------------------------------
    @property
    def features(self) -> tuple[str, ...]:
        """The output columns, in order (``FLOW_FEATURES``)."""
        return tuple(self.config["features"])

    @property
    def sigma_pb(self) -> float | None:
        """The cross-section in pb that the flow's full output represents."""
        v = self.config.get("sigma_pb")
        return None if v is None else float(v)

    @property
    def selection(self) -> Selection:
        """The analysis selection (apply it to generated events)."""
        return Selection.from_dict(self.config["selection"])

    @property
    def categories(self) -> CategoryScheme:
        """The analysis categories."""
        return CategoryScheme.from_list(self.config["categories"])

    @property
    def training_selection(self) -> Selection:
        """The pre-selection of the training sample (the flow's support)."""
        return Selection.from_dict(self.config["training_selection"])

    @property
    def context(self) -> dict[str, Any] | None:
        """The context spec (``None`` for an unconditional model)."""
        return self.config.get("context")

    @property
    def context_dim(self) -> int:
        """The length ``C`` of the context vector (0: unconditional)."""
        return int(self.config["flow"]["context"])

    @property
    def sofie_batch(self) -> int:
        """The fixed batch size of ``sampler_sofie.onnx``."""
        return int(self.config["sofie_batch"])

    def file(self, role: str) -> Path:
        """The path of one of the bundle's files (see ``FILES``)."""
        return self.path / self.config.get("files", FILES).get(role, FILES[role])

    @property
    def onnx_path(self) -> Path:
        """``sampler.onnx`` (dynamic batch). Raises BundleError if it was not exported."""
        return self._exported("onnx")

    @property
    def sofie_onnx_path(self) -> Path:
        """``sampler_sofie.onnx`` (batch ``sofie_batch``). Raises BundleError if missing."""
        return self._exported("sofie_onnx")

    def _exported(self, role: str) -> Path:
        p = self.file(role)
        if not p.is_file():
            msg = f"the bundle {self.path} has no {p.name}: run `dyroot export {self.path}` to write its ONNX files"
            raise BundleError(msg)
        return p

    # ---- sampling ------------------------------------------------------------------------
    def sample(self, noise: Any, context: Any = None) -> Any:
        """Physical features from noise, with torch (no gradient).

        Args:
            noise: float32 tensor (or array) [N, 5] of i.i.d. standard normals.
            context: [N, C] for a conditional model (one-hot category, or the
                variables in their units), else ``None``.

        Returns:
            A torch tensor [N, 5]: ``FLOW_FEATURES`` in GeV, on the device of the model.
        """
        import torch

        p = next(self.flow.parameters())
        noise = torch.as_tensor(noise, dtype=p.dtype, device=p.device)
        if context is not None:
            context = torch.as_tensor(context, dtype=p.dtype, device=p.device)
        with torch.no_grad():
            return self.flow(noise, context)

    def log_prob(self, x: Any, context: Any = None) -> Any:
        """The model's log-density of physical features [N, 5] (torch, no gradient)."""
        import torch

        p = next(self.flow.parameters())
        x = torch.as_tensor(x, dtype=p.dtype, device=p.device)
        if context is not None:
            context = torch.as_tensor(context, dtype=p.dtype, device=p.device)
        with torch.no_grad():
            return self.flow.log_prob(x, context)

    def to(self, device: str) -> "Bundle":
        """Move the torch model to ``device`` (``"cpu"``, ``"cuda"``); returns self."""
        self.flow.to(device)
        return self


def bundle_hash(path: str | os.PathLike[str]) -> str:
    """The sha256 of a bundle's defining files (``bundle.json`` then ``weights.pt``)."""
    h = hashlib.sha256()
    for role in ("config", "weights"):
        h.update(bytes.fromhex(sha256_file(Path(path) / FILES[role])))
    return h.hexdigest()


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate ``bundle.json`` of a bundle directory.

    Raises:
        BundleError: missing, unreadable, not a bundle, or from an incompatible version.
    """
    path = Path(path)
    if not path.is_dir():
        msg = f"no model bundle at {path}: not a directory (train one with `dyroot train DATA --output {path}`)"
        raise BundleError(msg)
    if (path / "ensemble.json").is_file():
        msg = (f"{path} is an ensemble of bundles, not one bundle: load a member ({path}/member_00) "
               "or use dyroot.bundle.load_ensemble")
        raise BundleError(msg)
    cfg_path = path / FILES["config"]
    if not cfg_path.is_file():
        hint = ("the training did not finish: resume it with `dyroot train ... --resume`"
                if (path / FILES["checkpoint"]).is_file() else "it is not a dyroot model bundle")
        msg = f"{path} has no {FILES['config']}: {hint}"
        raise BundleError(msg)
    try:
        config = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as err:
        msg = f"cannot read {cfg_path}: {err}; the bundle is corrupt, train it again"
        raise BundleError(msg) from err
    if config.get("format") != BUNDLE_FORMAT:
        msg = f"{cfg_path} is not a dyroot bundle (format {config.get('format')!r}, expected {BUNDLE_FORMAT!r})"
        raise BundleError(msg)
    version = config.get("format_version")
    if version != BUNDLE_VERSION:
        newer = isinstance(version, int) and version > BUNDLE_VERSION
        hint = "upgrade dyroot" if newer else f"re-train it with this dyroot (or use the dyroot {config.get('dyroot_version')} that made it)"
        msg = (f"the bundle {path} has format version {version}, this dyroot reads version {BUNDLE_VERSION}: {hint}")
        raise BundleError(msg)
    if tuple(config.get("features", ())) != FLOW_FEATURES:
        msg = (f"the bundle {path} models the features {config.get('features')}, this dyroot expects "
               f"{list(FLOW_FEATURES)}: re-train it with this dyroot")
        raise BundleError(msg)
    missing = [k for k in ("preprocessing", "flow", "selection", "categories", "training_selection", "sofie_batch")
               if k not in config]
    if missing:
        msg = f"{cfg_path} lacks the entries {missing}: the bundle is corrupt, train it again"
        raise BundleError(msg)
    return config


def load_bundle(path: str | os.PathLike[str], *, device: str = "cpu") -> Bundle:
    """Load a model bundle.

    Args:
        path: the bundle directory.
        device: where to put the torch model (``"cpu"`` or ``"cuda"``).

    Returns:
        The :class:`Bundle`, its model in eval mode.

    Raises:
        BundleError: the directory is not a complete bundle of a compatible version,
            or its weights do not match its configuration.

    Example:
        >>> load_bundle("/nonexistent")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        dyroot.exceptions.BundleError: no model bundle at /nonexistent: ...
    """
    import torch

    from .flows import ContextSpec, FlowConfig, build_model
    from .transforms import FeatureTransform

    path = Path(path)
    config = read_config(path)
    weights = path / config.get("files", FILES).get("weights", FILES["weights"])
    if not weights.is_file():
        msg = f"the bundle {path} has no {weights.name}: it is incomplete, train it again"
        raise BundleError(msg)
    try:
        flow_cfg = FlowConfig.from_dict(config["flow"])
        pre = [FeatureTransform.from_dict(d) for d in config["preprocessing"]]
        ctx = None if config.get("context") is None else ContextSpec.from_dict(config["context"])
        model = build_model(flow_cfg, pre, ctx)
    except (KeyError, TypeError, ValueError) as err:
        msg = f"the configuration in {path / FILES['config']} is invalid ({err}); train the bundle again"
        raise BundleError(msg) from err
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    except (RuntimeError, OSError, ValueError, KeyError) as err:
        msg = f"cannot load the weights {weights} into the model of bundle.json ({str(err).splitlines()[0]}); re-train"
        raise BundleError(msg) from err
    model.eval()
    model.to(device)
    return Bundle(path, config, model, bundle_hash(path))


def is_ensemble(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is an ensemble directory (has ``ensemble.json``)."""
    return (Path(path) / "ensemble.json").is_file()


def load_ensemble(path: str | os.PathLike[str], *, device: str = "cpu") -> list[Bundle]:
    """Load every member of an ensemble (``dyroot train --ensemble K``).

    Layout: ``PATH/ensemble.json`` = ``{"format": "dyroot-ensemble", "format_version": 1,
    "mode": "bootstrap" | "disjoint", "members": ["member_00", ...], "seeds": [...]}``,
    each member a complete bundle.

    Raises:
        BundleError: not an ensemble, or a member is missing or invalid.
    """
    path = Path(path)
    meta_path = path / "ensemble.json"
    if not meta_path.is_file():
        msg = f"{path} is not an ensemble (no ensemble.json); for one bundle use load_bundle"
        raise BundleError(msg)
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != ENSEMBLE_FORMAT:
        raise BundleError(f"{meta_path} is not a dyroot ensemble (format {meta.get('format')!r})")
    return [load_bundle(path / m, device=device) for m in meta["members"]]


def prepare_output(path: str | os.PathLike[str], *, force: bool = False, resume: bool = False) -> Path:
    """Create the output directory of a training, refusing to overwrite a bundle.

    Raises:
        OutputExistsError: the directory holds files and neither ``force`` nor
            ``resume`` was given.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path} exists and is not a directory; choose another --output")
    if path.is_dir() and any(path.iterdir()) and not (force or resume):
        msg = f"{path} exists and is not empty: pass --force to overwrite it, or --resume to continue its training"
        raise OutputExistsError(msg)
    if force and not resume and path.is_dir():
        for role in FILES.values():
            (path / role).unlink(missing_ok=True)
        (path / "ensemble.json").unlink(missing_ok=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_summary(config: Mapping[str, Any]) -> str:
    """A one-line description of a bundle configuration."""
    f = config["flow"]
    ctx = config.get("context")
    return (f"{f['architecture']} flow, {f['layers']} layers of {f['depth']}x{f['hidden']}"
            + (f", {f['bins']} bins" if f["architecture"] == "spline" else "")
            + (f", context {ctx['kind']}[{ctx['dim']}]" if ctx else ", unconditional"))
