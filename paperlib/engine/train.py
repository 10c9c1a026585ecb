"""The one training loop, for fine-tuning and every unlearning method alike (accelerate; runs unchanged
under `accelerate launch`: DDP or FSDP over several GPUs, configs/accelerate/).

A method is a `loss_fn(model, batch) -> (loss, parts)`; the loop adds AdamW (torch's, or bitsandbytes'
paged / 8-bit AdamW), warm-up then linear (or cosine) decay, gradient accumulation and clipping, bf16 mixed
precision, an optional mask on the parameter update, a callback after every epoch, and stops a run whose loss
turns NaN/inf, whose weights turn non-finite (checked after every epoch) or whose epoch callback raises
`Diverged`; the result says where (`diverged_at`, `diverged_epoch`).

Several processes (`accelerate launch`): each takes every n-th batch, gradients are averaged, and every stop
decision (a non-finite loss on any process, non-finite weights in any shard, `Diverged` raised by the epoch
callback, which typically evaluates on the main process only) is all-reduced, so every process stops at the
same step. The logged loss is the mean over processes: with batch b on n processes it equals, within float
rounding, one process with batch b and gradient accumulation n (same batches, same updates, same schedule).
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader

from paperlib.engine.config import BNB_OPTIMIZERS, TrainConfig
from paperlib.engine.errors import PaperlibError
from paperlib.engine.progress import bar as progress_bar

if TYPE_CHECKING:  # accelerate and transformers are imported where a run trains (a warm notebook never does)
    from accelerate import Accelerator

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


def check_optimizer(cfg: TrainConfig) -> None:
    """bitsandbytes' optimizers (paged_adamw_32bit, the paper profile's; paged_adamw_8bit; adamw_8bit) need
    bitsandbytes and a CUDA GPU: say so, naming the optimizer, before any compute."""
    if cfg.optimizer not in BNB_OPTIMIZERS:
        return
    if importlib.util.find_spec("bitsandbytes") is None or not torch.cuda.is_available():
        missing = "bitsandbytes is not installed" if importlib.util.find_spec("bitsandbytes") is None \
            else "no CUDA GPU is visible"
        raise PaperlibError(f"optimizer={cfg.optimizer!r} needs bitsandbytes and a CUDA GPU; allowed here: "
                            f"optimizer=adamw (e.g. --set optimizer=adamw); here {missing}")


def check_precision(cfg: TrainConfig) -> None:
    """The run's precision is its TrainConfig's (part of the cache key): refuse a launcher that asks for
    another one (`accelerate launch --mixed_precision` or a launch config's `mixed_precision`)."""
    launched = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if launched not in ("no", cfg.mixed_precision):
        raise PaperlibError(f"accelerate launch asks for mixed_precision={launched!r} but the run's TrainConfig "
                            f"has mixed_precision={cfg.mixed_precision!r}; allowed: --set mixed_precision="
                            f"{launched} (so the cache key records it) or a launch without mixed precision")


def check_launch() -> None:
    """Refuse an FSDP launch (configs/accelerate/fsdp.yaml) of a run that evaluates and saves its model on the
    main process (every `paperlib.engine.unlearn` run): with sharded weights that process does not hold the model."""
    from accelerate.utils import parse_flag_from_env

    if parse_flag_from_env("ACCELERATE_USE_FSDP"):
        raise PaperlibError("accelerate launch with FSDP: this run evaluates and saves its model on the main "
                            "process, which holds only a shard of the weights under FSDP (gathering them is not "
                            "implemented); allowed: configs/accelerate/ddp.yaml (DDP) or one process")


def _optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer in BNB_OPTIMIZERS:
        import bitsandbytes as bnb  # GPU only, as in the papers' scripts

        kind = {"paged_adamw_32bit": bnb.optim.PagedAdamW32bit, "paged_adamw_8bit": bnb.optim.PagedAdamW8bit,
                "adamw_8bit": bnb.optim.AdamW8bit}[cfg.optimizer]
        return kind(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _any_process(acc: Accelerator, *flags: bool) -> list[bool]:
    """Each flag OR-ed over every process (one all-reduce; a single process returns its own flags)."""
    if acc.num_processes == 1:
        return list(flags)
    total = acc.reduce(torch.tensor([float(f) for f in flags], device=acc.device), reduction="sum")
    return [bool(v > 0) for v in total.tolist()]


def _step_loss(acc: Accelerator, loss: torch.Tensor) -> tuple[torch.Tensor, bool, bool]:
    """(the loss to log, non-finite here, non-finite on any process). One process: its loss and one device
    sync, as before; several: one all-reduce of (loss or 0, flag), the logged loss their mean."""
    bad = not bool(torch.isfinite(loss.detach()))
    if acc.num_processes == 1:
        return loss.detach(), bad, bad
    pair = torch.stack([torch.nan_to_num(loss.detach().float(), nan=0.0, posinf=0.0, neginf=0.0),
                        torch.tensor(float(bad), device=loss.device)])
    total = acc.reduce(pair, reduction="sum")
    return total[0] / acc.num_processes, bad, bool(total[1] > 0)


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


@dataclass(frozen=True)
class Loop:
    """What the training loop calls and shows besides training."""

    on_epoch_end: Callable[[torch.nn.Module, int], dict] | None = None  # (model, epoch) -> that epoch's summary
    on_step: Callable[[dict], None] | None = None  # called with each logged step's row
    log_every: int = 50  # steps between two transfers of the logged losses to Python floats
    desc: str = "train"  # the progress bar's label
    progress: bool = True  # show a progress bar


def train(model: torch.nn.Module, data: Sequence[dict], loss_fn: LossFn, cfg: TrainConfig,
          collate: Callable[[list[dict]], dict], update_mask: dict[str, torch.Tensor] | None = None,
          loop: Loop = Loop()) -> TrainResult:
    """Optimise `model` on `data` with `loss_fn`; `update_mask` (name -> bool) restricts the update to the
    True entries of the named parameters (all other parameters stay frozen): the gradient is zeroed outside
    the mask before clipping and AdamW's weight decay is applied to the True entries only, so every False
    entry stays bit-identical; the mask is the only extra memory (one byte per entry of a masked tensor).
    The loss and its parts stay detached tensors until every `log_every` steps and each epoch's end, when they
    become Python floats in one transfer (no device sync per step for logging); `result.steps` still holds one
    row per step. `loop`: the epoch and step callbacks, the logging interval and the progress bar."""
    on_epoch_end, on_step, log_every = loop.on_epoch_end, loop.on_step, loop.log_every
    desc, progress = loop.desc, loop.progress
    if update_mask is not None:
        check_mask(model, update_mask)
    check_optimizer(cfg)
    check_precision(cfg)
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import parse_flag_from_env
    from transformers import get_scheduler

    torch.manual_seed(cfg.seed)
    if AcceleratorState._shared_state.get("_mixed_precision", cfg.mixed_precision) != cfg.mixed_precision:
        AcceleratorState._reset_state()  # one process, runs of several precisions (the process group stays)
    acc = Accelerator(gradient_accumulation_steps=cfg.grad_accum, mixed_precision=cfg.mixed_precision,
                      cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))  # =1: several CPU processes (gloo)
    if update_mask is not None:
        for name, p in model.named_parameters():
            p.requires_grad_(name in update_mask)
    params = [p for p in model.parameters() if p.requires_grad]
    loader = DataLoader(list(data), batch_size=cfg.batch_size, shuffle=True, collate_fn=collate,
                        generator=torch.Generator().manual_seed(cfg.seed))
    # masked: AdamW's decoupled weight decay is applied by `_masked_decay` to the True entries only (the
    # optimiser's own would shrink every entry of a masked tensor)
    opt = _optimizer(params, cfg if update_mask is None else replace(cfg, weight_decay=0.0))
    raw_opt = opt
    model, opt, loader = acc.prepare(model, opt, loader)
    # the schedule counts updates x processes (accelerate's scheduler steps once per process and update), from
    # the batches each process really gets: with n processes accelerate pads an epoch to a multiple of n
    # batches (even_batches), so the schedule spans the epochs actually run, whatever the data's size
    steps_per_epoch = math.ceil(len(loader) / cfg.grad_accum) * acc.num_processes
    sched = acc.prepare(get_scheduler(cfg.schedule, raw_opt, num_training_steps=steps_per_epoch * cfg.epochs,
                                      num_warmup_steps=round(cfg.warmup_epochs * steps_per_epoch)))
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
                logged, bad_here, bad_any = _step_loss(acc, loss)
                if bad_any:  # every process stops here (before backward: no process waits in a gradient sync)
                    result.diverged_at, result.diverged_epoch = step, epoch
                    result.reason = f"non-finite loss ({loss.item()}) at step {step + 1}" if bad_here else \
                        f"non-finite loss on another process at step {step + 1}"
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
            pending.append({"epoch": epoch, "step": step, "loss": logged, "lr": sched.get_last_lr()[0], **parts})
            if len(pending) >= log_every:
                _log_rows(pending, result, bar, on_step)
        _log_rows(pending, result, bar, on_step)
        if result.diverged_at is None and _any_process(acc, not weights_finite(model))[0]:
            result.diverged_at, result.diverged_epoch = step, epoch
            result.reason = f"non-finite weights after epoch {epoch}"
        if result.diverged_at is not None:
            break
        if on_epoch_end is not None:
            model.eval()
            stop, failed = None, None
            try:
                result.epochs.append({"epoch": epoch, **on_epoch_end(acc.unwrap_model(model), epoch)})
            except Diverged as err:
                stop = str(err)
            except Exception as err:  # noqa: BLE001 (re-raised below, after telling the other processes)
                failed = err
            stop_any, failed_any = _any_process(acc, stop is not None, failed is not None)
            if failed_any:
                if failed is not None:
                    raise failed
                raise RuntimeError(f"another process failed in its epoch-{epoch} callback; stopping this one too")
            if stop_any:  # e.g. the main process's evaluation is non-finite: every process stops
                result.diverged_at, result.diverged_epoch = step, epoch
                result.reason = stop or f"stopped after epoch {epoch}: the epoch callback of another process " \
                                        "raised Diverged"
                break
            model.train()
    model.eval()
    return result
