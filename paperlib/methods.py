"""Unlearning methods: a method is a loss (from `paperlib.losses`) plus what it needs, with the papers'
hyperparameters; the registry; and each profile's training settings for unlearning.

A method object holds its hyperparameters (`hp`, a frozen dataclass with the papers' defaults), says what
it needs (`needs()`: a paired retain sample, reference-model quantities, IdK answers, span flags) and
computes `loss(model, batch, ref) -> (loss, parts)`, where `batch` holds the collated parts `forget`,
`retain`, `idk` (each: input_ids, attention_mask, labels aligned with input_ids, flags) and `ref` maps the
reference quantity names of `paperlib.reference` to batch-shaped tensors. Everything except GA, CE-U and
PDU is `L = gamma * L_forget + alpha * L_retain` (methods.md); L_retain is NLL on the paired retain sample
(`retain_loss="nll"`, default) or KL(p_ref || p_theta) over its tokens (`retain_loss="kl"`).

Profiles: `paperlib.tuning` gives each profile's unlearning schedule, tuning grid and the hyperparameters
a profile scales (e.g. PALU's K relative to the vocabulary).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from paperlib import losses as L

RETAIN_LOSSES = ("nll", "kl")
PALU_TOKENS = ("sensitive", "all")
PALU_TARGETS = ("global_mean", "local_mean", "detached_mean", "zero", "topk_min")  # c_t, methods.md (RQ4)


# ----------------------------------------------------------------------------------------- what a method needs
@dataclass(frozen=True)
class Needs:
    """What a method needs besides the forget sample. Reference quantities (`ref`) are names from
    `paperlib.reference.QUANTITIES`; `topk` is K for "forget.topk", `layer` the decoder layer of
    "retain.hidden"."""

    retain: bool = False  # a paired retain sample (batch["retain"])
    idk: bool = False  # an "I don't know" answer to the forget question (batch["idk"])
    spans: bool = False  # sensitive-token flags from the span file (batch["forget"]["sensitive"])
    common: bool = False  # TPO's unwanted-token flags from common_words (batch["forget"]["unwanted"])
    ref: frozenset[str] = frozenset()
    topk: int = 0
    layer: int = -1


# ----------------------------------------------------------------------------------------- hyperparameters
@dataclass(frozen=True)
class RetainHparams:
    """L = gamma * L_forget + alpha * L_retain (methods.md)."""

    gamma: float = 1.0
    alpha: float = 1.0
    retain_loss: str = "nll"  # "nll" (default) or "kl": KL(p_ref || p_theta) over the retain sample's tokens


@dataclass(frozen=True)
class GAHparams:
    """Gradient ascent: -NLL(forget), no retain term, no hyperparameter (Jang et al. 2023)."""


@dataclass(frozen=True)
class GDHparams(RetainHparams):
    """Gradient difference: -NLL(forget) + alpha NLL(retain); gamma = alpha = 1."""


@dataclass(frozen=True)
class NPOHparams(RetainHparams):
    """NPO (Zhang et al. 2024): beta 0.1."""

    beta: float = 0.1


@dataclass(frozen=True)
class SimNPOHparams(RetainHparams):
    """SimNPO (Fan et al. 2024): beta 4.5, delta 0, gamma 0.125, no reference model."""

    gamma: float = 0.125
    beta: float = 4.5
    delta: float = 0.0


@dataclass(frozen=True)
class DPOHparams(RetainHparams):
    """IdK-DPO (TOFU / open-unlearning): beta 0.1; `idk` = file of IdK answers ("" = the benchmark's
    idontknow.jsonl)."""

    beta: float = 0.1
    idk: str = ""


@dataclass(frozen=True)
class WGAHparams(RetainHparams):
    """WGA (Wang et al. 2025): beta 1 (paper schedule: 5 epochs)."""

    beta: float = 1.0


@dataclass(frozen=True)
class UnDIALHparams(RetainHparams):
    """UnDIAL (Dong et al. 2024): beta 10, alpha 0 (paper schedule: lr 1e-4)."""

    alpha: float = 0.0
    beta: float = 10.0


@dataclass(frozen=True)
class UnilogitHparams(RetainHparams):
    """Unilogit (Vasilev et al. 2025): gamma = alpha = 1, no other hyperparameter."""


@dataclass(frozen=True)
class TPOHparams(RetainHparams):
    """TPO, tpo_grad_diff variant (Zhou et al. 2025): beta 0.32."""

    beta: float = 0.32


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


@dataclass(frozen=True)
class RMUHparams:
    """RMU (Li et al. 2024; open-unlearning's TOFU setting): c 2, layer 7, gamma = alpha = 1; forget and
    retain MSE over answer tokens; `seed` draws the random control vector u."""

    gamma: float = 1.0
    alpha: float = 1.0
    c: float = 2.0
    layer: int = 7
    seed: int = 0


@dataclass(frozen=True)
class CEUHparams:
    """CE-U (Yang 2025): no hyperparameter, no retain term."""


@dataclass(frozen=True)
class PALUHparams(RetainHparams):
    """PALU: n (prefix budget, paper ~3; <= 0 = every sensitive token), k (top-K of the reference logits,
    paper 5000 of 32k; 1..V), target c (global_mean | local_mean | detached_mean | zero | topk_min),
    KL direction on non-sensitive tokens (theta_ref = code, ref_theta = paper text), gamma 1, alpha 1;
    `tokens="all"` treats every answer token (EOS included) as sensitive (RQ1)."""

    n: int = 3
    k: int = 5000
    target: str = "global_mean"
    kl_direction: str = "theta_ref"
    tokens: str = "sensitive"


@dataclass(frozen=True)
class NCEHparams(RetainHparams):
    """PALU's token selection with negated CE (-NLL) instead of the local entropy (RQ2); KL on non-sensitive
    tokens and retain NLL as PALU."""

    n: int = 3
    kl_direction: str = "theta_ref"
    tokens: str = "sensitive"


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


def token_mask(part: dict) -> torch.Tensor:
    """Shifted positions that predict a real (non-padding) token: the positions of a KL over 'all tokens'."""
    return part["attention_mask"][:, 1:].bool()


def sensitive_flags(part: dict, tokens: str = "sensitive") -> torch.Tensor:
    """Shifted sensitive flags of the forget part; `tokens="all"` flags every answer position."""
    z_labels = part["labels"][:, 1:]
    if tokens == "all":
        return z_labels != L.IGNORE
    return part["sensitive"][:, 1:] & (z_labels != L.IGNORE)


# ----------------------------------------------------------------------------------------- methods
class Method:
    """Base class: hyperparameters `hp`, `needs()`, `loss(model, batch, ref)`; `check(vocab, layers)` raises
    on hyperparameters the model cannot take; `setup(batches_per_epoch)` resets per-run state."""

    name: ClassVar[str] = ""
    Hparams: ClassVar[type] = GAHparams
    doc: ClassVar[str] = ""

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
        return Needs()

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
            return L.kl_div_positions(ref["retain.logprobs"], z, token_mask(batch["retain"]))
        return L.nll(z, y)

    def combine(self, forget: torch.Tensor, model: torch.nn.Module, batch: dict, ref: dict,
                **extra: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """gamma * forget + alpha * retain (retain skipped when alpha = 0), with the parts as floats."""
        parts = {"forget": forget.item(), **{k: v.item() for k, v in extra.items()}}
        loss = self.hp.gamma * forget
        if self._uses_retain():
            retain = self.retain_term(model, batch, ref)
            parts["retain"] = retain.item()
            loss = loss + self.hp.alpha * retain
        return loss, parts

    def loss(self, model: torch.nn.Module, batch: dict, ref: dict) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError


class GA(Method):
    name, Hparams, doc = "GA", GAHparams, "gradient ascent on the forget answers"

    def loss(self, model, batch, ref):
        z, y = shifted(model, batch["forget"])
        loss = L.ga_loss(z, y)
        return loss, {"forget": loss.item()}


class GD(Method):
    name, Hparams, doc = "GD", GDHparams, "gradient difference: GA + NLL on retain"

    def needs(self) -> Needs:
        return Needs(**self._retain_needs())

    def loss(self, model, batch, ref):
        z, y = shifted(model, batch["forget"])
        return self.combine(L.ga_loss(z, y), model, batch, ref)


class NPO(Method):
    name, Hparams, doc = "NPO", NPOHparams, "negative preference optimisation against the reference model"

    def validate(self) -> None:
        super().validate()
        _check_pos(self.hp, "beta")

    def needs(self) -> Needs:
        r = self._retain_needs()
        return Needs(retain=r["retain"], ref=r["ref"] | {"forget.seq_nll"})

    def loss(self, model, batch, ref):
        z, y = shifted(model, batch["forget"])
        return self.combine(L.npo_loss(L.seq_nll_sum(z, y), ref["forget.seq_nll"], self.hp.beta), model, batch, ref)


class SimNPO(Method):
    name, Hparams, doc = "SimNPO", SimNPOHparams, "reference-free, length-normalised NPO"

    def validate(self) -> None:
        super().validate()
        _check_pos(self.hp, "beta")

    def needs(self) -> Needs:
        return Needs(**self._retain_needs())

    def loss(self, model, batch, ref):
        z, y = shifted(model, batch["forget"])
        lengths = (y != L.IGNORE).sum(-1)
        forget = L.simnpo_loss(L.seq_nll_sum(z, y), lengths, self.hp.beta, self.hp.delta)
        return self.combine(forget, model, batch, ref)


class DPO(Method):
    name, Hparams, doc = "DPO", DPOHparams, "DPO with an 'I don't know' answer preferred over the forget answer"

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


class WGA(Method):
    name, Hparams, doc = "WGA", WGAHparams, "gradient ascent weighted by p_theta(y_t)^beta"

    def validate(self) -> None:
        super().validate()
        _check_nonneg(self.hp, "beta")

    def needs(self) -> Needs:
        return Needs(**self._retain_needs())

    def loss(self, model, batch, ref):
        z, y = shifted(model, batch["forget"])
        return self.combine(L.wga_loss(z, y, self.hp.beta), model, batch, ref)


class UnDIAL(Method):
    name, Hparams, doc = "UnDIAL", UnDIALHparams, "self-distillation towards the reference logits minus beta on y"

    def validate(self) -> None:
        super().validate()
        _check_nonneg(self.hp, "beta")

    def needs(self) -> Needs:
        r = self._retain_needs()
        return Needs(retain=r["retain"], ref=r["ref"] | {"forget.logprobs"})

    def loss(self, model, batch, ref):
        z, y = shifted(model, batch["forget"])
        return self.combine(L.undial_loss(z, ref["forget.logprobs"], y, self.hp.beta), model, batch, ref)


class Unilogit(Method):
    name, Hparams, doc = "Unilogit", UnilogitHparams, "self-distillation towards a uniform target-token probability"

    def needs(self) -> Needs:
        return Needs(**self._retain_needs())

    def loss(self, model, batch, ref):
        z, y = shifted(model, batch["forget"])
        return self.combine(L.unilogit_loss(z, y), model, batch, ref)


class TPO(Method):
    name, Hparams, doc = "TPO", TPOHparams, "logit preference on unwanted tokens + NLL on general tokens"

    def validate(self) -> None:
        super().validate()
        _check_pos(self.hp, "beta")

    def needs(self) -> Needs:
        r = self._retain_needs()
        return Needs(retain=r["retain"], common=True, ref=r["ref"] | {"forget.gold_logits"})

    def loss(self, model, batch, ref):
        part = batch["forget"]
        z, y = shifted(model, part)
        forget = L.tpo_loss(z, ref["forget.gold_logits"], y, part["unwanted"][:, 1:], self.hp.beta)
        return self.combine(forget, model, batch, ref)


class PDU(Method):
    """The dual variable lam lives in the method object: `setup` resets it to lam0; it is updated after
    every loss call (micro-batch) once `dual_warmup_epochs` epochs of batches have passed, and logged as
    the part `lam` (the value used in that step's loss)."""

    name, Hparams, doc = "PDU", PDUHparams, "primal-dual: logit-margin forget loss, retain loss as a constraint"

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
        if self.calls > self.warmup_calls:
            self.lam = L.pdu_dual_update(lam, retain.detach(), self.hp.eps, self.hp.eta)
        return loss, {"forget": forget.item(), "retain": retain.item(), "lam": lam}


class RMU(Method):
    name, Hparams, doc = "RMU", RMUHparams, "steer layer activations of forget answers to a random vector"

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
        """Output of decoder layer `layer` [B, T, D] (hidden_states[0] is the embedding output)."""
        return forward(model, part, hidden=True).hidden_states[self.hp.layer + 1].float()

    def loss(self, model, batch, ref):
        part = batch["forget"]
        h = self.hidden(model, part)
        if getattr(self, "_u", None) is None or self._u.shape[-1] != h.shape[-1]:
            self._u = L.rmu_control_vector(h.shape[-1], torch.Generator().manual_seed(self.hp.seed))
        forget = L.rmu_forget_loss(h, self._u, self.hp.c, part["labels"] != L.IGNORE)
        parts = {"forget": forget.item()}
        loss = self.hp.gamma * forget
        if self.hp.alpha > 0:
            r = batch["retain"]
            retain = L.rmu_retain_loss(self.hidden(model, r), ref["retain.hidden"], r["labels"] != L.IGNORE)
            parts["retain"] = retain.item()
            loss = loss + self.hp.alpha * retain
        return loss, parts


class CEU(Method):
    name, Hparams, doc = "CE-U", CEUHparams, "cross entropy against the model's own distribution without y"

    def loss(self, model, batch, ref):
        z, y = shifted(model, batch["forget"])
        loss = L.ceu_loss(z, y)
        return loss, {"forget": loss.item()}


class PALU(Method):
    name, Hparams, doc = "PALU", PALUHparams, "local entropy on the top-K logits of sensitive-token prefixes"

    def validate(self) -> None:
        super().validate()
        _check_choice("target", self.hp.target, PALU_TARGETS)
        _check_choice("kl_direction", self.hp.kl_direction, ("theta_ref", "ref_theta"))
        _check_choice("tokens", self.hp.tokens, PALU_TOKENS)
        _check_int("n", self.hp.n)
        if isinstance(self.hp.k, bool) or not isinstance(self.hp.k, int) or self.hp.k < 1:
            raise ValueError(f"k={self.hp.k!r}; allowed: an int in 1..V (vocabulary size)")

    def check(self, vocab_size: int, num_layers: int) -> None:
        if not 1 <= self.hp.k <= vocab_size:
            raise ValueError(f"k={self.hp.k}; allowed: 1..{vocab_size} (the model's vocabulary size V)")

    def needs(self) -> Needs:
        r = self._retain_needs()
        kl = {"forget.logprobs"} if self.hp.alpha > 0 else set()
        return Needs(retain=r["retain"], spans=self.hp.tokens == "sensitive",
                     ref=r["ref"] | {"forget.topk"} | kl, topk=self.hp.k)

    def loss(self, model, batch, ref):
        part = batch["forget"]
        z, y = shifted(model, part)
        sens = sensitive_flags(part, self.hp.tokens)
        ref_lp = ref.get("forget.logprobs", z.detach())
        local, kl = L.palu_loss(z, ref_lp, ref["forget.topk"], y, sens, self.hp.n, self.hp.target,
                                self.hp.kl_direction)
        loss, parts = self.combine(local, model, batch, ref, kl=kl)
        return loss + self.hp.alpha * kl, parts


class NCE(Method):
    name, Hparams, doc = "NCE", NCEHparams, "negated CE on PALU's sensitive prefixes (RQ2 ablation)"

    def validate(self) -> None:
        super().validate()
        _check_choice("kl_direction", self.hp.kl_direction, ("theta_ref", "ref_theta"))
        _check_choice("tokens", self.hp.tokens, PALU_TOKENS)
        _check_int("n", self.hp.n)

    def needs(self) -> Needs:
        r = self._retain_needs()
        kl = {"forget.logprobs"} if self.hp.alpha > 0 else set()
        return Needs(retain=r["retain"], spans=self.hp.tokens == "sensitive", ref=r["ref"] | kl)

    def loss(self, model, batch, ref):
        part = batch["forget"]
        z, y = shifted(model, part)
        sens = sensitive_flags(part, self.hp.tokens)
        prefix = L.prefix_mask(sens, self.hp.n)
        forget = -L.nll(z, torch.where(prefix, y, L.IGNORE))  # mean token NLL over the prefix positions
        kl = torch.zeros((), device=z.device)
        if self.hp.alpha > 0:
            p, q = (z, ref["forget.logprobs"]) if self.hp.kl_direction == "theta_ref" else (ref["forget.logprobs"], z)
            kl = L.kl_div_positions(p, q, (y != L.IGNORE) & ~sens)
        loss, parts = self.combine(forget, model, batch, ref, kl=kl)
        return loss + self.hp.alpha * kl, parts


METHODS: dict[str, type[Method]] = {
    cls.name: cls for cls in (GA, GD, NPO, SimNPO, DPO, WGA, UnDIAL, Unilogit, TPO, PDU, RMU, CEU, PALU, NCE)
}


def register(cls: type[Method]) -> type[Method]:
    """Add a Method subclass to the registry under `cls.name` (usable as a decorator)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a non-empty `name`")
    METHODS[cls.name] = cls
    return cls


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
# Per-profile training settings live in paperlib.tuning (one grid and one selection rule for every
# method); re-exported here for callers of the old names.
from paperlib.tuning import profile_hparams, train_config  # noqa: E402,F401
