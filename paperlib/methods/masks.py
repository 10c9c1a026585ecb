"""Parameter masks for localized unlearning ("Does Localization Inform Unlearning?"; methods.md, loc-unlearn).

A mask is `{parameter name: bool tensor}` (True = may change), the form `paperlib.engine.unlearn.unlearn(...,
update_mask=)` and `paperlib.engine.train.train` take. Every attribution gives a score per weight; the mask keeps
the top `ratio` of the candidate weights, over all candidates at once (`scope="global"`) or within each
tensor (`"per_tensor"`), exactly `floor(ratio * n + 1/2)` entries (ties broken by `torch.topk`'s order).

Attributions (g_D = sum over the samples of D of the gradient of that sample's mean answer-token NLL, i.e.
"summed over the data"; g_f on the forget split, g_r on its retain split; theta the current weights):

- `random`: uniform scores (torch.rand, seeded); `random_down`: the same over MLP down_proj weights only.
- `activation` (down_proj only): per FFN neuron j of each layer, |mean over the forget answer tokens of its
  activation h_j| x ||down_proj[:, j]||_2, h = act(gate(x)) * up(x) (the down_proj input). A neuron's score
  is given to its whole down_proj column, so selected neurons mask whole columns (only the column at the cut
  can be partial, to keep the count exact). Answer tokens = the positions whose token is part of the answer
  (labels != -100, EOS included). Choice: |mean h| (`activation_reduce="abs_mean"`); `"mean_abs"` = mean |h|.
- `wagle`: |(theta - g_r / mu) * g_f|, mu = 1e-3 (`mu`).
- `memflex`: units = one row (output unit) of a 2-D weight, or a whole 1-D tensor. cos_u = cos(g_f[u],
  g_r[u]) (0 where a gradient is zero), m_u = ||g_f[u]||. Choice (the paper's thresholds are not given):
  `memflex_combine="rank"` ranks all units by ascending cos and by descending m and scores a unit by the sum
  of its two rank positions (Borda count; low cos and high m first); `"product"` scores (1 - cos_u) / 2 * m_u.
  A unit's score is given to each of its weights (only the unit at the cut can be partial).
- `gradient`: |g_f|; `snip`: |g_f * theta|.

Candidate weights (`params`): `"all"` = every parameter of the model (embeddings and norms included; tied
weights once), `"linear"` = the 2-D weights of the decoder layers, `"down"` = the MLP down_proj weights.
Default: `"down"` for random_down and activation, `"all"` otherwise.

`kind="random_complement"`: a uniformly random mask with the same number of entries (per tensor with
`per_tensor`, in total with `global`) over the same candidates, disjoint from the normal mask, drawn with
the same seed (for `random` masks: the next-ranked entries of the same draw, which are a uniform random
subset of the rest). Needs ratio <= 0.5.

`save_mask` / `load_mask`: `DIR/mask.safetensors` (bool tensors) and `DIR/mask.json` (the config that made
the mask, the architecture, every tensor's shape and count, a digest); loading refuses another architecture,
missing tensors or a changed file with one `PaperlibError`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from paperlib.engine.constants import IGNORE
from paperlib.engine.errors import PaperlibError

ATTRIBUTIONS = ("random", "random_down", "activation", "wagle", "memflex", "gradient", "snip")
SCOPES = ("global", "per_tensor")
KINDS = ("normal", "random_complement")
PARAMS = ("all", "linear", "down")
NEEDS_FORGET = ("activation", "wagle", "memflex", "gradient", "snip")
NEEDS_RETAIN = ("wagle", "memflex")
MASK_FILE, INFO_FILE = "mask.safetensors", "mask.json"
ARCH_KEYS = ("model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
             "num_attention_heads", "num_key_value_heads", "tie_word_embeddings")


@dataclass(frozen=True)
class MaskConfig:
    """How a mask is made (see the module docstring); checked on creation (a `PaperlibError` per bad field)."""

    attribution: str = "wagle"
    ratio: float = 0.1  # share of the candidate weights kept, in (0, 1]
    scope: str = "global"  # "global" | "per_tensor"
    kind: str = "normal"  # "normal" | "random_complement"
    seed: int = 0
    params: str = ""  # "" = the attribution's default ("down" for random_down / activation, else "all")
    mu: float = 1e-3  # wagle
    activation_reduce: str = "abs_mean"  # activation: |mean h| ("abs_mean") or mean |h| ("mean_abs")
    memflex_combine: str = "rank"  # memflex: "rank" (Borda count of the two rankings) or "product"
    batch_size: int = 8  # gradient / activation passes

    def __post_init__(self) -> None:
        _choice("attribution", self.attribution, ATTRIBUTIONS)
        if isinstance(self.ratio, bool) or not isinstance(self.ratio, (int, float)) or not 0 < self.ratio <= 1:
            raise PaperlibError(f"mask ratio {self.ratio!r}; allowed: a number in (0, 1], e.g. 0.1")
        _choice("scope", self.scope, SCOPES)
        _choice("kind", self.kind, KINDS)
        _choice("params", self.params, ("", *PARAMS))
        _choice("activation_reduce", self.activation_reduce, ("abs_mean", "mean_abs"))
        _choice("memflex_combine", self.memflex_combine, ("rank", "product"))
        if self.kind == "random_complement" and self.ratio > 0.5:
            raise PaperlibError(f"mask ratio {self.ratio} with kind=random_complement; allowed: ratio <= 0.5 (the "
                                "complement must fit beside the normal mask)")
        if self.attribution in ("random_down", "activation") and self.params not in ("", "down"):
            raise PaperlibError(f"{self.attribution} masks with params={self.params!r}; allowed: down")
        if not self.mu > 0 or self.batch_size < 1:
            raise PaperlibError(f"mu={self.mu}, batch_size={self.batch_size}; allowed: mu > 0, batch_size >= 1")

    @property
    def candidates(self) -> str:
        if self.params:
            return self.params
        return "down" if self.attribution in ("random_down", "activation") else "all"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MaskConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise PaperlibError(f"unknown mask settings {unknown}; allowed: {', '.join(sorted(names))}")
        return cls(**d)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise PaperlibError(f"mask {name} {value!r}; allowed: {', '.join(a or repr(a) for a in allowed)}")


# ----------------------------------------------------------------------------------------- candidates
def candidate_names(model: torch.nn.Module, params: str) -> list[str]:
    """Names of the parameters a mask may select (see the module docstring)."""
    _choice("params", params, PARAMS)
    named = list(model.named_parameters())
    if params == "down":
        names = [n for n, _ in named if n.endswith("mlp.down_proj.weight")]
    elif params == "linear":
        names = [n for n, p in named if ".layers." in n and n.endswith(".weight") and p.dim() == 2]
    else:
        names = [n for n, _ in named]
    if not names:
        raise PaperlibError(f"the model has no parameter for params={params!r} (e.g. no mlp.down_proj); allowed: "
                            f"{', '.join(PARAMS)}")
    return names


# ----------------------------------------------------------------------------------------- data passes
def _batches(samples: Sequence[dict], collate: Callable, batch_size: int, device):
    for i in range(0, len(samples), batch_size):
        batch = collate(list(samples[i:i + batch_size]))
        yield {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}


def sample_nll(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """Per-sample mean NLL over the answer tokens (EOS included) [B]: the loss whose gradients are summed."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    z, y = logits[:, :-1], batch["labels"][:, 1:]
    nll = torch.nn.functional.cross_entropy(z.transpose(1, 2), y, ignore_index=IGNORE, reduction="none")
    return nll.sum(-1) / (y != IGNORE).sum(-1)


