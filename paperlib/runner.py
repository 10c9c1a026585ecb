"""Batch regeneration: execute the numbered notebooks with papermill, one after another or one worker per GPU.

- Notebooks are `notebooks/NN_name.ipynb`, selected by their two-digit prefix NN and run in number order
  with `profile` (and any extra parameters) injected by papermill. Executed copies, outputs included,
  go to `<out_dir>/<profile>/NN_name.ipynb`, also when a notebook fails.
- The one dependency: notebook `FIRST` (00: the benchmark and the models every other notebook uses) runs
  first; if it fails, the notebooks that need it are skipped. The others are independent: a failure is
  reported (notebook, cell, error, executed copy) and the rest still run.
- With `gpus=[0, 1, ...]` one worker process per entry runs the notebooks in parallel, each with its own
  CUDA_VISIBLE_DEVICES: FIRST first, beside it the `INDEPENDENT` ones (MUSE, RWKU), then the rest, the
  longest expected first (`run_order`, from the last measured cold run) so that no worker idles at the end
  (the kernels papermill starts inherit the worker's environment). This works on
  CPU-only machines too: the variable is set, torch simply sees no GPU. The progress lines name a worker's
  device only where it means one: GPUs asked for (`--gpus`), or CUDA available (`--workers` on a CPU
  machine: ids, not devices).
- Kernels talk to papermill over CurveZMQ-encrypted TCP where jupyter_client, pyzmq and the kernelspec
  support it (`_kernel_options`); without it ipykernel logs "Kernel is running over TCP without encryption"
  to the terminal for every notebook.
- Progress: one line per notebook start and end and, while a notebook runs, one line per cell it starts
  and each line it prints, prefixed with its name (e.g. the per-run lines of `paperlib.engine.executors`).
- Every kernel gets PAPERLIB_CACHE as an absolute path (all notebooks share one run cache whatever their
  working directory; a rerun reuses every cached model and evaluation), TQDM_DISABLE=1 (no widget bars in
  a headless kernel) and the executor settings of `paperlib.engine.executors` (PAPERLIB_EXECUTOR) when given.
- `plan(profile)` lists the runs each notebook declares in `PLANS` (model, method, hyperparameters)
  with a rough GPU-hour estimate, without executing anything (`paperlib reproduce --dry-run`).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import multiprocessing as mp
import os
import queue
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import nbformat

from paperlib.engine import stamps, threads
from paperlib.engine.cache import cache_root
from paperlib.engine.config import (
    PAPER_PROFILE_NAMES,
    PAPER_SETTINGS,
    PROFILE_NAMES,
    REFERENCE_BYTES_PER_PARAM,
    TRAIN_BYTES_PER_PARAM,
    Profile,
    get_profile,
    model_params_b,
    training_memory_gb,
)

NOTEBOOK_PATTERN = re.compile(r"^(\d\d)_[A-Za-z0-9_\-]+\.ipynb$")
FIRST = "00"  # the notebook every other one needs (benchmark and models): run first, the rest skipped if it fails
# notebooks that train nothing FIRST trains (MUSE, RWKU: their own models; the one thing they share with it, the
# tokenizer, is built under the run cache's lock by whichever asks first): workers run them beside FIRST
INDEPENDENT = frozenset({"11", "12"})
COSTS = "benchmarks/reproduce.json"  # measured cold seconds per notebook (mini): the parallel order's hint
KERNEL_NAME = "python3"
STATUSES = ("ok", "failed", "skipped")
Echo = Callable[[str], None]


# ----------------------------------------------------------------------------------------- selection

def discover(notebooks_dir: str | Path = "notebooks") -> dict[str, Path]:
    """{prefix: path} of the `NN_name.ipynb` files in `notebooks_dir`, in number order."""
    folder = Path(notebooks_dir)
    if not folder.is_dir():
        raise ValueError(f"notebooks folder {str(folder)!r} does not exist")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        match = NOTEBOOK_PATTERN.match(path.name)
        if not match:
            continue
        prefix = match.group(1)
        if prefix in found:
            raise ValueError(f"two notebooks share the prefix {prefix}: {found[prefix].name}, {path.name}")
        found[prefix] = path
    if not found:
        raise ValueError(f"no notebooks named NN_name.ipynb in {str(folder)!r}")
    return found


def select(notebooks: Mapping[str, Path], only: Sequence[str] | None = None) -> dict[str, Path]:
    """The notebooks named in `only` (prefixes such as "04", or full names), all of them if None."""
    if only is None:
        return dict(notebooks)
    by_stem = {path.stem: prefix for prefix, path in notebooks.items()}
    wanted, unknown = set(), []
    for item in only:
        key = str(item).strip().removesuffix(".ipynb")
        key = key.zfill(2) if key.isdigit() else key
        if key in notebooks:
            wanted.add(key)
        elif key in by_stem:
            wanted.add(by_stem[key])
        else:
            unknown.append(item)
    if unknown or not wanted:
        available = ", ".join(f"{p} ({path.stem})" for p, path in notebooks.items())
        what = f"unknown notebook(s) {unknown}" if unknown else "no notebook selected (only is empty)"
        raise ValueError(f"{what}; available: {available}")
    return {p: path for p, path in notebooks.items() if p in wanted}


# ----------------------------------------------------------------------------------------- execution

@dataclass(frozen=True)
class Result:
    """What happened to one notebook."""

    notebook: str  # file stem, e.g. "01_main_results"
    status: str  # ok | failed | skipped
    seconds: float = 0.0  # wall time of its execution
    output: Path | None = None  # executed copy (kept on failure)
    device: str | None = None  # CUDA_VISIBLE_DEVICES of the worker that ran it (None: serial, or ids no GPU)
    cell_index: int | None = None  # failing cell: 0-based position in the source notebook's cells
    execution_count: int | None = None  # failing cell's "In [n]" in the executed copy
    cell_source: str = ""  # first line of the failing cell
    error: str = ""  # "ename: evalue", or why it was skipped
    up_to_date: bool = False  # not executed: its executed copy and outputs are up to date (`paperlib.engine.stamps`)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def describe(self) -> str:
        """One line: notebook, status, wall time, and for a failure the cell, error and executed copy."""
        line = f"{self.notebook}: {self.status}"
        if self.status == "skipped":
            return f"{line} ({self.error})"
        if self.up_to_date:
            return f"{line}, up to date (not executed: nothing it reads or wrote changed; --rerun executes it); " \
                   f"executed copy {self.output}"
        line += f" in {self.seconds:.1f} s"
        if self.device is not None:
            line += f" (CUDA_VISIBLE_DEVICES={self.device})"
        if self.status == "failed":
            if self.cell_index is not None:
                line += f" at cell {self.cell_index} (In [{self.execution_count}]: {self.cell_source})"
            line += f": {self.error}"
        if self.output is not None:
            line += f"; executed copy {self.output}"
        return line


@dataclass(frozen=True)
class _Task:
    """One papermill execution, picklable for the worker processes."""

    notebook: str
    input: Path
    output: Path
    parameters: dict[str, Any]
    kernel_name: str
    cwd: Path
    stream: bool  # echo a line per cell started and per line the notebook prints
    inputs: str = ""  # `stamps.inputs` digest: a successful execution writes the stamp that says so


def _source_cell_index(notebook: Path, executed_index: int) -> int:
    """Position in the source notebook of the cell at `executed_index` of the papermill-executed one
    (papermill inserts an `injected-parameters` cell after the `parameters` cell, or first)."""
    cells = nbformat.read(notebook, as_version=4).cells
    tags = [cell.get("metadata", {}).get("tags", []) for cell in cells]
    if any("injected-parameters" in t for t in tags):
        return executed_index  # papermill replaces that cell in place
    params = next((i for i, t in enumerate(tags) if "parameters" in t), None)
    injected_at = 0 if params is None else params + 1
    return executed_index - 1 if executed_index > injected_at else executed_index


class _Lines:
    """A file-like sink (papermill's `stdout_file`) that echoes each complete line as `<notebook>: <line>`."""

    def __init__(self, notebook: str, echo: Echo) -> None:
        self.notebook, self.echo, self.buffer = notebook, echo, ""

    def write(self, text: str) -> int:
        *lines, self.buffer = (self.buffer + text).split("\n")
        for line in lines:
            if line.strip():
                self.echo(f"{self.notebook}: {line.rstrip()}")
        return len(text)

    def flush(self) -> None:
        if self.buffer.strip():
            self.echo(f"{self.notebook}: {self.buffer.rstrip()}")
        self.buffer = ""


class _CellLines(logging.Handler):
    """Turns papermill's "Executing Cell N" log records into `<notebook>: cell N/<total>` lines."""

    PATTERN = re.compile(r"Executing Cell (\d+)")

    def __init__(self, notebook: str, total: int, echo: Echo) -> None:
        super().__init__(logging.INFO)
        self.notebook, self.total, self.echo = notebook, total, echo

    def emit(self, record: logging.LogRecord) -> None:
        match = self.PATTERN.match(record.getMessage())
        if match:
            self.echo(f"{self.notebook}: cell {match.group(1)}/{self.total}")


@contextlib.contextmanager
def _streamed(task: _Task, echo: Echo) -> Iterator[dict[str, Any]]:
    """papermill arguments that stream the notebook's progress to `echo` (none when `task.stream` is off):
    its log records go to a `_CellLines` handler only (not to the root logger: no raw kernel stderr)."""
    if not task.stream:
        yield {}
        return
    cells = nbformat.read(task.input, as_version=4).cells
    injected = any("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in cells)
    logger, handler, lines = logging.getLogger("papermill"), _CellLines(task.notebook, len(cells) + (not injected),
                                                                         echo), _Lines(task.notebook, echo)
    saved = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield {"log_output": True, "stdout_file": lines}
    finally:
        lines.flush()
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _kernel_options() -> dict[str, Any]:
    """papermill (nbclient) arguments for the kernel manager: CurveZMQ transport encryption ("auto": only where
    the kernelspec declares support, as ipykernel >= 7.4's does) when jupyter_client has the setting (>= 8.10)
    and pyzmq has curve. Without it ipykernel logs `[IPKernelApp] WARNING | Kernel is running over TCP without
    encryption ...` to the terminal for every notebook; with it the warning's cause is gone, not hidden."""
    import zmq
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    if "transport_encryption" not in KernelManager.class_trait_names() or not zmq.has("curve"):
        return {}
    return {"config": Config({"KernelManager": {"transport_encryption": "auto"}})}


def _execute(task: _Task, device: str | None, echo: Echo) -> Result:
    """Run one notebook with papermill; a failure becomes a Result, never an exception."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    task.output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    common = {"notebook": task.notebook, "output": task.output, "device": device}
    manifest = stamps.begin(task.output) if task.inputs else None
    try:
        with _streamed(task, echo) as stream, _environ({stamps.OUTPUTS_ENV: str(manifest)} if manifest else {}):
            papermill.execute_notebook(str(task.input), str(task.output), parameters=task.parameters,
                                       kernel_name=task.kernel_name, cwd=str(task.cwd), progress_bar=False,
                                       **stream, **_kernel_options())
        if manifest:
            stamps.finish(task.output, task.inputs)
    except PapermillExecutionError as err:
        first = next((line for line in str(err.source).splitlines() if line.strip()), "")
        return Result(status="failed", seconds=time.perf_counter() - start,
                      cell_index=_source_cell_index(task.input, err.cell_index), execution_count=err.exec_count,
                      cell_source=first.strip(), error=f"{err.ename}: {err.evalue}", **common)
    except Exception as err:  # kernel died, bad notebook JSON, ...: still a per-notebook failure
        output = task.output if task.output.exists() else None
        return Result(status="failed", seconds=time.perf_counter() - start, error=f"{type(err).__name__}: {err}",
                      **{**common, "output": output})
    finally:
        if manifest:
            manifest.unlink(missing_ok=True)  # listed in the stamp (success) or moot (failure: no stamp)
    return Result(status="ok", seconds=time.perf_counter() - start, **common)


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """os.environ with `values` set inside the block, restored afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _worker(device: str, env: Mapping[str, str], inbox: Any, results: Any) -> None:
    """Worker process: fix its GPU and environment, then execute tasks until it receives None."""
    os.environ.update(env)
    os.environ["CUDA_VISIBLE_DEVICES"] = device
    threads.configure()  # PAPERLIB_THREADS intra-op threads (default 1) for this process and its kernels
    for slot, task in iter(inbox.get, None):
        results.put((slot, _execute(task, device, _echo)))


class _Workers:
    """One spawned process per device, each fed one task at a time; a worker that dies fails its notebook."""

    def __init__(self, devices: Sequence[str], env: Mapping[str, str]) -> None:
        ctx = mp.get_context("spawn")  # no fork of a process holding threads, CUDA or kernel sockets
        self.devices = list(devices)
        self.results = ctx.Queue()
        self.inboxes = [ctx.Queue() for _ in devices]
        self.busy: list[_Task | None] = [None] * len(devices)
        self.procs = [ctx.Process(target=_worker, args=(d, dict(env), inbox, self.results), name=f"paperlib-gpu{d}")
                      for d, inbox in zip(self.devices, self.inboxes)]
        for proc in self.procs:
            proc.start()

    def free_slot(self) -> int | None:
        return next((i for i, task in enumerate(self.busy) if task is None), None)

    def submit(self, slot: int, task: _Task) -> None:
        self.busy[slot] = task
        self.inboxes[slot].put((slot, task))

    def next_result(self) -> Result:
        while True:
            try:
                slot, result = self.results.get(timeout=1.0)
            except queue.Empty:
                for slot, (proc, task) in enumerate(zip(self.procs, self.busy)):
                    if task is not None and not proc.is_alive():
                        self.busy[slot] = None
                        return Result(task.notebook, "failed", device=self.devices[slot],
                                      error=f"worker process died (exit code {proc.exitcode})")
                continue
            self.busy[slot] = None
            return result

    def close(self) -> None:
        for inbox, proc in zip(self.inboxes, self.procs):
            if proc.is_alive():
                inbox.put(None)
        for proc in self.procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()
                proc.join()


def _check_devices(gpus: Sequence[int | str]) -> list[str]:
    devices = [str(g).strip() for g in gpus]
    if not devices or any(not d or "," in d or " " in d for d in devices):
        raise ValueError(f"gpus {list(gpus)!r}: give one device id per worker, e.g. [0, 1] (--gpus 0,1)")
    return devices


def _check_kernel(kernel_name: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    available = KernelSpecManager().find_kernel_specs()
    if kernel_name not in available:
        raise ValueError(f"Jupyter kernel {kernel_name!r} is not installed; available: {', '.join(available)} "
                         f"(install one with `python -m ipykernel install --sys-prefix --name {kernel_name}`)")


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _echo(message: str) -> None:
    print(message, flush=True)


def output_dirs(profile: str, executed: Path, figures_dir: str | Path | None = None,
                tables_dir: str | Path | None = None) -> dict[str, str]:
    """The `figures_dir` / `tables_dir` notebook parameters (absolute paths): as given, else none for the mini
    profile (the notebooks' defaults: the committed figures/ and tables/), else beside the executed copies."""
    out = {}
    for name, given in (("figures_dir", figures_dir), ("tables_dir", tables_dir)):
        if given is not None:
            path = Path(given)
            if path.exists() and not path.is_dir():
                raise ValueError(f"--{name.removesuffix('_dir')} {given} is a file; allowed: a folder")
            out[name] = str(path.resolve())
        elif profile != "mini":
            out[name] = str(executed / name.removesuffix("_dir"))
    return out


@dataclass(frozen=True)
class Paths:
    """Where `reproduce` reads the notebooks, runs their kernels and puts what they write."""

    out_dir: str | Path = "executed"  # executed copies go to `<out_dir>/<profile>/`
    notebooks_dir: str | Path = "notebooks"  # the `NN_name.ipynb` files
    cwd: str | Path | None = None  # the kernels' working directory (None: the folder above `notebooks_dir`)
    figures_dir: str | Path | None = None  # the notebooks' `figures_dir` parameter (None: `output_dirs`' default)
    tables_dir: str | Path | None = None  # the notebooks' `tables_dir` parameter (None: `output_dirs`' default)


@dataclass(frozen=True)
class Execution:
    """How `reproduce` runs the kernels, reports progress and skips notebooks that are up to date."""

    kernel_name: str = KERNEL_NAME  # the Jupyter kernel every notebook runs in
    stream: bool = True  # also echo one line per cell started and per line a notebook prints
    echo: Echo = _echo  # receives the progress lines
    env: Mapping[str, str] | None = None  # further environment variables of the kernels
    workers_only: bool = False  # `gpus` are worker ids (`--workers`), not GPUs asked for
    skip_up_to_date: bool = False  # a notebook whose stamp says nothing changed is not executed


def reproduce(profile: str = "mini", only: Sequence[str] | None = None, gpus: Sequence[int | str] | None = None,
              parameters: Mapping[str, Any] | None = None, paths: Paths = Paths(),
              execution: Execution = Execution()) -> list[Result]:
    """Execute the selected notebooks with papermill and return one Result per notebook, in number order.

    profile: injected as the `profile` parameter (smoke | mini | paper); parameters: further values to
    inject. only: prefixes ("04") or names to run (default all). gpus: None runs the notebooks one after
    another in this process; [0, 1, ...] runs them in parallel on one worker per entry with that
    CUDA_VISIBLE_DEVICES (FIRST and the `INDEPENDENT` ones first, then the rest; `_run_parallel`).
    paths (`Paths`): the notebooks are read from `paths.notebooks_dir`; executed copies go to
    `<paths.out_dir>/<profile>/`. `paths.cwd`: the kernels' working directory, where relative outputs land
    (default: the folder above `notebooks_dir`). `paths.figures_dir` / `paths.tables_dir`: injected as the
    notebooks' `figures_dir` / `tables_dir` parameters; by default the committed `figures/` and `tables/` (the
    notebooks' own defaults) only for the mini profile, other profiles write beside their executed copies
    (`<out_dir>/<profile>/figures`, ...).
    execution (`Execution`): `kernel_name`: the Jupyter kernel. `echo`: receives the progress lines (one per
    notebook start and end; with `stream`, also one per cell and per line a notebook prints). `env`: further
    environment variables of the kernels (e.g. `paperlib.engine.executors.environment(...)`). `workers_only`:
    `gpus` are worker ids, not GPUs asked for (`--workers`): the lines and Results name a worker's
    CUDA_VISIBLE_DEVICES only where CUDA is available. Every successful execution writes a stamp beside its
    executed copy (`paperlib.engine.stamps`); `skip_up_to_date`: a notebook whose stamp says that nothing it
    reads or wrote changed is not executed (Result.up_to_date; `paperlib reproduce` without --rerun, as `make`
    skips a target). All input is checked before anything runs.
    """
    echo, kernel_name = execution.echo, execution.kernel_name
    if profile not in PROFILE_NAMES:
        raise ValueError(f"profile {profile!r}; allowed: {', '.join(PROFILE_NAMES)}")
    if parameters and "profile" in parameters:
        raise ValueError("pass the profile as reproduce(profile=...), not inside parameters")
    selected = select(discover(paths.notebooks_dir), only)
    devices = None if gpus is None else _check_devices(gpus)
    _check_kernel(kernel_name)
    workdir = Path(paths.cwd) if paths.cwd is not None else Path(paths.notebooks_dir).resolve().parent
    if not workdir.is_dir():
        raise ValueError(f"working directory {str(workdir)!r} does not exist")
    out = Path(paths.out_dir).resolve() / profile
    params = {"profile": profile, **output_dirs(profile, out, paths.figures_dir, paths.tables_dir),
              **(parameters or {})}
    # Headless kernels: no tqdm bars (as ipywidgets they flood the kernel's output channel and slow every
    # run several-fold; nobody watches them); the progress lines come from the cells instead.
    kernel_env = {"PAPERLIB_CACHE": str(cache_root().resolve()), "TQDM_DISABLE": "1", **(execution.env or {})}
    shared = stamps.context({**{k: v for k, v in os.environ.items() if k.startswith("PAPERLIB_")}, **kernel_env,
                             **(threads.env() if devices is not None else {})})
    tasks = {p: _Task(path.stem, path.resolve(), out / path.name, params, kernel_name, workdir.resolve(),
                      execution.stream, stamps.inputs(path, params, kernel_name, shared))
             for p, path in selected.items()}
    name_devices = devices is not None and (not execution.workers_only or _cuda_available())
    echo(f"reproduce: {len(tasks)} notebook(s), profile {profile}, "
         + ("serial" if devices is None else f"{len(devices)} worker(s)"
            + (f" on CUDA_VISIBLE_DEVICES {','.join(devices)}" if name_devices else ""))
         + f", cache {kernel_env['PAPERLIB_CACHE']}, executed copies in {out}")
    position = {p: f"[{i + 1:>{len(str(len(tasks)))}}/{len(tasks)}]" for i, p in enumerate(tasks)}
    results: dict[str, Result] = {}

    def finished(prefix: str, result: Result) -> None:
        if not name_devices and result.device is not None:
            result = replace(result, device=None)  # worker ids on a machine without CUDA: no device to name
        results[prefix] = result
        echo(f"{position[prefix]} {result.describe()}")

    for prefix, task in tasks.items():
        if execution.skip_up_to_date and stamps.is_fresh(task.output, task.inputs):
            finished(prefix, Result(task.notebook, "ok", output=task.output, up_to_date=True))
    todo = {p: task for p, task in tasks.items() if p not in results}
    with _environ(kernel_env):
        if devices is not None and todo:
            _run_parallel(todo, devices, kernel_env | threads.env(), position, echo, finished, name_devices,
                          expected_seconds(profile))
        elif devices is None:
            for prefix, task in todo.items():
                if needs_first(prefix) and FIRST in results and not results[FIRST].ok:
                    finished(prefix, _skipped(task, results[FIRST]))
                    continue
                echo(f"{position[prefix]} {task.notebook}: running")
                finished(prefix, _execute(task, None, echo))
    write_claims(profile, out, params.get("tables_dir") or "", echo)
    return [results[p] for p in tasks]


def _skipped(task: _Task, first: Result) -> Result:
    return Result(task.notebook, "skipped", error=f"depends on {first.notebook}, which did not succeed")


def needs_first(prefix: str) -> bool:
    """Whether a notebook reads what notebook FIRST builds (so it waits for FIRST, and is skipped if it fails)."""
    return prefix != FIRST and prefix not in INDEPENDENT


def expected_seconds(profile: str) -> dict[str, float]:
    """{notebook stem: seconds} of the last measured cold `make reproduce` of `profile` (`COSTS`; the mini
    profile only), else {}."""
    from paperlib.engine.paths import project_root

    path = project_root() / COSTS
    if profile != "mini" or not path.is_file():
        return {}
    return dict(json.loads(path.read_text()).get("cold", {}).get("notebooks", {}))


def run_order(tasks: Mapping[str, _Task], expected: Mapping[str, float]) -> list[str]:
    """The order workers take notebooks in: FIRST, then the longest expected first (a notebook with no measured
    time before the measured ones, in number order), so that no worker idles at the end behind a long one."""
    def key(prefix: str) -> tuple:
        cost = expected.get(tasks[prefix].notebook)
        return (prefix != FIRST, cost is not None, -(cost or 0.0), prefix)

    return sorted(tasks, key=key)


def _run_parallel(tasks: Mapping[str, _Task], devices: Sequence[str], env: Mapping[str, str],
                  position: Mapping[str, str], echo: Echo, finished: Callable[[str, Result], None],
                  name_devices: bool = True, expected: Mapping[str, float] | None = None) -> None:
    """The tasks on one worker process per device (PAPERLIB_THREADS intra-op threads each, `engine.threads`), in
    `run_order` as workers become free: FIRST first, beside it only the `INDEPENDENT` notebooks; the others
    once FIRST succeeded (skipped if it failed); `name_devices`: say which device runs a notebook."""
    prefix_of = {task.notebook: p for p, task in tasks.items()}
    pending, running = run_order(tasks, expected or {}), 0
    first: Result | None = None if FIRST in tasks else Result("", "ok")
    pool = _Workers(devices, env)
    try:
        while pending or running:
            if first is not None and not first.ok:
                for prefix in [p for p in pending if needs_first(p)]:
                    pending.remove(prefix)
                    finished(prefix, _skipped(tasks[prefix], first))
            ready = [p for p in pending if first is not None or not needs_first(p)]
            while ready and (slot := pool.free_slot()) is not None:
                prefix = ready.pop(0)
                pending.remove(prefix)
                where = f" (CUDA_VISIBLE_DEVICES={devices[slot]})" if name_devices else ""
                echo(f"{position[prefix]} {tasks[prefix].notebook}: running{where}")
                pool.submit(slot, tasks[prefix])
                running += 1
            if not running:
                continue
            result = pool.next_result()
            running -= 1
            prefix = prefix_of[result.notebook]
            if prefix == FIRST:
                first = result
            finished(prefix, result)
    finally:
        pool.close()


def write_claims(profile: str, executed: Path, tables: str | Path, echo: Echo = _echo) -> None:
    """Collect the verdicts of every executed notebook in `executed` into `<tables>/claims.md`; when that is
    the project's own tables/ folder, also into the README between its claims markers."""
    from paperlib.engine import paths
    from paperlib.studies import claims

    found = claims.collect(sorted(executed.glob("*.ipynb")))
    if not found:
        return
    folder = paths.tables_dir(tables)
    project = paths.tables_dir("")
    readme = paths.project_root() / "README.md" if folder.resolve() == project.resolve() else None
    out = claims.write_markdown(found, profile, folder, readme)
    echo(f"claims: {len(found)} verdict(s) in {out}" + (f" and {readme}" if readme else ""))


def summary(results: Sequence[Result]) -> str:
    """A few lines: every notebook's outcome, then the counts per status and the total wall time."""
    lines = [r.describe() for r in results]
    counts = ", ".join(f"{sum(r.status == s for r in results)} {s}" for s in STATUSES)
    fresh = sum(r.up_to_date for r in results)
    counts += f" ({fresh} of them up to date, not executed)" if fresh else ""
    lines.append(f"{len(results)} notebook(s): {counts}; {sum(r.seconds for r in results):.1f} s of execution")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- dry run

# Rough GPU-hour model (stated assumptions, not measurements):
# training FLOPs = 6 * parameters * tokens (forward + backward, Kaplan et al. 2020) per pass over an example;
TOKENS_PER_EXAMPLE = 256  # a TOFU QA pair in the Llama-2 chat template is ~100-200 tokens; batches pad
SUSTAINED_FLOPS = 1.0e14  # per GPU: ~30% of an A100's 312 TFLOP/s bf16 peak (a third of an H100's ~1e15 at 30%)
# one TOFU evaluation of a 7B model: ~1.3k prompts x 200 greedy tokens at batch 32 (~30 ms per step) plus
# the probability passes: about 0.1 GPU-hour, i.e. 0.015 GPU-hour per billion parameters
EVAL_GPU_HOURS_PER_B = 0.015


@dataclass(frozen=True)
class PlannedRun:
    """One training or unlearning run a notebook would launch, and its rough cost."""

    notebook: str
    model: str  # checkpoint / hub id
    method: str
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    n_examples: int = 0  # training examples per epoch (e.g. the forget split: 200 for TOFU forget05)
    epochs: float = 0.0
    params_b: float = 7.0  # model size, billions of parameters
    passes: float = 1.0  # forward+backward cost per example relative to plain fine-tuning (2: a retain term)
    evaluations: int = 1  # full TOFU evaluations of the result
    reference: bool = False  # a frozen reference model is needed (NPO, DPO, PALU, ...)
    model_name: str = ""  # display name of the model (e.g. Llama-3.1-8B-Instruct)

    @property
    def memory_gb(self) -> float:
        """GB of GPU memory for full-parameter AdamW in bf16 with fp32 states: 16 B per parameter (bf16 weights
        and gradients 2 + 2, fp32 master weights 4, fp32 Adam moments 8) plus 2 B for a frozen bf16 reference
        model (`config.training_memory_gb`); activations not counted. Evaluation only: the bf16 weights."""
        if self.epochs <= 0:
            return 2 * self.params_b
        return training_memory_gb(self.params_b, self.reference)

    @property
    def gpu_hours(self) -> float:
        """Training (6 N D FLOPs at SUSTAINED_FLOPS) plus evaluation (EVAL_GPU_HOURS_PER_B per billion)."""
        flops = 6 * self.params_b * 1e9 * TOKENS_PER_EXAMPLE * self.n_examples * self.epochs * self.passes
        return flops / SUSTAINED_FLOPS / 3600 + self.evaluations * EVAL_GPU_HOURS_PER_B * self.params_b


PlanFn = Callable[[Profile], list[dict[str, Any]]]


def experiments_plan(notebook: str, profile: Profile) -> list[dict[str, Any]]:
    """Notebooks 00-08 declare their runs in `paperlib.studies.palu.plan` (imported only for the dry run)."""
    from paperlib.studies import palu as experiments

    return experiments.plan(notebook, profile)


# prefix -> a function of the Profile returning one dict per run (keys: model, method, hyperparameters,
# n_examples, epochs, optional params_b, passes, evaluations), or "module:function" imported lazily.
# A notebook without an entry declares no runs.
PLANS: dict[str, PlanFn | str] = {
    **{f"{i:02d}": partial(experiments_plan, f"{i:02d}") for i in range(9)},
    "09": "paperlib.studies.localization:plan",
    "10": "paperlib.studies.distill:plan",
    "11": "paperlib.studies.muse:plan",
    "12": "paperlib.studies.rwku:plan",
}
_REQUIRED = ("model", "method", "hyperparameters", "n_examples", "epochs")
_OPTIONAL = ("params_b", "passes", "evaluations", "reference", "model_name")


def _plan_fn(prefix: str, entry: PlanFn | str) -> PlanFn:
    if callable(entry):
        return entry
    module, _, name = str(entry).partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"PLANS[{prefix!r}] = {entry!r}: cannot import it ({err}); expected 'module:function'") \
            from None


def plan(profile: str = "paper", only: Sequence[str] | None = None, notebooks_dir: str | Path = "notebooks",
         plans: Mapping[str, PlanFn | str] | None = None) -> dict[str, list[PlannedRun]]:
    """{notebook: its planned runs} for the selected notebooks (an empty list: no runs declared). Calls only
    the plan functions, which must work from the profile's settings alone (no hub, no data, no model)."""
    if profile not in PROFILE_NAMES + PAPER_PROFILE_NAMES:
        raise ValueError(f"profile {profile!r}; allowed: {', '.join(PROFILE_NAMES + PAPER_PROFILE_NAMES)}")
    table = PLANS if plans is None else plans
    planned: dict[str, list[PlannedRun]] = {}
    for prefix, path in select(discover(notebooks_dir), only).items():
        rows = []
        for settings in plan_profiles(profile, prefix):
            rows += [{"params_b": model_params_b(settings), "model_name": settings.model.name, **row}
                     for row in (_plan_fn(prefix, table[prefix])(settings) if prefix in table else [])]
        runs = []
        for row in rows:
            missing = [k for k in _REQUIRED if k not in row]
            extra = [k for k in row if k not in _REQUIRED + _OPTIONAL]
            if missing or extra:
                raise ValueError(f"plan of {path.stem}: run {row!r} lacks {missing} / has unknown keys {extra}; "
                                 f"keys: {', '.join(_REQUIRED)} (required), {', '.join(_OPTIONAL)} (optional)")
            runs.append(PlannedRun(notebook=path.stem, **row))
        planned[path.stem] = runs
    return planned


def plan_profiles(profile: str, prefix: str) -> list[Profile]:
    """The profiles whose runs notebook `prefix` plans: for "paper", the paper setting with every model a paper
    runs that notebook on (`config.PAPER_SETTINGS`: PALU's notebooks on Llama-2-7B-chat and Llama-3.1-8B);
    otherwise the profile itself."""
    if profile != "paper":
        return [get_profile(profile)]
    models = dict.fromkeys(s.model for s in PAPER_SETTINGS if prefix in s.notebooks)
    return [get_profile("paper" if m == "llama2-7b-chat" else f"paper-{m}") for m in models]


def format_plan(planned: Mapping[str, Sequence[PlannedRun]]) -> str:
    """The dry-run listing: one line per run (model, settings, training memory, GPU-hours), 'no runs declared'
    for notebooks without any, then totals per model and overall."""
    lines, total, count = [], 0.0, 0
    per_model: dict[str, list[float]] = {}
    for notebook, runs in planned.items():
        lines.append(f"{notebook}:" + ("" if runs else " no runs declared"))
        for run in runs:
            hp = ", ".join(f"{k}={v}" for k, v in run.hyperparameters.items())
            lines.append(f"  {run.method:<10} {run.model}  epochs={run.epochs:g} n={run.n_examples}"
                         f"{'  ' + hp if hp else ''}  {run.params_b:.3g}B params, ~{run.memory_gb:.0f} GB, "
                         f"~{run.gpu_hours:.2f} GPU-h")
            total += run.gpu_hours
            count += 1
            acc = per_model.setdefault(run.model_name or run.model, [0, 0.0, 0.0])
            acc[0] += 1
            acc[1] += run.gpu_hours
            acc[2] = max(acc[2], run.memory_gb)
    for model, (n, hours, memory) in per_model.items():
        lines.append(f"model {model}: {n} run(s), ~{hours:.1f} GPU-hours, peak ~{memory:.0f} GB per run "
                     f"({TRAIN_BYTES_PER_PARAM} B/parameter for full-parameter AdamW in bf16 with fp32 master "
                     f"weights and moments, +{REFERENCE_BYTES_PER_PARAM} B/parameter for a frozen bf16 reference; "
                     "above one GPU's memory: FSDP / ZeRO-3 across GPUs)")
    lines.append(f"total: {count} run(s), ~{total:.1f} GPU-hours (rough: 6*N*D FLOPs at "
                 f"{SUSTAINED_FLOPS:.0e} FLOP/s per GPU, {TOKENS_PER_EXAMPLE} tokens per example, "
                 f"{EVAL_GPU_HOURS_PER_B} GPU-h per evaluation and billion parameters)")
    return "\n".join(lines)
