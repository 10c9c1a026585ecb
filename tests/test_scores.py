"""paperlib.benchmarks.scoring on a 3-token vocabulary, by hand: logits = log(probabilities), so log-softmax = log p."""

from __future__ import annotations

import math

import pytest
import torch

from paperlib.benchmarks import scoring as scores

A, B, C, U = [0.5, 0.25, 0.25], [0.2, 0.3, 0.5], [0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3]  # argmax 0, 2, 0, -
EOS = 1


def _logits(*rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64).log()


# row 0: answer "0 2 EOS" after a prompt token; row 1: answer "2 0", then padding
LOGITS = _logits([U, A, B, C], [A, A, C, U])
LABELS = torch.tensor([[-100, 0, 2, EOS], [-100, 2, 0, -100]])


def test_token_logprobs_and_avg_loss():
    lp = scores.token_logprobs(LOGITS, LABELS)
    want = [[0.0, math.log(0.5), math.log(0.5), math.log(0.2)], [0.0, math.log(0.25), math.log(0.7), 0.0]]
    torch.testing.assert_close(lp, torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=1e-15)
    loss = scores.avg_loss(LOGITS, LABELS)
    assert loss.tolist() == pytest.approx([-(math.log(0.5) + math.log(0.5) + math.log(0.2)) / 3,
                                           -(math.log(0.25) + math.log(0.7)) / 2], rel=1e-12)


def test_exact_memorization():
    # row 0: argmax 0, 2, 0 vs 0, 2, EOS -> 2/3 (2/2 without the EOS); row 1: argmax 0, 0 vs 2, 0 -> 1/2
    assert scores.exact_memorization(LOGITS, LABELS).tolist() == pytest.approx([2 / 3, 1 / 2])
    assert scores.exact_memorization(LOGITS, LABELS, eos_id=EOS).tolist() == pytest.approx([1.0, 1 / 2])


def test_extraction_strength():
    # row 0: last token wrong -> no matching suffix -> 0 (1 without the EOS); row 1: y[1:] matches -> 1 - 1/2
    assert scores.extraction_strength(LOGITS, LABELS).tolist() == pytest.approx([0.0, 0.5])
    assert scores.extraction_strength(LOGITS, LABELS, eos_id=EOS).tolist() == pytest.approx([1.0, 0.5])
    # argmax 1 1 0 0 1 vs answer 0 1 2 0 1: matches F T F T T -> smallest k = 3 -> 1 - 3/5
    one_hot = torch.nn.functional.one_hot(torch.tensor([[1, 1, 0, 0, 1]]), 3).double()
    assert scores.extraction_strength(one_hot, torch.tensor([[0, 1, 2, 0, 1]])).item() == pytest.approx(0.4)


def test_min_k():
    # k = 0.4: 3 tokens -> int(1.2) = 1 lowest; 2 tokens -> int(0.8) = 0 -> at least 1
    got = scores.min_k(LOGITS, LABELS).tolist()
    assert got == pytest.approx([-math.log(0.2), -math.log(0.25)], rel=1e-12)
    got = scores.min_k(LOGITS, LABELS, eos_id=EOS).tolist()
    assert got == pytest.approx([-math.log(0.5), -math.log(0.25)], rel=1e-12)
    # 5 tokens with p = .5 .2 .7 .25 .3 -> int(2.0) = 2 lowest: .2 and .25
    five = scores.min_k(_logits([U, A, B, C, A, B]), torch.tensor([[-100, 0, 0, 0, 1, 1]]))
    assert five.tolist() == pytest.approx([-(math.log(0.2) + math.log(0.25)) / 2], rel=1e-12)
    assert torch.allclose(scores.min_k(LOGITS, LABELS, k=1.0), scores.avg_loss(LOGITS, LABELS))


def _z(p: list[float], y: int) -> float:
    mu = sum(q * math.log(q) for q in p)
    var = sum(q * math.log(q) ** 2 for q in p) - mu**2
    return (math.log(p[y]) - mu) / math.sqrt(var)


