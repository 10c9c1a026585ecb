"""Unlearning methods, one block each: a method's hyperparameter dataclass (the papers' defaults, documented)
sits right above its class, and the `@register` decorator puts the class into the one registry, `METHODS`,
whose order is the paper table's (`names()`); ablation-only methods carry `ablation = True`.

A method class says
- `name`, `doc`, `color` (its fixed display colour in every figure), `ablation`, `Hparams`;
- `needs()`: what it needs besides the forget sample (a paired retain sample, an IdK answer, the span file's
  sensitive spans or common words, reference-model quantities from `paperlib.engine.reference.QUANTITIES`);
- `prepare(forget, row, encode)`: its own data preparation, adding per-token flags to an encoded forget sample
  (TPO's `unwanted`), and `check_data(samples)`;
- `loss(model, batch, ref) -> (loss, parts)`, where `batch` holds the collated parts `forget`, `retain`, `idk`
  (each: input_ids, attention_mask, labels aligned with input_ids, flags) and `ref` maps reference quantity
  names to batch-shaped tensors; `parts` are detached tensors (or floats) that the training loop logs.

Everything except GA, CE-U and PDU is `L = gamma * L_forget + alpha * L_retain` (methods.md, `combine`);
L_retain (`retain_term`) is NLL on the paired retain sample (`retain_loss="nll"`, default) or
KL(p_ref || p_theta) over its tokens (`retain_loss="kl"`); RMU overrides `retain_term`. docs/adding_a_method.md
shows how to add a method from outside the package.

Profiles: `paperlib.methods.tuning` gives each profile's unlearning schedule, tuning grid and the hyperparameters
a profile scales (e.g. PALU's K relative to the vocabulary).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from paperlib.engine.constants import IGNORE
from paperlib.methods import losses as L

RETAIN_LOSSES = ("nll", "kl")
PALU_TOKENS = ("sensitive", "all")
PALU_TARGETS = L.TARGETS  # c_t, methods.md (RQ4)


# ----------------------------------------------------------------------------------------- what a method needs
@dataclass(frozen=True)
class Needs:
    """What a method needs besides the forget sample. Reference quantities (`ref`) are names from
    `paperlib.engine.reference.QUANTITIES`; `topk` is K for "forget.topk", `layer` the decoder layer of
    "retain.hidden"."""

    retain: bool = False  # a paired retain sample (batch["retain"])
    idk: bool = False  # an "I don't know" answer to the forget question (batch["idk"])
    spans: bool = False  # sensitive-token flags from the span file (batch["forget"]["sensitive"])
    common: bool = False  # the span file's common_words on each forget row (row["common"], e.g. TPO)
    ref: frozenset[str] = frozenset()
    topk: int = 0
    layer: int = -1

    @property
    def span_file(self) -> bool:
        """True when the forget rows need the span annotation file (sensitive spans or common words)."""
        return self.spans or self.common


# ----------------------------------------------------------------------------------------- value checks
def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r}; allowed: {', '.join(allowed)}")


def _check_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}={value!r}; allowed: an int")


def _check_nonneg(hp: Any, *names: str) -> None:
    for name in names:
        v = getattr(hp, name)
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{name}={v!r}; allowed: a finite number >= 0")


def _check_pos(hp: Any, *names: str) -> None:
    for name in names:
        v = getattr(hp, name)
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name}={v!r}; allowed: a finite number > 0")


# ----------------------------------------------------------------------------------------- forward passes
def forward(model: torch.nn.Module, part: dict, hidden: bool = False):
    """Model output on one collated part (forget / retain / idk), with all hidden states when `hidden`."""
    return model(input_ids=part["input_ids"], attention_mask=part["attention_mask"], output_hidden_states=hidden)


def shifted(model: torch.nn.Module, part: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(float32 logits, labels) of a part in shifted space (logits[:, t] predicts labels[:, t])."""
    logits = forward(model, part).logits.float()
    z, y = L.shift(logits, part["labels"])
    return z, y


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The decoder layers of a causal LM (also wrapped by DDP or PEFT/LoRA)."""
    m = getattr(model, "module", model)
    for name, module in m.named_modules():
        if isinstance(module, torch.nn.ModuleList) and name.split(".")[-1] == "layers":
            return module
    raise ValueError(f"{type(m).__name__} has no decoder layers (no ModuleList named 'layers')")


@contextlib.contextmanager
def capture_layer(model: torch.nn.Module, layer: int) -> Iterator[list[torch.Tensor]]:
    """Within the block, every forward pass appends the output of decoder layer `layer` [B, T, D] to the
    yielded list (a forward hook on that layer)."""
    seen: list[torch.Tensor] = []

    def hook(module, args, output):
        seen.append(output[0] if isinstance(output, tuple) else output)

    handle = decoder_layers(model)[layer].register_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def layer_output(model: torch.nn.Module, part: dict, layer: int) -> torch.Tensor:
    """Output of decoder layer `layer` [B, T, D] on one part, read by a forward hook on that layer. For the
    last layer this is the layer's own output, not `hidden_states[layer + 1]`: there the final norm has been
    applied (docs/departures.md)."""
    with capture_layer(model, layer) as seen:
        forward(model, part)
    return seen[0]


def token_mask(part: dict) -> torch.Tensor:
    """Shifted positions that predict a real (non-padding) token: the positions of a KL over 'all tokens'."""
    return part["attention_mask"][:, 1:].bool()


def sensitive_flags(part: dict, tokens: str = "sensitive") -> torch.Tensor:
    """Shifted sensitive flags of the forget part; `tokens="all"` flags every answer position."""
    z_labels = part["labels"][:, 1:]
    if tokens == "all":
        return z_labels != IGNORE
    return part["sensitive"][:, 1:] & (z_labels != IGNORE)


# ----------------------------------------------------------------------------------------- the base class
@dataclass(frozen=True)
class NoHparams:
    """A method without hyperparameters."""


@dataclass(frozen=True)
class RetainHparams:
    """L = gamma * L_forget + alpha * L_retain (methods.md)."""

    gamma: float = 1.0
    alpha: float = 1.0
    retain_loss: str = "nll"  # "nll" (default) or "kl": KL(p_ref || p_theta) over the retain sample's tokens


class Method:
    """Base class: hyperparameters `hp`, `needs()`, `prepare()`, `loss(model, batch, ref)`; `check(vocab,
    layers)` raises on hyperparameters the model cannot take; `setup(batches_per_epoch)` resets per-run state.

    Class attributes: `name` (the registry key), `Hparams`, `doc` (one line), `color` (display colour, "" = a
    neutral fallback), `ablation` (True: an ablation variant, not a row of the main table)."""

    name: ClassVar[str] = ""
    Hparams: ClassVar[type] = NoHparams
    doc: ClassVar[str] = ""
    color: ClassVar[str] = ""
    ablation: ClassVar[bool] = False

    def __init__(self, hp: Any = None) -> None:
        self.hp = hp if hp is not None else self.Hparams()
        if not isinstance(self.hp, self.Hparams):
            raise TypeError(f"{self.name} takes {self.Hparams.__name__}, got {type(self.hp).__name__}")
        self.validate()

    def validate(self) -> None:
        """Raise ValueError on a bad hyperparameter value (no model needed)."""
        hp = self.hp
        if hasattr(hp, "retain_loss"):
            _check_choice("retain_loss", hp.retain_loss, RETAIN_LOSSES)
        for name in ("gamma", "alpha"):
            if hasattr(hp, name):
                _check_nonneg(hp, name)

    def check(self, vocab_size: int, num_layers: int) -> None:
        """Raise ValueError on a hyperparameter that does not fit the model (vocabulary, depth)."""

    def setup(self, batches_per_epoch: int) -> None:
        """Called once before training (per-run state such as PDU's dual variable)."""

    def needs(self) -> Needs:
        """What the method needs; the default: the retain term's needs (nothing when alpha = 0 or absent)."""
        return Needs(**self._retain_needs())

    # -- data preparation owned by the method
    def prepare(self, forget: dict, row: dict, encode: Callable[[Sequence[tuple[int, int]]], dict]) -> None:
        """Add the method's own per-token flags to an encoded forget sample (lists aligned with input_ids).
        `row` is the forget row (question, answer, spans, common, ...); `encode(char_spans)` re-encodes the row
        flagging the answer tokens that overlap `char_spans` (in its "sensitive" list). Default: nothing."""

    def check_data(self, samples: list[dict]) -> None:
        """Raise ValueError when the encoded training samples cannot train this method."""
        if self.needs().spans and not any(any(s["forget"]["sensitive"]) for s in samples):
            raise ValueError(f"the forget set's span annotation marks no answer token as sensitive; {self.name} "
                             "needs sensitive spans (or set tokens=all)")

    # -- the retain term shared by most methods
    def _uses_retain(self) -> bool:
        return getattr(self.hp, "alpha", 0.0) > 0

    def _retain_needs(self) -> dict:
        if not self._uses_retain():
            return {"retain": False, "ref": frozenset()}
        kl = getattr(self.hp, "retain_loss", "nll") == "kl"
        return {"retain": True, "ref": frozenset({"retain.logprobs"} if kl else ())}

    def retain_term(self, model: torch.nn.Module, batch: dict, ref: dict) -> torch.Tensor:
        """NLL(retain) or KL(p_ref || p_theta) over the retain sample's tokens."""
        z, y = shifted(model, batch["retain"])
        if self.hp.retain_loss == "kl":
            mask = token_mask(batch["retain"])
            z = z[mask]
            return L.kl_div_positions(L.rows_at(ref["retain.logprobs"], mask, mask), z,
                                      torch.ones(z.shape[:-1], dtype=torch.bool, device=z.device))
        return L.nll(z, y)

    def combine(self, forget: torch.Tensor, model: torch.nn.Module, batch: dict, ref: dict,
                **extra: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """gamma * forget + alpha * retain (retain skipped when alpha = 0), with the parts (detached)."""
        parts = {"forget": forget.detach(), **{k: v.detach() for k, v in extra.items()}}
        loss = self.hp.gamma * forget
        if self._uses_retain():
            retain = self.retain_term(model, batch, ref)
            parts["retain"] = retain.detach()
            loss = loss + self.hp.alpha * retain
        return loss, parts

    def loss(self, model: torch.nn.Module, batch: dict, ref: dict) -> tuple[torch.Tensor, dict[str, Any]]:
        raise NotImplementedError


# ----------------------------------------------------------------------------------------- the registry
METHODS: dict[str, type[Method]] = {}  # filled only by @register, in the paper table's order


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: add a Method subclass to the registry under `cls.name` (after the ones registered
    before it). Registering a second class under a taken name is an error; `unregister` removes one."""
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise TypeError(f"register takes a Method subclass, got {cls!r}")
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a non-empty `name`")
    if not (dataclasses.is_dataclass(cls.Hparams) and cls.Hparams.__dataclass_params__.frozen):
        raise TypeError(f"{cls.name}.Hparams must be a frozen dataclass, got {cls.Hparams!r}")
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise ValueError(f"method {cls.name!r} is already registered (by {METHODS[cls.name].__qualname__})")
    METHODS[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove method `name` from the registry (tests that register a toy method clean up with it)."""
    METHODS.pop(name, None)


def names(ablation: bool = False) -> list[str]:
    """Registered method names in the paper table's order (GA, GD, NPO, ..., PALU); with `ablation=True`
    the ablation-only methods (NCE) follow."""
    return [n for n, cls in METHODS.items() if ablation or not cls.ablation]


def colors() -> dict[str, str]:
    """{method name: display colour} of every registered method that declares one."""
    return {n: cls.color for n, cls in METHODS.items() if cls.color}


# ----------------------------------------------------------------------------------------- the methods
# Paper table order: GA, GD, NPO, SimNPO, DPO, WGA, TPO, PDU, UnDIAL, Unilogit, RMU, CE-U, PALU; then ablations.
# Colours: colour-blind-safe tab10/tab20 hues; no other method is red, so PALU stands out.

@dataclass(frozen=True)
class GAHparams:
    """Gradient ascent: -NLL(forget), no retain term, no hyperparameter (Jang et al. 2023)."""


@register
class GA(Method):
    name, Hparams, color = "GA", GAHparams, "#1f77b4"
    doc = "gradient ascent on the forget answers"

    def loss(self, model, batch, ref):
        z, y = shifted(model, batch["forget"])
        loss = L.ga_loss(z, y)
        return loss, {"forget": loss.detach()}


@dataclass(frozen=True)
class GDHparams(RetainHparams):
    """Gradient difference: -NLL(forget) + alpha NLL(retain); gamma = alpha = 1."""


@register
class GD(Method):
    name, Hparams, color = "GD", GDHparams, "#aec7e8"
    doc = "gradient difference: GA + NLL on retain"

    def loss(self, model, batch, ref):
        z, y = shifted(model, batch["forget"])
        return self.combine(L.ga_loss(z, y), model, batch, ref)


@dataclass(frozen=True)
class NPOHparams(RetainHparams):
    """NPO (Zhang et al. 2024): beta 0.1."""

    beta: float = 0.1


@register
class NPO(Method):
    name, Hparams, color = "NPO", NPOHparams, "#2ca02c"
    doc = "negative preference optimisation against the reference"

    def validate(self) -> None:
        super().validate()
        _check_pos(self.hp, "beta")

    def needs(self) -> Needs:
        r = self._retain_needs()
        return Needs(retain=r["retain"], ref=r["ref"] | {"forget.seq_nll"})

    def loss(self, model, batch, ref):
        z, y = shifted(model, batch["forget"])
        return self.combine(L.npo_loss(L.seq_nll_sum(z, y), ref["forget.seq_nll"], self.hp.beta), model, batch, ref)


@dataclass(frozen=True)
class SimNPOHparams(RetainHparams):
    """SimNPO (Fan et al. 2024): beta 4.5, delta 0, gamma 0.125, no reference model."""

    gamma: float = 0.125
    beta: float = 4.5
    delta: float = 0.0


@register
class SimNPO(Method):
    name, Hparams, color = "SimNPO", SimNPOHparams, "#98df8a"
    doc = "reference-free, length-normalised NPO"

    def validate(self) -> None:
        super().validate()
        _check_pos(self.hp, "beta")

    def loss(self, model, batch, ref):
        z, y = shifted(model, batch["forget"])
        lengths = (y != IGNORE).sum(-1)
        forget = L.simnpo_loss(L.seq_nll_sum(z, y), lengths, self.hp.beta, self.hp.delta)
        return self.combine(forget, model, batch, ref)


@dataclass(frozen=True)
class DPOHparams(RetainHparams):
    """IdK-DPO (TOFU / open-unlearning): beta 0.1; `idk` = file of IdK answers ("" = the benchmark's
    idontknow.jsonl)."""

    beta: float = 0.1
    idk: str = ""


@register
class DPO(Method):
    name, Hparams, color = "DPO", DPOHparams, "#9467bd"
    doc = "DPO preferring an 'I don't know' answer"

    def validate(self) -> None:
        super().validate()
        _check_pos(self.hp, "beta")

    def needs(self) -> Needs:
        r = self._retain_needs()
        return Needs(retain=r["retain"], idk=True, ref=r["ref"] | {"forget.seq_nll", "idk.seq_nll"})

    def loss(self, model, batch, ref):
        zf, yf = shifted(model, batch["forget"])
        zi, yi = shifted(model, batch["idk"])
        forget = L.dpo_loss(L.seq_logprob(zi, yi), -ref["idk.seq_nll"], L.seq_logprob(zf, yf),
                            -ref["forget.seq_nll"], self.hp.beta)
        return self.combine(forget, model, batch, ref)


@dataclass(frozen=True)
class WGAHparams(RetainHparams):
    """WGA (Wang et al. 2025): beta 1 (paper schedule: 5 epochs)."""

    beta: float = 1.0


@register
class WGA(Method):
    name, Hparams, color = "WGA", WGAHparams, "#c5b0d5"
    doc = "gradient ascent weighted by p_theta(y_t)^beta"

    def validate(self) -> None:
        super().validate()
        _check_nonneg(self.hp, "beta")

    def loss(self, model, batch, ref):
        z, y = shifted(model, batch["forget"])
        return self.combine(L.wga_loss(z, y, self.hp.beta), model, batch, ref)


@dataclass(frozen=True)
class TPOHparams(RetainHparams):
    """TPO, tpo_grad_diff variant (Zhou et al. 2025): beta 0.32. `general`: the NLL on the general (common)
    answer tokens, "sample_sum" (the reference code's: summed per sample, averaged over the batch; the PALU
    paper's TPO row came from it) or "token_mean" (a token mean over the batch; docs/departures.md)."""

    beta: float = 0.32
    general: str = "sample_sum"


@register
class TPO(Method):
    name, Hparams, color = "TPO", TPOHparams, "#ff7f0e"
    doc = "logit preference on unwanted tokens + NLL on the rest"

    def validate(self) -> None:
        super().validate()
        _check_pos(self.hp, "beta")
        _check_choice("general", self.hp.general, L.TPO_REDUCTIONS)

    def needs(self) -> Needs:
        r = self._retain_needs()
        return Needs(retain=r["retain"], common=True, ref=r["ref"] | {"forget.gold_logits"})

    def prepare(self, forget, row, encode):
        """`unwanted`: answer tokens outside the row's common words; the final EOS counts as general."""
        common = encode(row.get("common") or ())["sensitive"]
        forget["unwanted"] = [y != IGNORE and not c for y, c in zip(forget["labels"], common)]
        forget["unwanted"][-1] = False

    def loss(self, model, batch, ref):
        part = batch["forget"]
        z, y = shifted(model, part)
        forget = L.tpo_loss(z, ref["forget.gold_logits"], y, part["unwanted"][:, 1:], self.hp.beta, self.hp.general)
        return self.combine(forget, model, batch, ref)


@dataclass(frozen=True)
class PDUHparams:
    """PDU (Entesari et al. 2025): L = gamma L_f + lam (L_r - eps); lam0 100, eta 5, eps 0.3, the dual
    variable updated every step after `dual_warmup_epochs` (5)."""

    gamma: float = 1.0
    lam0: float = 100.0
    eta: float = 5.0
    eps: float = 0.3
    dual_warmup_epochs: float = 5.0
    retain_loss: str = "nll"


@register
class PDU(Method):
    """The dual variable lam lives in the method object: `setup` resets it to lam0; it is updated after
    every loss call (micro-batch) once `dual_warmup_epochs` epochs of batches have passed, and logged as
    the part `lam` (the value used in that step's loss)."""

    name, Hparams, color = "PDU", PDUHparams, "#ffbb78"
    doc = "primal-dual: logit-margin forget loss, retain constraint"

    def validate(self) -> None:
        super().validate()
        _check_nonneg(self.hp, "lam0", "eps", "dual_warmup_epochs")
        _check_pos(self.hp, "eta")
        self.setup(1)

    def setup(self, batches_per_epoch: int) -> None:
        self.lam = float(self.hp.lam0)
        self.calls = 0
        self.warmup_calls = round(self.hp.dual_warmup_epochs * batches_per_epoch)

    def needs(self) -> Needs:
        return Needs(retain=True, ref=frozenset({"retain.logprobs"} if self.hp.retain_loss == "kl" else ()))

    def loss(self, model, batch, ref):
        z, y = shifted(model, batch["forget"])
        forget = L.pdu_margin(z, y)
        retain = self.retain_term(model, batch, ref)
        lam = self.lam
        loss = L.pdu_lagrangian(forget, retain, lam, self.hp.eps, self.hp.gamma)
        self.calls += 1
        if self.calls > self.warmup_calls:  # the dual step needs L_r as a number: one sync per step
            self.lam = L.pdu_dual_update(lam, retain.detach(), self.hp.eps, self.hp.eta)
        return loss, {"forget": forget.detach(), "retain": retain.detach(), "lam": lam}


@dataclass(frozen=True)
class UnDIALHparams(RetainHparams):
    """UnDIAL (Dong et al. 2024): beta 10, alpha 0 (paper schedule: lr 1e-4)."""

    alpha: float = 0.0
    beta: float = 10.0


@register
class UnDIAL(Method):
    name, Hparams, color = "UnDIAL", UnDIALHparams, "#8c564b"
    doc = "self-distillation: reference logits minus beta on y"

    def validate(self) -> None:
        super().validate()
        _check_nonneg(self.hp, "beta")

    def needs(self) -> Needs:
        r = self._retain_needs()
        return Needs(retain=r["retain"], ref=r["ref"] | {"forget.logprobs"})

    def loss(self, model, batch, ref):
        z, y = shifted(model, batch["forget"])
        return self.combine(L.undial_loss(z, ref["forget.logprobs"], y, self.hp.beta), model, batch, ref)


@dataclass(frozen=True)
class UnilogitHparams(RetainHparams):
    """Unilogit (Vasilev et al. 2025): gamma = alpha = 1. `kl_reduction`: "token" (the formula's: the KL per
    token, averaged over answer tokens) or "elementwise" (PyTorch's default kl_div mean, which also averages
    over the vocabulary, as a port of the official code calls it; docs/departures.md)."""

    kl_reduction: str = "token"


@register
class Unilogit(Method):
    name, Hparams, color = "Unilogit", UnilogitHparams, "#c49c94"
    doc = "self-distillation to a uniform target token"

    def validate(self) -> None:
        super().validate()
        _check_choice("kl_reduction", self.hp.kl_reduction, L.UNILOGIT_REDUCTIONS)

    def loss(self, model, batch, ref):
        z, y = shifted(model, batch["forget"])
        return self.combine(L.unilogit_loss(z, y, self.hp.kl_reduction), model, batch, ref)


@dataclass(frozen=True)
class RMUHparams:
    """RMU (Li et al. 2024; open-unlearning's TOFU setting): c 2, layer 7, gamma = alpha = 1; forget and
    retain MSE over answer tokens of the output of decoder layer `layer`; `seed` draws the random control
    vector u."""

    gamma: float = 1.0
    alpha: float = 1.0
    c: float = 2.0
    layer: int = 7
    seed: int = 0


@register
class RMU(Method):
    name, Hparams, color = "RMU", RMUHparams, "#17becf"
    doc = "steer layer activations of forget answers to a random vector"

    def validate(self) -> None:
        super().validate()
        _check_pos(self.hp, "c")

    def check(self, vocab_size: int, num_layers: int) -> None:
        if not 0 <= self.hp.layer < num_layers:
            raise ValueError(f"layer={self.hp.layer}; allowed: 0..{num_layers - 1} (the model has {num_layers} "
                             "decoder layers)")

    def needs(self) -> Needs:
        return Needs(retain=self.hp.alpha > 0, ref=frozenset({"retain.hidden"} if self.hp.alpha > 0 else ()),
                     layer=self.hp.layer)

    def hidden(self, model: torch.nn.Module, part: dict) -> torch.Tensor:
        """Output of decoder layer `layer` [B, T, D] (a forward hook on the layer; float32)."""
        return layer_output(model, part, self.hp.layer).float()

    def retain_term(self, model, batch, ref):
        """MSE between this model's and the reference's layer outputs on the retain sample's answer tokens."""
        r = batch["retain"]
        return L.rmu_retain_loss(self.hidden(model, r), ref["retain.hidden"], r["labels"] != IGNORE)

    def loss(self, model, batch, ref):
        part = batch["forget"]
        h = self.hidden(model, part)
        if getattr(self, "_u", None) is None or self._u.shape[-1] != h.shape[-1]:
            self._u = L.rmu_control_vector(h.shape[-1], torch.Generator().manual_seed(self.hp.seed))
        forget = L.rmu_forget_loss(h, self._u, self.hp.c, part["labels"] != IGNORE)
        return self.combine(forget, model, batch, ref)


@dataclass(frozen=True)
class CEUHparams:
    """CE-U (Yang 2025): no hyperparameter, no retain term."""


@register
class CEU(Method):
    name, Hparams, color = "CE-U", CEUHparams, "#bcbd22"
    doc = "cross entropy against the model's own distribution without y"

    def loss(self, model, batch, ref):
        z, y = shifted(model, batch["forget"])
        loss = L.ceu_loss(z, y)
        return loss, {"forget": loss.detach()}


class _SpanMethod(Method):
    """Shared by PALU and its NCE ablation: sensitive-token selection (`tokens`, `n`) and the KL constraint on
    the non-sensitive answer tokens (`kl_direction`, weighted by alpha like the retain term)."""

    def validate(self) -> None:
        super().validate()
        _check_choice("kl_direction", self.hp.kl_direction, L.KL_DIRECTIONS)
        _check_choice("tokens", self.hp.tokens, PALU_TOKENS)
        _check_int("n", self.hp.n)

    def _kl_needs(self) -> set[str]:
        return {"forget.logprobs"} if self.hp.alpha > 0 else set()

    def needs(self) -> Needs:
        r = self._retain_needs()
        return Needs(retain=r["retain"], spans=self.hp.tokens == "sensitive", ref=r["ref"] | self._kl_needs())


def hidden_path_applies(model: torch.nn.Module) -> bool:
    """True when the model's logits are exactly its decoder's last hidden states times a plain linear head
    (`torch.nn.Linear`, no logit scaling or soft-capping): where PALU's forget term from hidden states equals
    the one from the logits."""
    m = getattr(model, "module", model)
    config = getattr(m, "config", None)
    if config is None or getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
        return False
    try:
        head, decoder = m.get_output_embeddings(), m.get_decoder()
    except (AttributeError, NotImplementedError):
        return False
    return type(head) is torch.nn.Linear and decoder is not None


@dataclass(frozen=True)
class PALUHparams(RetainHparams):
    """PALU: n (prefix budget, paper ~3; <= 0 = every sensitive token), k (top-K of the reference logits,
    paper 5000 of 32k; 1..V), target c (global_mean | local_mean | detached_mean | zero | topk_min),
    KL direction on non-sensitive tokens (theta_ref = code, ref_theta = paper text), gamma 1, alpha 1;
    `tokens="all"` treats every answer token (EOS included) as sensitive (RQ1). `forget_from_hidden` (default):
    compute the forget term from the last hidden states and the top-K output-embedding rows, with
    full-vocabulary logits only at the KL positions (`losses.palu_loss_hidden`; the same loss up to float
    rounding, less time and memory at large V); used where the model's head is a plain linear layer
    (`hidden_path_applies`), the full logits elsewhere; False: always the full logits."""

    n: int = 3
    k: int = 5000
    target: str = "global_mean"
    kl_direction: str = "theta_ref"
    tokens: str = "sensitive"
    forget_from_hidden: bool = True


@register
class PALU(_SpanMethod):
    name, Hparams, color = "PALU", PALUHparams, "#d62728"
    doc = "local entropy on the top-K logits of sensitive prefixes"

    def validate(self) -> None:
        super().validate()
        _check_choice("target", self.hp.target, PALU_TARGETS)
        if isinstance(self.hp.k, bool) or not isinstance(self.hp.k, int) or self.hp.k < 1:
            raise ValueError(f"k={self.hp.k!r}; allowed: an int in 1..V (vocabulary size)")

    def check(self, vocab_size: int, num_layers: int) -> None:
        if not 1 <= self.hp.k <= vocab_size:
            raise ValueError(f"k={self.hp.k}; allowed: 1..{vocab_size} (the model's vocabulary size V)")

    def needs(self) -> Needs:
        return dataclasses.replace(super().needs(), ref=super().needs().ref | {"forget.topk"}, topk=self.hp.k)

    def loss(self, model, batch, ref):
        part = batch["forget"]
        if self.hp.forget_from_hidden and hidden_path_applies(model):
            return self._loss_from_hidden(model, batch, ref)
        z, y = shifted(model, part)
        sens = sensitive_flags(part, self.hp.tokens)
        ref_lp = ref.get("forget.logprobs", z.detach())
        local, kl = L.palu_loss(z, ref_lp, ref["forget.topk"], y, sens, self.hp.n, self.hp.target,
                                self.hp.kl_direction)
        loss, parts = self.combine(local, model, batch, ref, kl=kl)
        return loss + self.hp.alpha * kl, parts

    def _loss_from_hidden(self, model, batch, ref):
        """`loss` with the forget part's logits only where the KL needs them (the decoder's last hidden
        states times the output embedding; the model's logits must be exactly h W^T + b)."""
        part = batch["forget"]
        m = getattr(model, "module", model)
        if not hidden_path_applies(model):
            raise ValueError("forget_from_hidden needs logits = h W^T + b (a plain linear head, no logit scaling "
                             "or soft-capping)")
        h = m.get_decoder()(input_ids=part["input_ids"], attention_mask=part["attention_mask"]).last_hidden_state
        head = m.get_output_embeddings()
        bias = None if head.bias is None else head.bias.float()
        local, kl = L.palu_loss_hidden(h[:, :-1].float(), head.weight.float(), ref.get("forget.logprobs"),
                                       ref["forget.topk"], part["labels"][:, 1:], sensitive_flags(part, self.hp.tokens),
                                       self.hp.n, self.hp.target, self.hp.kl_direction, bias)
        loss, parts = self.combine(local, model, batch, ref, kl=kl)
        return loss + self.hp.alpha * kl, parts


@dataclass(frozen=True)
class NCEHparams(RetainHparams):
    """PALU's token selection with negated CE (-NLL) instead of the local entropy (RQ2); KL on non-sensitive
    tokens and retain NLL as PALU."""

    n: int = 3
    kl_direction: str = "theta_ref"
    tokens: str = "sensitive"


@register
class NCE(_SpanMethod):
    name, Hparams, color = "NCE", NCEHparams, "#637939"
    doc = "negated CE on PALU's sensitive prefixes (RQ2 ablation)"
    ablation = True

    def loss(self, model, batch, ref):
        part = batch["forget"]
        z, y = shifted(model, part)
        sens = sensitive_flags(part, self.hp.tokens)
        prefix = L.prefix_mask(sens, self.hp.n)
        forget = -L.nll(z, torch.where(prefix, y, IGNORE))  # mean token NLL over the prefix positions
        kl = torch.zeros((), device=z.device)
        if self.hp.alpha > 0:
            kl = L.nonsensitive_kl(z, ref["forget.logprobs"], y, sens, self.hp.kl_direction)
        loss, parts = self.combine(forget, model, batch, ref, kl=kl)
        return loss + self.hp.alpha * kl, parts


# ----------------------------------------------------------------------------------------- look-ups
def method_class(name: str) -> type[Method]:
    """The registered class of method `name` (ValueError listing the allowed names otherwise)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; allowed: {', '.join(METHODS)}")
    return METHODS[name]


def hparam_names(name: str) -> list[str]:
    """Hyperparameter names of method `name`."""
    return [f.name for f in dataclasses.fields(method_class(name).Hparams)]


def _field_type(cls: type, name: str) -> type:
    hint = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and args:
        hint = args[0]
    return hint


def parse_value(kind: type, raw: Any, name: str) -> Any:
    """`raw` (a string from the command line, or a value) as type `kind` (bool, int, float, str)."""
    if not isinstance(raw, str):
        if kind is float and isinstance(raw, int) and not isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, kind) and not (kind is int and isinstance(raw, bool)):
            return raw
        raise ValueError(f"{name}={raw!r}; allowed: a {kind.__name__}")
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return raw.lower() in ("true", "1", "yes")
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}; allowed: a {kind.__name__}") from None


def make_hparams(name: str, overrides: dict[str, Any] | None = None) -> Any:
    """Method `name`'s hyperparameters: its defaults with `overrides` (values or strings) applied."""
    cls = method_class(name).Hparams
    overrides = dict(overrides or {})
    allowed = hparam_names(name)
    unknown = [k for k in overrides if k not in allowed]
    if unknown:
        raise ValueError(f"unknown hyperparameter {unknown[0]!r} for {name}; allowed: {', '.join(allowed) or 'none'}")
    values = {k: parse_value(_field_type(cls, k), v, k) for k, v in overrides.items()}
    return cls(**values)


def make_method(name: str, overrides: dict[str, Any] | None = None) -> Method:
    """A method object with validated hyperparameters (ValueError on an unknown name or a bad value)."""
    return method_class(name)(make_hparams(name, overrides))


# ----------------------------------------------------------------------------------------- profiles
# Per-profile training settings live in paperlib.methods.tuning (one grid and one selection rule for every
# method); re-exported here for callers of the old names.
from paperlib.methods.tuning import profile_hparams, train_config  # noqa: E402,F401
