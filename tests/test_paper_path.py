"""The paper path executed on stand-ins of its exact input formats, with no hub and no network (issue 16).

A local TOFU copy in `locuslab/TOFU`'s layout (real forget-set, real-authors and world-facts text) and tiny
random checkpoints in the layout of `open-unlearning/tofu_Llama-2-7b-chat-hf_{full,retain95}` go through the
paper profile with sizes overridden small: PALU and NPO unlearning runs, the TOFU evaluation through the CLI,
and notebook 01's computation (reference rows, run rows, the paper-number table and the scatter figure).
"""

from __future__ import annotations

import json
import math
import socket
import time

import datasets
import pytest

from paperlib import cli, report
from paperlib.benchmarks.tofu import data as tofu
from paperlib.benchmarks.tofu import metrics, pipeline, standins
from paperlib.engine import encoding, provenance, unlearn
from paperlib.engine.config import PAPER_MODELS, PAPER_PROFILE_NAMES, get_profile, model_params_b, training_memory_gb
from paperlib.engine.models import load_tokenizer
from paperlib.engine.unlearn import RunOptions
from paperlib.report import plots
from paperlib.studies import palu as experiments


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network (a socket connect raises), hub libraries offline, a private run cache."""

    def refuse(*args, **kwargs):
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "runs"))
    return tmp_path


@pytest.fixture
def standin(offline, shared_data):
    paths = standins.write_standins(offline / "hub", shared_data)
    return offline / "hub", paths


def test_tofu_copy_has_the_hub_layout(standin, shared_data):
    root, paths = standin
    data = paths["tofu"]
    assert {p.name for p in data.glob("*.json")} == {f"{s}.json" for s in tofu.SPLITS}
    spans = tofu.load_spans(shared_data / "tofu" / "spans" / "forget05_with_common_words_gpt")
    forget = {s: tofu.load_split(data, s) for s in tofu.FORGET_SPLITS}
    for s in tofu.FORGET_SPLITS:  # the forget sets are TOFU's own rows, nested as TOFU's are
        rows = forget[s].to_list()
        assert rows and set(forget["forget01"]["question"]) <= set(r["question"] for r in rows)
    assert all(spans[r["question"]]["answer"] == r["answer"] for r in forget["forget05"].to_list())
    # the README's `configs:` make the folder loadable the way the hub dataset is
    hub_style = datasets.load_dataset(str(data), "forget05_perturbed", split="train")
    assert hub_style.to_list() == tofu.load_split(data, "forget05_perturbed").to_list()
    assert len(hub_style[0]["perturbed_answer"]) == 5
    full, retain95 = tofu.load_split(data, "full"), tofu.load_split(data, "retain95")
    assert set(retain95["question"]) == set(full["question"]) - set(forget["forget05"]["question"])


def test_checkpoints_have_the_hub_layout_and_templates(standin):
    root, paths = standin
    folder = paths["llama2_full"]
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"} <= names
    assert any(n.endswith(".safetensors") for n in names)
    assert folder.name == "tofu_Llama-2-7b-chat-hf_full" and (root / "tofu_Llama-2-7b-chat-hf_retain95").is_dir()
    tok2, tok3 = load_tokenizer(folder), load_tokenizer(paths["llama3_full"])
    encoding.check_template("llama2", tok2)
    encoding.check_template("llama3", tok3)
    assert encoding.render_prompt("llama2", tok2, "Q?") == "<s>[INST] Q? [/INST]"
    chat = tok2.apply_chat_template([{"role": "user", "content": "Q?"}], tokenize=False)
    assert chat == "<s>[INST] Q? [/INST]"  # the Llama-2-chat template renders what our llama2 format writes
    prompt = encoding.render_prompt("llama3", tok3, "Q?")
    assert prompt.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n")
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    ids = encoding.encode(tok3, "llama3", "Q?", "Hina Ameen.", [(0, 10)])
    assert tok3.convert_ids_to_tokens(ids["input_ids"][-1]) == "<|eot_id|>" and any(ids["sensitive"])


def test_olmo2_template(offline, shared_data):
    """OLMo-2 Instruct's chat template (Tulu format, BOS = EOS = <|endoftext|>, no system prompt)."""
    olmo_template = ("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}"
                     "{{ '<|system|>\n' + message['content'] + '\n' }}{% elif message['role'] == 'user' %}"
                     "{{ '<|user|>\n' + message['content'] + '\n' }}{% elif message['role'] == 'assistant' %}"
                     "{{ '<|assistant|>\n'  + message['content'] + eos_token }}{% endif %}"
                     "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}{% endfor %}")
    tok = standins.build_tokenizer(["Who wrote it? Hina Ameen."], "llama2", vocab_size=300)
    tok.add_special_tokens({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|pad|>"})
    tok.chat_template = olmo_template
    encoding.check_template("olmo2", tok)
    assert encoding.render_prompt("olmo2", tok, "Q?") == "<|endoftext|><|user|>\nQ?\n<|assistant|>\n"


def test_paper_profiles_cover_every_model():
    for name in PAPER_PROFILE_NAMES:
        p = get_profile(name)
        assert p.name == "paper" and p.model.params_b > 5 and p.model.base
    assert get_profile("paper").model == PAPER_MODELS["llama2-7b-chat"]
    assert {m.name for m in PAPER_MODELS.values()} == {"Llama-2-7B-chat", "Llama-3.1-8B-Instruct",
                                                       "OLMo-2-7B-Instruct", "Llama-3-8B-Instruct"}
    assert get_profile("paper-olmo2-7b-instruct").model.template == "olmo2"
    assert training_memory_gb(7.0) == 112 and training_memory_gb(7.0, reference=True) == 126
    assert model_params_b(get_profile("mini")) < 0.01


def test_paper_path_end_to_end(standin, shared_data, offline):
    """PALU and NPO on forget05 of the stand-ins, the CLI evaluation, notebook 01's table and figure."""
    start = time.perf_counter()
    root, paths = standin
    P = standins.standin_profile(root, shared_data)
    assert P.name == "paper" and P.model.original.endswith("tofu_Llama-2-7b-chat-hf_full")
    forget = P.benchmark.forget
    small = {**standins.SMALL_OVERRIDES}
    runs = {"PALU": unlearn.unlearn(P, "PALU", forget, overrides={**small, "k": 20},
                                    options=RunOptions(eval_every_epoch=False, progress=False)),
            "NPO": unlearn.unlearn(P, "NPO", forget, overrides=small,
                                   options=RunOptions(eval_every_epoch=False, progress=False))}
    for run in runs.values():
        info = unlearn.read_run(run)
        assert info["status"]["status"] == "completed", info["status"]
        assert math.isfinite(info["summary"]["forget_quality"]) and info["summary"]["model_utility"] >= 0
        prov = json.loads((run / provenance.FILE).read_text())
        assert prov["seeds"]["train.seed"] == 0 and prov["torch"]["version"] and prov["device"]["type"] == "cpu"
        assert "transformers" in prov["packages"]
    # the TOFU evaluation through the CLI, against the retain model's log
    retain_log = pipeline.retain_log_path(P, forget)
    out = offline / "eval_palu"
    code = cli.main(["evaluate", "--model", str(runs["PALU"] / "model"), "--benchmark", "tofu", "--forget", forget,
                     "--source", str(paths["tofu"]), "--template", "llama2", "--retain-log", str(retain_log),
                     "--out", str(out)])
    assert code in (0, None)
    summary = json.loads((out / "TOFU_SUMMARY.json").read_text())
    assert summary["forget_quality"] == pytest.approx(unlearn.read_run(runs["PALU"])["summary"]["forget_quality"])
    # notebook 01's computation with these runs: reference rows, one row per run, paper numbers, figure
    rows = experiments.reference_rows(P, forget).to_dict("records")
    for method, run in runs.items():
        info = unlearn.read_run(run)
        rows.append({"method": method, **metrics.palu_columns(info["summary"]), "status": "completed",
                     "train s": info["status"]["timing"]["train_seconds"]})
    import pandas as pd

    table = pd.DataFrame(rows)
    shown = report.with_paper_numbers(table, "paper", split=forget)
    assert "FQ (paper)" in shown.columns and shown.set_index("method").loc["PALU", "FQ (paper)"] == \
        pytest.approx(0.7126, abs=1e-4)
    report.save_table(shown, "01_tofu_main", offline / "tables", caption="stand-in", profile="paper")
    refs = table[table["method"].isin(["Original", "Retain"])]
    seeds = table[~table["method"].isin(["Original", "Retain"])].rename(columns={"method": "label"})
    report.save_figure(plots.fq_mu_scatter(seeds, refs), "01_fq_mu_scatter", offline / "figures")
    assert (offline / "tables" / "01_tofu_main.csv").is_file()
    assert (offline / "figures" / "01_fq_mu_scatter.png").is_file()
    assert time.perf_counter() - start < 300
