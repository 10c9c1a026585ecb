"""`paperlib` command line: evaluate, unlearn, spans, mask, finetune, reproduce, cache.

A bad input ends the command with one line on stderr (`paperlib <command>: error: ...`) and exit code 2,
before any compute; `--debug` shows the traceback instead (docs/errors.md lists the inputs)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from paperlib.benchmarks.tofu.data import FORGET_SPLITS
from paperlib.engine import threads
from paperlib.engine.config import PAPER_PROFILE_NAMES, PROFILE_NAMES
from paperlib.engine.constants import TEMPLATES
from paperlib.engine.errors import PaperlibError

ALL_PROFILES = PROFILE_NAMES + PAPER_PROFILE_NAMES  # smoke, mini, paper and paper-<model> for every paper model


def _profile_for(args: argparse.Namespace):
    from paperlib.engine.config import get_profile

    profile = get_profile(args.profile or ("paper" if args.benchmark == "tofu" else "mini"))
    if profile.benchmark.name != args.benchmark:
        raise PaperlibError(f"--benchmark {args.benchmark} with profile {profile.name!r} (a "
                            f"{profile.benchmark.name} profile); allowed: tofu with paper, mini-tofu with smoke "
                            "or mini")
    return profile


def _evaluate(args: argparse.Namespace) -> None:
    """Evaluate any causal LM folder (or hub id) on TOFU / mini-TOFU and write open-unlearning logs."""
    from paperlib.benchmarks.tofu import data as tofu
    from paperlib.benchmarks.tofu import evaluate, pipeline
    from paperlib.engine import checks
    from paperlib.engine.models import load_model, load_tokenizer

    if args.benchmark == "muse":  # MUSE: paperlib.benchmarks.muse.evaluate (VerbMem, KnowMem, PrivLeak; MUSE_EVAL.json)
        from paperlib.benchmarks.muse import evaluate as muse

        return muse.evaluate_cli(args.model, args.source, args.profile, args.retain_log, args.out)
    if args.benchmark == "rwku":  # RWKU: benchmarks.rwku.evaluate (probes, MIA, utility; RWKU's per-target JSON files)
        from paperlib.benchmarks.rwku import evaluate as rwku

        return rwku.evaluate_cli(args.model, args.source, args.profile, args.target, args.template, args.out)
    profile = _profile_for(args)
    if args.source:
        profile = replace(profile, benchmark=replace(profile.benchmark, source=args.source))
    if args.fluency_classifier:
        profile = replace(profile, eval=replace(profile.eval, fluency_classifier=args.fluency_classifier))
    template = args.template or profile.model.template
    # every input checked before the model is loaded: the local ones first, then the benchmark (maybe the hub)
    checks.check_out_file(args.out)
    checks.check_model_dir(args.model)
    tofu.check_split(args.forget, tofu.FORGET_SPLITS)
    retain_log = checks.load_eval_log(args.retain_log, "--retain-log") if args.retain_log else None
    source = pipeline.benchmark_source(profile)
    rows = checks.split_rows(source, args.forget)
    if retain_log is not None:
        checks.check_log_split(retain_log, rows, args.forget, f"--retain-log {args.retain_log}")
    model, tok = load_model(args.model), load_tokenizer(args.model)
    _, summary = evaluate.evaluate_tofu(model, tok, template, pipeline.benchmark_source(profile), args.forget,
                                        profile.eval, retain_log, evaluate.EvalOutput(out_dir=args.out))
    print(json.dumps(summary, indent=1))
    print(f"wrote {Path(args.out) / 'TOFU_EVAL.json'} and TOFU_SUMMARY.json")


def _default_workers() -> int:
    """Notebook workers when none are asked for: one per core on a CPU machine (`threads.default_workers`);
    on a GPU machine one (the notebooks share the visible GPUs; `--gpus` gives one worker per GPU)."""
    import torch

    return 1 if torch.cuda.is_available() else threads.default_workers()


def _reproduce(args: argparse.Namespace) -> None:
    """Execute the notebooks with papermill (executed copies under --out/<profile>), or list their runs."""
    from paperlib import runner

    def items(text: str | None) -> list[str] | None:
        return None if text is None else [t.strip() for t in text.split(",")]

    if args.dry_run:
        print(runner.format_plan(runner.plan(args.profile, items(args.only), args.notebooks)))
        return
    if args.gpus is not None and args.workers is not None:
        raise PaperlibError("give --gpus or --workers, not both")
    workers = args.workers if args.workers is not None else _default_workers()
    devices = items(args.gpus) if args.gpus is not None else (
        None if workers < 2 else [str(i) for i in range(workers)])
    env = None
    if args.executor:
        from paperlib.engine import executors

        executor = executors.load(args.executor, partition=args.partition, time_min=args.time,
                                  gpus_per_run=args.gpus_per_run)
        env = executors.environment(executor)
    elif any(v is not None for v in (args.partition, args.time, args.gpus_per_run)):
        raise PaperlibError("--partition / --time / --gpus-per-run set the SLURM executor; allowed: with "
                            "--executor slurm (or a config file of kind slurm)")
    paths = runner.Paths(out_dir=args.out, notebooks_dir=args.notebooks, figures_dir=args.figures,
                         tables_dir=args.tables)
    execution = runner.Execution(env=env, workers_only=args.gpus is None, skip_up_to_date=not args.rerun)
    results = runner.reproduce(args.profile, items(args.only), devices, paths=paths, execution=execution)
    print(runner.summary(results))
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise SystemExit("paperlib reproduce failed: " + "; ".join(r.describe() for r in failed))


def _finetune(args: argparse.Namespace) -> None:
    """Train (or reuse) the base, original and retain models of a profile and print the memorisation check."""
    from paperlib.benchmarks.tofu import pipeline
    from paperlib.engine.config import get_profile

    profile = get_profile(args.profile)
    print("original:", pipeline.original_model(profile, force=args.force))
    print(f"retain ({args.forget}):", pipeline.retain_model(profile, args.forget, force=args.force))
    report = pipeline.finetune_report(profile, args.forget)
    print(json.dumps(report, indent=1))
    print(f"original model memorises {args.forget}: mean answer probability {report['original_answer_prob']:.3f} "
          f"(retain model: {report['retain_answer_prob']:.3f}); forget truth ratios original vs retain: "
          f"KS p = {report['ks_pvalue']:.2e}")


def _unlearn(args: argparse.Namespace) -> None:
    """Unlearn a forget set from a model with one method; the run lands in the run cache and in --out."""
    from paperlib.engine import unlearn

    unlearn.check_out(args.out)  # before anything else: never lose data
    profile = _profile_for(args)
    overrides = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PaperlibError(f"--set {item!r}; allowed: key=value (a hyperparameter or training setting)")
        overrides[key.strip()] = value.strip()
    unlearn.check_settings(profile, args.method, overrides, args.model)  # before the mask builds any model
    update_mask = None
    if args.mask:
        from paperlib.benchmarks.tofu import pipeline
        from paperlib.methods import masks

        masks.load_mask(args.mask)  # the files first (no model needed), then against the model
        update_mask = masks.load_mask(args.mask, args.model or pipeline.original_model(profile))[0]
    run = unlearn.unlearn(profile, args.method, args.forget or profile.benchmark.forget, overrides=overrides,
                          model_path=args.model, update_mask=update_mask,
                          options=unlearn.RunOptions(force=args.force, out=args.out))
    out = Path(args.out)
    result = unlearn.read_run(out)
    print(json.dumps({"status": result["status"]["status"], **(result["summary"] or {})}, indent=1))
    if result["status"]["status"] != "completed":
        print(result["status"].get("message", ""), file=sys.stderr)
    print(f"run {run} copied to {out}")


def _spans(args: argparse.Namespace) -> None:
    """Write a PALU/TPO span file for a forget set without the GPT span files: automatic sensitive spans from
    an original and a retain model (tokens whose log-probability gap exceeds --threshold nats), or capitalised
    words and numbers (paperlib.benchmarks.spans)."""
    from paperlib.benchmarks import spans

    spans.check_out_folder(args.out)
    profile = _profile_for(args)
    if args.source_dir:
        profile = replace(profile, benchmark=replace(profile.benchmark, source=args.source_dir))
    rule = spans.SpanRule(args.threshold, args.gap)
    summary = spans.make_span_file(profile, args.forget or profile.benchmark.forget, args.out, args.source,
                                   args.model, args.retain_model, rule)
    print(json.dumps(summary, indent=1))
    print(f"wrote the span file {args.out} (use: paperlib unlearn --method PALU --set spans={args.out})")


def _mask(args: argparse.Namespace) -> None:
    """Make a parameter mask for localized unlearning (an attribution's top ratio of weights) and save it to
    --out, for `paperlib unlearn --mask`."""
    from paperlib.methods import masks

    cfg = masks.MaskConfig(attribution=args.attribution, ratio=args.ratio, scope=args.scope, kind=args.kind,
                           seed=args.seed, params=args.params, mu=args.mu)
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / masks.INFO_FILE).is_file())):
        raise PaperlibError(f"--out {out} is a file or a non-empty folder that holds no mask; allowed: a new or "
                            "empty folder, or a mask folder")
    profile = _profile_for(args)
    mask, info = masks.mask_for(profile, cfg, args.forget or profile.benchmark.forget, args.model)
    masks.save_mask(mask, out, info["model"], info)
    print(json.dumps({**masks.summary(mask), "seconds": round(info["seconds"], 3)}, indent=1))
    print(f"mask written to {out}")


def _cache(args: argparse.Namespace) -> None:
    """Check the run cache (`verify`: every entry against its manifest) or remove what no run will serve
    (`prune`: temporary folders of dead processes, incomplete, stale-code and corrupt entries)."""
    from paperlib.engine import cache

    root = Path(args.root) if args.root else cache.cache_root()
    if args.action == "verify":
        bad = cache.verify_cache(root, deep=not args.quick)
        for path, problems in bad.items():
            print(f"{path}: {'; '.join(problems)}")
        print(f"{len(bad)} entr{'y' if len(bad) == 1 else 'ies'} of {root} failed verification")
        if bad:
            raise SystemExit(1)
        return
    removed = cache.prune_cache(root, dry_run=args.dry_run)
    for path, why in removed:
        print(f"{'would remove' if args.dry_run else 'removed'} {path}: {why}")
    print(f"{len(removed)} path(s) {'to remove' if args.dry_run else 'removed'} under {root}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paperlib", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("evaluate", help=_evaluate.__doc__)
    ev.add_argument("--model", required=True, help="checkpoint folder or hub id")
    ev.add_argument("--benchmark", default="mini-tofu", choices=["tofu", "mini-tofu", "muse", "rwku"])
    ev.add_argument("--source", default=None, help="tofu: hub id or local folder in TOFU's layout; muse: news, "
                    "books or a local folder in MUSE's layout (default: mini-MUSE for smoke / mini)")
    ev.add_argument("--profile", default=None, choices=ALL_PROFILES,
                    help="evaluation sizes (default: paper for tofu, mini for mini-tofu)")
    ev.add_argument("--forget", default="forget10", choices=FORGET_SPLITS)
    ev.add_argument("--target", default=None, action="append",
                    help="rwku: a target name or folder (repeatable; default: the profile's targets)")
    ev.add_argument("--template", default=None, choices=TEMPLATES,
                    help="prompt format (default: the profile's)")
    ev.add_argument("--retain-log", default=None, help="retain model's TOFU_EVAL.json (for forget_quality); "
                    "muse: the retrained model's MUSE_EVAL.json (for privleak)")
    ev.add_argument("--fluency-classifier", default=None,
                    help="local copy of the gibberish classifier (default: model-free n-gram entropy)")
    ev.add_argument("--out", required=True, help="output folder")
    ev.set_defaults(func=_evaluate)

    un = sub.add_parser("unlearn", help=_unlearn.__doc__)
    un.add_argument("--method", required=True, help="PALU, NPO, GA, ... (paperlib.methods.METHODS)")
    un.add_argument("--model", default=None, help="checkpoint folder or hub id (default: the profile's original)")
    un.add_argument("--benchmark", default="mini-tofu", choices=["tofu", "mini-tofu"])
    un.add_argument("--profile", default=None, choices=ALL_PROFILES,
                    help="scale and training settings (default: paper for tofu, mini for mini-tofu)")
    un.add_argument("--forget", default=None, choices=FORGET_SPLITS, help="default: the profile's (mini forget10)")
    un.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="hyperparameter (e.g. n=3, k=5000) or training setting (lr=1e-5, epochs=10); repeatable")
    un.add_argument("--mask", default=None, help="folder written by `paperlib mask`: only its True weights change")
    un.add_argument("--force", action="store_true", help="recompute even if the run is cached")
    un.add_argument("--out", required=True, help="folder to copy the run into")
    un.set_defaults(func=_unlearn)

    mk = sub.add_parser("mask", help=_mask.__doc__)
    mk.add_argument("--attribution", required=True,
                    help="random, random_down, activation, wagle, memflex, gradient or snip (paperlib.methods.masks)")
    mk.add_argument("--ratio", type=float, default=0.1, help="share of the candidate weights kept, in (0, 1]")
    mk.add_argument("--scope", default="global", help="global (default) or per_tensor: where the top ratio is taken")
    mk.add_argument("--kind", default="normal", help="normal (default) or random_complement")
    mk.add_argument("--params", default="", help="candidate weights: all, linear or down (default: by attribution)")
    mk.add_argument("--seed", type=int, default=0)
    mk.add_argument("--mu", type=float, default=1e-3, help="wagle's mu")
    mk.add_argument("--model", default=None, help="checkpoint folder (default: the profile's original model)")
    mk.add_argument("--benchmark", default="mini-tofu", choices=["tofu", "mini-tofu"])
    mk.add_argument("--profile", default=None, choices=ALL_PROFILES,
                    help="benchmark and model (default: paper for tofu, mini for mini-tofu)")
    mk.add_argument("--forget", default=None, choices=FORGET_SPLITS, help="default: the profile's (mini forget10)")
    mk.add_argument("--out", required=True, help="folder for mask.safetensors and mask.json")
    mk.set_defaults(func=_mask)

    ft = sub.add_parser("finetune", help=_finetune.__doc__)
    ft.add_argument("--profile", default="mini", choices=ALL_PROFILES)
    ft.add_argument("--forget", default="forget10", choices=FORGET_SPLITS)
    ft.add_argument("--force", action="store_true", help="retrain even if cached")
    ft.set_defaults(func=_finetune)

    rp = sub.add_parser("reproduce", help=_reproduce.__doc__)
    rp.add_argument("--profile", default="mini", choices=ALL_PROFILES, help="notebook profile (default: mini)")
    rp.add_argument("--only", default=None, help="comma-separated notebook prefixes, e.g. 04,05 (default: all)")
    rp.add_argument("--gpus", default=None,
                    help="comma-separated device ids, one worker process each (CUDA_VISIBLE_DEVICES), e.g. 0,1; "
                         "default: one notebook at a time in this process")
    rp.add_argument("--workers", type=int, default=None,
                    help="N parallel worker processes (device ids 0..N-1), each computing with PAPERLIB_THREADS "
                         "(default 1) threads; default: one per core on a CPU machine, 1 on a GPU machine; "
                         "notebook 00 runs first, beside it only the notebooks that do not need it (MUSE, RWKU), "
                         "then the rest, the longest first")
    rp.add_argument("--executor", default=None,
                    help="where each notebook's unlearning runs execute (paperlib.engine.executors): "
                         "inprocess (default), "
                         "gpus:0,1 (a worker per GPU), slurm (submitit array jobs), local (submitit's local "
                         "processes) or a .toml / .json config file (kind = \"slurm\", partition, time_min, ...)")
    rp.add_argument("--partition", default=None, help="SLURM partition (with --executor slurm)")
    rp.add_argument("--time", type=int, default=None, help="SLURM time limit per run, minutes (default 240)")
    rp.add_argument("--gpus-per-run", type=int, default=None, help="GPUs per SLURM run (default 1)")
    rp.add_argument("--rerun", action="store_true",
                    help="execute every selected notebook; by default a notebook is skipped when its executed copy "
                         "is up to date: its source, parameters, paperlib's code, the installed packages and the "
                         "shared data unchanged since its last successful execution, and the executed copy and "
                         "every table and figure it wrote untouched (paperlib.engine.stamps)")
    rp.add_argument("--dry-run", action="store_true",
                    help="list the runs each notebook would launch, with a rough GPU-hour estimate; execute nothing")
    rp.add_argument("--out", default="executed", help="folder of the executed copies (default: executed)")
    rp.add_argument("--notebooks", default="notebooks", help="folder of the NN_name.ipynb notebooks")
    rp.add_argument("--figures", default=None,
                    help="folder for the figures (default: figures/ for the mini profile, else "
                         "<out>/<profile>/figures beside the executed notebooks)")
    rp.add_argument("--tables", default=None,
                    help="folder for the tables (default: tables/ for the mini profile, else <out>/<profile>/tables)")
    rp.set_defaults(func=_reproduce)

    sp = sub.add_parser("spans", help=_spans.__doc__)
    sp.add_argument("--source", default="logprob", choices=["logprob", "capitalised"], help="how to annotate")
    sp.add_argument("--model", default=None, help="original model (default: the profile's)")
    sp.add_argument("--retain-model", default=None, help="retain model of --forget (default: the profile's)")
    sp.add_argument("--benchmark", default="mini-tofu", choices=["tofu", "mini-tofu"])
    sp.add_argument("--source-dir", default=None, help="tofu: hub id or local folder in TOFU's layout")
    sp.add_argument("--profile", default=None, choices=ALL_PROFILES,
                    help="template and lengths (default: paper for tofu, mini for mini-tofu)")
    sp.add_argument("--forget", default=None, choices=FORGET_SPLITS, help="default: the profile's")
    sp.add_argument("--threshold", type=float, default=1.0, help="log p_original - log p_retain, nats (default 1)")
    sp.add_argument("--gap", type=int, default=1, help="unflagged tokens bridged inside one span (default 1)")
    sp.add_argument("--out", required=True, help="new folder for the span file (datasets save_to_disk)")
    sp.set_defaults(func=_spans)

    ca = sub.add_parser("cache", help=_cache.__doc__)
    ca.add_argument("action", choices=["verify", "prune"])
    ca.add_argument("--root", default=None, help="cache folder (default: $PAPERLIB_CACHE or runs)")
    ca.add_argument("--dry-run", action="store_true", help="prune: list what would be removed, remove nothing")
    ca.add_argument("--quick", action="store_true", help="verify: sizes and small files only (no weight hashing)")
    ca.set_defaults(func=_cache)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        threads.configure()  # PAPERLIB_THREADS (default 1) intra-op threads: results independent of the machine
        args.func(args)
    except (PaperlibError, ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as err:
        if args.debug:
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"paperlib {args.command}: error: {message}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main(sys.argv[1:])
