"""Fault tests (issue 11), smoke profile in a private run cache, bounded in time: kill -9 during training and
during evaluation then rerun (finished work reused, killed work redone, results byte-equal to an uninterrupted
run's); two concurrent runs on one cache build once; corrupted entries (edited config, truncated weights,
missing marker) detected and rebuilt; a diverged run is a cached result; `--out` never loses data."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from paperlib.benchmarks.tofu import pipeline
from paperlib.engine import cache, unlearn
from paperlib.engine.config import get_profile
from paperlib.engine.errors import CacheWarning, PaperlibError
from paperlib.engine.unlearn import RunOptions

FORGET = "forget10"
ROOT = Path(__file__).resolve().parents[1]
VOLATILE = {"status.json", cache.MANIFEST}  # timings; file mtimes


@pytest.fixture(scope="module")
def smoke_cache(tmp_path_factory) -> Path:
    """A private cache with the smoke models and the retain model's evaluation (about 40 s to build)."""
    root = tmp_path_factory.mktemp("faults") / "runs"
    old = os.environ.get("PAPERLIB_CACHE")
    os.environ["PAPERLIB_CACHE"] = str(root)
    profile = get_profile("smoke")
    pipeline.retain_log_path(profile, FORGET)
    pipeline.original_model(profile)
    yield root
    if old is None:
        os.environ.pop("PAPERLIB_CACHE", None)
    else:
        os.environ["PAPERLIB_CACHE"] = old


CHILD = textwrap.dedent('''
    import os, sys, time, json
    from dataclasses import replace
    from pathlib import Path
    from paperlib.benchmarks.tofu import evaluate, pipeline
    from paperlib.engine import unlearn
    from paperlib.engine.config import get_profile
    mode, flag, overrides = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    profile = get_profile("smoke")

    def pause():
        flag.write_text(str(os.getpid()))
        time.sleep(600)

    if mode == "kill-train":
        real = unlearn.train
        def train(*a, **kw):
            kw["loop"] = replace(kw["loop"], on_step=lambda row: pause() if row["step"] == 2 else None)
            return real(*a, **kw)
        unlearn.train = train
    if mode == "kill-eval":
        evaluate.generate = lambda *a, **kw: pause()
    if mode == "count-builds":
        real_build = unlearn._build
        def build(*a):
            with open(flag, "a") as f:
                f.write(f"built {os.getpid()}\\n")
            return real_build(*a)
        unlearn._build = build
    if mode == "kill-eval":
        print(pipeline.evaluation_dir(profile, pipeline.original_model(profile), "forget10", force=False))
    elif mode == "eval":
        print(pipeline.evaluation_dir(profile, pipeline.original_model(profile), "forget10",
                                      force=bool(overrides.get("force"))))
    else:
        force = bool(overrides.pop("force", False))
        print(unlearn.unlearn(profile, "GA", "forget10", overrides=overrides,
                              options=unlearn.RunOptions(eval_every_epoch=False, progress=False, force=force)))
''')


def _child(mode: str, flag: Path, overrides: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.Popen([sys.executable, "-c", CHILD, mode, str(flag), json.dumps(overrides or {})],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)


def _run_child(mode: str, flag: Path, overrides: dict | None = None) -> Path:
    proc = _child(mode, flag, overrides)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"child {mode} failed"
    return Path(out.strip().splitlines()[-1])


def _kill_when_paused(proc: subprocess.Popen, flag: Path, timeout: float = 180) -> None:
    t0 = time.time()
    while not flag.exists():
        assert proc.poll() is None, "child ended before reaching the kill point"
        assert time.time() - t0 < timeout, "child never reached the kill point"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in VOLATILE}


def _complete_entries(root: Path) -> dict[str, int]:
    return {str(p): (p / cache.MARKER).stat().st_mtime_ns for p in root.glob("*/*") if cache.is_complete(p)}


