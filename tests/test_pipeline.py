"""Profiles, fine-tuning determinism, and the mini models' memorisation check."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from paperlib.benchmarks.tofu import pipeline
from paperlib.engine.config import get_profile


def test_profiles_and_bad_names():
    assert get_profile("mini").benchmark.name == "mini-tofu"
    paper = get_profile("paper")
    assert paper.benchmark.name == "tofu" and paper.model.template == "llama2"
    assert pipeline.original_model(paper) == "open-unlearning/tofu_Llama-2-7b-chat-hf_full"
    assert pipeline.retain_model(paper, "forget05") == "open-unlearning/tofu_Llama-2-7b-chat-hf_retain95"
    with pytest.raises(ValueError, match="profile 'tiny'; allowed: smoke, mini, paper"):
        get_profile("tiny")
    with pytest.raises(ValueError, match="unknown split 'forget20'"):
        pipeline.retain_model(get_profile("smoke"), "forget20")


def test_same_seed_same_weights(tmp_path):
    """Two processes (different PYTHONHASHSEED, fresh caches) build byte-identical data, tokenizer, weights."""
    code = "from paperlib.benchmarks.tofu import pipeline; from paperlib.engine.config import get_profile; " \
           "print(pipeline.original_model(get_profile('smoke')))"
    paths = []
    for run in ("a", "b"):
        env = {**os.environ, "PAPERLIB_CACHE": str(tmp_path / run), "PYTHONHASHSEED": str(ord(run))}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        paths.append(out.stdout.strip().splitlines()[-1])
    a, b = (load_file(f"{p}/model.safetensors") for p in paths)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    records = ("cache_manifest.json", "provenance.json")  # times and versions of the build, not its result
    for pattern in ("benchmark/*/*.json", "tokenizer/*/tokenizer.json"):
        files = [sorted(f for f in (tmp_path / run).glob(pattern) if f.name not in records) for run in ("a", "b")]
        assert files[0] and [f.read_bytes() for f in files[0]] == [f.read_bytes() for f in files[1]], pattern


@pytest.mark.mini
def test_mini_original_memorises_and_retain_does_not_know(capsys):
    """Default mini size (cached in runs/; trained on first use, about 2.5 minutes)."""
    report = pipeline.finetune_report(get_profile("mini"), "forget10")
    with capsys.disabled():
        print("\nfine-tuning check (mini, forget10):", report)
    assert report["original_answer_prob"] >= 0.85  # issue 22's calibration target
    assert report["retain_answer_prob"] < 0.3  # calibrated mini: 0.23 (target 0.2, missed: tables/00_fidelity)
    assert report["ks_pvalue"] < 1e-3
