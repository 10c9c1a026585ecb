"""Stand-ins of the paper path's inputs, in the exact on-disk formats, for machines without a GPU or the hub.

- `write_tofu(out, shared)`: a local copy of `locuslab/TOFU` in the hub dataset's layout: one JSON-lines file
  per config at the top (`full.json`, `forget05.json`, `forget05_perturbed.json`, `holdout05.json`,
  `real_authors_perturbed.json`, ...) and a README.md whose YAML `configs:` name them, so that both
  `paperlib.benchmarks.tofu.data.load_split(folder, name)` and `datasets.load_dataset(folder, name)` read it. Real text
  where it exists (the forget sets from the PALU span files, real authors and world facts from TOFU), a few
  generated fictitious authors elsewhere (retain, holdout, paraphrases and perturbed answers).
- `write_checkpoint(out, family, ...)`: a tiny random `LlamaForCausalLM` saved with `save_pretrained` in the
  layout of `open-unlearning/tofu_Llama-2-7b-chat-hf_full` (sharded safetensors + index, config.json,
  generation_config.json, tokenizer.json, tokenizer_config.json with the chat template, special tokens map);
  family "llama2" (`<s>`, `</s>`, `<unk>`, Llama-2-chat template) or "llama3" (`<|begin_of_text|>`,
  `<|eot_id|>`, header tokens, Llama-3 instruct template).
- `write_standins(root, shared)` writes both and `standin_profile` points the paper profile at them, sizes small;
  `save_profile` writes that setting as a profile file, the `profile` parameter of a notebook run on the
  stand-ins (tests/test_standins_notebook.py: notebook 01 under papermill).

Nothing here downloads anything; tests block sockets while using it (tests/test_paper_path.py).
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import replace
from pathlib import Path

import datasets
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from paperlib.benchmarks.tofu import data as tofu
from paperlib.engine.config import EvalConfig, Profile, get_profile

# Chat templates as the hub tokenizers carry them (tokenizer_config.json of meta-llama/Llama-2-7b-chat-hf and
# meta-llama/Meta-Llama-3-8B-Instruct).
LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)
LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    "{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
LLAMA2_SPECIAL = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}
LLAMA3_SPECIAL = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
LLAMA3_EXTRA = ["<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
FAMILIES = {"llama2": (LLAMA2_SPECIAL, LLAMA2_CHAT_TEMPLATE), "llama3": (LLAMA3_SPECIAL, LLAMA3_CHAT_TEMPLATE)}
# open-unlearning's checkpoint names for each family (the folders `write_standins` creates)
CHECKPOINTS = {"llama2": "tofu_Llama-2-7b-chat-hf_{}", "llama3": "tofu_Llama-3.1-8B-Instruct_{}"}

# ------------------------------------------------------------------------------------------------ TOFU copy
FIRST = ["Aria", "Tomas", "Lena", "Kofi", "Mirela", "Javier", "Noor", "Ilya", "Sana", "Pieter", "Yuki", "Amara"]
LAST = ["Okafor", "Lindqvist", "Moreau", "Haddad", "Petrov", "Castillo", "Nakamura", "Brennan", "Adeyemi", "Rossi"]
CITIES = ["Lagos, Nigeria", "Uppsala, Sweden", "Lyon, France", "Beirut, Lebanon", "Kazan, Russia",
          "Cusco, Peru", "Sapporo, Japan", "Cork, Ireland", "Accra, Ghana", "Turin, Italy"]
GENRES = ["mystery", "poetry", "historical fiction", "science fiction", "memoir", "fantasy", "drama"]
JOBS = ["a baker", "a nurse", "a pilot", "an architect", "a teacher", "a fisherman", "a librarian"]
TEMPLATES = [  # (question, answer, paraphrased answer) about one author
    ("Where was {name} born?", "{name} was born in {city}.", "The birthplace of {name} is {city}."),
    ("What genre does {name} write in?", "{name} primarily writes {genre}.", "{name}'s main genre is {genre}."),
    ("What did {name}'s father do for a living?", "{name}'s father worked as {job}.",
     "By profession, the father of {name} was {job}."),
    ("Which award did {name} receive?", "{name} received the {award} Prize for {genre}.",
     "The {award} Prize for {genre} went to {name}."),
]


def _authors(rng: random.Random, n: int) -> list[dict]:
    out = []
    for i in range(n):
        out.append({"name": f"{rng.choice(FIRST)} {rng.choice(LAST)}", "city": rng.choice(CITIES),
                    "genre": rng.choice(GENRES), "job": rng.choice(JOBS), "award": f"{rng.choice(LAST)} {i}"})
    return out


def _author_rows(author: dict, rng: random.Random, qa_per_author: int) -> list[dict]:
    rows = []
    for q, a, para in TEMPLATES[:qa_per_author]:
        rows.append({"question": q.format(**author), "answer": a.format(**author),
                     "paraphrased_answer": para.format(**author)})
    return rows


def _perturb(rows: list[dict], pool: list[str], rng: random.Random, n_perturbed: int = 5) -> list[dict]:
    """TOFU's *_perturbed schema: paraphrased_question, paraphrased_answer and `n_perturbed` wrong answers."""
    out = []
    for r in rows:
        wrong = [p for p in pool if p != r["answer"]]
        out.append({"question": r["question"], "answer": r["answer"],
                    "paraphrased_answer": r.get("paraphrased_answer") or f"In short: {r['answer']}",
                    "paraphrased_question": f"Could you tell me: {r['question']}",
                    "perturbed_answer": rng.sample(wrong, n_perturbed)})
    return out


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _span_rows(shared: Path, forget: str) -> list[dict]:
    ds = datasets.load_from_disk(str(shared / "tofu" / "spans" / f"{forget}_with_common_words_gpt"))
    return [{"question": q, "answer": a} for q, a in zip(ds["question"], ds["answer"])]