def test_min_k_plus_plus():
    got = scores.min_k_plus_plus(LOGITS, LABELS).tolist()
    assert got == pytest.approx([-min(_z(A, 0), _z(B, 2), _z(C, EOS)), -min(_z(A, 2), _z(C, 0))], rel=1e-9)
    assert _z(A, 0) == pytest.approx((math.log(0.5) - (0.5 * math.log(0.5) + 0.5 * math.log(0.25)))
                                     / math.sqrt(0.5 * math.log(0.5) ** 2 + 0.5 * math.log(0.25) ** 2
                                                 - (0.5 * math.log(0.5) + 0.5 * math.log(0.25)) ** 2))
    # zero variance (uniform, or two equal options and a -inf logit): sigma^2 clamped at 1e-6, z = 0, no NaN
    flat = scores.min_k_plus_plus(_logits([U, U, [0.5, 0.5, 0.0]]), torch.tensor([[-100, 2, 1]]))
    assert flat.tolist() == pytest.approx([0.0], abs=1e-9)


def test_zlib_score():
    got = scores.zlib_score(torch.tensor([2.0, 3.0]), ["aaaa", "Xin Lee Williams"])
    assert got.dtype == torch.float64 and got.tolist() == [2.0 / 12, 3.0 / 24]  # zlib.compress sizes in bytes
    with pytest.raises(ValueError, match="2 losses but 1 texts"):
        scores.zlib_score(torch.tensor([2.0, 3.0]), ["aaaa"])


def test_no_answer_tokens_give_nan():
    labels = torch.full((1, 4), -100)
    for fn in (scores.avg_loss, scores.exact_memorization, scores.extraction_strength, scores.min_k,
               scores.min_k_plus_plus):
        assert math.isnan(fn(LOGITS[:1], labels).item()), fn.__name__


def test_batched_equals_one_by_one_and_brute_force():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 9, 5, generator=g) * 3
    labels = torch.randint(0, 5, (4, 9), generator=g)
    labels[:, :2] = -100
    labels[1, 6:] = -100
    labels[2, 3:5] = logits[2, 3:5].argmax(-1)
    labels[3, 2:] = logits[3, 2:].argmax(-1)
    labels[3, 4] = (labels[3, 4] + 1) % 5
    for fn in (scores.avg_loss, scores.exact_memorization, scores.extraction_strength, scores.min_k,
               scores.min_k_plus_plus):
        batched = fn(logits, labels)
        alone = torch.cat([fn(logits[i:i + 1], labels[i:i + 1]) for i in range(4)])
        assert torch.allclose(batched, alone), fn.__name__
    for b in range(4):  # open-unlearning's loops on the answer tokens of each sample
        m = labels[b] != -100
        y, pred = labels[b][m], logits[b][m].argmax(-1)
        lp = sorted(torch.log_softmax(logits[b][m], -1).gather(-1, y[:, None]).squeeze(-1).tolist())
        k = next((k for k in range(len(y)) if torch.equal(pred[k:], y[k:])), len(y))
        assert scores.extraction_strength(logits, labels)[b].item() == pytest.approx(1 - k / len(y))
        num = max(1, int(len(y) * 0.4))
        assert scores.min_k(logits, labels)[b].item() == pytest.approx(-sum(lp[:num]) / num, rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_all_scores_equal_the_separate_functions(dtype):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 9, 13, generator=g, dtype=dtype) * 3
    labels = torch.randint(0, 13, (5, 9), generator=g)
    labels[:, :3] = -100  # prompt
    labels[1, 7:] = -100  # padding
    labels[2, 4] = EOS
    labels[3] = -100  # no answer token: NaN everywhere
    got = scores.all_scores(logits, labels, eos_id=EOS)
    want = {"avg_loss": scores.avg_loss(logits, labels),
            "em": scores.exact_memorization(logits, labels, eos_id=EOS),
            "es": scores.extraction_strength(logits, labels, eos_id=EOS),
            "min_k": scores.min_k(logits, labels, eos_id=EOS),
            "min_k_pp": scores.min_k_plus_plus(logits, labels, eos_id=EOS)}
    assert got.keys() == want.keys()
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=tol, atol=tol, equal_nan=True, msg=key)
