"""Fidelity of a trained flow against held-out reference events, and its generation speed.

Method
  1. Train (or reuse) a model on the training file (``dyroot simulate --preset training``),
     recording the wall time.
  2. Generate ``--generate`` events with torch on CPU (noise from torch.randn, phill
     uniform), rebuild the muons (:func:`dyroot.features.muons_from_dimuon`, float64),
     apply the analysis Selection and assign the CategoryScheme of the bundle.
  3. Apply the same analysis cuts to the held-out file and compare, in 110-160 GeV:
     * m_mumu in 1-GeV bins: chi2/ndf inclusive and in each category (shapes: both
       normalised to their own totals, ndf = bins - 1; variance = held-out sum of w^2 +
       generated counts scaled);
     * the category fractions: relative difference, with the held-out statistical error;
     * pT_mumu, y_mumu, cos theta*, phi*: chi2/ndf in 40 bins equiprobable under the held-out.
  4. ``--speed``: events/s on ONE core of torch (1 thread), onnxruntime (1 thread) and the
     SOFIE-compiled model (-O3 -march=native -ffast-math), same batch (the bundle's sofie_batch),
     measured interleaved (A/B/C, best of --speed-reps) so that load from other processes hits all alike.

Variants (``--variant``, to justify the choices; each trains its own model in WORKDIR/<variant>):
  default   the dyroot defaults: spline coupling, probit/power-law pre-transforms
  affine    affine couplings (8 layers of 2x128), same pre-transforms
  raw       spline, every feature only standardised (no pre-transforms)
  logit     spline, logistic in place of Phi in the pre-transforms
  muons     spline on the (pT, eta, phi) of both muons, standardised (the ATLAS study's
            coordinates), charges drawn at random; mll is computed from the muons

Baselines (``--baselines``): the same numbers for the training sample itself against the
held-out events (what a flow that copied its training sample exactly would score: the
training sample's own fluctuations count against it), and for the generated events against
the training sample. A flow close to its training sample (generated~training well below
training~held-out x 2) has learned some of the training sample's fluctuations.

Usage:
  python benchmarks/fidelity.py --train train_1M.root --heldout heldout_1M.root --workdir /tmp/model/fid \\
      [--variant default] [--n-train 1000000] [--epochs 20] [--generate 10000000] [--speed] [--threads 2]
Prints a table and writes WORKDIR/<variant>/fidelity.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from dyroot.features import FLOW_FEATURES, MUON_COLUMNS, Selection, dimuon_from_muons, muons_from_dimuon

WINDOW = (110.0, 160.0)
VARIANTS = ("default", "affine", "raw", "logit", "muons")
MUON_FEATURES = ("mu1_pt", "mu1_eta", "mu1_phi", "mu2_pt", "mu2_eta", "mu2_phi")


# ----------------------------------------------------------------------------------------------
# Statistics


def chi2_shape(h_ref: np.ndarray, v_ref: np.ndarray, g: np.ndarray) -> tuple[float, int]:
    """chi2 and ndf of two histograms' shapes: ref (sum w, sum w^2 per bin) vs generated counts.

    The reference variance is the one expected under the null (Pearson): the generated
    shape scaled to the reference, times the reference's effective weight sum(w^2)/sum(w),
    so empty or sparse reference bins are not over-weighted; plus the generated counts'
    own variance, scaled.
    """
    s = h_ref.sum() / g.sum()
    w_eff = v_ref.sum() / h_ref.sum()
    var = s * g * w_eff + s * s * g
    ok = g > 0
    chi2 = float(np.sum((h_ref[ok] - s * g[ok]) ** 2 / var[ok]))
    return chi2, int(ok.sum()) - 1


def analysis_view(ev: dict[str, np.ndarray], selection: Selection, scheme: Any) -> dict[str, np.ndarray]:
    sel = Selection(selection.lead_pt, selection.sublead_pt, selection.max_abs_eta, selection.opposite_charge, WINDOW)
    m = np.asarray(sel.mask(ev), dtype=bool)
    out = {k: np.asarray(v)[m] for k, v in ev.items() if np.ndim(v) == 1 and len(v) == len(m)}
    out["category"] = np.asarray(scheme.assign(out))
    out["_efficiency"] = np.array([m.mean()])
    return out


def compare(ref: dict[str, np.ndarray], gen: dict[str, np.ndarray], scheme: Any) -> dict[str, Any]:
    wr = ref.get("weight", np.ones(len(ref["mll"])))
    res: dict[str, Any] = {"n_ref": int(len(ref["mll"])), "n_gen": int(len(gen["mll"]))}
    edges = np.arange(WINDOW[0], WINDOW[1] + 0.5, 1.0)

    def mll_chi2(mr: np.ndarray, mg: np.ndarray) -> dict[str, float]:
        h, _ = np.histogram(ref["mll"][mr], edges, weights=wr[mr])
        v, _ = np.histogram(ref["mll"][mr], edges, weights=wr[mr] ** 2)
        g, _ = np.histogram(gen["mll"][mg], edges)
        c, ndf = chi2_shape(h, v, g)
        return {"chi2": c, "ndf": ndf, "chi2_ndf": c / ndf}

    res["mll_inclusive"] = mll_chi2(np.ones(len(wr), bool), np.ones(len(gen["mll"]), bool))
    tot_r, tot_g = wr.sum(), len(gen["mll"])
    res["categories"] = {}
    for i, name in enumerate(scheme.names):
        mr, mg = ref["category"] == i, gen["category"] == i
        fr, fg = wr[mr].sum() / tot_r, mg.sum() / tot_g
        n_eff = wr.sum() ** 2 / (wr ** 2).sum()
        res["categories"][name] = {**mll_chi2(mr, mg), "fraction_ref": float(fr), "fraction_gen": float(fg),
                                   "rel_diff": float(fg / fr - 1.0),
                                   "rel_err_ref": float(math.sqrt(fr * (1 - fr) / n_eff) / fr)}
    res["variables"] = {}
    for var in ("ptll", "yll", "costheta", "phi_cs"):
        qs = np.quantile(ref[var], np.linspace(0, 1, 41))
        qs[0], qs[-1] = -np.inf, np.inf
        h, _ = np.histogram(ref[var], qs, weights=wr)
        v, _ = np.histogram(ref[var], qs, weights=wr ** 2)
        g, _ = np.histogram(gen[var], qs)
        c, ndf = chi2_shape(h, v, g)
        res["variables"][var] = {"chi2": c, "ndf": ndf, "chi2_ndf": c / ndf}
    # the ratio generated/reference in 5-GeV bins (shape, normalised), to show trends
    e5 = np.arange(WINDOW[0], WINDOW[1] + 0.5, 5.0)
    h, _ = np.histogram(ref["mll"], e5, weights=wr)
    v, _ = np.histogram(ref["mll"], e5, weights=wr ** 2)
    g, _ = np.histogram(gen["mll"], e5)
    r = (g / g.sum()) / (h / h.sum())
    res["mll_ratio_5gev"] = {"ratio": r.round(5).tolist(), "ref_rel_err": (np.sqrt(v) / h).round(5).tolist()}
    return res


# ----------------------------------------------------------------------------------------------
# Training


def _read(path: str, n: int | None) -> dict[str, np.ndarray]:
    from dyroot.io import read_events

    return read_events(path, entry_stop=n)


def train_variant(variant: str, events: dict[str, np.ndarray], out: Path, args: argparse.Namespace) -> dict[str, Any]:
    from dyroot.flows import FlowConfig
    from dyroot.train import TrainConfig, train_bundle

    train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                        threads=args.threads, patience=args.patience)
    flow = FlowConfig(layers=args.layers, hidden=args.hidden, bins=args.bins, bound=args.bound,
                      marginal=None if args.no_marginal else 0)
    t0 = time.time()
    if variant == "muons":
        return _train_muons(events, out, flow, train)
    kw: dict[str, Any] = {"preprocessing": {"default": args.preprocessing, "affine": "probit", "raw": "none",
                                            "logit": "logit"}[variant]}
    if variant == "affine":
        flow = FlowConfig(architecture="affine", layers=8, hidden=128)
    if args.mll_range or args.max_eta:
        from dataclasses import replace

        from dyroot.train import DEFAULT_TRAINING_SELECTION

        sel = DEFAULT_TRAINING_SELECTION
        if args.mll_range:
            sel = replace(sel, mll_range=tuple(args.mll_range))
        if args.max_eta:
            sel = replace(sel, max_abs_eta=float(args.max_eta))
        kw["training_selection"] = sel
    train_bundle(events, out, flow=flow, train=train, force=True, progress=not args.no_progress, **kw)
    from dyroot.export import export_bundle

    export_bundle(out)
    return {"train_seconds": time.time() - t0}


def _train_muons(events: dict[str, np.ndarray], out: Path, flow: Any, train: Any) -> dict[str, Any]:
    """The ATLAS-study coordinates: (pT, eta, phi) of both muons, standardised."""
    import torch

    from dyroot.flows import build_model
    from dyroot.train import DEFAULT_TRAINING_SELECTION, fit_flow, split_indices, training_arrays
    from dyroot.transforms import fit_preprocessing

    t0 = time.time()
    _, w, mask = training_arrays(events, DEFAULT_TRAINING_SELECTION)
    x = np.stack([np.asarray(events[c], np.float64)[mask] for c in MUON_FEATURES], 1)
    tr, va = split_indices(len(x), train.val_fraction, train.seed)
    pre = fit_preprocessing({c: x[tr, i] for i, c in enumerate(MUON_FEATURES)}, w[tr],
                            preset={c: "standard" for c in MUON_FEATURES}, names=MUON_FEATURES)
    from dataclasses import replace

    flow = replace(flow, features=6, masks=None)
    if train.threads:
        torch.set_num_threads(train.threads)
    torch.manual_seed(train.seed)
    model = build_model(flow, pre)
    with torch.no_grad():
        y = model.preprocessing(torch.from_numpy(x))[0].float()
    wt = torch.from_numpy(w).float()
    out.mkdir(parents=True, exist_ok=True)
    data = {"y_train": y[tr], "w_train": wt[tr], "c_train": None, "y_val": y[va], "w_val": wt[va], "c_val": None}
    state = fit_flow(model, data, train, out, progress=False)
    model.load_state_dict(state["best_state"])
    torch.save({"state": model.state_dict(), "pre": [p.to_dict() for p in pre], "flow": flow.to_dict()},
               out / "muons_model.pt")
    return {"train_seconds": time.time() - t0}


# ----------------------------------------------------------------------------------------------
# Generation


def generate(variant: str, out: Path, n: int, seed: int, batch: int = 200_000) -> tuple[dict[str, np.ndarray], float]:
    import torch

    g = torch.Generator().manual_seed(seed)
    if variant == "muons":
        from dyroot.flows import FlowConfig, build_model
        from dyroot.transforms import FeatureTransform

        saved = torch.load(out / "muons_model.pt", weights_only=True)
        model = build_model(FlowConfig.from_dict(saved["flow"]), [FeatureTransform.from_dict(d) for d in saved["pre"]])
        model.load_state_dict(saved["state"])
        model.eval()
        dim = 6
    else:
        from dyroot.bundle import load_bundle

        model = load_bundle(out).flow
        dim = 5
    cols: dict[str, list[np.ndarray]] = {}
    t_flow = 0.0
    with torch.inference_mode():
        for s in range(0, n, batch):
            m = min(batch, n - s)
            z = torch.randn(m, dim, generator=g)
            t0 = time.perf_counter()
            x = model(z).double()
            t_flow += time.perf_counter() - t0
            if variant == "muons":
                q1 = torch.where(torch.rand(m, generator=g) < 0.5, -1.0, 1.0).double()
                mu = {"mu1_pt": x[:, 0], "mu1_eta": x[:, 1], "mu1_phi": x[:, 2], "mu1_charge": q1,
                      "mu2_pt": x[:, 3], "mu2_eta": x[:, 4], "mu2_phi": x[:, 5], "mu2_charge": -q1}
                lead = mu["mu1_pt"] >= mu["mu2_pt"]
                ev = {}
                for a, b in (("pt", "pt"), ("eta", "eta"), ("phi", "phi"), ("charge", "charge")):
                    ev[f"mu1_{a}"] = torch.where(lead, mu[f"mu1_{a}"], mu[f"mu2_{b}"])
                    ev[f"mu2_{a}"] = torch.where(lead, mu[f"mu2_{a}"], mu[f"mu1_{b}"])
                ev.update(dimuon_from_muons(*(ev[c] for c in MUON_COLUMNS), xp=torch))
            else:
                phill = (2.0 * torch.rand(m, generator=g, dtype=torch.float64) - 1.0) * math.pi
                d = {c: x[:, i] for i, c in enumerate(FLOW_FEATURES)}
                ev = {**muons_from_dimuon(**d, phill=phill, xp=torch), **d}
            for k, v in ev.items():
                cols.setdefault(k, []).append(v.numpy())
    return {k: np.concatenate(v) for k, v in cols.items()}, n / t_flow


def heldout_nll(out: Path, events: dict[str, np.ndarray]) -> dict[str, float]:
    """Weighted mean of -log p(x) (physical units) of the held-out events in the model's support."""
    import torch

    from dyroot.bundle import load_bundle
    from dyroot.train import training_arrays

    b = load_bundle(out)
    x, w, _ = training_arrays(events, b.training_selection)
    lp = np.concatenate([b.log_prob(torch.from_numpy(x[s : s + 100_000]).float()).double().numpy()
                         for s in range(0, len(x), 100_000)])
    nll = -lp
    mean = float(np.sum(w * nll) / np.sum(w))
    err = float(np.sqrt(np.sum(w * w * (nll - mean) ** 2)) / np.sum(w))
    return {"nll": mean, "nll_err": err, "n": int(len(x))}


