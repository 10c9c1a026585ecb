"""Hand-checkable tests of paperlib.methods.losses on tiny tensors (all in shifted space, V = 3 or 4)."""

from __future__ import annotations

import math

import pytest
import torch

from paperlib.methods import losses as L

D = torch.float64
LOG2 = math.log(2)


def t(x, dtype=D) -> torch.Tensor:
    return torch.tensor(x, dtype=dtype)


def lse(*z: float) -> float:
    return math.log(sum(math.exp(v) for v in z))


def softmax(z: list[float]) -> list[float]:
    s = sum(math.exp(v) for v in z)
    return [math.exp(v) / s for v in z]


def logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


def approx(x: torch.Tensor, expected: float, tol: float = 1e-12) -> None:
    assert x.dim() == 0 and abs(x.item() - expected) < tol, (x.item(), expected)


# ----------------------------------------------------------------------------- likelihoods


def test_shift_aligns_logits_labels_and_flags():
    logits, labels, flag = torch.zeros(1, 4, 3), torch.tensor([[5, 6, 7, 8]]), torch.tensor([[0, 1, 1, 0]])
    z, y, f = L.shift(logits, labels, flag)
    assert z.shape == (1, 3, 3) and y.tolist() == [[6, 7, 8]] and f.tolist() == [[1, 1, 0]]


