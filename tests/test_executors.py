"""paperlib.engine.executors: notebooks plan runs, an executor runs them (here: submitit's local executor, two runs as
two separate jobs), the notebook-side code collects both from the run cache without computing anything."""

from __future__ import annotations

import json
import os
import socket

import pytest

from paperlib.benchmarks.tofu import standins
from paperlib.engine import executors, unlearn
from paperlib.engine.errors import PaperlibError
from paperlib.methods import tuning
from paperlib.studies import palu as experiments
from paperlib.studies import protocol


def test_executor_specs_config_files_and_environment(tmp_path, monkeypatch):
    assert executors.load("inprocess") == executors.InProcess()
    assert executors.load("gpus:0,1").devices == ("0", "1")
    local = executors.load("local", partition="gpu", time_min=30)
    assert (local.kind, local.cluster, local.partition, local.time_min) == ("slurm", "local", "gpu", 30)
    toml = tmp_path / "slurm.toml"
    toml.write_text('kind = "slurm"\npartition = "a100"\ntime_min = 600\ngpus_per_run = 2\nfolder = "logs"\n')
    slurm = executors.load(toml, partition="h100", mem_gb=None)  # the command line wins, None is "not given"
    assert (slurm.partition, slurm.time_min, slurm.gpus_per_run, slurm.mem_gb) == ("h100", 600, 2, 64)
    assert slurm.folder == str((tmp_path.cwd() / "logs").resolve())  # absolute: every kernel and job agrees
    assert slurm.parameters() == {"name": "paperlib", "timeout_min": 600, "gpus_per_node": 2, "cpus_per_task": 8,
                                  "mem_gb": 64, "slurm_partition": "h100"}
    (tmp_path / "pool.json").write_text(json.dumps({"kind": "gpus", "devices": [2, 3]}))
    assert executors.load(tmp_path / "pool.json").devices == ("2", "3")
    monkeypatch.delenv(executors.ENV, raising=False)
    assert executors.current() == executors.InProcess()
    for executor in (slurm, executors.GpuPool(("0", "1")), executors.InProcess()):
        monkeypatch.setenv(executors.ENV, executors.environment(executor)[executors.ENV])
        assert executors.current() == executor


@pytest.mark.parametrize("spec, overrides, message", [
    ("pbs", {}, "executor 'pbs'; allowed: inprocess, gpus:0,1, slurm, local"),
    ("slurm", {"queue": "x"}, r"unknown setting\(s\) \['queue'\]"),
    ("slurm", {"time_min": 0}, "time_min=0; allowed: an integer >= 1"),
    ("slurm", {"cluster": "pbs"}, "cluster 'pbs'; allowed: slurm, local"),
    ("gpus:", {}, "allowed: one device id per worker"),
    ("missing.toml", {}, "missing.toml does not exist"),
])
def test_bad_executor_settings_are_named(spec, overrides, message):
    with pytest.raises(PaperlibError, match=message):
        executors.load(spec, **overrides)


def test_request_is_the_unlearn_call(tmp_path, monkeypatch):
    """A request carries exactly `unlearn.unlearn`'s arguments and the cache it lands in."""
    seen = {}
    monkeypatch.setattr(unlearn, "unlearn", lambda *a, **k: seen.update(args=a, kwargs=k) or tmp_path)
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "runs"))
    request = executors.Request("P", "PALU", "forget05", {"lr": 1e-5, "k": 3})  # type: ignore[arg-type]
    assert request.cache == str((tmp_path / "runs").resolve()) and request.label() == "PALU forget05 lr=1e-05 k=3"
    assert executors.run_all([request, request], executors.InProcess(), echo=lambda _: None) == [tmp_path] * 2
    options = unlearn.RunOptions(eval_every_epoch=True, save_model=False, progress=False)
    assert seen["args"] == ("P", "PALU", "forget05", {"lr": 1e-5, "k": 3}, None, None, options) and not seen["kwargs"]


def test_request_carries_model_mask_corpus_and_evaluator(tmp_path, monkeypatch):
    """A raw-text request is `unlearn.unlearn_text`'s call (corpus, evaluator, its arguments, the starting model);
    the job learns which module registers the evaluator; masks and corpora compare by content."""
    import torch

    from paperlib.engine import corpus

    text = corpus.TextCorpus("toy", ("a b c",), ("d e f",), 8)
    corpus.register_evaluator("request-eval")(lambda *a: {})
    seen = {}
    monkeypatch.setattr(unlearn, "unlearn_text", lambda *a, **k: seen.update(args=a, kwargs=k) or tmp_path)
    mask = {"w": torch.tensor([True, False])}
    try:
        request = executors.Request("P", "GA", overrides={"lr": 1e-5}, model="m", mask=mask, corpus=text,  # type: ignore[arg-type]
                                    evaluator="request-eval", eval_args={"n": 1})
        assert request.plugin == __name__ and request.label() == "GA toy lr=1e-05"
        assert request.run() == tmp_path
        *args, used_mask, options = seen["args"]
        assert args == ["P", "GA", text, corpus.EvalCall("request-eval", {"n": 1}), "m", {"lr": 1e-5}]
        assert used_mask is mask and options.save_model is False and options.progress is False
        same = executors.Request("P", "GA", overrides={"lr": 1e-5}, model="m", mask={"w": torch.tensor([True, False])},  # type: ignore[arg-type]
                                 corpus=corpus.TextCorpus("toy", ["a b c"], ["d e f"], 8), evaluator="request-eval",
                                 eval_args={"n": 1})
        other = executors.Request("P", "GA", overrides={"lr": 1e-5}, model="m", mask={"w": torch.tensor([True, True])},  # type: ignore[arg-type]
                                  corpus=text, evaluator="request-eval", eval_args={"n": 1})
        assert same == request and hash(same) == hash(request) and other != request
        with pytest.raises(PaperlibError, match="a TOFU forget split or a raw-text corpus"):
            executors.Request("P", "GA", "forget05", corpus=text, evaluator="request-eval", model="m")  # type: ignore[arg-type]
        with pytest.raises(PaperlibError, match="no starting model"):
            executors.Request("P", "GA", corpus=text, evaluator="request-eval")  # type: ignore[arg-type]
    finally:
        corpus.unregister_evaluator("request-eval")


