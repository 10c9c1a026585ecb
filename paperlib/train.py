"""The one training loop, for fine-tuning and every unlearning method alike (accelerate; runs unchanged
under `accelerate launch` on several GPUs).

A method is a `loss_fn(model, batch) -> (loss, parts)`; the loop adds AdamW, warm-up then linear (or
cosine) decay, gradient accumulation and clipping, an optional mask on the parameter update, a callback
after every epoch, and stops a run whose loss turns NaN/inf, whose weights turn non-finite (checked after
every epoch) or whose epoch callback raises `Diverged`; the result says where (`diverged_at`, `diverged_epoch`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from transformers import get_scheduler

from paperlib.config import TrainConfig
from paperlib.progress import bar as progress_bar

LossFn = Callable[[torch.nn.Module, dict], tuple[torch.Tensor, dict[str, "torch.Tensor | float"]]]


class Diverged(Exception):  # noqa: N818 (a result, not an error)
    """Raised by an `on_epoch_end` callback to stop the run as diverged (e.g. its evaluation is non-finite)."""


@dataclass
class TrainResult:
    """Per-step losses, per-epoch callback results, and where the run diverged (None if it did not):
    `diverged_at` = completed steps before it, `diverged_epoch` = the epoch it happened in, `reason`."""

    steps: list[dict] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)
    diverged_at: int | None = None
    diverged_epoch: int | None = None
    reason: str = ""


def weights_finite(model: torch.nn.Module) -> bool:
    """True if no parameter holds NaN or inf."""
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def check_mask(model: torch.nn.Module, mask: dict[str, torch.Tensor]) -> None:
    """Raise unless every mask entry names a parameter of `model` with the same shape."""
    params = dict(model.named_parameters())
    unknown = [n for n in mask if n not in params]
    if unknown:
        raise ValueError(f"mask names parameters the model does not have: {unknown[:3]}; "
                         f"allowed: names from model.named_parameters(), e.g. {list(params)[:2]}")
    for name, m in mask.items():
        if m.shape != params[name].shape or m.dtype != torch.bool:
            raise ValueError(f"mask for {name} is {m.dtype} {tuple(m.shape)}; "
                             f"allowed: bool {tuple(params[name].shape)}")


def _optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "paged_adamw_32bit":
        import bitsandbytes as bnb  # GPU only, as in the papers' scripts

        return bnb.optim.PagedAdamW32bit(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _log_rows(pending: list[dict], result: TrainResult, bar, on_step: Callable[[dict], None] | None) -> None:
    """Move the pending step rows into `result.steps`, their tensors as Python floats (one transfer)."""
    if not pending:
        return
    where = [(row, k) for row in pending for k, v in row.items() if isinstance(v, torch.Tensor)]
    if where:
        values = torch.stack([row[k].detach().float().reshape(()) for row, k in where]).tolist()
        for (row, k), v in zip(where, values):
            row[k] = v
    for row in pending:
        result.steps.append(row)
        if on_step:
            on_step(row)
    bar.set_postfix({k: f"{v:.3g}" for k, v in pending[-1].items() if k not in ("epoch", "step")})
    pending.clear()


@torch.no_grad()
def _mask_grads(masked: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Zero the gradient outside each mask (in place). AdamW then keeps zero moments there, so its update of
    a False entry is exactly 0 and the weight stays bit-identical (its weight decay is off, see `_masked_decay`)."""
    for p, m in masked:
        if p.grad is not None:
            p.grad.mul_(m)


@torch.no_grad()
def _masked_decay(masked: list[tuple[torch.Tensor, torch.Tensor]], rate: float) -> None:
    """AdamW's decoupled weight decay (p -= lr * wd * p) on the True entries only: a False entry gets
    p - rate * (p * 0) = p exactly. Applied just before `opt.step()`, as torch's AdamW applies it."""
    for p, m in masked:
        p.sub_(p * m, alpha=rate)