def gradient_sum(model: torch.nn.Module, samples: Sequence[dict], collate: Callable, names: Sequence[str],
                 batch_size: int = 8) -> dict[str, torch.Tensor]:
    """sum_i grad of sample i's mean answer NLL, for the parameters `names` (float32, on the model's device).
    The model is left as it was (requires_grad flags, no .grad, its train/eval mode)."""
    if not samples:
        raise PaperlibError("no samples to compute a gradient from; allowed: a non-empty split")
    params = dict(model.named_parameters())
    flags = {n: p.requires_grad for n, p in params.items()}
    was_training = model.training
    model.eval()
    for n, p in params.items():
        p.requires_grad_(n in names)
        p.grad = None
    device = next(model.parameters()).device
    try:
        for batch in _batches(samples, collate, batch_size, device):
            sample_nll(model, batch).sum().backward()
        out = {n: params[n].grad.detach().float().clone() if params[n].grad is not None
               else torch.zeros_like(params[n], dtype=torch.float32) for n in names}
    finally:
        for n, p in params.items():
            p.grad = None
            p.requires_grad_(flags[n])
        model.train(was_training)
    return out


def _down_modules(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    mods = {f"{n}.weight": m for n, m in model.named_modules() if n.endswith("mlp.down_proj")}
    if not mods:
        raise PaperlibError("activation masks need MLP down_proj layers (Llama-style); the model has none")
    return mods


@torch.no_grad()
def neuron_activations(model: torch.nn.Module, samples: Sequence[dict], collate: Callable, batch_size: int = 8,
                       reduce: str = "abs_mean") -> dict[str, torch.Tensor]:
    """Per down_proj weight name: |mean| (or mean |.|) of each FFN neuron's activation (the down_proj input)
    over the answer tokens (labels != -100) of `samples` [intermediate_size]."""
    mods = _down_modules(model)
    sums = {n: None for n in mods}
    count = [0]
    current: dict[str, torch.Tensor] = {}

    def hook(name):
        def fn(_module, inputs):
            h = inputs[0].float()[current["mask"]]  # [N answer tokens, I]
            h = h.abs() if reduce == "mean_abs" else h
            s = h.sum(0)
            sums[name] = s if sums[name] is None else sums[name] + s
        return fn

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in mods.items()]
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        for batch in _batches(samples, collate, batch_size, device):
            current["mask"] = batch["labels"] != IGNORE
            count[0] += int(current["mask"].sum())
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if not count[0]:
        raise PaperlibError("no answer tokens in the forget samples; allowed: samples with labels != -100")
    return {n: (s / count[0]).abs() for n, s in sums.items()}


