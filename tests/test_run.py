"""End-to-end: `dyroot run` on a tiny configuration, every stage, then reuse (tests/data/tiny_run.toml)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("ROOT")
pytest.importorskip("pythia8mc")
pytest.importorskip("sofie")

from dyroot.config import load_config, validate  # noqa: E402
from dyroot.run import STAGES, effective_events, run_pipeline  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.sim, pytest.mark.sofie]

TINY = Path(__file__).parent / "data" / "tiny_run.toml"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    cfg = load_config(TINY)
    cfg["run"]["output"] = str(tmp_path_factory.mktemp("run") / "tiny")
    cfg = validate(cfg)
    lines: list[str] = []
    return cfg, run_pipeline(cfg, log=lines.append), lines


def test_every_stage_runs_and_reports(tiny_run):
    cfg, result, lines = tiny_run
    assert list(result.stages) == list(STAGES)
    out = Path(cfg["run"]["output"])
    for name, rec in result.stages.items():
        assert not rec.reused, name
        for rel in rec.outputs.values():
            assert (out / rel).exists(), (name, rel)
    report = json.loads((out / "report" / "report.json").read_text())
    titles = [s["title"] for s in report["sections"]]
    assert titles == ["Summary", "Inputs", "Training", "Templates", "Spurious-signal test", "Validation",
                      "Provenance and timing"]
    assert result.report.is_file() and "<html" in result.report.read_text()[:500].lower()
    # The validation section carries the amplification table: the inclusive region and each category.
    val = next(s for s in report["sections"] if s["title"] == "Validation")
    amp = next(t for t in val["tables"] if t["header"][0] == "region")
    regions = list(result.stages["validate"].summary["amplification"]["per_category"])
    assert regions[0] == "inclusive" and len(regions) == 7
    assert [r[0] for r in amp["rows"]] == regions and all(r[2] != "-" for r in amp["rows"])  # generated counts known
    # The scan used the errors of the template's effective size where the validation measured one.
    spur, neff = result.stages["spurious"].summary, effective_events(result.stages["validate"].summary)
    for cat, n in neff.items():
        assert spur["error_inflation"][cat] >= 1.0
        if n is not None and spur["error_inflation"][cat] > 1.0:
            assert spur["effective_events"][cat] == pytest.approx(n, rel=1e-6)
    # The scan looked at every category; the chosen function, when there is one, is from the candidates.
    chosen = result.stages["spurious"].summary["chosen"]
    assert len(chosen) == 6 and set(chosen.values()) <= {None, *cfg["spurious"]["functions"]}
    # The templates hold what was asked: n events generated, the selection applied.
    from dyroot.templates import Templates

    t = Templates.read(out / "templates.root")
    assert t.provenance["n_events"] == cfg["generate"]["events"]
    assert t.binning.width == cfg["generate"]["bin_width"]
    assert 0 < t.counts["mll_inclusive"].sum() < cfg["generate"]["events"]


def test_rerun_reuses_and_reruns_only_what_changed(tiny_run):
    cfg, first, _ = tiny_run
    again = run_pipeline(cfg, log=lambda s: None)
    assert all(r.reused for r in again.stages.values())
    changed = validate({**cfg, "spurious": {**cfg["spurious"], "step": 5.0}})
    third = run_pipeline(changed, log=lambda s: None)
    assert [n for n, r in third.stages.items() if not r.reused] == ["validate", "spurious", "report"]


def test_effective_events_from_the_validation_summary():
    inf = float("inf")
    summary = {"amplification": {"per_category": {
        "inclusive": {"quantile": {"n_eff": 5e4}},
        "a": {"quantile": {"n_eff": 1e4, "n_eff_limit95": 5e3}, "ensemble": {"n_eff": 2e4}},  # ensemble first
        "b": {"quantile": {"n_eff": "inf", "n_eff_limit95": 3e3}},  # an infinite central value: the lower limit
        "c": {"quantile": {"n_eff": inf, "n_eff_limit95": inf}},  # nothing usable
        "d": {"n_gen": 10}}}}
    assert effective_events(summary) == {"a": 2e4, "b": 3e3, "c": None, "d": None}
    assert effective_events({"skipped": "validate.enabled = false"}) == {}


def test_cli_checks_config_before_work(tmp_path, capsys):
    from dyroot.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text("[generate]\nevents = -5\nbackend = 'cuda'\n")
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "generate.events = -5" in err and "generate.backend = 'cuda'" in err
    assert not (tmp_path / "dyroot-run").exists()  # nothing was started
    assert main(["init", str(tmp_path / "ex.toml")]) == 0
    assert main(["run", str(tmp_path / "ex.toml"), "--check"]) == 0
    assert main(["init", str(tmp_path / "ex.toml")]) == 2  # never overwritten without --force


def test_demo_configuration(capsys):
    # The README's main job: the whole chain with >= 1e8 events through SOFIE in RDataFrame.
    import tomllib

    from dyroot.cli import main
    from dyroot.config import DEMO_CONFIG

    assert main(["demo", "--print-config"]) == 0
    cfg = validate(tomllib.loads(capsys.readouterr().out))
    assert cfg == validate(DEMO_CONFIG)
    assert cfg["generate"]["events"] >= 10**8 and cfg["generate"]["backend"] == "sofie"
    assert cfg["input"]["files"] == [] and cfg["validate"]["enabled"]
