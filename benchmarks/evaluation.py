"""1c: the full mini TOFU evaluation as a multiple of one teacher-forced pass, where its time goes, and greedy
generation tokens/s batched vs one question at a time.

One teacher-forced pass = `evaluate.teacher_forced` (avg_loss) over the (question, answer) pairs of every set
the evaluation reads (forget, perturbed-forget, retain, holdout, real authors, world facts), the unit the
issue's 4x target is counted in. The full evaluation (`TofuEvaluator.run`) also reads every paraphrased and
perturbed answer and generates the four ROUGE sets' answers; `tf_token_ratio` says how many more tokens its
teacher-forced passes read than the one pass (a floor for the ratio, whatever the batching).
"""

from __future__ import annotations

import time

from common import median

from paperlib.benchmarks.tofu import evaluate, pipeline
from paperlib.engine import encoding
from paperlib.engine.config import Profile
from paperlib.engine.models import load_model, load_tokenizer


class _Clock:
    """Wraps evaluate.teacher_forced / evaluate.generate during one run() to time each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float, list]] = []

    def __enter__(self) -> _Clock:
        self.tf, self.gen = evaluate.teacher_forced, evaluate.generate

        def tf(model, tok, template, pairs, *a, **kw):
            t0 = time.perf_counter()
            out = self.tf(model, tok, template, pairs, *a, **kw)
            dt = time.perf_counter() - t0
            kind = "teacher-forced (MIA scores: forget + holdout answers)" if kw.get("full") else \
                "teacher-forced (answers, paraphrases, perturbed answers)"
            self.calls.append((kind, dt, list(pairs)))
            return out

        def gen(*a, **kw):
            t0 = time.perf_counter()
            out = self.gen(*a, **kw)
            self.calls.append(("generation (ROUGE sets)", time.perf_counter() - t0, []))
            return out

        evaluate.teacher_forced, evaluate.generate = tf, gen
        return self

    def __exit__(self, *exc) -> None:
        evaluate.teacher_forced, evaluate.generate = self.tf, self.gen


def _gen_tokens(tok, texts) -> int:
    return sum(len(tok(t, add_special_tokens=False)["input_ids"]) + 1 for t in texts)  # + EOS


def bench_evaluation(profile: Profile, forget: str = "forget10", repeats: int = 3, single: int = 16) -> dict:
    path = pipeline.original_model(profile)
    model, tok = load_model(path), load_tokenizer(path)
    source = pipeline.benchmark_source(profile)
    tpl, cfg = profile.model.template, profile.eval
    ev = evaluate.TofuEvaluator(model, tok, tpl, source, forget, cfg, progress=False)
    pairs = [(q, a) for ds in ev.sets.values() for q, a in zip(ds["question"], ds["answer"])]
    one_tokens = sum(len(encoding.encode(tok, tpl, q, a, max_length=cfg.max_length)["input_ids"]) for q, a in pairs)
    kw = {"batch_size": cfg.batch_size, "max_length": cfg.max_length}
    evaluate.teacher_forced(model, tok, tpl, pairs[:64], **kw)  # warm-up
    one, full, parts = [], [], []
    for _ in range(repeats):  # interleaved: one pass, then the full evaluation
        t0 = time.perf_counter()
        evaluate.teacher_forced(model, tok, tpl, pairs, **kw)
        one.append(time.perf_counter() - t0)
        with _Clock() as clock:
            t0 = time.perf_counter()
            ev.run()
            full.append(time.perf_counter() - t0)
        parts.append(clock.calls)
    split: dict[str, list[float]] = {}
    for calls, total in zip(parts, full):
        seen = {}
        for kind, dt, _ in calls:
            seen[kind] = seen.get(kind, 0.0) + dt
        seen["ROUGE, truth ratios, zlib, logs (the rest)"] = total - sum(seen.values())
        for k, v in seen.items():
            split.setdefault(k, []).append(v)
    tf_tokens = sum(len(encoding.encode(tok, tpl, q, a, max_length=cfg.max_length)["input_ids"])
                    for _, _, qa in parts[0] for q, a in qa)
    one_s, full_s = median(one), median(full)
    # generation: batched (the evaluation's batch size) vs one question at a time, same questions
    qs = list(ev.sets["forget"]["question"]) + list(ev.sets["retain"]["question"])
    qs = qs[:cfg.batch_size]
    t0 = time.perf_counter()
    batched = evaluate.generate(model, tok, tpl, qs, cfg.max_new_tokens, cfg.batch_size)
    batched_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    singles = [evaluate.generate(model, tok, tpl, [q], cfg.max_new_tokens, 1)[0] for q in qs[:single]]
    single_s = time.perf_counter() - t0
    return {"profile": profile.name, "forget": forget, "repeats": repeats, "questions": len(pairs),
            "one_pass_s": one_s, "full_eval_s": full_s, "ratio": full_s / one_s,
            "one_pass_tokens": one_tokens, "full_tf_tokens": tf_tokens, "tf_token_ratio": tf_tokens / one_tokens,
            "split_s": {k: median(v) for k, v in split.items()},
            "split_share": {k: median(v) / full_s for k, v in split.items()},
            "generation": {"questions_batched": len(qs), "batch_size": cfg.batch_size,
                           "batched_tokens_per_s": _gen_tokens(tok, batched) / batched_s,
                           "questions_single": single, "single_tokens_per_s": _gen_tokens(tok, singles) / single_s,
                           "max_new_tokens": cfg.max_new_tokens}}
