"""Tests of dyroot.distributed: a 2-worker LocalCluster on loopback, a worker killed
mid-run, finished shards skipped, and the merged templates equal to one process."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from _fixtures_templates import KillWorkerOnce, MustNotRun
from dyroot.distributed import Shard, generate_distributed, plan_shards, shard_path
from dyroot.exceptions import ConfigError, OutputExistsError
from dyroot.generate import generate_templates
from dyroot.templates import Templates

pytestmark = pytest.mark.slow
torch = pytest.importorskip("torch")
distributed = pytest.importorskip("distributed")

N, B, SEED = 48_000, 2000, 21


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=logging.ERROR)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def single(templates_bundle):
    return generate_templates(templates_bundle, N, SEED, backend="torch", threads=1, batch_size=B, progress=False,
                              extra_variables=["ptll"])


def test_plan_shards():
    s = plan_shards(10_000, first_event=500, shards=4, batch_size=1000)
    assert [(x.first_event, x.n_events) for x in s] == [(500, 2500), (3000, 3000), (6000, 3000), (9000, 1500)]
    assert all(x.first_event % 1000 == 0 for x in s[1:])  # inner boundaries on the batch grid
    assert sum(x.n_events for x in s) == 10_000 and [x.count for x in s] == [4] * 4
    assert len(plan_shards(10, shards=8, batch_size=1000)) == 1  # fewer shards than asked for tiny jobs
    with pytest.raises(ConfigError):
        plan_shards(0, shards=2, batch_size=10)
    with pytest.raises(ConfigError, match="exactly one"):
        plan_shards(10, shards=2, shard_size=5, batch_size=1)


def test_killed_worker_then_skip_then_equal(templates_bundle, client, single, tmp_path):
    out = tmp_path / "templates.root"
    marker = tmp_path / "killed.marker"
    merged = generate_distributed(templates_bundle, N, SEED, out, backend="torch", batch_size=B, shards=6,
                                  client=client, progress=False, extra_variables=["ptll"],
                                  hook=KillWorkerOnce(marker, index=2))
    assert marker.exists()  # the worker running shard 2 was killed (SIGKILL) and the shard rescheduled
    shards = sorted((tmp_path / "templates.shards").iterdir())
    assert len(shards) == 6 and all(p.name.startswith("shard-") for p in shards)
    for name in single.names:
        np.testing.assert_array_equal(merged.counts[name], single.counts[name])  # bin for bin, exact
        np.testing.assert_array_equal(merged.sumw2[name], single.sumw2[name])
    p = merged.provenance
    assert (p["first_event"], p["n_events"], p["seed"]) == (0, N, SEED)
    assert p["n_selected"] == single.provenance["n_selected"]
    assert p["distributed"]["shards"] == 6 and p["distributed"]["skipped"] == 0
    # re-running skips every finished shard (a hook that fails would show any shard that ran)
    again = generate_distributed(templates_bundle, N, SEED, out, backend="torch", batch_size=B, shards=6,
                                 client=client, progress=False, extra_variables=["ptll"], hook=MustNotRun())
    assert again.provenance["distributed"]["skipped"] == 6
    np.testing.assert_array_equal(again.counts["mll_inclusive"], single.counts["mll_inclusive"])
    # a lost shard is redone, the others are kept
    shards[4].unlink()
    redo = generate_distributed(templates_bundle, N, SEED, out, backend="torch", batch_size=B, shards=6,
                                client=client, progress=False, extra_variables=["ptll"])
    assert redo.provenance["distributed"]["skipped"] == 5
    np.testing.assert_array_equal(redo.counts["ptll_noncentral_midpt"], single.counts["ptll_noncentral_midpt"])


def test_foreign_shard_file_is_refused(templates_bundle, client, tmp_path):
    out = tmp_path / "t.root"
    generate_distributed(templates_bundle, 8000, 1, out, backend="onnxruntime", batch_size=B, shards=2,
                         client=client, progress=False)
    with pytest.raises(OutputExistsError, match="different job"):
        generate_distributed(templates_bundle, 8000, 2, out, backend="onnxruntime", batch_size=B, shards=2,
                             client=client, progress=False)
    other = generate_distributed(templates_bundle, 8000, 2, out, backend="onnxruntime", batch_size=B, shards=2,
                                 client=client, progress=False, force=True)
    assert other.provenance["seed"] == 2 and other.provenance["distributed"]["skipped"] == 0
    assert Templates.read(shard_path(out, Shard(0, 2, 0, 4000))).provenance["seed"] == 2