# ----------------------------------------------------------------------------------------- scores
def _units(g: torch.Tensor) -> torch.Tensor:
    """A tensor as [units, unit size]: rows of a 2-D weight (or more-D, flattened after dim 0), one unit if 1-D."""
    return g.reshape(1, -1) if g.dim() < 2 else g.reshape(g.shape[0], -1)


def memflex_scores(g_forget: dict[str, torch.Tensor], g_retain: dict[str, torch.Tensor],
                   combine: str = "rank") -> dict[str, torch.Tensor]:
    """Per-weight memflex scores: each unit's combined score (module docstring) broadcast over its weights."""
    cos, mag, sizes = [], [], []
    for n, gf in g_forget.items():
        f, r = _units(gf), _units(g_retain[n])
        nf, nr = f.norm(dim=1), r.norm(dim=1)
        c = (f * r).sum(1) / (nf * nr)
        cos.append(torch.where((nf > 0) & (nr > 0), c, torch.zeros_like(c)))
        mag.append(nf)
        sizes.append(len(nf))
    cos_all, mag_all = torch.cat(cos), torch.cat(mag)
    if combine == "product":
        unit = (1 - cos_all) / 2 * mag_all
    else:
        n_units = len(cos_all)
        by_cos = torch.empty(n_units, dtype=torch.float64)
        by_cos[torch.argsort(cos_all, stable=True)] = torch.arange(n_units - 1, -1, -1, dtype=torch.float64)
        by_mag = torch.empty(n_units, dtype=torch.float64)
        by_mag[torch.argsort(mag_all, stable=True)] = torch.arange(n_units, dtype=torch.float64)
        unit = by_cos + by_mag  # higher = lower cos and higher |g_f|
    out = {}
    for (n, gf), u in zip(g_forget.items(), torch.split(unit, sizes)):
        out[n] = u.reshape(-1, *([1] * (gf.dim() - 1))).expand_as(gf) if gf.dim() >= 2 else u.expand_as(gf)
    return out


