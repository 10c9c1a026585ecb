"""Bad inputs (issue 11): one clear error each, before any compute. The cases are the rows of docs/errors.md;
CLI cases must end with exactly one stderr line `paperlib <command>: error: ...` and exit code 2."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from paperlib import cli
from paperlib.benchmarks.tofu import metrics
from paperlib.engine import encoding, unlearn
from paperlib.engine.corpus import TextCorpus
from paperlib.engine.errors import PaperlibError
from paperlib.methods import masks as _masks

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "errors.md"


def doc_rows() -> dict[str, str]:
    rows = {}
    for line in DOC.read_text().splitlines():
        m = re.match(r"^\| `([\w-]+)` \|.*\| `(.+)` \|$", line)
        if m:
            rows[m[1]] = m[2]
    return rows


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A private run cache (only the smoke benchmark gets generated there) and a few bad inputs."""
    root = tmp_path_factory.mktemp("cli")
    old = os.environ.get("PAPERLIB_CACHE")
    os.environ["PAPERLIB_CACHE"] = str(root / "runs")
    (root / "runs").mkdir()
    yield root
    if old is None:
        os.environ.pop("PAPERLIB_CACHE", None)
    else:
        os.environ["PAPERLIB_CACHE"] = old


def _cli(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"paperlib {args[0]}: error: "), err
    return err


def _model_dir(root: Path, config=True, weights=True, tokenizer=True) -> Path:
    d = root / f"model-{config}-{weights}-{tokenizer}"
    d.mkdir(exist_ok=True)
    if config:
        (d / "config.json").write_text(json.dumps({"model_type": "llama"}))
    if weights:
        (d / "model.safetensors").write_bytes(b"0" * 64)
    if tokenizer:
        (d / "tokenizer.json").write_text("{}")
    return d


def _log(n: int) -> dict:
    rows = {str(i): {"prob": 0.5, "avg_loss": 0.7} for i in range(n)}
    pert = {str(i): {"prob": [0.1, 0.2], "avg_loss": [2.0, 1.6]} for i in range(n)}
    return {"forget_Q_A_PARA_Prob": {"value_by_index": rows}, "forget_Q_A_PERT_Prob": {"value_by_index": pert}}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _un(env: Path, capsys, *extra: str, out: Path | None = None) -> str:
    out = out or env / "fresh-out"
    return _cli(["unlearn", "--profile", "smoke", "--method", "GA", "--out", str(out), *extra], capsys)


def _ev(env: Path, capsys, *extra: str, model: Path | None = None) -> str:
    model = model or _model_dir(env)
    return _cli(["evaluate", "--profile", "smoke", "--model", str(model), "--out", str(env / "eval-out"), *extra],
                capsys)


def _raises(fn) -> str:
    with pytest.raises(PaperlibError) as info:
        fn()
    return str(info.value)