def test_kill_during_training_then_rerun(smoke_cache, tmp_path):
    before = _complete_entries(smoke_cache)
    overrides = {"lr": "2e-3"}
    proc = _child("kill-train", tmp_path / "paused", overrides)
    _kill_when_paused(proc, tmp_path / "paused")
    assert list((smoke_cache / "unlearn").glob(f".*.tmp-{proc.pid}")), "the killed build left its temporary folder"
    assert _complete_entries(smoke_cache) == before  # nothing new looks complete
    run = _run_child("run", tmp_path / "unused", overrides)
    assert _complete_entries(smoke_cache).items() >= before.items()  # models and retain eval reused, untouched
    assert not list((smoke_cache / "unlearn").glob(".*.tmp-*")), "orphan of the killed run removed"
    rerun = _files(run)
    fresh = unlearn.unlearn(get_profile("smoke"), "GA", FORGET, overrides=overrides,
                            options=RunOptions(eval_every_epoch=False, progress=False, force=True))
    assert fresh == run and _files(fresh) == rerun  # byte-equal to an uninterrupted run
    assert "model/model.safetensors" in rerun and "TOFU_EVAL.json" in rerun


def test_kill_during_evaluation_then_rerun(smoke_cache, tmp_path):
    before = _complete_entries(smoke_cache)
    proc = _child("kill-eval", tmp_path / "paused")
    _kill_when_paused(proc, tmp_path / "paused")
    assert _complete_entries(smoke_cache) == before
    out = _run_child("eval", tmp_path / "unused")
    assert _complete_entries(smoke_cache).items() >= before.items()
    first = _files(out)
    profile = get_profile("smoke")
    again = pipeline.evaluation_dir(profile, pipeline.original_model(profile), FORGET, force=True, progress=False)
    assert again == out and _files(again) == first and "TOFU_EVAL.json" in first


def test_concurrent_runs_build_once(smoke_cache, tmp_path):
    log = tmp_path / "builds.txt"
    procs = [_child("count-builds", log, {"lr": "3e-3"}) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0].strip().splitlines()[-1] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1]
    assert len(log.read_text().splitlines()) == 1, log.read_text()


@pytest.mark.parametrize("corruption", ["edited config", "truncated weights", "missing marker"])
def test_corrupted_unlearn_entry_is_rebuilt(smoke_cache, corruption):
    profile = get_profile("smoke")
    run = unlearn.unlearn(profile, "GA", FORGET, options=RunOptions(eval_every_epoch=False, progress=False))
    good = _files(run)
    if corruption == "edited config":
        cfg = json.loads((run / cache.RUN_CONFIG).read_text())
        cfg["train"]["lr"] = 0.5
        (run / cache.RUN_CONFIG).write_text(json.dumps(cfg))
    elif corruption == "truncated weights":
        weights = run / "model" / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:100])
    else:
        (run / cache.MARKER).unlink()
    assert cache.check_entry(run)
    if corruption == "missing marker":
        again = unlearn.unlearn(profile, "GA", FORGET, options=RunOptions(eval_every_epoch=False, progress=False))
    else:
        with pytest.warns(CacheWarning, match=run.name):
            again = unlearn.unlearn(profile, "GA", FORGET, options=RunOptions(eval_every_epoch=False, progress=False))
    assert again == run and cache.check_entry(run) == [] and _files(run) == good


def test_model_identified_by_weights_not_by_a_copied_config(smoke_cache, tmp_path):
    original = Path(pipeline.original_model(get_profile("smoke")))
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / cache.RUN_CONFIG).write_text((original / cache.RUN_CONFIG).read_text())
    (fake / "config.json").write_text((original / "config.json").read_text())
    with pytest.raises(PaperlibError, match="holds no weights"):
        pipeline.model_identity(str(fake))
    (fake / "model.safetensors").write_bytes(b"not the weights")
    assert pipeline.model_identity(str(fake)) != pipeline.model_identity(str(original))


def test_diverged_run_is_a_cached_result(smoke_cache):
    profile = get_profile("smoke")
    run = unlearn.unlearn(profile, "GA", FORGET, overrides={"lr": "1e9"},
                          options=RunOptions(eval_every_epoch=False, progress=False))
    text = (run / "status.json").read_text()
    status = json.loads(text, parse_constant=lambda c: pytest.fail(f"status.json holds {c}: not JSON"))
    assert status["status"] == "diverged" and status["epoch"] >= 1 and "evaluation skipped" in status["message"]
    result = unlearn.read_run(run)
    assert result["summary"] is None and result["status"]["status"] == "diverged"
    assert not (run / "TOFU_EVAL.json").exists() and not (run / "model").exists()
    mtime = (run / cache.MARKER).stat().st_mtime_ns
    assert unlearn.unlearn(profile, "GA", FORGET, overrides={"lr": "1e9"},
                           options=RunOptions(eval_every_epoch=False, progress=False)) == run
    assert (run / cache.MARKER).stat().st_mtime_ns == mtime  # served from the cache, not retrained


