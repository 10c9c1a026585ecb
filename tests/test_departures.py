"""One test per row of docs/departures.md ("Departures from the reference implementations"): each pins
paperlib's behaviour on a case small enough to check by hand, and says what the reference code gives there."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from paperlib import methods
from paperlib.engine.constants import IGNORE
from paperlib.methods import losses as L

D = torch.float64


def t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=D)


# ----------------------------------------------------------------------------------------- RMU: the layer's output
@pytest.fixture(scope="module")
def two_layers():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, max_position_embeddings=32)
    return LlamaForCausalLM(cfg).eval()


def test_rmu_reads_the_decoder_layer_output_at_every_layer_including_the_last(two_layers):
    part = {"input_ids": torch.tensor([[1, 5, 7, 2]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    seen = []
    handle = two_layers.model.layers[1].register_forward_hook(
        lambda m, a, out: seen.append(out[0] if isinstance(out, tuple) else out))
    with torch.no_grad():
        hidden_states = two_layers(**part, output_hidden_states=True).hidden_states
    handle.remove()
    rmu_last = methods.make_method("RMU", {"layer": 1})
    rmu_first = methods.make_method("RMU", {"layer": 0})
    with torch.no_grad():
        last, first = rmu_last.hidden(two_layers, part), rmu_first.hidden(two_layers, part)
    assert torch.equal(last, seen[-1].float())  # the hook on model.model.layers[1]
    assert not torch.allclose(last, hidden_states[2])  # hidden_states[-1] is after the final RMSNorm
    assert torch.equal(first, hidden_states[1])  # below the last layer both readings agree


# ----------------------------------------------------------------------------------------- TPO: general-token NLL
def test_tpo_general_tokens_sample_sum_by_default():
    # V = 3, uniform logits: every token NLL is log 3. No unwanted token: lpl = 0, first term (2/beta) log 2.
    logits = torch.zeros(2, 2, 3, dtype=D)
    labels = torch.tensor([[0, 1], [2, IGNORE]])  # sample 0: 2 general tokens, sample 1: 1
    unwanted = torch.zeros(2, 2, dtype=torch.bool)
    ref = torch.zeros(2, 2, dtype=D)
    first = 2 / 0.32 * math.log(2)
    assert methods.TPOHparams().general == "sample_sum"
    assert L.tpo_loss(logits, ref, labels, unwanted).item() == pytest.approx(first + (2 + 1) * math.log(3) / 2)
    token = L.tpo_loss(logits, ref, labels, unwanted, general="token_mean").item()
    assert token == pytest.approx(first + math.log(3))


# ----------------------------------------------------------------------------------------- UnDIAL: answer tokens only
def test_undial_averages_over_answer_tokens_only():
    # V = 2, beta = 0, reference logits 0: target (1/2, 1/2). Answer position: student logits (0, 0), CE = log 2.
    # Prompt position: student (log 3, 0), CE = -(log 3/4 + log 1/4) / 2; open-unlearning would average both.
    logits = t([[[0.0, 0.0], [math.log(3), 0.0]]])
    labels = torch.tensor([[1, IGNORE]])
    loss = L.undial_loss(logits, torch.zeros(1, 2, 2, dtype=D), labels, beta=0.0).item()
    assert loss == pytest.approx(math.log(2))
    prompt_ce = -(math.log(0.75) + math.log(0.25)) / 2
    assert loss != pytest.approx((math.log(2) + prompt_ce) / 2)


# ----------------------------------------------------------------------------------------- PDU: shifted positions
def test_pdu_margin_on_the_positions_that_predict_answer_tokens():
    # HF-style: tokens [prompt, a, b]; margins (max - mean)^2 per position: 2^2, 4^2, 6^2.
    logits = t([[[3.0, 0, 0], [0, 6.0, 0], [9.0, 0, 0]]])
    labels = torch.tensor([[IGNORE, 0, 1]])
    z, y = L.shift(logits, labels)  # positions 0 and 1 predict a and b
    assert L.pdu_margin(z, y).item() == pytest.approx((4 + 16) / 2)  # open-unlearning: positions 1, 2 -> 26


# ----------------------------------------------------------------------------------------- RMU: token mean
def test_rmu_loss_is_a_token_mean_over_answer_tokens():
    # D = 1, u = (1), c = 1. Sample 0: two tokens at distance 1 (S = 2, n = 2); sample 1: one at distance 2 (4, 1).
    h = t([[[2.0], [2.0]], [[3.0], [0.0]]])
    mask = torch.tensor([[True, True], [True, False]])
    loss = L.rmu_forget_loss(h, t([1.0]), c=1.0, mask=mask).item()
    assert loss == pytest.approx((1 + 1 + 4) / 3)  # per-sample mean: 2.5; open-unlearning: mean(S) mean(1/n) = 2.25


# ----------------------------------------------------------------------------------------- KL retain term
class _Fixed(torch.nn.Module):
    """A 'model' returning fixed logits (enough for a method's retain term)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, input_ids, attention_mask, output_hidden_states=False):
        return SimpleNamespace(logits=self.logits)


def test_kl_retain_term_averages_over_real_tokens_not_padding():
    # Retain sample [BOS, x, PAD]: shifted position 0 predicts x (real), position 1 predicts padding.
    # p_ref = (1/2, 1/2) everywhere; p_theta = (3/4, 1/4) at position 0 and (1/2, 1/2) at the padding position.
    part = {"input_ids": torch.tensor([[1, 5, 0]]), "attention_mask": torch.tensor([[1, 1, 0]]),
            "labels": torch.tensor([[IGNORE, 5, IGNORE]])}
    model = _Fixed(t([[[math.log(3), 0.0], [0.0, 0.0], [0.0, 0.0]]]))
    ref = {"retain.logprobs": torch.full((1, 2, 2), math.log(0.5), dtype=D)}
    gd = methods.make_method("GD", {"retain_loss": "kl"})
    kl = gd.retain_term(model, {"retain": part}, ref).item()
    assert kl == pytest.approx(0.5 * math.log(4 / 3))  # open-unlearning: also the padding position -> half of it


# ----------------------------------------------------------------------------------------- Unilogit: KL reduction
def test_unilogit_kl_reduction_token_by_default():
    # V = 2: the target gives the label 1/V = 1/2, so q = (1/2, 1/2); p_theta = (3/4, 1/4) with label 0.
    logits = t([[[math.log(3), 0.0]]])
    labels = torch.tensor([[0]])
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert methods.UnilogitHparams().kl_reduction == "token"
    assert L.unilogit_loss(logits, labels).item() == pytest.approx(kl)
    assert L.unilogit_loss(logits, labels, reduction="elementwise").item() == pytest.approx(kl / 2)


# ----------------------------------------------------------------------------------------- RWKU: unscorable predictions
def test_rwku_unscorable_prediction_is_noanswer():
    from rouge import Rouge

    from paperlib.benchmarks.rwku import metrics as rwku_metrics

    with pytest.raises(ValueError):  # the reference path: the `rouge` package refuses it
        Rouge().get_scores("...", "Portland")
    assert rwku_metrics.rouge_l_recall("...", "Portland") == 0.0
    assert rwku_metrics.rouge_l_recall("...", "NOANSWER") == 1.0  # scored exactly as the string "NOANSWER"
    assert rwku_metrics.rouge_l_recall("in Portland", "Portland") == 1.0  # scorable outputs: the package's number


# ----------------------------------------------------------------------------------------- MUSE: PrivLeak's reference
def test_muse_privleak_reference_from_the_retrained_log_or_muses_constants():
    from paperlib.benchmarks.muse import metrics as mm

    # ours: the retrained model's own AUC (here 0.5): a model at AUC 0.75 (forget told apart) gives -50
    assert mm.privleak_from_aucs(0.75, 0.5) == pytest.approx(-50.0)
    # MUSE's eval.py: (AUC' - 0.4772) / 0.4772 * 100 with AUC' = 1 - 0.75 = 0.25 -> -47.61...
    ref = mm.muse_reference("news")[mm.MIA]["agg_value"]
    assert mm.privleak_from_aucs(0.75, ref) == pytest.approx((0.25 - 0.4772) / 0.4772 * 100, rel=1e-6)
    assert mm.muse_reference("books")[mm.MIA]["agg_value"] == pytest.approx(1 - 0.5393)


# ----------------------------------------------------------------------------------------- PALU from hidden states
def test_palu_forget_term_from_hidden_states_by_default_where_the_head_is_plain_linear(two_layers):
    """Row 10: the default reads the hidden states and the top-K head rows (the same loss up to rounding:
    tests/test_palu_hidden.py); a head that is not a plain nn.Linear, or logit scaling, falls back to the logits."""
    assert methods.PALUHparams().forget_from_hidden is True
    assert methods.hidden_path_applies(two_layers)

    class Scaled(torch.nn.Linear):  # e.g. a head that scales its logits
        def forward(self, x):
            return 2 * super().forward(x)

    scaled = LlamaForCausalLM(two_layers.config)
    scaled.lm_head = Scaled(8, 16, bias=False)
    assert not methods.hidden_path_applies(scaled)
    capped = LlamaForCausalLM(LlamaConfig(**{**two_layers.config.to_dict(), "logit_scale": 0.5}))
    assert not methods.hidden_path_applies(capped)