# ----------------------------------------------------------------------------------------------
# Speed on one core


def speed(out: Path, reps: int = 5, seconds: float = 2.0) -> dict[str, float]:
    import onnxruntime as ort
    import torch

    from dyroot.bundle import load_bundle
    from dyroot.export import parity_noise
    from dyroot.sofie import compile_model, generate_header

    torch.set_num_threads(1)
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    b = load_bundle(out)
    batch = b.sofie_batch
    z = parity_noise(batch)
    sdir = out / "sofie_build"
    shutil.rmtree(sdir, ignore_errors=True)
    sofie_model = compile_model(generate_header(b.sofie_onnx_path, sdir, name="fidelity_model"))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(b.onnx_path), so, providers=["CPUExecutionProvider"])
    zt = torch.from_numpy(z)
    runners = {
        "torch": lambda: b.flow(zt),
        "onnxruntime": lambda: sess.run(None, {"noise": z}),
        "sofie": lambda: sofie_model.infer_batch(z),
    }
    best = {k: 0.0 for k in runners}
    with torch.inference_mode():
        for _ in range(reps):
            for name, fn in runners.items():
                fn()
                t0, n = time.perf_counter(), 0
                while time.perf_counter() - t0 < seconds:
                    fn()
                    n += batch
                best[name] = max(best[name], n / (time.perf_counter() - t0))
    return {**best, "batch": batch}