def train(model: torch.nn.Module, data: Sequence[dict], loss_fn: LossFn, cfg: TrainConfig,
          collate: Callable[[list[dict]], dict], on_epoch_end: Callable[[torch.nn.Module, int], dict] | None = None,
          update_mask: dict[str, torch.Tensor] | None = None, desc: str = "train",
          on_step: Callable[[dict], None] | None = None, log_every: int = 50, progress: bool = True) -> TrainResult:
    """Optimise `model` on `data` with `loss_fn`; `update_mask` (name -> bool) restricts the update to the
    True entries of the named parameters (all other parameters stay frozen): the gradient is zeroed outside
    the mask before clipping and AdamW's weight decay is applied to the True entries only, so every False
    entry stays bit-identical; the mask is the only extra memory (one byte per entry of a masked tensor).
    The loss and its parts stay detached tensors until every `log_every` steps and each epoch's end, when they
    become Python floats in one transfer (no device sync per step for logging); `result.steps` still holds one
    row per step."""
    if update_mask is not None:
        check_mask(model, update_mask)
    torch.manual_seed(cfg.seed)
    acc = Accelerator(gradient_accumulation_steps=cfg.grad_accum)
    if update_mask is not None:
        for name, p in model.named_parameters():
            p.requires_grad_(name in update_mask)
    params = [p for p in model.parameters() if p.requires_grad]
    loader = DataLoader(list(data), batch_size=cfg.batch_size, shuffle=True, collate_fn=collate,
                        generator=torch.Generator().manual_seed(cfg.seed))
    # masked: AdamW's decoupled weight decay is applied by `_masked_decay` to the True entries only (the
    # optimiser's own would shrink every entry of a masked tensor)
    opt = _optimizer(params, cfg if update_mask is None else replace(cfg, weight_decay=0.0))
    steps_per_epoch = math.ceil(len(loader) / cfg.grad_accum)
    sched = get_scheduler(cfg.schedule, opt, num_warmup_steps=round(cfg.warmup_epochs * steps_per_epoch),
                          num_training_steps=steps_per_epoch * cfg.epochs)
    model, opt, loader, sched = acc.prepare(model, opt, loader, sched)
    masked: list[tuple[torch.Tensor, torch.Tensor]] = []  # (parameter, its bool mask): one byte per entry
    if update_mask is not None:
        named = dict(acc.unwrap_model(model).named_parameters())
        masked = [(named[n], m.to(named[n].device)) for n, m in update_mask.items()]

    result, step, pending = TrainResult(), 0, []
    model.train()
    for epoch in range(1, cfg.last_epoch + 1):
        bar = progress_bar(loader, f"{desc} epoch {epoch}/{cfg.epochs}", progress and acc.is_main_process,
                           leave=False)
        for batch in bar:
            with acc.accumulate(model):
                loss, parts = loss_fn(model, batch)
                if not torch.isfinite(loss.detach()):
                    result.diverged_at, result.diverged_epoch = step, epoch
                    result.reason = f"non-finite loss ({loss.item()}) at step {step + 1}"
                    break
                acc.backward(loss)
                if acc.sync_gradients and masked:
                    _mask_grads(masked)  # before clipping: the norm is that of the update actually applied
                if acc.sync_gradients and cfg.max_grad_norm > 0:
                    acc.clip_grad_norm_(params, cfg.max_grad_norm)
                if acc.sync_gradients and masked and cfg.weight_decay:
                    _masked_decay(masked, opt.param_groups[0]["lr"] * cfg.weight_decay)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
            step += 1
            pending.append({"epoch": epoch, "step": step, "loss": loss.detach(), "lr": sched.get_last_lr()[0], **parts})
            if len(pending) >= log_every:
                _log_rows(pending, result, bar, on_step)
        _log_rows(pending, result, bar, on_step)
        if result.diverged_at is None and not weights_finite(model):
            result.diverged_at, result.diverged_epoch = step, epoch
            result.reason = f"non-finite weights after epoch {epoch}"
        if result.diverged_at is not None:
            break
        if on_epoch_end is not None:
            model.eval()
            try:
                result.epochs.append({"epoch": epoch, **on_epoch_end(acc.unwrap_model(model), epoch)})
            except Diverged as err:
                result.diverged_at, result.diverged_epoch, result.reason = step, epoch, str(err)
                break
            model.train()
    model.eval()
    return result