def test_a_kernel_under_another_executor_never_trains(tmp_path, monkeypatch):
    """Under an executor other than InProcess the kernel may read unlearning runs but not build one: an unplanned
    run is an error naming it (a job lifts the mark); other kinds, and InProcess, build as before."""
    from paperlib.engine import cache

    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path))
    env = executors.environment(executors.load("local"))
    assert env[cache.READ_ONLY_ENV] == unlearn.KIND and cache.READ_ONLY_ENV not in executors.environment(
        executors.InProcess())
    monkeypatch.setenv(cache.READ_ONLY_ENV, env[cache.READ_ONLY_ENV])
    built = []
    with pytest.raises(PaperlibError, match="unlearn run .* is not in the cache, and this process may only read"):
        cache.cached_run(unlearn.KIND, {"x": 1}, built.append)
    assert not built and not list((tmp_path / unlearn.KIND).glob(".*tmp*"))
    assert cache.cached_run("eval", {"x": 1}, lambda out: built.append(out)).is_dir() and len(built) == 1
    monkeypatch.delenv(cache.READ_ONLY_ENV)
    assert cache.is_complete(cache.cached_run(unlearn.KIND, {"x": 1}, built.append))
    monkeypatch.setenv(cache.READ_ONLY_ENV, env[cache.READ_ONLY_ENV])
    assert cache.cached_run(unlearn.KIND, {"x": 1}, built.append).is_dir() and len(built) == 2  # read: allowed


def test_submitit_jobs_then_the_notebook_collects_from_the_cache(tmp_path, monkeypatch, shared_data):
    """Two stand-in paper runs (PALU, NPO) as two submitit jobs (local executor); then `experiments.tune`'s sweep, as
    notebook 01 calls it, reads both from the cache: this process is unable to train (`_build` raises)."""
    monkeypatch.setattr(socket.socket, "connect", lambda *a, **k: (_ for _ in ()).throw(OSError("no network")))
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(var, "1")  # inherited by the jobs
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "runs"))
    standins.write_standins(tmp_path / "hub", shared_data, families=("llama2",))
    profile = standins.standin_profile(tmp_path / "hub", shared_data, tuning={"epochs": 2})  # paper grid, 2 epochs
    small = {"optimizer": "adamw", "batch_size": 8}  # one step per epoch; AdamW: no GPU here
    runs = [experiments.Run("PALU", "PALU", {**small, "k": 20}), experiments.Run("NPO", "NPO", small)]
    local = executors.Slurm(folder=str(tmp_path / "jobs"), cluster="local", gpus_per_run=0, time_min=10)
    monkeypatch.setenv(executors.ENV, executors.environment(local)[executors.ENV])

    def no_training_here(*args, **kwargs):
        raise AssertionError("the notebook process computed a run instead of reading it from the cache")

    monkeypatch.setattr(unlearn, "_build", no_training_here)
    pids = {os.getpid()}
    table = experiments.tune(profile, runs, profile.benchmark.forget, seeds=False).sweep
    jobs = {p.name.split("_")[0] for p in (tmp_path / "jobs").glob("*_result.pkl")}
    assert len(jobs) == 2 and not jobs & {str(p) for p in pids}  # two jobs, neither of them this process
    assert list(table["label"]) == ["PALU", "NPO"] and set(table["status"]) == {"completed"}
    assert table["FQ"].notna().all() and table["epoch"].tolist() == [2, 2]  # evaluated after the last epoch
    # the same runs through a pool of two spawned workers (CUDA_VISIBLE_DEVICES 0, 1): found in the cache there too
    lr = tuning.grid(profile).lrs[0]
    requests = [experiments._request(profile, profile.benchmark.forget, r, protocol.Point(lr, every_epoch=False))
                for r in runs]
    folders = executors.run_all(requests, executors.InProcess(), echo=lambda _: None)
    assert all(f.parent == tmp_path / "runs" / "unlearn" for f in folders) and folders[0] != folders[1]
    lines: list[str] = []
    assert executors.GpuPool(("0", "1")).run(requests, echo=lines.append) == folders
    assert len(lines) == 2 and lines[0].startswith("run 1/2 done: PALU forget05")
