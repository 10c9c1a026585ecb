"""Where unlearning runs execute: a notebook plans its runs, an executor runs them, the notebook collects the
results from the run cache.

- `Request`: one unlearning run with everything it needs, picklable: profile, method, settings, the starting
  model, an update mask, and either a TOFU forget split (`paperlib.engine.unlearn.unlearn`) or a raw-text corpus with
  its registered evaluator (`paperlib.engine.unlearn.unlearn_text`; the job imports the evaluator's module).
  `Request.run()` computes it, or finds it in the run cache, and returns its folder.
- Executors (each has `run(requests, echo) -> folders`, in the order given):
  `InProcess` (default): one run after another in this process.
  `GpuPool(devices)`: one spawned worker process per device (its CUDA_VISIBLE_DEVICES set, PAPERLIB_THREADS
  threads), runs handed out as workers become free (`paperlib reproduce --gpus` already gives each notebook
  a device; this pool is for one notebook's runs on a multi-GPU node).
  `Slurm(...)`: submitit, one array job with one task per run; partition, time limit, GPUs / CPUs / memory
  per run from the command line or a small config file (`load`); `cluster="local"` runs the same jobs as
  local processes (submitit's LocalExecutor: tests and dry rehearsals).
- The run cache is where results meet: each job writes its run into the shared cache (a folder renamed into
  place when complete, a lock per run: `paperlib.engine.cache`, safe on a shared filesystem), the notebook then
  asks `unlearn.unlearn` for the same run and gets the cached folder without computing anything. Jobs use
  the cache folder of the process that planned them (`Request.cache`), whatever their environment.
- `current()`: the executor in $PAPERLIB_EXECUTOR (JSON, written by `environment`; `paperlib reproduce
  --executor ...` sets it for every kernel), `InProcess` when unset. The study protocol
  (`paperlib.studies.protocol`) hands every batch of planned runs (a sweep, then the seed runs) to it before
  reading them, for every notebook.
- Under an executor other than `InProcess`, `environment` also marks the kernel read-only for unlearning runs
  (`paperlib.engine.cache.READ_ONLY_ENV`): a run that was not planned is an error in the kernel instead of training
  there; the jobs (`run_request`) lift the mark.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paperlib.engine import progress, threads
from paperlib.engine.cache import READ_ONLY_ENV, cache_root
from paperlib.engine.config import Profile
from paperlib.engine.corpus import EvalCall, TextCorpus
from paperlib.engine.errors import PaperlibError

ENV = "PAPERLIB_EXECUTOR"
JOB_LOG = "PAPERLIB_JOB_LOG"  # when set: a file where every job or worker appends the run folder it returns
KINDS = ("inprocess", "gpus", "slurm")
KIND_PLANNED = "unlearn"  # the cache kind of a planned run (`paperlib.engine.unlearn.KIND`)
Echo = Callable[[str], None]


@dataclass(frozen=True)
class Request:
    """One unlearning run: the arguments of `unlearn.unlearn` (a TOFU forget split) or, with `corpus`, of
    `unlearn.unlearn_text` (raw text and a registered evaluator); the run's cache key follows from them."""

    profile: Profile
    method: str
    forget: str = ""  # TOFU forget split ("" for a raw-text run)
    overrides: tuple[tuple[str, Any], ...] = ()  # settings as `unlearn.unlearn` takes them (a dict is accepted)
    eval_every_epoch: bool = True
    save_model: bool = False
    cache: str = field(default_factory=lambda: str(cache_root().resolve()))  # the run cache it lands in
    model: str | None = None  # the starting model (None: the profile's original model; a raw-text run needs one)
    mask: dict | None = field(default=None, compare=False, repr=False)  # parameter name -> bool tensor (may change)
    corpus: TextCorpus | None = field(default=None, compare=False, repr=False)  # raw-text forget / retain documents
    evaluator: str = ""  # the registered evaluator of a raw-text run (`paperlib.engine.corpus.register_evaluator`)
    eval_args: dict | None = field(default=None, compare=False, repr=False)
    plugin: str = field(default="", init=False)  # the module that registers `evaluator` (imported by a job)
    inputs: str = field(default="", init=False, repr=False)  # digest of mask, corpus and eval_args (equality)

    def __post_init__(self) -> None:
        object.__setattr__(self, "overrides", tuple(dict(self.overrides).items()))  # hashable, order kept
        if (self.corpus is None) == (not self.forget):
            raise PaperlibError(f"request {self.method}: forget={self.forget!r}, corpus="
                                f"{None if self.corpus is None else self.corpus.name!r}; allowed: a TOFU forget "
                                "split or a raw-text corpus (with its evaluator), not both")
        if self.corpus is not None:
            from paperlib.engine.corpus import get_evaluator

            object.__setattr__(self, "plugin", get_evaluator(self.evaluator).__module__)
            if self.model is None:
                raise PaperlibError(f"raw-text request {self.method} on {self.corpus.name}: no starting model; "
                                    "allowed: a model folder")
        from paperlib.engine.unlearn import mask_digest

        blob = [mask_digest(self.mask), None if self.corpus is None else self.corpus.digest(), self.eval_args]
        object.__setattr__(self, "inputs", hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest())

    def label(self) -> str:
        """Method, data and settings in one short line, for progress output."""
        data = self.forget or (self.corpus.name if self.corpus is not None else "")
        return " ".join([self.method, data, *(f"{k}={v}" for k, v in self.overrides)])

    def run(self) -> Path:
        """The run's folder in the cache (computed here unless it is cached)."""
        from paperlib.engine import unlearn

        options = unlearn.RunOptions(eval_every_epoch=self.eval_every_epoch, save_model=self.save_model,
                                     progress=False)
        if self.corpus is None:
            return unlearn.unlearn(self.profile, self.method, self.forget, dict(self.overrides), self.model, self.mask,
                                   options)
        importlib.import_module(self.plugin)  # a job process registers the evaluator by importing its module
        return unlearn.unlearn_text(self.profile, self.method, self.corpus,
                                    EvalCall(self.evaluator, dict(self.eval_args or {})), self.model,
                                    dict(self.overrides), self.mask, options)