# ----------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True)
    ap.add_argument("--heldout", required=True)
    ap.add_argument("--workdir", default="/tmp/dyroot_fidelity")
    ap.add_argument("--variant", choices=VARIANTS, default="default")
    ap.add_argument("--n-train", type=int, default=None, help="training entries to read (default all)")
    ap.add_argument("--n-heldout", type=int, default=None)
    ap.add_argument("--generate", type=float, default=1e7)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--patience", type=int, default=6)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--bins", type=int, default=8)
    ap.add_argument("--bound", type=float, default=5.0, help="spline interval [-B, B] of the standardised space")
    ap.add_argument("--no-marginal", action="store_true", help="plain coupling flow (mll not modelled first)")
    ap.add_argument("--preprocessing", default="probit", help="pre-processing preset of the default variant")
    ap.add_argument("--mll-range", type=float, nargs=2, default=None, help="training window (default the dyroot default)")
    ap.add_argument("--max-eta", type=float, default=None, help="training |eta| cut (default the dyroot default)")
    ap.add_argument("--name", default=None, help="sub-directory name (default: the variant)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--retrain", action="store_true", help="train even if WORKDIR/<variant> holds a model")
    ap.add_argument("--speed", action="store_true", help="also measure torch/onnxruntime/SOFIE on one core")
    ap.add_argument("--speed-reps", type=int, default=5)
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--baselines", action="store_true",
                    help="also score the training sample itself against the held-out (what an exact copy of the "
                         "training sample scores) and the generated events against the training sample")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.workdir) / (args.name or args.variant)
    result: dict[str, Any] = {"variant": args.variant, "args": vars(args)}
    have = (out / "muons_model.pt").is_file() if args.variant == "muons" else (out / "bundle.json").is_file()
    if args.retrain or not have:
        ev = _read(args.train, args.n_train)
        result["n_train_read"] = int(len(ev["mll"]))
        result.update(train_variant(args.variant, ev, out, args))
        del ev
        (out / "train_record.json").write_text(json.dumps(result, default=str))
    else:
        prev = json.loads((out / "train_record.json").read_text())
        result["train_seconds"] = prev.get("train_seconds")
        result["n_train_read"] = prev.get("n_train_read")
    from dyroot.features import DEFAULT_CATEGORIES

    scheme, selection = DEFAULT_CATEGORIES, Selection()
    held = _read(args.heldout, args.n_heldout)
    if args.variant != "muons":
        result["heldout_nll"] = heldout_nll(out, held)
    ref = analysis_view(held, selection, scheme)
    del held
    t0 = time.time()
    gen_all, flow_rate = generate(args.variant, out, int(args.generate), seed=args.seed + 1000)
    result["generate_seconds_total"] = time.time() - t0
    result["torch_flow_events_per_s"] = flow_rate
    result["torch_threads"] = args.threads
    gen = analysis_view(gen_all, selection, scheme)
    result["generated_efficiency_110_160"] = float(gen.pop("_efficiency")[0])
    ref.pop("_efficiency")
    del gen_all
    result["fidelity"] = compare(ref, gen, scheme)
    if args.baselines:
        train_view = analysis_view(_read(args.train, args.n_train), selection, scheme)
        train_view.pop("_efficiency")
        result["baselines"] = {"train_vs_heldout": compare(ref, train_view, scheme),
                               "generated_vs_train": compare(train_view, gen, scheme)}
    if args.speed and args.variant != "muons":
        result["speed_one_core"] = speed(out, reps=args.speed_reps)
    (out / "fidelity.json").write_text(json.dumps(result, indent=1, default=str))
    f = result["fidelity"]
    print(f"variant {args.variant}: trained in {result['train_seconds']:.0f} s on {result['n_train_read']} events; "
          f"generated {int(args.generate)} ({result['generated_efficiency_110_160']:.3f} pass the analysis cuts in 110-160)")
    print(f"  mll 110-160 (1 GeV) chi2/ndf inclusive: {f['mll_inclusive']['chi2_ndf']:.3f}  "
          f"(ref {f['n_ref']}, gen {f['n_gen']})")
    for name, c in f["categories"].items():
        print(f"  {name:18s} chi2/ndf {c['chi2_ndf']:.3f}  fraction ref {c['fraction_ref']:.4f} gen "
              f"{c['fraction_gen']:.4f}  rel diff {100 * c['rel_diff']:+.2f}% (ref stat {100 * c['rel_err_ref']:.2f}%)")
    for var, c in f["variables"].items():
        print(f"  {var:10s} chi2/ndf {c['chi2_ndf']:.3f}")
    print(f"  mll ratio gen/ref in 5-GeV bins: {f['mll_ratio_5gev']['ratio']}")
    for name, b in result.get("baselines", {}).items():
        print(f"  baseline {name}: chi2/ndf mll {b['mll_inclusive']['chi2_ndf']:.3f}, per category "
              + " ".join(f"{c['chi2_ndf']:.2f}" for c in b["categories"].values()) + "; "
              + ", ".join(f"{v} {c['chi2_ndf']:.3f}" for v, c in b["variables"].items()))
    print(f"  torch flow on CPU ({args.threads} threads): {flow_rate:.3g} events/s")
    if "heldout_nll" in result:
        h = result["heldout_nll"]
        print(f"  held-out NLL (physical units, {h['n']} events): {h['nll']:.5f} +- {h['nll_err']:.5f}")
    if "speed_one_core" in result:
        print(f"  one core, batch {result['speed_one_core']['batch']}: " + ", ".join(
            f"{k} {v:.3g} ev/s" for k, v in result["speed_one_core"].items() if k != "batch"))


if __name__ == "__main__":
    main()
