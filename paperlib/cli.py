"""`paperlib` command line: evaluate, unlearn, reproduce."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from paperlib.config import PROFILE_NAMES
from paperlib.data.tofu import FORGET_SPLITS


def _evaluate(args: argparse.Namespace) -> None:
    """Evaluate any causal LM folder (or hub id) on TOFU / mini-TOFU and write open-unlearning logs."""
    from paperlib import evaluate, pipeline
    from paperlib.config import get_profile
    from paperlib.models import load_model, load_tokenizer

    profile = get_profile(args.profile or ("paper" if args.benchmark == "tofu" else "mini"))
    if profile.benchmark.name != args.benchmark:
        raise SystemExit(f"--benchmark {args.benchmark} with profile {profile.name!r} (a {profile.benchmark.name} "
                         f"profile); allowed: tofu with paper, mini-tofu with smoke or mini")
    if args.source:
        profile = replace(profile, benchmark=replace(profile.benchmark, source=args.source))
    template = args.template or profile.model.template
    model, tok = load_model(args.model), load_tokenizer(args.model)
    retain_log = evaluate.load_log(args.retain_log) if args.retain_log else None
    _, summary = evaluate.evaluate_tofu(model, tok, template, pipeline.benchmark_source(profile), args.forget,
                                        profile.eval, retain_log, out_dir=args.out)
    print(json.dumps(summary, indent=1))
    print(f"wrote {Path(args.out) / 'TOFU_EVAL.json'} and TOFU_SUMMARY.json")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paperlib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("evaluate", help=_evaluate.__doc__)
    ev.add_argument("--model", required=True, help="checkpoint folder or hub id")
    ev.add_argument("--benchmark", default="mini-tofu", choices=["tofu", "mini-tofu"])
    ev.add_argument("--source", default=None, help="tofu: hub id or local folder in TOFU's layout")
    ev.add_argument("--profile", default=None, choices=PROFILE_NAMES,
                    help="evaluation sizes (default: paper for tofu, mini for mini-tofu)")
    ev.add_argument("--forget", default="forget10", choices=FORGET_SPLITS)
    ev.add_argument("--template", default=None, choices=["tiny", "llama2", "llama3"],
                    help="prompt format (default: the profile's)")
    ev.add_argument("--retain-log", default=None, help="retain model's TOFU_EVAL.json (for forget_quality)")
    ev.add_argument("--out", required=True, help="output folder")
    ev.set_defaults(func=_evaluate)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
