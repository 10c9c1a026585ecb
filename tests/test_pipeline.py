"""Profiles, fine-tuning determinism, and the mini models' memorisation check."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from paperlib import pipeline
from paperlib.config import get_profile


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


def test_same_seed_same_weights(tmp_path, monkeypatch):
    smoke = get_profile("smoke")
    paths = []
    for run in ("a", "b"):
        monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / run))
        paths.append(pipeline.original_model(smoke))
    a, b = (load_file(f"{p}/model.safetensors") for p in paths)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    data = [sorted((tmp_path / run / "benchmark").rglob("*.json")) for run in ("a", "b")]
    assert [f.read_bytes() for f in data[0]] == [f.read_bytes() for f in data[1]]


def test_mini_original_memorises_and_retain_does_not_know(capsys):
    """Default mini size (cached in runs/; trained on first use, about 2.5 minutes)."""
    report = pipeline.finetune_report(get_profile("mini"), "forget10")
    with capsys.disabled():
        print("\nfine-tuning check (mini, forget10):", report)
    assert report["original_answer_prob"] >= 0.9
    assert report["retain_answer_prob"] < 0.2
    assert report["ks_pvalue"] < 1e-3