def run_request(request: Request) -> str:
    """Entry point of a job or worker process: the request's cache, this process's threads, then the run (a job
    may build the runs its kernel may only read)."""
    os.environ["PAPERLIB_CACHE"] = request.cache
    os.environ.pop(READ_ONLY_ENV, None)
    threads.configure()
    folder = str(request.run())
    if os.environ.get(JOB_LOG):  # an audit of what the jobs computed (a test compares it with the cache)
        with open(os.environ[JOB_LOG], "a") as f:
            f.write(folder + "\n")
    return folder


def _echo(message: str) -> None:
    print(message, flush=True)


def _done(echo: Echo, i: int, n: int, request: Request, start: float, where: str = "") -> None:
    echo(f"run {i}/{n} done{where}: {request.label()} ({time.perf_counter() - start:.1f} s)")


@dataclass(frozen=True)
class InProcess:
    """One run after another in this process (a progress bar, or a line per run where bars are off)."""

    kind: str = "inprocess"

    def run(self, requests: Sequence[Request], echo: Echo = _echo) -> list[Path]:
        out, start = [], time.perf_counter()
        for i, request in enumerate(progress.bar(requests, "unlearning runs"), 1):
            out.append(request.run())
            if progress.silenced():
                _done(echo, i, len(requests), request, start)
        return out


def _claim_device(devices: Any, env: Mapping[str, str]) -> None:
    """GpuPool worker initializer: take one device id for the life of this process."""
    os.environ.update(env)
    os.environ["CUDA_VISIBLE_DEVICES"] = devices.get()


