"""Learning-rate / epoch sweep of every unlearning method on the mini profile (forget10), the record behind
`paperlib.methods.MINI_TRAIN`.

A tiny model fine-tuned at lr 3e-3 barely moves at the papers' lr 1e-5, so the mini profile needs its own
learning rates. For each method, lr and number of epochs this unlearns forget10 from the mini original
model (cached runs, evaluated at the end) and writes one CSV row: forget quality, model utility, forget
truth ratio, exact memorisation, fluency, status and timings. `suggest` picks, per method, the setting with
the highest forget quality whose model utility stays within 0.15 of the original model's (column `chosen`:
"rule"); the table in methods.py records the choice and the reason (column `chosen`: "table").

    .venv/bin/python benchmarks/sweep_mini_lr.py                  # everything (~20 min on 2 cores)
    .venv/bin/python benchmarks/sweep_mini_lr.py --append --methods PALU --set k=320 --set alpha=1
    .venv/bin/python benchmarks/sweep_mini_lr.py --append --methods   # re-mark the table's rows only
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

from paperlib import pipeline
from paperlib.config import get_profile
from paperlib.methods import METHODS, MINI_TRAIN, profile_hparams
from paperlib.metrics import palu_columns
from paperlib.unlearn import read_run, unlearn

COLUMNS = ("method", "settings", "lr", "epochs", "FQ", "MU", "F-TR", "EM", "Fluency", "status", "train_s", "eval_s",
           "chosen")
MU_DROP = 0.15  # allowed model-utility drop from the original model


METRICS = COLUMNS[4:9]


def row_of(method: str, settings: str, lr: float, epochs: int, run: Path) -> dict:
    r = read_run(run)
    cols = palu_columns(r["summary"]) if r["summary"] else {}
    t = r["status"]["timing"]
    return {"method": method, "settings": settings, "lr": lr, "epochs": epochs,
            **{k: cols.get(k, math.nan) for k in METRICS},
            "status": r["status"]["status"], "train_s": round(t["train_seconds"], 2),
            "eval_s": round(sum(t["eval_seconds"]), 2), "chosen": ""}


def _settings(profile, method: str, extra: dict) -> str:
    """The hyperparameters a row changes from the papers' defaults (profile's scale, then --set), as text."""
    return ";".join(f"{k}={v}" for k, v in {**profile_hparams(profile, method), **extra}.items())


def read_rows(path: Path) -> list[dict]:
    """Rows of an earlier sweep CSV (numbers parsed back)."""
    if not path.is_file():
        return []
    with path.open() as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("lr", *METRICS, "train_s", "eval_s"):
            r[k] = float(r[k])
        r["epochs"] = int(r["epochs"])
        r["chosen"] = ""
    return rows


def suggest(rows: list[dict], mu_original: float) -> dict[str, dict]:
    """Per method: the completed row with the highest FQ among those with MU >= original - MU_DROP (ties:
    higher MU); methods with no such row get the row with the highest MU."""
    best: dict[str, dict] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method and r["status"] == "completed"]
        ok = [r for r in mine if r["MU"] >= mu_original - MU_DROP]
        pool = ok or mine
        if pool:
            key = (lambda r: (r["FQ"], r["MU"])) if ok else (lambda r: r["MU"])
            best[method] = max(pool, key=key)
    return best


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="mini")
    ap.add_argument("--forget", default="forget10")
    ap.add_argument("--methods", nargs="*", default=list(METHODS), help="none: only re-mark and rewrite --out")
    ap.add_argument("--lrs", nargs="+", type=float, default=[3e-4, 5e-4, 1e-3, 3e-3, 1e-2])
    ap.add_argument("--epochs", nargs="+", type=int, default=[5, 10, 15])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="hyperparameter for every run of this call (e.g. k=32); recorded in the settings column")
    ap.add_argument("--append", action="store_true", help="keep the rows already in --out (same key: replaced)")
    ap.add_argument("--out", default="tables/mini_lr_sweep.csv")
    args = ap.parse_args(argv)
    extra = dict(item.split("=", 1) for item in args.set)

    profile = get_profile(args.profile)
    _, original = pipeline.evaluation(profile, pipeline.original_model(profile), args.forget)
    orig = palu_columns(original)
    out = Path(args.out)
    old = [r for r in read_rows(out) if r["method"] != "original"] if args.append else []
    rows = [{"method": "original", "settings": "", "lr": 0.0, "epochs": 0, **{k: orig[k] for k in METRICS},
             "status": "-", "train_s": 0.0, "eval_s": 0.0, "chosen": ""}]
    new: list[dict] = []
    print(f"original: FQ={orig['FQ']:.3g} MU={orig['MU']:.3f}", flush=True)
    start = time.perf_counter()
    for method in args.methods:
        settings = _settings(profile, method, extra)
        for lr in args.lrs:
            for epochs in args.epochs:
                run = unlearn(profile, method, args.forget, overrides={**extra, "lr": lr, "epochs": epochs},
                              eval_every_epoch=False, save_model=False, progress=False)
                row = row_of(method, settings, lr, epochs, run)
                new.append(row)
                print(f"{method:9s} {settings:16s} lr={lr:<7g} epochs={epochs:<3d} FQ={row['FQ']:.3g} "
                      f"MU={row['MU']:.3f} F-TR={row['F-TR']:.3f} EM={row['EM']:.3f} {row['status']} "
                      f"({row['train_s']:.1f} s train, {row['eval_s']:.1f} s eval)", flush=True)
    keys = {(r["method"], r["settings"], r["lr"], r["epochs"]) for r in new}
    rows += [r for r in old if (r["method"], r["settings"], r["lr"], r["epochs"]) not in keys] + new
    for row in rows[1:]:  # the settings in paperlib.methods.MINI_TRAIN
        table = MINI_TRAIN.get(row["method"])
        if table and (row["lr"], row["epochs"], row["settings"]) == (table.lr, table.epochs, _settings(
                profile, row["method"], {})):
            row["chosen"] = "table"
    for method, row in suggest(rows[1:], orig["MU"]).items():
        row["chosen"] = "+".join(filter(None, (row["chosen"], "rule")))
        print(f"suggest {method} [{row['settings']}]: lr={row['lr']:g} epochs={row['epochs']} FQ={row['FQ']:.3g} "
              f"MU={row['MU']:.3f}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()})
    print(f"wrote {out} ({len(rows)} rows, {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