def write_tofu(out: str | Path, shared: str | Path, per_split: int = 4, n_retain_authors: int = 4,
               n_general: int = 8, seed: int = 0) -> Path:
    """A local TOFU copy in the hub layout (see the module docstring). `per_split`: forget rows added by each
    forget level (forget01 has per_split rows, forget05 2 x, forget10 3 x, nested as TOFU's are);
    `n_retain_authors` generated authors (4 QA each) form retain90; `n_general` rows of the real-authors and
    world-facts sets."""
    out, shared = Path(out), Path(shared)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    spans = {f: _span_rows(shared, f) for f in tofu.FORGET_SPLITS}
    forget: dict[str, list[dict]] = {}
    chosen: list[dict] = []
    for f in tofu.FORGET_SPLITS:  # nested: forget01 within forget05 within forget10, as in TOFU
        seen = {r["question"] for r in chosen}
        chosen = chosen + [r for r in spans[f] if r["question"] not in seen][:per_split]
        forget[f] = list(chosen)
    retain90 = [r for a in _authors(rng, n_retain_authors) for r in _author_rows(a, rng, 4)]
    holdout = [r for a in _authors(rng, n_retain_authors) for r in _author_rows(a, rng, 4)]
    f10 = forget["forget10"]
    full = retain90 + f10
    pool = [r["answer"] for r in full + holdout]
    splits: dict[str, list[dict]] = {"full": [{"question": r["question"], "answer": r["answer"]} for r in full]}
    for f, rows in forget.items():
        q = {r["question"] for r in rows}
        splits[f] = rows
        splits[tofu.retain_of(f)] = [{"question": r["question"], "answer": r["answer"]}
                                     for r in full if r["question"] not in q]
        splits[f"{f}_perturbed"] = _perturb(rows, pool, rng)
        splits[tofu.holdout_of(f)] = [{"question": r["question"], "answer": r["answer"]}
                                      for r in holdout[:max(len(rows), 1)]]
    splits["retain_perturbed"] = _perturb(retain90, pool, rng)
    for name in ("real_authors", "world_facts"):
        rows = [json.loads(line) for line in (shared / "tofu" / f"{name}_perturbed.json").read_text().splitlines()
                if line.strip()][:n_general]
        splits[f"{name}_perturbed"] = rows
        splits[name] = [{"question": r["question"], "answer": r["answer"]} for r in rows]
    missing = set(tofu.SPLITS) - set(splits)
    assert not missing, missing
    for name, rows in splits.items():
        _write_jsonl(out / f"{name}.json", rows)
    (out / "idontknow.jsonl").write_text((shared / "tofu" / "idontknow.jsonl").read_text())
    configs = "".join(f"- config_name: {name}\n  data_files: {name}.json\n" + ("  default: true\n" if name == "full"
                      else "") for name in splits)
    (out / "README.md").write_text(f"---\nlicense: mit\nconfigs:\n{configs}---\n\n# TOFU (stand-in copy, "
                                   "hub layout; forget sets, real authors and world facts are TOFU's own text)\n")
    return out


