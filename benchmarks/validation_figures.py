"""The validation figures of issue 6 on the reference sample: G and N_eff, the S_spur split, memorisation.

Method (each stage is one dyroot command, printed before it runs; a stage whose output
exists is skipped, so an interrupted run resumes):

  1. dyroot simulate --preset training -n N_TRAIN --seed 1          -> WORK/train.root
     (the training preset writes reco 105-170 GeV; the flow's window is 108-162 GeV, which
     keeps 77 % of them, and 10 % of those go to its validation split: --n-train 145000
     gives 10^5 training events)
  2. dyroot simulate --preset analysis -n N_HELDOUT --seed 2        -> WORK/heldout.root
     (held-out events, never trained on; larger than the training set so that the
     quantile-MSE method can resolve G > 1)
  3. dyroot train WORK/train.root -o WORK/model --epochs E          -> the nominal flow
  4. dyroot train WORK/train.root -o WORK/ens --ensemble K           -> K bootstrap replicas
  5. dyroot validate WORK/model --reference WORK/heldout.root --training WORK/train.root
        --ensemble WORK/ens --events N_GEN --ensemble-events N_ENS --template-events N_TEMPLATE
        -o WORK/report                                               -> the report
  6. Print, from WORK/report/validation.json: G and N_eff of the m_mumu template in
     110-160 GeV per category (ensemble fit and quantile MSE), the S_spur uncertainty
     split per category, the memorisation verdict; write WORK/validation_figures.json.

Usage:
  python benchmarks/validation_figures.py --workdir /tmp/validate/bench \\
      [--n-train 100000] [--n-heldout 1000000] [--ensemble 5] [--epochs 20] \\
      [--events 1000000] [--ensemble-events 1000000] [--template-events 10000000] [--jobs 2]

The figures of the issue note: trained on 10^5 events (--n-train 145000, the other defaults).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _run(cmd: list[str], done: Path, log: list[dict[str, Any]]) -> None:
    line = " ".join(shlex.quote(c) for c in cmd)
    if done.exists():
        print(f"[skip, {done} exists] {line}", flush=True)
        log.append({"command": line, "skipped": True})
        return
    print(f"[run] {line}", flush=True)
    t = time.perf_counter()
    rc = subprocess.call(cmd)
    wall = time.perf_counter() - t
    log.append({"command": line, "wall_s": wall, "rc": rc})
    print(f"[done in {wall:.0f} s, rc {rc}]", flush=True)
    if rc not in (0, 1):  # dyroot validate returns 1 when a verdict fails; the report is written
        sys.exit(f"stage failed (rc {rc}): {line}")


def _fmt(v: Any, lo: Any = None, hi: Any = None) -> str:
    if isinstance(v, str):
        return v
    if lo is None or isinstance(lo, str) or isinstance(hi, str):
        return f"{v:.3g}" + (f" (68% up to {hi})" if isinstance(hi, str) else "")
    return f"{v:.3g} -{v - lo:.2g} +{hi - v:.2g}"


def summarise(report: Path) -> dict[str, Any]:
    """The issue's figures from a validation report's ``validation.json``."""
    v = json.loads((report / "validation.json").read_text())
    out: dict[str, Any] = {"verdicts": v["verdicts"], "inputs": {k: v["inputs"].get(k) for k in (
        "n_generated", "n_generated_selected", "n_reference_selected", "n_training_selected", "ensemble_members",
        "ensemble_mode", "ensemble_events")}, "amplification": {}, "spurious": {}, "memorisation": None}
    print("\nAmplification of the m_mumu template in 110-160 GeV")
    print(f"{'category':18s} {'N_train':>8s} {'N_eff (ensemble)':>26s} {'G (ensemble)':>22s} {'G 95% lower':>11s} "
          f"{'G(N_gen) quantile':>22s} {'G_eff quantile':>22s} {'G ens. on quantiles':>22s}")
    for name, e in v["amplification"]["per_category"].items():
        ens, q = e.get("ensemble"), e.get("quantile")
        row: dict[str, Any] = {"n_train": e.get("n_train"), "n_heldout": e.get("n_truth"), "n_gen": e.get("n_gen")}
        s_ens = s_g = s_lim = s_q = s_qe = "n/a"
        if ens:
            row["ensemble"] = {k: ens[k] for k in ("n_eff", "n_eff_lo", "n_eff_hi", "n_eff_limit95", "gain", "gain_lo",
                                                   "gain_hi", "gain_limit95", "a", "a_expected", "c", "c_err",
                                                   "n_members", "n_train")}
            s_ens = _fmt(ens["n_eff"], ens["n_eff_lo"], ens["n_eff_hi"])
            s_g = _fmt(ens["gain"], ens["gain_lo"], ens["gain_hi"])
            s_lim = _fmt(ens["gain_limit95"])
        if q:
            row["quantile"] = {"n_gen": q["n_gen"][-1], "gain": q["gain"][-1], "gain_lo": q["gain_lo"][-1],
                               "gain_hi": q["gain_hi"][-1], "g_eff": q["g_eff"], "g_eff_lo": q["g_eff_lo"],
                               "g_eff_hi": q["g_eff_hi"], "g_eff_limit95": q["g_eff_limit95"],
                               "n_quantiles": q["n_quantiles"]}
            s_q = _fmt(q["gain"][-1], q["gain_lo"][-1], q["gain_hi"][-1])
            s_qe = _fmt(q["g_eff"], q["g_eff_lo"], q["g_eff_hi"])
        eq = e.get("ensemble_on_quantiles")
        if eq:
            row["ensemble_on_quantiles"] = {k: eq[k] for k in ("n_eff", "n_eff_lo", "n_eff_hi", "gain", "gain_lo",
                                                                "gain_hi", "gain_limit95")}
        out["amplification"][name] = row
        n_train = e.get("n_train")
        s_eq = _fmt(eq["gain"], eq["gain_lo"], eq["gain_hi"]) if eq else "n/a"
        print(f"{name:18s} {n_train if n_train is None else round(n_train):>8} {s_ens:>26s} {s_g:>22s} {s_lim:>11s} "
              f"{s_q:>22s} {s_qe:>22s} {s_eq:>22s}")
    scan = v["amplification"].get("resolution_scan") or []
    if scan:
        print("\nG of the inclusive m_mumu template against the resolution (number of regions)")
        out["resolution_scan"] = []
        for r in scan:
            q, e = r.get("quantile"), r.get("ensemble")
            item = {"regions": r["regions"], "n_regions": r["n_regions"]}
            if q:
                item["quantile"] = {k: q[k] for k in ("g_eff", "g_eff_lo", "g_eff_hi", "g_eff_limit95")}
            if e:
                item["ensemble"] = {k: e[k] for k in ("gain", "gain_lo", "gain_hi", "gain_limit95", "n_eff")}
            out["resolution_scan"].append(item)
            print(f"  {r['regions']:14s} quantile G_eff {_fmt(q['g_eff'], q['g_eff_lo'], q['g_eff_hi']) if q else 'n/a':>22s}"
                  f"   ensemble G {_fmt(e['gain'], e['gain_lo'], e['gain_hi']) if e else 'n/a':>22s}")
    sp = v.get("spurious") or {}
    if sp.get("per_category"):
        print(f"\nSpurious signal at {sp.get('lumi_fb')} fb^-1 (nominal template: {sp.get('nominal')})")
        print(f"{'category':18s} {'function':12s} {'m_H*':>6s} {'S_spur':>9s} {'Delta_MC':>9s} {'sigma_model':>16s} "
              f"{'S_spur train-size':>20s} {'delta S':>9s}")
        for name, d in sp["per_category"].items():
            sm = d.get("sigma_model")
            s_sm = "n/a" if sm is None else f"{sm:.3g} ± {d.get('sigma_model_err', float('nan')):.2g}"
            s_tr = (f"{d['s_spur_train']:.3g} ± {d['delta_mc_train']:.3g}" if "s_spur_train" in d else "n/a")
            print(f"{name:18s} {d['function']:12s} {d['mh']:6g} {d['s_spur']:9.3g} {d['delta_mc']:9.3g} {s_sm:>16s} "
                  f"{s_tr:>20s} {d['delta_s']:9.3g}")
        out["spurious"] = {"lumi_fb": sp.get("lumi_fb"), "nominal": sp.get("nominal"), "per_category": sp["per_category"]}
    else:
        print(f"\nSpurious signal: {sp.get('skipped', 'not run')}")
    mem = v["memorisation"].get("result")
    if mem:
        out["memorisation"] = {k: mem[k] for k in ("verdict", "ratio", "ratio_err", "close_p_value", "frac_generated_close",
                                                   "frac_heldout_close", "duplicates_generated", "duplicates_heldout",
                                                   "mannwhitney_p_value", "n_generated", "n_heldout", "n_train")}
        print(f"\nMemorisation: {mem['verdict']} (median distance ratio {mem['ratio']:.4f} ± {mem['ratio_err']:.4f}, "
              f"close-pair p = {mem['close_p_value']:.3g}, duplicates {mem['duplicates_generated']})")
    print(f"\nVerdicts: {v['verdicts']}")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", required=True, type=Path)
    p.add_argument("--n-train", type=int, default=100_000)
    p.add_argument("--n-heldout", type=int, default=1_000_000)
    p.add_argument("--ensemble", type=int, default=5)
    p.add_argument("--ensemble-mode", choices=("bootstrap", "disjoint"), default="bootstrap")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--events", type=float, default=1e6)
    p.add_argument("--ensemble-events", type=float, default=1e6)
    p.add_argument("--template-events", type=float, default=1e7)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--summary-only", action="store_true", help="only print the figures of an existing report")
    a = p.parse_args()
    w = a.workdir
    w.mkdir(parents=True, exist_ok=True)
    dy = [sys.executable, "-m", "dyroot"]
    log: list[dict[str, Any]] = []
    if not a.summary_only:
        _run(dy + ["simulate", "--preset", "training", "-n", str(a.n_train), "--seed", "1", "-o", str(w / "train.root"),
                   "--jobs", str(a.jobs), "--no-progress"], w / "train.root", log)
        _run(dy + ["simulate", "--preset", "analysis", "-n", str(a.n_heldout), "--seed", "2",
                   "-o", str(w / "heldout.root"), "--jobs", str(a.jobs), "--no-progress"], w / "heldout.root", log)
        _run(dy + ["train", str(w / "train.root"), "-o", str(w / "model"), "--epochs", str(a.epochs), "--threads",
                   str(a.threads), "--no-progress"], w / "model" / "bundle.json", log)
        if a.ensemble >= 3:
            _run(dy + ["train", str(w / "train.root"), "-o", str(w / "ens"), "--ensemble", str(a.ensemble),
                       "--ensemble-mode", a.ensemble_mode, "--epochs", str(a.epochs), "--threads", str(a.threads),
                       "--no-progress"], w / "ens" / "ensemble.json", log)
        cmd = dy + ["validate", str(w / "model"), "--reference", str(w / "heldout.root"), "--training",
                    str(w / "train.root"), "--events", str(int(a.events)), "--template-events",
                    str(int(a.template_events)), "--threads", str(a.threads), "--workers", str(a.jobs),
                    "-o", str(w / "report")]
        if a.ensemble >= 3:
            cmd += ["--ensemble", str(w / "ens"), "--ensemble-events", str(int(a.ensemble_events))]
        _run(cmd, w / "report" / "validation.json", log)
    figures = summarise(w / "report")
    figures["commands"] = log
    figures["report"] = str(w / "report" / "index.html")
    (w / "validation_figures.json").write_text(json.dumps(figures, indent=1))
    print(f"\nreport: {w / 'report' / 'index.html'}\nfigures: {w / 'validation_figures.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