@dataclass(frozen=True)
class GpuPool:
    """One spawned worker process per device id, each with its own CUDA_VISIBLE_DEVICES."""

    devices: tuple[str, ...] = ("0",)
    kind: str = "gpus"

    def __post_init__(self) -> None:
        if not self.devices or any(not str(d).strip() or "," in str(d) for d in self.devices):
            raise PaperlibError(f"executor gpus {list(self.devices)!r}; allowed: one device id per worker, "
                                "e.g. gpus:0,1")

    def run(self, requests: Sequence[Request], echo: Echo = _echo) -> list[Path]:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # no fork of a process holding threads or CUDA
        queue = ctx.Queue()
        for device in self.devices:
            queue.put(str(device))
        start = time.perf_counter()
        with ProcessPoolExecutor(len(self.devices), mp_context=ctx, initializer=_claim_device,
                                 initargs=(queue, threads.env())) as pool:
            futures = [pool.submit(run_request, r) for r in requests]
            out = []
            for i, (request, future) in enumerate(zip(requests, futures), 1):
                out.append(Path(future.result()))
                _done(echo, i, len(requests), request, start)
        return out


@dataclass(frozen=True)
class Slurm:
    """submitit: one array job, one task per run (`cluster="local"`: local processes, for tests)."""

    folder: str = "slurm_logs"  # submitit's job folder (scripts, logs, pickled results); shared filesystem
    partition: str = ""  # "" = the cluster's default partition
    time_min: int = 240  # time limit per run
    gpus_per_run: int = 1
    cpus_per_run: int = 8
    mem_gb: int = 64
    max_parallel: int = 0  # at most this many runs at once (slurm_array_parallelism; local: batches); 0 = no limit
    cluster: str = "slurm"  # "slurm", or "local" (submitit's LocalExecutor)
    kind: str = "slurm"

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", str(Path(self.folder).resolve()))  # the same for every kernel and job
        if self.cluster not in ("slurm", "local"):
            raise PaperlibError(f"executor cluster {self.cluster!r}; allowed: slurm, local")
        for name in ("time_min", "cpus_per_run", "mem_gb"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise PaperlibError(f"executor {name}={getattr(self, name)!r}; allowed: an integer >= 1")
        for name in ("gpus_per_run", "max_parallel"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise PaperlibError(f"executor {name}={getattr(self, name)!r}; allowed: an integer >= 0")

    def parameters(self) -> dict[str, Any]:
        """submitit's `update_parameters` arguments."""
        params: dict[str, Any] = {"name": "paperlib", "timeout_min": self.time_min, "gpus_per_node": self.gpus_per_run,
                                  "cpus_per_task": self.cpus_per_run, "mem_gb": self.mem_gb}
        if self.partition:
            params["slurm_partition"] = self.partition
        if self.max_parallel:
            params["slurm_array_parallelism"] = self.max_parallel
        return params

    def run(self, requests: Sequence[Request], echo: Echo = _echo) -> list[Path]:
        import submitit

        if not requests:
            return []
        executor = submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)
        executor.update_parameters(**self.parameters())
        start = time.perf_counter()
        # SLURM limits the array itself (slurm_array_parallelism); submitit's local executor starts every job at
        # once, so there `max_parallel` runs are submitted at a time, each batch after the last one finished
        step = self.max_parallel if self.cluster == "local" and self.max_parallel else len(requests)
        jobs = []
        for i in range(0, len(requests), step):
            if jobs and step < len(requests):
                for job in jobs[-step:]:
                    job.wait()
            jobs += executor.map_array(run_request, list(requests[i:i + step]))
        echo(f"submitted {len(jobs)} run(s) to {self.cluster}: job(s) {', '.join(j.job_id for j in jobs)}; "
             f"logs in {self.folder}")
        out = []
        for i, (request, job) in enumerate(zip(requests, jobs), 1):
            try:
                out.append(Path(job.result()))
            except Exception as err:  # submitit's FailedJobError / UncompletedJobError: name the run and its logs
                raise PaperlibError(f"{self.cluster} job {job.job_id} ({request.label()}) failed: "
                                    f"{' '.join(str(err).split())[-500:]}; logs: {job.paths.stdout}") from None
            _done(echo, i, len(requests), request, start, f" (job {job.job_id})")
        return out


Executor = InProcess | GpuPool | Slurm
_CLASSES: dict[str, type] = {"inprocess": InProcess, "gpus": GpuPool, "slurm": Slurm}


def from_dict(settings: Mapping[str, Any]) -> Executor:
    """An executor from {"kind": inprocess | gpus | slurm, field: value, ...} (a config file's content)."""
    settings = dict(settings)
    kind = settings.pop("kind", None)
    if kind not in _CLASSES:
        raise PaperlibError(f"executor kind {kind!r}; allowed: {', '.join(KINDS)}")
    cls = _CLASSES[kind]
    names = {f.name for f in dataclasses.fields(cls)} - {"kind"}
    unknown = sorted(set(settings) - names)
    if unknown:
        raise PaperlibError(f"executor {kind}: unknown setting(s) {unknown}; allowed: {', '.join(sorted(names))}")
    if kind == "gpus":
        devices = settings.get("devices", ("0",))
        settings["devices"] = tuple(str(d) for d in (devices.split(",") if isinstance(devices, str) else devices))
    return cls(**settings)


def load(spec: str | Path, **overrides: Any) -> Executor:
    """An executor from `spec`: "inprocess", "gpus:0,1", "slurm", "local" (submitit's local executor) or a
    .toml / .json config file with `kind` and the settings; `overrides` (e.g. partition from the command line)
    win over the file. None-valued overrides are ignored."""
    text = str(spec).strip()
    path = Path(text)
    if path.suffix in (".toml", ".json"):
        if not path.is_file():
            raise PaperlibError(f"executor config {text} does not exist; allowed: a .toml or .json file")
        raw = path.read_text()
        try:
            if path.suffix == ".toml":
                import tomllib  # Python >= 3.11

                settings = tomllib.loads(raw)
            else:
                settings = json.loads(raw)
        except ImportError:
            raise PaperlibError(f"executor config {text}: reading TOML needs Python >= 3.11; allowed here: "
                                "a .json file") from None
        except ValueError as err:  # json.JSONDecodeError and tomllib.TOMLDecodeError are ValueErrors
            raise PaperlibError(f"executor config {text} cannot be parsed: {err}") from None
    elif text in ("inprocess", "slurm"):
        settings = {"kind": text}
    elif text == "local":
        settings = {"kind": "slurm", "cluster": "local"}
    elif text.startswith("gpus:"):
        settings = {"kind": "gpus", "devices": text.removeprefix("gpus:")}
    else:
        raise PaperlibError(f"executor {text!r}; allowed: inprocess, gpus:0,1, slurm, local, or a .toml / .json "
                            "config file")
    return from_dict({**settings, **{k: v for k, v in overrides.items() if v is not None}})


def environment(executor: Executor) -> dict[str, str]:
    """The environment variables that make `current()` return `executor` (in kernels, jobs, subprocesses) and,
    for an executor other than `InProcess`, forbid the kernel to compute an unlearning run itself (every run
    must be planned: `paperlib.engine.cache.READ_ONLY_ENV`; `run_request` lifts it in the jobs)."""
    env = {ENV: json.dumps(dataclasses.asdict(executor))}
    if executor.kind != "inprocess":
        env[READ_ONLY_ENV] = KIND_PLANNED
    return env


def current() -> Executor:
    """The executor named by $PAPERLIB_EXECUTOR, `InProcess()` when it is unset."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return InProcess()
    try:
        settings = json.loads(raw)
    except json.JSONDecodeError:
        return load(raw)  # a spec or a config file path
    return from_dict(settings)


def run_all(requests: Iterable[Request], executor: Executor | None = None, echo: Echo = _echo) -> list[Path]:
    """Run `requests` (duplicates once) with `executor` (default `current()`); their folders, in order."""
    unique = list(dict.fromkeys(requests))
    done = dict(zip(unique, (executor or current()).run(unique, echo)))
    return [done[r] for r in requests]
