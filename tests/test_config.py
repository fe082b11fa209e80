"""Tests of dyroot.config: the run configuration's schema, validation and example file."""

from __future__ import annotations

import tomllib

import pytest

from dyroot.config import SCHEMA, defaults, example_toml, load_config, validate
from dyroot.exceptions import ConfigError


def test_example_is_the_defaults():
    # The commented example written by `dyroot init` parses back to exactly the defaults.
    assert validate(tomllib.loads(example_toml())) == defaults()


def test_every_key_documented():
    for sec, (doc, keys) in SCHEMA.items():
        assert doc, sec
        for name, key in keys.items():
            assert key.doc and key.type, f"{sec}.{name}"


def test_every_problem_listed_at_once(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        "[genrate]\nevents = 5\n"                      # misspelt section
        "[generate]\nevents = 0\nbackend = 'gpu'\n"   # two bad values
        "[model]\nepoch = 3\n"                        # misspelt key
        "[spurious]\nmasses = [100.0, 130.0]\n"       # outside the fit range
        "[input]\nfiles = ['nope.root']\n"            # missing file
    )
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    problems = err.value.problems
    assert len(problems) == 6, problems
    text = str(err.value)
    assert "did you mean [generate]" in text
    assert "did you mean 'epochs'" in text
    assert "generate.events = 0: must be >= 1" in text
    assert "'sofie', 'torch', 'onnxruntime'" in text
    assert "inside selection.mll_range" in text
    assert "nope.root" in text and "does not exist" in text


def test_types_and_ranges():
    with pytest.raises(ConfigError, match="must be a whole number"):
        validate({"generate": {"events": 1.5}})
    with pytest.raises(ConfigError, match="must be true or false"):
        validate({"validate": {"enabled": "yes"}})
    with pytest.raises(ConfigError, match=r"must be > 0"):
        validate({"spurious": {"lumi_fb": 0.0}})
    with pytest.raises(ConfigError, match="lo < hi"):
        validate({"selection": {"mll_range": [160.0, 110.0]}})
    with pytest.raises(ConfigError, match="does not divide"):
        validate({"generate": {"bin_width": 0.3}})
    with pytest.raises(ConfigError, match="needs at least one"):
        validate({"categories": {"scheme": "custom"}})
    assert validate({"generate": {"events": 10**9}})["generate"]["events"] == 10**9
    with pytest.raises(ConfigError, match="needs the validation's amplification"):
        validate({"validate": {"enabled": False}})
    assert not validate({"validate": {"enabled": False}, "spurious": {"template_errors": "generated"}})["validate"][
        "enabled"]


def test_paths_relative_to_the_file(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.root").write_bytes(b"")
    cfg_file = tmp_path / "run.toml"
    cfg_file.write_text("[run]\noutput = 'out'\n[input]\nfiles = ['data/a.root', 'data/*.root']\n")
    cfg = load_config(cfg_file)
    assert cfg["run"]["output"] == str(tmp_path / "out")
    assert cfg["input"]["files"][0] == str(tmp_path / "data" / "a.root")


def test_missing_and_invalid_file(tmp_path):
    with pytest.raises(ConfigError, match="dyroot init"):
        load_config(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[run\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)