def test_out_never_loses_data(smoke_cache, tmp_path):
    profile = get_profile("smoke")
    run = unlearn.unlearn(profile, "GA", FORGET, options=RunOptions(eval_every_epoch=False, progress=False))
    before = _files(run)
    for bad, text in ((run, "inside the run cache"), (smoke_cache, "inside the run cache")):
        with pytest.raises(PaperlibError, match=text):
            unlearn.unlearn(profile, "GA", FORGET, options=RunOptions(eval_every_epoch=False, progress=False, out=bad))
    afile = tmp_path / "a.txt"
    afile.write_text("keep me")
    with pytest.raises(PaperlibError, match="is a file"):
        unlearn.unlearn(profile, "GA", FORGET, options=RunOptions(eval_every_epoch=False, progress=False, out=afile))
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(PaperlibError, match="not a copy of an unlearning run"):
        unlearn.unlearn(profile, "GA", FORGET, options=RunOptions(eval_every_epoch=False, progress=False, out=other))
    assert afile.read_text() == "keep me" and (other / "notes.txt").read_text() == "keep me"
    assert _files(run) == before and cache.check_entry(run) == []
    copy = tmp_path / "copy"
    unlearn.unlearn(profile, "GA", FORGET, options=RunOptions(eval_every_epoch=False, progress=False, out=copy))
    unlearn.unlearn(profile, "GA", FORGET,
                    options=RunOptions(eval_every_epoch=False, progress=False, out=copy))  # same run: replaced
    assert _files(copy) == before
    with pytest.raises(PaperlibError, match="holds a copy of another run"):
        unlearn.unlearn(profile, "GA", FORGET, overrides={"lr": "2e-3"},
                        options=RunOptions(eval_every_epoch=False, progress=False, out=copy))


def _reproduce(cache_root: Path, out: Path) -> subprocess.Popen:
    """`paperlib reproduce --profile smoke --only 02` in its own process group, outputs under `out`."""
    argv = [sys.executable, "-c", "from paperlib.cli import main; main()", "reproduce", "--profile", "smoke",
            "--only", "02", "--out", str(out / "executed"), "--figures", str(out / "figures"),
            "--tables", str(out / "tables")]
    env = {**os.environ, "PAPERLIB_CACHE": str(cache_root)}
    return subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def test_kill_during_a_notebook_then_rerun(smoke_cache, tmp_path):
    """kill -9 of `paperlib reproduce` (runner and kernel) while notebook 02 is between its unlearning runs:
    nothing half-built looks complete, the rerun reuses every finished run and redoes the rest, and its
    tables equal those of an uninterrupted run from the same models, byte for byte."""
    import shutil

    killed_cache, clean_cache = tmp_path / "killed", tmp_path / "clean"
    for target in (killed_cache, clean_cache):  # the same models, no unlearning runs
        shutil.copytree(smoke_cache, target, ignore=shutil.ignore_patterns("unlearn"))
    proc = _reproduce(killed_cache, tmp_path / "a")
    t0 = time.time()
    while not [p for p in _complete_entries(killed_cache) if "/unlearn/" in p]:
        assert proc.poll() is None, "the notebook ended before it could be killed"
        assert time.time() - t0 < 240, "no unlearning run finished in time"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    finished = {p: m for p, m in _complete_entries(killed_cache).items() if "/unlearn/" in p}
    assert finished and not (tmp_path / "a" / "tables" / "02_token_localization.csv").exists()
    assert _reproduce(killed_cache, tmp_path / "a").wait(timeout=600) == 0
    after = _complete_entries(killed_cache)
    assert all(after[p] == m for p, m in finished.items())  # finished runs reused, not rebuilt
    assert not list((killed_cache / "unlearn").glob(".*.tmp-*"))  # the killed build's leftovers are gone
    assert _reproduce(clean_cache, tmp_path / "b").wait(timeout=600) == 0
    for name in ("02_token_localization.csv", "02_token_localization.md"):
        assert (tmp_path / "a" / "tables" / name).read_bytes() == (tmp_path / "b" / "tables" / name).read_bytes()