def attribution_scores(model: torch.nn.Module, cfg: MaskConfig, forget: Sequence[dict] = (),
                       retain: Sequence[dict] = (), collate: Callable | None = None) -> dict[str, torch.Tensor]:
    """Score per candidate weight (higher = selected first), float, on the model's device. `forget` / `retain`:
    encoded samples (input_ids, labels) and `collate` batches them; random attributions need neither."""
    a = cfg.attribution
    if a in NEEDS_FORGET and (not forget or collate is None):
        raise PaperlibError(f"{a} masks need the forget samples and a collate function")
    if a in NEEDS_RETAIN and not retain:
        raise PaperlibError(f"{a} masks need the retain samples")
    names = candidate_names(model, cfg.candidates)
    params = dict(model.named_parameters())
    if a in ("random", "random_down"):
        gen = torch.Generator().manual_seed(cfg.seed)
        return {n: torch.rand(params[n].shape, generator=gen) for n in names}
    if a == "activation":
        acts = neuron_activations(model, forget, collate, cfg.batch_size, cfg.activation_reduce)
        out = {}
        for n in names:
            w = params[n].detach().float()
            out[n] = (acts[n] * w.norm(dim=0)).expand_as(w)  # neuron j = column j of down_proj [H, I]
        return out
    g_f = gradient_sum(model, forget, collate, names, cfg.batch_size)
    if a == "gradient":
        return {n: g.abs() for n, g in g_f.items()}
    if a == "snip":
        return {n: (g * params[n].detach().float()).abs() for n, g in g_f.items()}
    g_r = gradient_sum(model, retain, collate, names, cfg.batch_size)
    if a == "wagle":
        return {n: ((params[n].detach().float() - g_r[n] / cfg.mu) * g_f[n]).abs() for n in names}
    return memflex_scores(g_f, g_r, cfg.memflex_combine)


# ----------------------------------------------------------------------------------------- selection
def _keep(ratio: float, n: int) -> int:
    return min(n, int(math.floor(ratio * n + 0.5)))


def _top(flat: torch.Tensor, k: int) -> torch.Tensor:
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    if k:
        keep[torch.topk(flat.float().cpu(), k, sorted=False).indices] = True
    return keep


def top_mask(scores: dict[str, torch.Tensor], ratio: float, scope: str = "global") -> dict[str, torch.Tensor]:
    """The `ratio` highest-scoring entries, over all tensors (`global`) or within each (`per_tensor`), as
    {name: bool tensor} on the CPU (every scored tensor is present, possibly all False)."""
    _choice("scope", scope, SCOPES)
    if not 0 < ratio <= 1:
        raise PaperlibError(f"mask ratio {ratio!r}; allowed: a number in (0, 1]")
    if scope == "per_tensor":
        return {n: _top(s.reshape(-1), _keep(ratio, s.numel())).reshape(s.shape) for n, s in scores.items()}
    flat = torch.cat([s.detach().float().cpu().reshape(-1) for s in scores.values()])
    keep = _top(flat, _keep(ratio, flat.numel()))
    return {n: part.reshape(s.shape) for (n, s), part in zip(scores.items(), torch.split(keep, [s.numel() for s in
                                                                                            scores.values()]))}


def random_complement(normal: dict[str, torch.Tensor], seed: int = 0, scope: str = "global"
                      ) -> dict[str, torch.Tensor]:
    """A uniformly random mask disjoint from `normal` with as many entries (per tensor with `per_tensor`, in
    total with `global`), over the same tensors; drawn with `seed` (module docstring)."""
    _choice("scope", scope, SCOPES)
    gen = torch.Generator().manual_seed(seed)
    scores = {}
    for n, m in normal.items():
        s = torch.rand(m.shape, generator=gen)
        s[m] = -1.0  # never picked while an unselected entry is left
        scores[n] = s
    need = {n: int(m.sum()) for n, m in normal.items()}
    free = {n: m.numel() - need[n] for n, m in normal.items()}
    if scope == "per_tensor":
        short = [n for n in normal if free[n] < need[n]]
        if short:
            raise PaperlibError(f"no disjoint complement of the same size fits in {short[:3]}; allowed: ratio <= 0.5")
        return {n: _top(s.reshape(-1), need[n]).reshape(s.shape) for n, s in scores.items()}
    if sum(free.values()) < sum(need.values()):
        raise PaperlibError("no disjoint complement of the same size fits; allowed: ratio <= 0.5")
    flat = torch.cat([s.reshape(-1) for s in scores.values()])
    keep = _top(flat, sum(need.values()))
    return {n: part.reshape(s.shape) for (n, s), part in zip(scores.items(), torch.split(keep, [s.numel() for s in
                                                                                            scores.values()]))}