def test_token_nll_nll_and_sequence_sums():
    logits = t([[[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [2.0, 0.0, 1.0]]])
    labels = torch.tensor([[-100, 1, 2]])
    ce1, ce2 = math.log(3), lse(2, 0, 1) - 1
    assert torch.allclose(L.token_nll(logits, labels), t([[0.0, ce1, ce2]]))
    approx(L.nll(logits, labels), (ce1 + ce2) / 2)
    approx(L.ga_loss(logits, labels), -(ce1 + ce2) / 2)
    assert torch.allclose(L.seq_nll_sum(logits, labels), t([ce1 + ce2]))
    assert torch.allclose(L.seq_logprob(logits, labels), t([-(ce1 + ce2)]))
    assert L.gold_logits(logits, labels).tolist() == [[0.0, 0.0, 1.0]]


def test_kl_div_positions():
    p, q = t([[[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]]]), t([[[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]]])
    approx(L.kl_div_positions(p, p, torch.tensor([[True, True]])), 0.0)
    pp, qq = softmax([0.0, 1.0, 2.0]), softmax([0.0, 0.0, 0.0])
    expected = sum(a * math.log(a / b) for a, b in zip(pp, qq, strict=True))
    approx(L.kl_div_positions(p, q, torch.tensor([[True, False]])), expected)
    p.requires_grad_(True)
    empty = L.kl_div_positions(p, q, torch.tensor([[False, False]]))
    empty.backward()
    assert empty.item() == 0.0 and p.grad.abs().sum() == 0


# ----------------------------------------------------------------------------- NPO / SimNPO / DPO


def test_npo():
    s = t([3.0, 7.0])
    approx(L.npo_loss(s, s.clone(), beta=0.1), (2 / 0.1) * LOG2)
    # S_theta - S_ref = 1 and 3, beta = 0.5
    expected = -(2 / 0.5) * (logsig(0.5 * 1) + logsig(0.5 * 3)) / 2
    approx(L.npo_loss(t([4.0, 5.0]), t([3.0, 2.0]), beta=0.5), expected)


def test_simnpo():
    # S/|y| = 6/3 = 2 and 2/2 = 1, delta 0.5, beta 1
    expected = -2 * (logsig(2 - 0.5) + logsig(1 - 0.5)) / 2
    approx(L.simnpo_loss(t([6.0, 2.0]), torch.tensor([3, 2]), beta=1.0, delta=0.5), expected)


def test_dpo():
    w, lo = t([-2.0, -1.0]), t([-5.0, -3.0])
    approx(L.dpo_loss(w, w - 1, lo, lo - 1, beta=0.1), (2 / 0.1) * LOG2)
    # win ratio 1, lose ratio -2 -> margin 3
    approx(L.dpo_loss(t([0.0]), t([-1.0]), t([-4.0]), t([-2.0]), beta=0.5), -(2 / 0.5) * logsig(0.5 * 3))


# ----------------------------------------------------------------------------- WGA / UnDIAL / Unilogit


def test_wga():
    logits = t([[[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [2.0, 0.0, 1.0]]])
    labels = torch.tensor([[-100, 1, 2]])
    approx(L.wga_loss(logits, labels, beta=0.0), -L.nll(logits, labels).item())
    ce1, ce2 = math.log(3), lse(2, 0, 1) - 1
    approx(L.wga_loss(logits, labels, beta=1.0), -(math.exp(-ce1) * ce1 + math.exp(-ce2) * ce2) / 2)


def test_undial():
    ref = t([[[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]])
    labels = torch.tensor([[-100, 2]])
    q = softmax([1.0, 2.0, 3.0 - 10.0])
    assert torch.allclose(L.undial_target(ref, labels, beta=10.0)[0, 1], t(q))
    logits = t([[[9.0, 9.0, 9.0], [0.0, 1.0, 0.0]]])
    logp = [v - lse(0, 1, 0) for v in (0.0, 1.0, 0.0)]
    approx(L.undial_loss(logits, ref, labels, beta=10.0), -sum(a * b for a, b in zip(q, logp, strict=True)))


def test_unilogit_target_exact_uniform_label_and_ratios():
    logits = t([[[1.0, -2.0, 0.5, 3.0], [0.3, 0.1, 0.2, 0.4]]]).requires_grad_(True)
    labels = torch.tensor([[3, -100]])
    q = L.unilogit_target(logits, labels)
    assert not q.requires_grad and q.dtype == D
    assert abs(q[0, 0, 3].item() - 1 / 4) < 1e-12
    assert abs(q[0, 0, 0].item() / q[0, 0, 1].item() - math.exp(1.0 - -2.0)) < 1e-12
    assert abs(q[0, 0, 2].item() / q[0, 0, 1].item() - math.exp(0.5 - -2.0)) < 1e-12
    assert torch.allclose(q[0, 1], torch.softmax(logits[0, 1].detach(), -1))  # ignored label: untouched
    p = softmax([1.0, -2.0, 0.5, 3.0])
    expected = sum(a * math.log(a / b) for a, b in zip(p, q[0, 0].tolist(), strict=True))
    loss = L.unilogit_loss(logits, labels)
    approx(loss, expected)
    loss.backward()
    assert logits.grad[0, 0].abs().sum() > 0 and logits.grad[0, 1].abs().sum() == 0


# ----------------------------------------------------------------------------- TPO / PDU / RMU / CE-U


def test_tpo_by_hand():
    logits = t([[[2.0, 0, 0], [0, 1.0, 0], [0, 0, 3.0], [0, 0, 0]],
                [[1.0, 1.0, 1.0], [4.0, 0, 0], [0, 0, 0], [0, 0, 0]]])
    labels = torch.tensor([[0, 1, 2, 0], [1, 0, -100, -100]])
    unwanted = torch.tensor([[True, True, False, False], [False, True, True, False]])  # (1, 2): a prompt position
    ref_gold = t([[1.0, 2.0, 0.0, 0.0], [0.0, 5.0, 0.0, 0.0]])
    # sample 0: mean_ref (1+2)/2, mean_theta (2+1)/2; sample 1: ref 5, theta 4
    lpl = ((1.5 - 1.5) + (5.0 - 4.0)) / 2
    first = -(2 / 0.32) * logsig(0.32 * lpl)
    # general tokens: (0, 2) NLL lse(0,0,3) - 3 and (0, 3) NLL log 3 in sample 0, (1, 0) NLL log 3 in sample 1
    nll = [lse(0, 0, 3) - 3, math.log(3), math.log(3)]
    approx(L.tpo_loss(logits, ref_gold, labels, unwanted, beta=0.32, general="token_mean"), first + sum(nll) / 3)
    approx(L.tpo_loss(logits, ref_gold, labels, unwanted, beta=0.32, general="sample_sum"), first + sum(nll) / 2)
    approx(L.tpo_loss(logits, ref_gold, labels, unwanted, beta=0.32), first + sum(nll) / 2)  # default: sample_sum


def test_pdu_margin_and_dual():
    logits = t([[[1.0, 2.0, 3.0], [0.0, 0.0, 4.0], [9.0, 0.0, 0.0]]])
    labels = torch.tensor([[0, 1, -100]])
    approx(L.pdu_margin(logits, labels), ((3 - 2) ** 2 + (4 - 4 / 3) ** 2) / 2)
    assert L.pdu_dual_update(1.0, 0.5, eps=0.3, eta=5.0) == pytest.approx(1.0 + 5.0 * (0.5 - 0.3))
    assert L.pdu_dual_update(0.1, t(0.0), eps=0.3, eta=5.0) == 0.0  # projected onto lam >= 0
    approx(L.pdu_lagrangian(t(2.0), t(0.5), lam=3.0, eps=0.3, gamma=0.5), 0.5 * 2.0 + 3.0 * (0.5 - 0.3))


def test_rmu():
    u = L.rmu_control_vector(4, torch.Generator().manual_seed(0))
    approx(u.norm().to(D), 1.0, 1e-6)
    h = t([[[1.0, 0.0], [0.0, 0.0], [5.0, 5.0]]])
    u2 = t([0.0, 1.0])
    mask = torch.tensor([[True, True, False]])
    approx(L.rmu_forget_loss(h, u2, c=2.0, mask=mask), (((1 - 0) ** 2 + (0 - 2) ** 2) / 2 + (0 + 4) / 2) / 2)
    approx(L.rmu_retain_loss(h, torch.zeros_like(h), mask), (1 / 2 + 0) / 2)
    approx(L.rmu_retain_loss(h, torch.zeros_like(h)), (1 / 2 + 0 + 25) / 3)


def test_ceu_skips_first_answer_token():
    logits = t([[[5.0, 5.0, 5.0], [1.0, 2.0, 3.0], [0.0, 1.0, 2.0], [3.0, 0.0, 0.0]]]).requires_grad_(True)
    labels = torch.tensor([[-100, 1, 2, 0]])
    # position 1 (first answer token) skipped; 2: q = softmax([0, 1, -inf]); 3: q = (0, .5, .5)
    q2 = [1 / (1 + math.e), math.e / (1 + math.e), 0.0]
    ce2 = -sum(a * (z - lse(0, 1, 2)) for a, z in zip(q2, [0.0, 1.0, 2.0], strict=True))
    ce3 = -(0.5 * (0 - lse(3, 0, 0)) + 0.5 * (0 - lse(3, 0, 0)))
    loss = L.ceu_loss(logits, labels)
    approx(loss, (ce2 + ce3) / 2)
    loss.backward()
    assert logits.grad[0, :2].abs().sum() == 0 and logits.grad[0, 2].abs().sum() > 0


# ----------------------------------------------------------------------------- PALU


def test_prefix_mask_runs():
    s = torch.tensor([[1, 1, 1, 0, 1, 0], [0, 1, 1, 1, 1, 1], [1, 1, 0, 0, 1, 1]], dtype=torch.bool)
    expected = {
        1: [[1, 0, 0, 0, 1, 0], [0, 1, 0, 0, 0, 0], [1, 0, 0, 0, 1, 0]],
        2: [[1, 1, 0, 0, 1, 0], [0, 1, 1, 0, 0, 0], [1, 1, 0, 0, 1, 1]],
        3: [[1, 1, 1, 0, 1, 0], [0, 1, 1, 1, 0, 0], [1, 1, 0, 0, 1, 1]],
    }
    for n, rows in expected.items():
        assert L.prefix_mask(s, n).int().tolist() == rows, n
    assert torch.equal(L.prefix_mask(s, 0), s) and torch.equal(L.prefix_mask(s, -2), s)
    assert not L.prefix_mask(torch.zeros(2, 3, dtype=torch.bool), 1).any()


def test_local_entropy_matches_double_loop_for_every_target():
    g = torch.Generator().manual_seed(0)
    logits, ref = torch.randn(2, 3, 4, generator=g, dtype=D), torch.randn(2, 3, 4, generator=g, dtype=D)
    idx = L.topk_indices(ref, 2)
    mask = torch.tensor([[True, False, True], [False, True, True]])
    z = logits.tolist()
    for target in ("global_mean", "local_mean", "detached_mean", "zero", "topk_min"):
        total, count = 0.0, 0
        for b in range(2):
            for i in range(3):
                if not mask[b, i]:
                    continue
                picked = [z[b][i][k] for k in idx[b, i].tolist()]
                c = {
                    "global_mean": sum(z[b][i]) / 4,
                    "detached_mean": sum(z[b][i]) / 4,
                    "local_mean": sum(picked) / 2,
                    "zero": 0.0,
                    "topk_min": min(picked),
                }[target]
                total += sum((v - c) ** 2 for v in picked) / 2
                count += 1
        approx(L.local_entropy(logits, idx, mask, target), total / count)


def test_global_and_detached_mean_differ_in_the_gradient():
    """Same value, different gradient, by hand: z = (0, 3, 1, 2), K = 2 (indices 1, 3), c = 1.5, L = (1.5^2 +
    0.5^2) / 2 = 1.25. Detached c: dL/dz_j = (z_j - c) on the top-K, 0 elsewhere -> (0, 1.5, 0, 0.5). Global c:
    minus (1/V) sum_k (z_k - c) = 2/4 on every entry -> (-0.5, 1.0, -0.5, 0.0)."""
    idx, mask = torch.tensor([[[1, 3]]]), torch.tensor([[True]])
    for target, grad in (("detached_mean", [0.0, 1.5, 0.0, 0.5]), ("global_mean", [-0.5, 1.0, -0.5, 0.0])):
        z = t([[[0.0, 3.0, 1.0, 2.0]]]).requires_grad_(True)
        loss = L.local_entropy(z, idx, mask, target)
        loss.backward()
        approx(loss, 1.25)
        assert z.grad[0, 0].tolist() == pytest.approx(grad), target


def test_local_entropy_empty_mask_and_topk_indices():
    logits = t([[[0.0, 3.0, 1.0, 2.0]]]).requires_grad_(True)
    idx = L.topk_indices(logits, 2)
    assert idx.dtype == torch.long and idx.tolist() == [[[1, 3]]]
    loss = L.local_entropy(logits, idx, torch.tensor([[False]]))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad.abs().sum() == 0


def test_palu_gradient_only_on_prefix_and_nonsensitive_answer():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 6, 4, generator=g, dtype=D).requires_grad_(True)
    ref = torch.randn(1, 6, 4, generator=g, dtype=D)
    labels = torch.tensor([[-100, 1, 2, 3, 0, 1]])
    # 0: prompt (flagged, ignored); 1, 5: non-sensitive answer; 2: run prefix (n=1); 3, 4: beyond prefix
    sensitive = torch.tensor([[True, False, True, True, True, False]])
    idx = L.topk_indices(ref, 3)
    local, kl = L.palu_loss(logits, ref, idx, labels, sensitive, n=1)
    approx(local, L.local_entropy(logits, idx, torch.tensor([[0, 0, 1, 0, 0, 0]], dtype=torch.bool)).item())
    nonsens = torch.tensor([[0, 1, 0, 0, 0, 1]], dtype=torch.bool)
    approx(kl, L.kl_div_positions(logits, ref, nonsens).item())
    (local + kl).backward()
    row_grad = logits.grad[0].abs().sum(-1)
    assert row_grad[0] == 0 and row_grad[3] == 0 and row_grad[4] == 0
    assert (row_grad[[1, 2, 5]] > 0).all()
    _, kl_rev = L.palu_loss(logits, ref, idx, labels, sensitive, n=1, kl_direction="ref_theta")
    approx(kl_rev, L.kl_div_positions(ref, logits, nonsens).item())


# ----------------------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_value_error_naming_the_value():
    s, z = torch.tensor([[True, False]]), torch.zeros(1, 2, 4)
    labels, idx = torch.tensor([[0, 1]]), torch.zeros(1, 2, 1, dtype=torch.long)
    cases = [
        (lambda: L.prefix_mask(s, 1.5), "1.5"),
        (lambda: L.prefix_mask(s.int(), 1), "int32"),
        (lambda: L.topk_indices(z, 0), "got 0"),
        (lambda: L.topk_indices(z, 5), r"V=4\], got 5"),
        (lambda: L.local_entropy(z, idx, s, "median"), "'median'"),
        (lambda: L.palu_loss(z, z, idx, labels, s, 1, kl_direction="x"), "'x'"),
        (lambda: L.npo_loss(t([1.0]), t([1.0]), beta=0.0), "got 0.0"),
        (lambda: L.simnpo_loss(t([1.0]), torch.tensor([1]), beta=-1.0), "got -1.0"),
        (lambda: L.dpo_loss(t([1.0]), t([1.0]), t([1.0]), t([1.0]), beta=float("inf")), "got inf"),
        (lambda: L.wga_loss(z, labels, beta=-0.5), "got -0.5"),
        (lambda: L.tpo_loss(z, torch.zeros(1, 2), labels, s, beta=0), "got 0"),
        (lambda: L.tpo_loss(z, torch.zeros(1, 2), labels, s, general="mean"), "'mean'; allowed: sample_sum"),
        (lambda: L.unilogit_loss(z, labels, reduction="sum"), "'sum'; allowed: token, elementwise"),
        (lambda: L.pdu_dual_update(-1.0, 0.0), "got -1.0"),
        (lambda: L.rmu_forget_loss(torch.zeros(1, 2, 3), torch.ones(3), c=0.0), "got 0.0"),
        (lambda: L.unilogit_target(torch.zeros(1, 1), torch.tensor([0])), "V=1"),
    ]
    for fn, match in cases:
        with pytest.raises(ValueError, match=match):
            fn()


# ----------------------------------------------------------------------------- reference rows (packed layout)
def _kl_inputs(seed: int = 0, b: int = 3, t_: int = 6, v: int = 11):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t_, v, generator=g, dtype=D).requires_grad_(True)
    ref = torch.log_softmax(torch.randn(b, t_, v, generator=g, dtype=D), -1)
    labels = torch.randint(0, v, (b, t_), generator=g)
    labels[:, :2] = -100
    labels[1, -1] = -100  # padding
    sensitive = torch.rand(b, t_, generator=g) < 0.4
    return logits, ref, labels, sensitive


def test_rows_at_reads_batch_tensors_and_packed_rows_alike():
    x = t([[[1.0], [2.0], [3.0]], [[4.0], [5.0], [6.0]]])
    rows = torch.tensor([[False, True, True], [True, False, True]])
    mask = torch.tensor([[False, False, True], [True, False, False]])
    assert L.rows_at(x, rows, mask).flatten().tolist() == [3.0, 4.0]
    packed = x[rows]  # rows 2, 3, 4, 6
    assert packed.flatten().tolist() == [2.0, 3.0, 4.0, 6.0]
    assert L.rows_at(packed, rows, mask).flatten().tolist() == [3.0, 4.0]


@pytest.mark.parametrize("direction", L.KL_DIRECTIONS)
def test_nonsensitive_kl_equals_the_dense_masked_kl_with_packed_and_dense_references(direction):
    logits, ref, labels, sensitive = _kl_inputs()
    answer = labels != -100
    p, q = (logits, ref) if direction == "theta_ref" else (ref, logits)
    old = L.kl_div_positions(p, q, answer & ~sensitive)  # the formula before the packed layout
    (g_old,) = torch.autograd.grad(old, logits)
    for r in (ref, ref[answer]):
        new = L.nonsensitive_kl(logits, r, labels, sensitive, direction)
        (g_new,) = torch.autograd.grad(new, logits)
        torch.testing.assert_close(new, old)
        torch.testing.assert_close(g_new, g_old)
    assert old.item() > 0


def test_undial_loss_equals_the_dense_formula_with_packed_and_dense_references():
    logits, ref, labels, _ = _kl_inputs(1)
    answer = labels != -100
    ce = -(L.undial_target(ref, labels, 10.0) * torch.log_softmax(logits, -1)).sum(-1)
    old = torch.where(answer, ce, 0.0).sum() / answer.sum()
    (g_old,) = torch.autograd.grad(old, logits)
    for r in (ref, ref[answer]):
        new = L.undial_loss(logits, r, labels, 10.0)
        (g_new,) = torch.autograd.grad(new, logits)
        torch.testing.assert_close(new, old)
        torch.testing.assert_close(g_new, g_old)


def test_palu_losses_take_packed_reference_rows():
    logits, ref, labels, sensitive = _kl_inputs(2)
    answer = labels != -100
    idx = L.topk_indices(ref, 3)
    dense = L.palu_loss(logits, ref, idx, labels, sensitive, 2)
    packed = L.palu_loss(logits, ref[answer], idx[answer], labels, sensitive, 2)
    for a, c in zip(dense, packed):
        torch.testing.assert_close(a, c)
    g = torch.Generator().manual_seed(3)
    h = torch.randn(*labels.shape, 5, generator=g, dtype=D)
    w = torch.randn(ref.shape[-1], 5, generator=g, dtype=D)
    dense = L.palu_loss_hidden(h, w, ref, idx, labels, sensitive, 2)
    packed = L.palu_loss_hidden(h, w, ref[answer], idx[answer], labels, sensitive, 2)
    for a, c in zip(dense, packed):
        torch.testing.assert_close(a, c)
    assert dense[1].item() > 0


@pytest.mark.parametrize("target", L.TARGETS)
def test_local_entropy_on_masked_rows_equals_the_dense_formula(target):
    logits, ref, labels, sensitive = _kl_inputs(4)
    answer = labels != -100
    mask = L.prefix_mask(sensitive & answer, 2)
    idx = L.topk_indices(ref, 4)
    picked = logits.gather(-1, idx)  # the formula before: every position, then the masked mean
    c = {"global_mean": logits.mean(-1), "local_mean": picked.mean(-1), "detached_mean": logits.detach().mean(-1),
         "zero": torch.zeros(labels.shape, dtype=D), "topk_min": picked.detach().min(-1).values}[target]
    per = ((picked - c.unsqueeze(-1)) ** 2).mean(-1)
    old = torch.where(mask, per, 0.0).sum() / mask.sum()
    (g_old,) = torch.autograd.grad(old, logits)
    for new in (L.local_entropy(logits, idx, mask, target), L.local_entropy(logits, idx[answer], mask, target, answer)):
        (g_new,) = torch.autograd.grad(new, logits)
        torch.testing.assert_close(new, old)
        torch.testing.assert_close(g_new, g_old)
    assert old.item() > 0 and mask.any()