def test_cache_verify_and_prune_on_the_command_line(smoke_cache, tmp_path, capsys):
    """`paperlib cache verify` passes on a sound cache and names a corrupted entry (exit 1); `prune --dry-run`
    lists an orphan temporary folder and keeps it, `prune` removes it."""
    import shutil

    from paperlib.cli import main

    root = tmp_path / "runs"
    shutil.copytree(smoke_cache, root, ignore=shutil.ignore_patterns("unlearn"))
    main(["cache", "verify", "--root", str(root)])
    assert "0 entries" in capsys.readouterr().out
    model = next(p for p in (root / "model").iterdir() if cache.is_complete(p))
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(SystemExit) as exit_:
        main(["cache", "verify", "--root", str(root)])
    assert exit_.value.code == 1 and str(model) in capsys.readouterr().out
    orphan = root / "model" / ".0123456789abcdef.tmp-999999"  # no such process
    orphan.mkdir()
    main(["cache", "prune", "--dry-run", "--root", str(root)])
    assert str(orphan) in capsys.readouterr().out and orphan.is_dir()
    main(["cache", "prune", "--root", str(root)])
    assert not orphan.exists() and not model.exists()  # the corrupt entry goes too


# ----------------------------------------------------------------------------------------- guards, one test each
def test_log_of_another_split_is_refused_by_its_questions(shared_data):
    """The real open-unlearning forget05 log passes against the real forget05 rows; the same rows with one
    question swapped (same count, same answers) are refused, naming the sample."""
    import datasets

    from paperlib.engine import checks

    rows = datasets.load_from_disk(str(shared_data / "tofu/spans/forget05_with_common_words_gpt")).to_list()
    log = json.loads((shared_data / "open-unlearning-eval/tofu_Llama-2-7b-chat-hf_full/evals_forget05"
                      / "TOFU_EVAL.json").read_text())
    checks.check_log_split(log, rows, "forget05")
    other = [dict(r) for r in rows]
    other[7]["question"] = rows[8]["question"]
    with pytest.raises(PaperlibError, match="is for another forget split: its forget sample 7 asks"):
        checks.check_log_split(log, other, "forget05")
    spaced = [dict(r, question=" " + r["question"].replace(" ", "  ")) for r in rows]
    checks.check_log_split(log, spaced, "forget05")  # whitespace aside


def test_status_json_is_strict_json():
    """Non-finite numbers become null at any depth (json.dumps would write NaN / Infinity: not JSON)."""
    text = unlearn._strict_json({"loss": float("nan"), "rows": [float("inf"), 1.5, {"x": -float("inf")}], "n": 2})
    assert text == '{"loss": null, "rows": [null, 1.5, {"x": null}], "n": 2}'


def test_non_finite_weights_stop_the_run_although_the_loss_was_finite():
    """A step that leaves a weight inf (an overflow no loss value shows: here a layer the loss does not use,
    overwritten in step 2 of epoch 1) stops the run after epoch 1 as diverged for its weights, with both
    finite steps logged; without the check all three epochs would end as "completed"."""
    import torch

    from paperlib.engine.config import TrainConfig
    from paperlib.engine.train import Loop, train

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.Linear(1, 1))
    calls = []

    def loss_fn(m, batch):
        calls.append(1)
        if len(calls) == 2:
            with torch.no_grad():
                m[1].weight.fill_(float("inf"))
        return m[0](batch["x"]).pow(2).mean(), {}

    data = [{"x": torch.tensor([1.0, 2.0])}] * 4
    cfg = TrainConfig(lr=1e-2, epochs=3, batch_size=2, warmup_epochs=0)
    result = train(model, data, loss_fn, cfg, lambda rows: {"x": torch.stack([r["x"] for r in rows])},
                   loop=Loop(progress=False))
    assert (result.diverged_epoch, result.diverged_at) == (1, 2)
    assert result.reason == "non-finite weights after epoch 1"
    assert len(result.steps) == 2 and all(math.isfinite(s["loss"]) for s in result.steps)


def test_model_identity_covers_the_weights(tmp_path):
    """Two folders with the same config, tokenizer and copied run_config.json but other weights are other
    models; the same files in another folder are the same model."""
    folders = {}
    for name, weights in (("a", b"weights A"), ("b", b"weights B"), ("a2", b"weights A")):
        d = tmp_path / name
        d.mkdir()
        for f, text in (("config.json", '{"model_type": "llama"}'), ("tokenizer.json", "{}"),
                        (cache.RUN_CONFIG, '{"lr": 0.001}')):
            (d / f).write_text(text)
        (d / "model.safetensors").write_bytes(weights)
        folders[name] = pipeline.model_identity(str(d))
    assert folders["a"] != folders["b"] and folders["a"] == folders["a2"]