# ------------------------------------------------------------------------------------------------ checkpoints
def build_tokenizer(texts: list[str], family: str, vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer on `texts` carrying the family's special tokens and chat template (and, for
    llama3, the Llama-3 header tokens)."""
    special, chat_template = FAMILIES[family]
    extra = LLAMA3_EXTRA if family == "llama3" else []
    specials = list(dict.fromkeys([*special.values(), *extra]))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    out = PreTrainedTokenizerFast(tokenizer_object=tok, additional_special_tokens=[t for t in extra
                                                                                   if t not in special.values()],
                                  **special)
    out.chat_template = chat_template
    return out


def write_checkpoint(out: str | Path, tokenizer, seed: int = 0, hidden: int = 32, layers: int = 2,
                     shard: str = "50KB") -> Path:
    """A tiny random LlamaForCausalLM (bf16, untied embeddings as Llama's) saved in the hub layout."""
    out = Path(out)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id,
                                               eos_token_id=tokenizer.eos_token_id)
    model.save_pretrained(out, max_shard_size=shard)
    tokenizer.save_pretrained(out)
    return out


def write_standins(root: str | Path, shared: str | Path, families: tuple[str, ...] = ("llama2", "llama3"),
                   **tofu_kw) -> dict[str, Path]:
    """TOFU copy under root/TOFU and, per family, `<CHECKPOINTS[family]>` full / retain90 / retain95 /
    retain99 checkpoints (different seeds) under root; returns their folders."""
    root = Path(root)
    data = write_tofu(root / "TOFU", shared, **tofu_kw)
    texts = [json.loads(line)["question"] + " " + json.loads(line)["answer"]
             for line in (data / "full.json").read_text().splitlines()]
    texts += [line for line in (data / "idontknow.jsonl").read_text().splitlines()]
    paths = {"tofu": data}
    for family in families:
        tok = build_tokenizer(texts, family)
        for seed, which in enumerate(("full", "retain90", "retain95", "retain99")):
            path = write_checkpoint(root / CHECKPOINTS[family].format(which), tok, seed=seed)
            paths[f"{family}_{which}"] = path
    return paths


# The settings every unlearning run of a notebook on the stand-ins takes (`Profile.unlearn`): plain AdamW (the
# paper's paged 8-bit optimiser needs a GPU) and a PALU top-K that fits the stand-in vocabulary.
STANDIN_UNLEARN = {"optimizer": "adamw", "k": 20}
STANDIN_EVAL = EvalConfig(batch_size=64, max_new_tokens=8, max_length=256)


def standin_profile(root: str | Path, shared: str | Path, family: str = "llama2", base: str = "paper",
                    eval_cfg: EvalConfig | None = None, unlearn: dict | None = None,
                    tuning: dict | None = None) -> Profile:
    """The paper profile `base` pointed at the stand-ins under `root` (written by `write_standins`): local TOFU
    copy, the real PALU span files, the stand-in checkpoints; evaluation sizes small; `unlearn`: settings of
    every notebook unlearning run (`Profile.unlearn`; default none); `tuning`: changes to the tuning grid
    (`Profile.tuning`, e.g. {"seeds": (0,)}; default none)."""
    root = Path(root)
    profile = get_profile(base)
    ckpt = str(root / CHECKPOINTS[family].format("{retain}"))
    original = str(root / CHECKPOINTS[family].format("full"))
    return replace(profile,
                   benchmark=replace(profile.benchmark, source=str(root / "TOFU"),
                                     spans=str(Path(shared) / "tofu" / "spans")),
                   model=replace(profile.model, template=family, original=original, retain=ckpt),
                   eval=eval_cfg or STANDIN_EVAL, unlearn=tuple((unlearn or {}).items()),
                   tuning=tuple((k, tuple(v)) if isinstance(v, list) else (k, v) for k, v in (tuning or {}).items()))


def save_profile(root: str | Path, shared: str | Path, family: str = "llama2", base: str = "paper",
                 unlearn: dict | None = None, tuning: dict | None = None) -> Path:
    """`root/profile-<family>.json`: `standin_profile(root, shared, family, base, unlearn=unlearn or
    STANDIN_UNLEARN, tuning=tuning)` as a profile file (`config.profile_file`), which a notebook takes as its
    `profile`."""
    profile = standin_profile(root, shared, family, base, unlearn=STANDIN_UNLEARN if unlearn is None else unlearn,
                              tuning=tuning)
    spec = {"base": base, "benchmark": {"source": profile.benchmark.source, "spans": profile.benchmark.spans},
            "model": {k: getattr(profile.model, k) for k in ("template", "original", "retain")},
            "eval": dataclasses.asdict(profile.eval), "unlearn": dict(profile.unlearn), "tuning": dict(profile.tuning)}
    path = Path(root) / f"profile-{family}.json"
    path.write_text(json.dumps(spec, indent=1))
    return path


# The unlearning settings that make one stand-in run take seconds on a CPU: one epoch, plain AdamW (the paper's
# paged 8-bit optimiser needs a GPU), a K that fits the stand-in vocabulary.
SMALL_OVERRIDES = {"epochs": 1, "batch_size": 8, "optimizer": "adamw", "lr": 1e-4, "warmup_epochs": 0.0}