CASES = {
    "out-file": lambda e, c: _un(e, c, out=_write(e / "a-file.txt", "keep")),
    "out-in-cache": lambda e, c: _un(e, c, out=e / "runs" / "unlearn" / "x"),
    "out-foreign": lambda e, c: _un(e, c, out=_foreign(e)),
    "set-syntax": lambda e, c: _un(e, c, "--set", "lr"),
    "lr-nan": lambda e, c: _un(e, c, "--set", "lr=nan"),
    "lr-inf": lambda e, c: _un(e, c, "--set", "lr=inf"),
    "weight-decay-negative": lambda e, c: _un(e, c, "--set", "weight_decay=-0.1"),
    "warmup-negative": lambda e, c: _un(e, c, "--set", "warmup_epochs=-1"),
    "grad-norm-nan": lambda e, c: _un(e, c, "--set", "max_grad_norm=nan"),
    "optimizer-unknown": lambda e, c: _un(e, c, "--set", "optimizer=sgd"),
    "precision-unknown": lambda e, c: _un(e, c, "--set", "mixed_precision=fp8"),
    "idk-missing": lambda e, c: _cli(["unlearn", "--profile", "smoke", "--method", "DPO", "--out",
                                      str(e / "fresh-out"), "--set", f"idk={e / 'no-such-idk.jsonl'}"], c),
    "idk-empty": lambda e, c: _cli(["unlearn", "--profile", "smoke", "--method", "DPO", "--out",
                                    str(e / "fresh-out"), "--set", f"idk={_write(e / 'idk.jsonl', '')}"], c),
    "unlearn-model-missing": lambda e, c: _un(e, c, "--model", str(e / "no-such-model")),
    "unlearn-no-tokenizer": lambda e, c: _un(e, c, "--model", str(_model_dir(e, tokenizer=False))),
    "benchmark-profile": lambda e, c: _cli(["evaluate", "--benchmark", "tofu", "--profile", "smoke", "--model",
                                            "x/y", "--out", str(e / "o")], c),
    "eval-out-file": lambda e, c: _cli(["evaluate", "--profile", "smoke", "--model", str(_model_dir(e)), "--out",
                                        str(_write(e / "out-file.txt", "keep"))], c),
    "log-missing": lambda e, c: _ev(e, c, "--retain-log", str(e / "no-such-log.json")),
    "log-malformed": lambda e, c: _ev(e, c, "--retain-log", str(_write(e / "bad.json", '{"a": '))),
    "log-is-summary": lambda e, c: _ev(e, c, "--retain-log",
                                       str(_write(e / "TOFU_SUMMARY.json", json.dumps({"model_utility": 0.5})))),
    "log-missing-keys": lambda e, c: _ev(e, c, "--retain-log", str(_write(
        e / "partial.json", json.dumps({"exact_memorization": {"value_by_index": {"0": {"score": 1.0}}}})))),
    "log-other-split": lambda e, c: _ev(e, c, "--retain-log", str(_write(e / "other.json", json.dumps(_log(3))))),
    "eval-model-missing": lambda e, c: _ev(e, c, model=e / "no-such-model"),
    "eval-no-config": lambda e, c: _ev(e, c, model=_model_dir(e, config=False)),
    "eval-no-weights": lambda e, c: _ev(e, c, model=_model_dir(e, weights=False)),
    "eval-no-tokenizer": lambda e, c: _ev(e, c, model=_model_dir(e, tokenizer=False)),
    "forget-empty": lambda e, c: _cli(["evaluate", "--benchmark", "tofu", "--source", str(_empty_tofu(e)), "--model",
                                       str(_model_dir(e)), "--out", str(e / "o")], c),
    "figures-file": lambda e, c: _cli(["reproduce", "--profile", "smoke", "--figures",
                                       str(_write(e / "fig.txt", "")), "--notebooks", str(_notebooks(e))], c),
    "executor-unknown": lambda e, c: _cli(["reproduce", "--executor", "pbs", "--notebooks", str(_notebooks(e))], c),
    "executor-setting": lambda e, c: _cli(["reproduce", "--executor", str(_write(e / "x.json", '{"kind": "slurm", '
                                                                                  '"queue": 1}')),
                                           "--notebooks", str(_notebooks(e))], c),
    "executor-time": lambda e, c: _cli(["reproduce", "--executor", "slurm", "--time", "0", "--notebooks",
                                        str(_notebooks(e))], c),
    "executor-partition-alone": lambda e, c: _cli(["reproduce", "--partition", "gpu", "--notebooks",
                                                   str(_notebooks(e))], c),
    "truth-ratio-empty": lambda e, c: _raises(lambda: metrics.truth_ratio([], np.zeros((0, 2)))),
    "truth-ratio-nan": lambda e, c: _raises(lambda: metrics.truth_ratio([0.1, np.nan], [[1.0, 1.0], [1.0, 1.0]])),
    "span-reversed": lambda e, c: _raises(lambda: encoding.encode(None, "tiny", "q", "Alice.", [(5, 2)], row=3)),
    "span-outside": lambda e, c: _raises(lambda: encoding.encode(None, "tiny", "q", "Alice.", [(0, 99)], row=3)),
    "read-run-not-a-run": lambda e, c: _raises(lambda: unlearn.read_run(e)),
    "mask-ratio": lambda e, c: _cli(["mask", "--profile", "smoke", "--attribution", "wagle", "--ratio", "0", "--out",
                                     str(e / "m")], c),
    "mask-attribution": lambda e, c: _cli(["mask", "--profile", "smoke", "--attribution", "magic", "--out",
                                           str(e / "m")], c),
    "mask-architecture": lambda e, c: _raises(lambda: _masks.load_mask(_mask_dir(e), _llama(16))),
    "mask-missing-tensors": lambda e, c: _raises(lambda: _masks.load_mask(_mask_dir(e, drop=True))),
    "rwku-target-unknown": lambda e, c: _cli(["evaluate", "--benchmark", "rwku", "--source", str(_rwku(e)),
                                              "--target", "Elvis", "--model", str(_model_dir(e)), "--out",
                                              str(e / "o")], c),
    "rwku-level-missing": lambda e, c: _raises(lambda: _rwku_load(_rwku(e, drop="forget_level2"), "Ann Lee")),
    "muse-corpus": lambda e, c: _cli(["evaluate", "--benchmark", "muse", "--source", "wiki", "--model",
                                      str(_model_dir(e)), "--out", str(e / "o")], c),
    "muse-config-missing": lambda e, c: _cli(["evaluate", "--benchmark", "muse", "--source", str(_muse(e)),
                                              "--model", str(_model_dir(e)), "--out", str(e / "o")], c),
    "text-block": lambda e, c: _raises(lambda: TextCorpus("c", ("a b",), (), 1)),
    "text-no-forget": lambda e, c: _raises(lambda: TextCorpus("c", (), ("r",), 8)),
    "text-evaluator-unknown": lambda e, c: _text("GA", evaluator="nope"),
    "text-method": lambda e, c: _text("DPO"),
    "text-palu-no-spans": lambda e, c: _text("PALU"),
    "spans-out": lambda e, c: _cli(["spans", "--profile", "smoke", "--out", str(_foreign(e))], c),
    "spans-gap": lambda e, c: _cli(["spans", "--profile", "smoke", "--gap", "-1", "--out", str(e / "sp")], c),
    "unlearn-spans-missing": lambda e, c: _un(e, c, "--set", f"spans={e / 'no-such-spans'}"),
    "tofu-hub-offline": lambda e, c: _hub_tofu(e, c, {"HF_HUB_OFFLINE": "1"}),
}