def make_mask(model: torch.nn.Module, cfg: MaskConfig, forget: Sequence[dict] = (), retain: Sequence[dict] = (),
              collate: Callable | None = None) -> dict[str, torch.Tensor]:
    """The mask `cfg` describes for `model` ({name: bool tensor} on the CPU, every candidate tensor present)."""
    mask = top_mask(attribution_scores(model, cfg, forget, retain, collate), cfg.ratio, cfg.scope)
    if cfg.kind == "random_complement":
        mask = random_complement(mask, cfg.seed, cfg.scope)
    return mask


def summary(mask: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Entries selected, candidate entries, their ratio, and the number of tensors."""
    selected = sum(int(m.sum()) for m in mask.values())
    total = sum(m.numel() for m in mask.values())
    return {"selected": selected, "candidates": total, "ratio": selected / max(total, 1), "tensors": len(mask)}


# ----------------------------------------------------------------------------------------- profiles
def encoded_split(profile, split: str, tokenizer) -> list[dict]:
    """Encoded (input_ids, labels) samples of one split of the profile's benchmark."""
    from paperlib.benchmarks.tofu import data as tofu
    from paperlib.benchmarks.tofu import pipeline
    from paperlib.engine import encoding

    ds = tofu.load_split(pipeline.benchmark_source(profile), split)
    return [{k: v for k, v in encoding.encode(tokenizer, profile.model.template, q, a,
                                              max_length=profile.eval.max_length).items()
             if k in ("input_ids", "labels")} for q, a in zip(ds["question"], ds["answer"])]


def mask_for(profile, cfg: MaskConfig, forget: str = "forget10", model_path: str | None = None
             ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(mask, info) for the model at `model_path` (default: the profile's original model), with the forget
    split `forget` and its retain split as data; `info` = what `save_mask` records (config, data, timing)."""
    from functools import partial

    from paperlib.benchmarks.tofu import data as tofu
    from paperlib.benchmarks.tofu import pipeline
    from paperlib.engine import checks, encoding
    from paperlib.engine.models import load_model, load_tokenizer

    tofu.check_split(forget, tofu.FORGET_SPLITS)
    if model_path is not None:
        checks.check_model_dir(model_path)
    model_path = str(model_path or pipeline.original_model(profile))
    t0 = time.perf_counter()
    data: dict[str, list[dict]] = {"forget": [], "retain": []}
    collate = None
    if cfg.attribution in NEEDS_FORGET:
        tok = load_tokenizer(model_path)
        data["forget"] = encoded_split(profile, forget, tok)
        if cfg.attribution in NEEDS_RETAIN:
            data["retain"] = encoded_split(profile, tofu.retain_of(forget), tok)
        collate = partial(encoding.collate, pad_id=tok.pad_token_id)
        model = load_model(model_path)
    else:  # random masks: shapes only
        model = _meta_model(model_path)
    mask = make_mask(model, cfg, data["forget"], data["retain"], collate)
    from paperlib.benchmarks.tofu.pipeline import model_identity

    info = {"config": asdict(cfg), "forget": forget, "model": model_path, "model_identity": model_identity(model_path),
            "seconds": time.perf_counter() - t0}
    return mask, info


# ----------------------------------------------------------------------------------------- save / load
def _model_config(model: Any):
    """A transformers config from a model, a config or a checkpoint path."""
    from transformers import AutoConfig, PretrainedConfig

    if isinstance(model, PretrainedConfig):
        return model
    if isinstance(model, torch.nn.Module):
        return model.config
    return AutoConfig.from_pretrained(str(model))


def _meta_model(model: Any) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    if isinstance(model, torch.nn.Module):
        return model
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(_model_config(model))


def architecture(model: Any) -> dict[str, Any]:
    """The architecture fields a mask depends on, from a model, its config or a checkpoint path."""
    cfg = _model_config(model)
    return {k: getattr(cfg, k, None) for k in ARCH_KEYS}


def save_mask(mask: dict[str, torch.Tensor], out: str | Path, model: Any, info: dict[str, Any] | None = None
              ) -> Path:
    """Write `mask` to the folder `out` (mask.safetensors + mask.json with `info`, e.g. `mask_for`'s, the
    architecture of `model` and every tensor's shape and count). Refuses a file or a non-empty folder that
    does not hold a mask."""
    from safetensors.torch import save_file

    from paperlib.engine.unlearn import mask_digest

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PaperlibError(f"--out {out} is a file; allowed: a new or empty folder, or a mask folder")
    if out.is_dir() and any(out.iterdir()) and not (out / INFO_FILE).is_file():
        raise PaperlibError(f"--out {out} is a non-empty folder that holds no mask; allowed: a new or empty folder, "
                            "or a mask folder")
    bad = [n for n, m in mask.items() if m.dtype != torch.bool]
    if bad:
        raise PaperlibError(f"mask tensors {bad[:3]} are not bool; allowed: bool tensors")
    out.mkdir(parents=True, exist_ok=True)
    record = {**(info or {}), "architecture": architecture(model), "summary": summary(mask),
              "digest": mask_digest(mask),
              "tensors": {n: {"shape": list(m.shape), "selected": int(m.sum())} for n, m in mask.items()}}
    save_file({n: m.contiguous().cpu() for n, m in mask.items()}, str(out / MASK_FILE))
    (out / INFO_FILE).write_text(json.dumps(record, indent=1, default=str))
    return out


def load_mask(path: str | Path, model: Any = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(mask, info) from a `save_mask` folder. Refused with a `PaperlibError`: a folder without the two files,
    tensors missing from (or added to) the file, a digest that differs from the recorded one, and, with
    `model` (a model, config or checkpoint path), another architecture or names / shapes it does not have."""
    from safetensors.torch import load_file

    from paperlib.engine.unlearn import mask_digest

    p = Path(path)
    if not (p / MASK_FILE).is_file() or not (p / INFO_FILE).is_file():
        raise PaperlibError(f"mask folder {p} lacks {MASK_FILE} or {INFO_FILE}; allowed: a folder written by "
                            "`paperlib mask` / masks.save_mask")
    info = json.loads((p / INFO_FILE).read_text())
    mask = load_file(str(p / MASK_FILE))
    recorded = set(info.get("tensors", {}))
    missing, extra = sorted(recorded - set(mask)), sorted(set(mask) - recorded)
    if missing or extra:
        raise PaperlibError(f"mask {p}: tensors missing from {MASK_FILE}: {missing[:3]} ({len(missing)}), not in "
                            f"{INFO_FILE}: {extra[:3]} ({len(extra)}); allowed: the folder as save_mask wrote it")
    for n, m in mask.items():
        if m.dtype != torch.bool or list(m.shape) != info["tensors"][n]["shape"]:
            raise PaperlibError(f"mask {p}: tensor {n} is {m.dtype} {tuple(m.shape)}, recorded bool "
                                f"{tuple(info['tensors'][n]['shape'])}")
    if info.get("digest") and mask_digest(mask) != info["digest"]:
        raise PaperlibError(f"mask {p}: {MASK_FILE} differs from the digest in {INFO_FILE} (changed after saving)")
    if model is not None:
        check_compatible(mask, info, model, str(p))
    return mask, info


def check_compatible(mask: dict[str, torch.Tensor], info: dict[str, Any], model: Any, where: str = "mask") -> None:
    """Raise a `PaperlibError` unless the mask was made for `model`'s architecture and every tensor it names
    exists in `model` with the same shape (checked on a weightless copy: no compute)."""
    arch, made = architecture(model), info.get("architecture", {})
    diff = {k: (made.get(k), arch[k]) for k in ARCH_KEYS if k in made and made.get(k) != arch[k]}
    if diff:
        said = ", ".join(f"{k}: mask {a}, model {b}" for k, (a, b) in diff.items())
        raise PaperlibError(f"{where} was made for another architecture ({said}); allowed: a mask made for this "
                            "model (`paperlib mask --model ...`)")
    shapes = {n: tuple(q.shape) for n, q in _meta_model(model).named_parameters()}
    bad = [n for n, m in mask.items() if shapes.get(n) != tuple(m.shape)]
    if bad:
        raise PaperlibError(f"{where} names tensors this model does not have with that shape: {bad[:3]}; allowed: "
                            "a mask made for this model")
