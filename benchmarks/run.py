"""`make bench`: speed, measured as ratios within one run (the machine is noisy).

Evaluation: one full mini TOFU evaluation of the original model (every metric, generation included)
as a multiple of one teacher-forced pass over the same (question, answer) pairs.
"""

from __future__ import annotations

import time

from paperlib import evaluate, pipeline
from paperlib.config import get_profile
from paperlib.models import load_model, load_tokenizer


def bench_evaluation(profile_name: str = "mini", forget: str = "forget10") -> dict[str, float]:
    profile = get_profile(profile_name)
    path = pipeline.original_model(profile)
    model, tok = load_model(path), load_tokenizer(path)
    source = pipeline.benchmark_source(profile)
    ev = evaluate.TofuEvaluator(model, tok, profile.model.template, source, forget, profile.eval, progress=False)
    pairs = [(q, a) for ds in ev.sets.values() for q, a in zip(ds["question"], ds["answer"])]
    kwargs = {"batch_size": profile.eval.batch_size, "max_length": profile.eval.max_length}
    evaluate.teacher_forced(model, tok, profile.model.template, pairs[:64], **kwargs)  # warm-up
    t0 = time.perf_counter()
    evaluate.teacher_forced(model, tok, profile.model.template, pairs, **kwargs)
    one_pass = time.perf_counter() - t0
    t0 = time.perf_counter()
    ev.run()
    full = time.perf_counter() - t0
    return {"questions": len(pairs), "one_pass_s": one_pass, "full_eval_s": full, "ratio": full / one_pass}


def main() -> None:
    r = bench_evaluation()
    print(f"evaluation (mini, forget10, {r['questions']} questions): one teacher-forced pass {r['one_pass_s']:.2f} s, "
          f"full TOFU evaluation {r['full_eval_s']:.2f} s = {r['ratio']:.1f}x one pass")


if __name__ == "__main__":
    main()