def _hub_tofu(env: Path, capsys, environ: dict[str, str], model: Path | None = None) -> str:
    """`paperlib evaluate --benchmark tofu` without --source (the hub's locuslab/TOFU), with an empty local
    datasets cache (a copy there would be served offline)."""
    from unittest import mock

    import datasets

    empty = env / "hf-datasets-cache"
    empty.mkdir(exist_ok=True)
    with mock.patch.dict(os.environ, environ), mock.patch.object(datasets.config, "HF_DATASETS_CACHE", str(empty)):
        return _cli(["evaluate", "--benchmark", "tofu", "--forget", "forget05", "--model",
                     str(model or _model_dir(env)), "--out", str(env / "o")], capsys)


def _muse(env: Path) -> Path:
    """A MUSE-layout folder lacking its knowmem/ config."""
    d = env / "muse-partial"
    for config in ("raw", "verbmem", "privleak"):
        (d / config).mkdir(parents=True, exist_ok=True)
    return d


def _text(method: str, evaluator: str = "cli-toy") -> str:
    """`unlearn_text` on a two-document corpus without spans, with a toy evaluator registered meanwhile."""
    from paperlib.engine.config import get_profile
    from paperlib.engine.corpus import EvalCall, register_evaluator, unregister_evaluator

    register_evaluator("cli-toy")(lambda model, tok, profile, args, out_dir: {})
    try:
        corpus = TextCorpus("c", ("Ada Quill wrote.",), ("Rivers flow.",), 8)
        return _raises(lambda: unlearn.unlearn_text(get_profile("smoke"), method, corpus, EvalCall(evaluator, {}),
                                                    "x/y"))
    finally:
        unregister_evaluator("cli-toy")


def _rwku(env: Path, drop: str = "") -> Path:
    """A one-target folder in RWKU's layout (`paperlib.benchmarks.rwku.data`), without the part `drop`."""
    from paperlib.benchmarks.rwku import data as rwku

    d = env / f"rwku-{drop or 'full'}"
    target = d / "Target" / "1_Ann_Lee"
    target.mkdir(parents=True, exist_ok=True)
    for part in rwku.PARTS:
        level = part[-1] if part in rwku.PROBES else ""
        record = {"query": "Where was Ann Lee born?", "answer": "Leeds", "level": level} if level else {"text": "x"}
        if part != drop:
            (target / rwku.FILES[part]).write_text(json.dumps([record]))
    return d


def _rwku_load(source: Path, target: str):
    from paperlib.benchmarks.rwku import data as rwku

    return rwku.load_target(source, target)


def _llama(hidden: int):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=32, hidden_size=hidden, intermediate_size=16, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=2)


def _mask_dir(env: Path, drop: bool = False) -> Path:
    """A mask folder made for a hidden-size-8 model (with `drop`: its last tensor removed from the file)."""
    import torch
    from safetensors.torch import load_file, save_file

    d = env / f"mask-{drop}"
    names = [f"model.layers.{i}.mlp.down_proj.weight" for i in range(2)]
    _masks.save_mask({n: torch.ones(8, 16, dtype=torch.bool) for n in names}, d, _llama(8))
    if drop:
        kept = load_file(str(d / _masks.MASK_FILE))
        kept.pop(names[-1])
        save_file(kept, str(d / _masks.MASK_FILE))
    return d


def _foreign(env: Path) -> Path:
    d = env / "foreign"
    d.mkdir(exist_ok=True)
    (d / "notes.txt").write_text("keep me")
    return d


def _empty_tofu(env: Path) -> Path:
    d = env / "tofu-empty"
    d.mkdir(exist_ok=True)
    (d / "forget10.json").write_text("")
    return d


def _notebooks(env: Path) -> Path:
    import nbformat

    d = env / "notebooks"
    d.mkdir(exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("profile = 'mini'", metadata={"tags": ["parameters"]})]
    nbformat.write(nb, d / "01_x.ipynb")
    return d


