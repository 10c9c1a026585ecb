"""The tuning protocol, once for every benchmark and notebook: plan runs -> execute -> rows -> select -> seeds.

A study names its arms (anything with a `.method`: the method whose lr grid applies) and two functions:
`request(arm, point)`, the planned run (`paperlib.engine.executors.Request`: starting model, mask, corpus and
evaluator included) of an arm at a `Point` (lr, seed, schedule), and `rows(arm, point, info)`, the table rows of
that run (`epoch_rows` or `final_row`, which write the "diverged" row). `sweep` runs every arm at every lr of
its grid (seed 0), `select` applies the selection rule (`paperlib.methods.tuning.select`) per arm, `seed_runs` re-runs
each selected point with every seed of the grid. Every batch goes to the current executor
(`paperlib.engine.executors.run_all`: in process, `--gpus`, submitit / SLURM) before anything is read, so a kernel
under another executor trains nothing itself (`paperlib.engine.cache.READ_ONLY_ENV`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from paperlib.engine import executors, unlearn
from paperlib.methods import tuning

COMPLETED, DIVERGED = "completed", "diverged"  # a row's status (a run's status.json says the same)


@dataclass(frozen=True)
class Point:
    """Where one run of an arm goes: its lr and seed, an early stop (0: every epoch of the grid) and whether it
    is evaluated after every epoch."""

    lr: float
    seed: int = 0
    stop_epoch: int = 0
    every_epoch: bool = True


Request = Callable[[Any, Point], executors.Request]
Rows = Callable[[Any, Point, dict], list[dict]]


def execute(requests: Sequence[executors.Request]) -> list[dict]:
    """Every request computed by the current executor, then each run read back from the folder the executor
    returned, in order (`unlearn.read_run`'s dict, with the run's folder as "path")."""
    return [{**unlearn.read_run(path), "path": Path(path)} for path in executors.run_all(requests)]


def status(info: dict) -> str:
    return COMPLETED if info["status"]["status"] == COMPLETED else DIVERGED


def epoch_rows(info: dict, base: dict, transform: Callable[[dict], dict] = dict) -> list[dict]:
    """One row per evaluated epoch (`base`, epoch, status, `transform` of that epoch's summary) and, for a
    diverged run, a row with status "diverged" at the epoch where it stopped."""
    rows = [{**base, "epoch": e["epoch"], "status": COMPLETED,
             **transform({k: v for k, v in e.items() if k != "epoch"})} for e in info["epochs"]]
    if status(info) != COMPLETED:
        rows.append({**base, "epoch": info["status"].get("epoch"), "status": DIVERGED})
    return rows


def final_row(info: dict, base: dict, transform: Callable[[dict | None], dict]) -> dict:
    """One row for a run's final evaluation: `base`, status, `transform` of the summary (None when diverged)."""
    return {**base, "status": status(info), **transform(info["summary"])}


def sweep(profile: Any, arms: Sequence[Any], request: Request, rows: Rows, every_epoch: bool | None = None
          ) -> list[dict]:
    """Every arm at every lr of its grid (`tuning.grid(profile, arm.method)`), seed 0, all epochs, evaluated
    after each (`every_epoch`; None: as the grid says, i.e. after the last only on the paper profile)."""
    every = tuning.grid(profile).every_epoch if every_epoch is None else every_epoch
    todo = [(a, Point(lr, 0, 0, every)) for a in arms for lr in tuning.grid(profile, a.method).lrs]
    infos = execute([request(a, p) for a, p in todo])
    return [r for (a, p), info in zip(todo, infos) for r in rows(a, p, info)]


def select(profile: Any, table: pd.DataFrame, by: str | list[str],
           mu: float | Callable[[Any], float]) -> list[tuple[Any, pd.Series]]:
    """The selected point (`tuning.select` on the grid's epochs) of each group of `by` in the sweep `table`, in
    order of appearance, against the reference utility `mu` (a number, or a function of the group's key)."""
    every = tuning.grid(profile).every_epoch
    return [(key, tuning.select(part, mu(key) if callable(mu) else mu, every))
            for key, part in table.groupby(by, sort=False)]


def seed_runs(profile: Any, arms: Sequence[Any], point: Callable[[Any, int], Point | None], request: Request,
              rows: Rows, reuse: Callable[[Any, int], list[dict] | None] | None = None) -> list[dict]:
    """Every arm with every seed of the grid: `point(arm, seed)` is that run (None: no run for this seed);
    `reuse(arm, seed)`, when given and not None, are rows taken from the sweep instead (its own run at that
    point: the same computation, already done). Rows in arm, then seed order."""
    todo = []
    for a in arms:
        for seed in tuning.grid(profile).seeds:
            kept = reuse(a, seed) if reuse is not None else None
            todo.append((a, kept, None if kept is not None else point(a, seed)))
    infos = iter(execute([request(a, p) for a, kept, p in todo if kept is None and p is not None]))
    out = []
    for a, kept, p in todo:
        if kept is not None:
            out += kept
        elif p is not None:
            out += rows(a, p, next(infos))
    return out


def plan_rows(profile: Any, method: str, common: dict, hyper: dict, seeds: bool = True, seed_evals: int = 1,
              draw: tuple[str, int] | None = None, every_epoch: bool | None = None) -> list[dict]:
    """The dry-run rows (`paperlib.runner.plan`) of the runs this protocol launches for one arm, from settings
    alone: one per lr of the method's grid (evaluated after every epoch as `every_epoch` says; None: as the grid
    says), one per further seed at the selected point (`seeds`; each evaluated `seed_evals` times), and with `draw`
    (the second draw's model and seed) every seed there (seed 0 alone without `seeds`). `common`: the fields of
    every row (model, method, n_examples, epochs, passes, reference); `hyper`: the arm's own settings."""
    g = tuning.grid(profile, method)
    evals = g.epochs if (g.every_epoch if every_epoch is None else every_epoch) else 1
    out = [{**common, "hyperparameters": {**hyper, "lr": lr}, "evaluations": evals} for lr in g.lrs]
    out += [{**common, "hyperparameters": {**hyper, "lr": "selected", "seed": s}, "evaluations": seed_evals}
            for s in g.seeds if s != 0 and seeds]
    if draw is not None:
        model, tag = draw
        out += [{**common, "model": model, "hyperparameters": {**hyper, "lr": "selected", "seed": s, "draw": tag},
                 "evaluations": seed_evals} for s in g.seeds if s == 0 or seeds]
    return out


# ----------------------------------------------------------------------------------------- a benchmark's targets
class Arm(NamedTuple):
    """One method on one target of a benchmark (`paperlib.benchmarks.Benchmark`)."""

    target: str
    method: str


def tune(profile: Any, bench: Any, methods: Sequence[str] | None = None, every_epoch: bool | None = None,
         seeds: bool = True) -> dict[str, pd.DataFrame]:
    """The protocol on a benchmark plug-in (`paperlib.benchmarks`), per target and method: "sweep" (every lr x
    epoch, rows of `bench.scores`; evaluated after every epoch as `every_epoch` says, None: as the grid says),
    "selected" (the rule's point on the sweep's seed 0 against the starting model's MU, `bench.reference`;
    `qualified`: the MU95 flag of the seed mean, `tuning.keeps_utility`, beside the sweep's own "qualified
    (seed 0)"), "seeds" (that point with every seed of the grid). `seeds` False: the sweep alone."""
    arms = [Arm(t, m) for t in bench.targets(profile) for m in (methods or bench.methods)]
    table = pd.DataFrame(sweep(profile, arms, partial(_bench_request, profile, bench), partial(_bench_rows, bench),
                               every_epoch))
    if not seeds:
        return {"sweep": table}
    reference = bench.reference(profile)
    best = {Arm(*key): b for key, b in select(profile, table, ["target", "method"], lambda key: reference[key[0]])}
    points = {a: (float(best[a]["lr"]), int(best[a]["epoch"])) for a in arms}
    every = tuning.grid(profile).every_epoch if every_epoch is None else every_epoch
    runs = pd.DataFrame(seed_points(profile, bench, points, table, every))
    chosen = [{"target": a.target, "method": a.method, "lr": points[a][0], "epoch": points[a][1],
               "qualified": keeps(runs, a, reference[a.target]), "qualified (seed 0)": bool(best[a]["qualified"])}
              for a in arms]
    return {"sweep": table, "selected": pd.DataFrame(chosen), "seeds": runs}


def seed_points(profile: Any, bench: Any, points: dict[Arm, tuple[float, int]], table: pd.DataFrame | None,
                every_epoch: bool = True) -> list[dict]:
    """Each arm's selected point (lr, epoch) with every seed of the grid: seed 0 is the sweep's row (`table`) or,
    with no sweep (a second draw), trained up to that epoch like the others. A benchmark with `final` columns
    (read from a run's folder) runs every seed up to that epoch and reads its final evaluation; seed 0 is then
    the sweep's own run (evaluated as `every_epoch` says) when the selected epoch is its last."""

    def point(arm: Arm, seed: int) -> Point:
        lr, epoch = points[arm]
        if bench.final is not None and table is not None and seed == 0 \
                and epoch == tuning.grid(profile, arm.method).epochs:
            return Point(lr, 0, 0, every_epoch)
        return Point(lr, seed, epoch, every_epoch=False)

    def reuse(arm: Arm, seed: int) -> list[dict] | None:
        if seed != 0 or table is None or bench.final is not None:
            return None
        lr, epoch = points[arm]
        same = table[(table["target"] == arm.target) & (table["method"] == arm.method) & (table["lr"] == lr)
                     & (table["epoch"] == epoch) & (table["status"] == COMPLETED)]
        return [{**r, "seed": 0} for r in same.to_dict("records")]

    def rows(arm: Arm, p: Point, info: dict) -> list[dict]:
        if bench.final is not None:
            base = {"target": arm.target, "method": arm.method, "lr": p.lr, "epoch": points[arm][1], "seed": p.seed}
            return [final_row(info, base, lambda s: {**(bench.scores(s) if s is not None else {}),
                                                     **bench.final(info)})]
        return [{**r, "seed": p.seed} for r in _bench_rows(bench, arm, p, info)
                if r["epoch"] == p.stop_epoch or r["status"] != COMPLETED]

    return seed_runs(profile, list(points), point, partial(_bench_request, profile, bench), rows, reuse)


def keeps(seeds: pd.DataFrame, arm: Arm, mu_reference: float) -> bool:
    """The MU95 flag of an arm's selected point: the seed mean of MU keeps 95% of `mu_reference`."""
    mine = seeds[(seeds["target"] == arm.target) & (seeds["method"] == arm.method) & (seeds["status"] == COMPLETED)]
    return tuning.keeps_utility(list(mine["MU"]), float(mu_reference))


def _bench_request(profile: Any, bench: Any, arm: Arm, point: Point) -> executors.Request:
    return bench.request(profile, arm.target, arm.method, point)


def _bench_rows(bench: Any, arm: Arm, point: Point, info: dict) -> list[dict]:
    return epoch_rows(info, {"target": arm.target, "method": arm.method, "lr": point.lr}, bench.scores)