def test_every_documented_case_has_a_test_and_back():
    assert set(doc_rows()) == set(CASES)


@pytest.mark.parametrize("case", sorted(doc_rows()))
def test_documented_error(case, env, capsys):
    text = CASES[case](env, capsys)
    assert doc_rows()[case] in text, text
    # nothing was computed: no model, evaluation or unlearning run in the cache
    assert not [p for kind in ("model", "eval", "unlearn") for p in (env / "runs" / kind).glob("*")]
    assert (env / "a-file.txt").read_text() == "keep" if (env / "a-file.txt").exists() else True
    assert (env / "foreign" / "notes.txt").read_text() == "keep me" if (env / "foreign").exists() else True


def test_tofu_from_the_hub_without_network_fails_at_once_in_one_line(env, capsys, monkeypatch):
    """No network (every name lookup fails): one line naming the hub id and asking for a local copy, exit 2, and
    no hub request retried (huggingface_hub's backoff sleeps 1 + 2 + 4 + 8 + 8 s before its ConnectionError):
    the hub is asked once whether it answers, then datasets runs in offline mode (a cached copy would be served).
    A model path that does not exist is reported before the benchmark is even looked at."""
    import socket
    import time

    import datasets

    lookups, sleeps, loads = [], [], []

    def no_network(host, *args, **kwargs):
        lookups.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    def load_dataset(*args, **kwargs):
        loads.append(datasets.config.HF_HUB_OFFLINE)
        return real_load(*args, **kwargs)

    import huggingface_hub.constants

    from paperlib.engine import hub

    for var in (*hub.OFFLINE_VARS, *hub.PROXY_VARS):  # hermetic: not offline, no proxy, nothing probed yet
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "_REACHABLE", set())
    real_load = datasets.load_dataset
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(time, "sleep", sleeps.append)  # a retry would sleep: record it instead of waiting
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    err = _hub_tofu(env, capsys, {}, model=env / "no-such-model")
    assert "model" in err and "no-such-model' does not exist" in err and not lookups and not loads
    start = time.monotonic()
    err = _hub_tofu(env, capsys, {})
    assert time.monotonic() - start < 20  # generous: the retries alone take 23 s
    assert "benchmark 'locuslab/TOFU' is a hub dataset and there is no network" in err, err
    assert "allowed: a local copy in TOFU's layout" in err and "--source DIR" in err, err
    assert loads and all(loads), loads  # datasets only ever ran offline: no hub request at all
    assert not sleeps and len(lookups) == 1, (sleeps, lookups)  # one probe of the hub's host, no retry
    assert not datasets.config.HF_HUB_OFFLINE  # offline mode was for that call only


def test_debug_shows_the_traceback(env):
    with pytest.raises(PaperlibError, match="lr=nan"):
        cli.main(["--debug", "unlearn", "--profile", "smoke", "--method", "GA", "--out", str(env / "fresh-out"),
                  "--set", "lr=nan"])


def test_reproduce_output_folders(tmp_path):
    from paperlib import runner

    ex = tmp_path / "executed" / "smoke"
    assert runner.output_dirs("mini", ex) == {}  # the notebooks' defaults: the committed figures/ and tables/
    assert runner.output_dirs("smoke", ex) == {"figures_dir": str(ex / "figures"), "tables_dir": str(ex / "tables")}
    assert runner.output_dirs("mini", ex, tmp_path / "f") == {"figures_dir": str((tmp_path / "f").resolve())}


def test_reproduce_smoke_never_writes_the_committed_folders(tmp_path):
    import nbformat

    from paperlib import runner

    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("profile = 'mini'\nfigures_dir = 'figures'\ntables_dir = 'tables'",
                                          metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import pathlib\nfor d in (figures_dir, tables_dir):\n"
                                          "    pathlib.Path(d).mkdir(parents=True, exist_ok=True)\n"
                                          "    (pathlib.Path(d) / 'x.csv').write_text(profile)")]
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, nbs / "01_out.ipynb")
    paths = runner.Paths(notebooks_dir=nbs, out_dir=tmp_path / "executed")
    quiet = runner.Execution(echo=lambda m: None)
    results = runner.reproduce("smoke", paths=paths, execution=quiet)
    assert results[0].ok
    assert not (tmp_path / "figures").exists() and not (tmp_path / "tables").exists()
    assert (tmp_path / "executed" / "smoke" / "tables" / "x.csv").read_text() == "smoke"
    paths = runner.Paths(notebooks_dir=nbs, out_dir=tmp_path / "executed", figures_dir=tmp_path / "F",
                         tables_dir=tmp_path / "T")
    results = runner.reproduce("smoke", paths=paths, execution=quiet)
    assert (tmp_path / "F" / "x.csv").is_file() and (tmp_path / "T" / "x.csv").is_file()
