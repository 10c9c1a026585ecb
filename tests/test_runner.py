"""paperlib.runner and `paperlib reproduce` on tiny throwaway notebooks (not the research notebooks).

Each notebook has a `parameters` cell (profile, out) and writes `<out>/<name>.txt` (deterministic) and
`<out>/<name>.env.json` (CUDA_VISIBLE_DEVICES, PAPERLIB_CACHE and cwd as its kernel saw them).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from paperlib import cli, runner
from paperlib.engine import threads

WRITE = '''import json, os, pathlib
name = "{name}"
folder = pathlib.Path(out)
folder.mkdir(parents=True, exist_ok=True)
(folder / f"{{name}}.txt").write_text(f"{{name}} profile={{profile}}\\n")
keys = ("CUDA_VISIBLE_DEVICES", "PAPERLIB_CACHE", "PAPERLIB_EXECUTOR", "OMP_NUM_THREADS")
env = {{k: os.environ.get(k) for k in keys}}
(folder / f"{{name}}.env.json").write_text(json.dumps({{**env, "cwd": os.getcwd()}}))
print("wrote", name)'''


def make_notebook(folder: Path, name: str, fail: bool = False) -> Path:
    """`folder/name.ipynb`: cell 0 parameters, cell 1 writes the files, cell 2 raises if `fail`."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "mini"\nout = "out"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(WRITE.format(name=name))]
    if fail:
        nb.cells.append(nbformat.v4.new_code_cell('raise ValueError("boom")'))
    nb.cells.append(nbformat.v4.new_markdown_cell("the end"))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def ok_notebooks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ok")
    for name in ("01_alpha", "02_beta", "03_gamma"):
        make_notebook(root / "notebooks", name)
    return root


@pytest.fixture(scope="module")
def serial_run(ok_notebooks: Path) -> tuple[list[runner.Result], list[str]]:
    """01 and 02 executed one after the other (03 filtered out by `only`)."""
    lines: list[str] = []
    results = runner.reproduce("smoke", only=["01", "2"], parameters={"out": str(ok_notebooks / "serial")},
                               paths=runner.Paths(out_dir=ok_notebooks / "executed",
                                                  notebooks_dir=ok_notebooks / "notebooks"),
                               execution=runner.Execution(echo=lines.append))
    return results, lines


def test_serial_run_writes_files_and_executed_copies(ok_notebooks: Path, serial_run) -> None:
    results, lines = serial_run
    assert [(r.notebook, r.status) for r in results] == [("01_alpha", "ok"), ("02_beta", "ok")]
    out = ok_notebooks / "serial"
    assert sorted(p.name for p in out.glob("*.txt")) == ["01_alpha.txt", "02_beta.txt"]  # 03 not selected
    assert (out / "01_alpha.txt").read_text() == "01_alpha profile=smoke\n"  # profile injected
    env = json.loads((out / "01_alpha.env.json").read_text())
    assert Path(env["PAPERLIB_CACHE"]).is_absolute()
    assert env["cwd"] == str(ok_notebooks.resolve())  # default kernel cwd: the folder above notebooks/
    executed = nbformat.read(ok_notebooks / "executed" / "smoke" / "02_beta.ipynb", as_version=4)
    assert results[1].output == (ok_notebooks / "executed" / "smoke" / "02_beta.ipynb").resolve()
    outputs = [o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert "wrote 02_beta\n" in outputs
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert any("01_alpha: running" in line for line in lines)
    # while it runs: a line per cell started (of 4: parameters, injected parameters, write, markdown) and per
    # line it prints, each named
    assert "01_alpha: cell 3/4" in lines and "01_alpha: wrote 01_alpha" in lines
    assert lines.index("01_alpha: cell 3/4") < lines.index("01_alpha: wrote 01_alpha") < lines.index(
        next(line for line in lines if line.startswith("[1/2] 01_alpha: ok")))
    assert any(line.startswith("[2/2] 02_beta: ok in") for line in lines)


def test_two_gpu_workers_give_the_serial_files(ok_notebooks: Path, serial_run, monkeypatch) -> None:
    # whatever this process exported as OMP_NUM_THREADS, the workers and their kernels compute with
    # PAPERLIB_THREADS threads (the default 1; the suite's conftest sets every core)
    monkeypatch.setenv("OMP_NUM_THREADS", str(threads.cores() + 2))
    results = runner.reproduce("smoke", only=["01", "02"], gpus=[0, 1],
                               parameters={"out": str(ok_notebooks / "parallel")},
                               paths=runner.Paths(out_dir=ok_notebooks / "executed-par",
                                                  notebooks_dir=ok_notebooks / "notebooks"),
                               execution=runner.Execution(echo=lambda _: None))
    assert [r.status for r in results] == ["ok", "ok"]
    assert {r.device for r in results} == {"0", "1"}
    par, ser = ok_notebooks / "parallel", ok_notebooks / "serial"
    devices = {json.loads(p.read_text())["CUDA_VISIBLE_DEVICES"] for p in par.glob("*.env.json")}
    assert devices == {"0", "1"}  # each kernel saw its own worker's device
    assert {json.loads(p.read_text())["OMP_NUM_THREADS"] for p in par.glob("*.env.json")} == {
        str(threads.count())}
    assert sorted(p.name for p in par.glob("*.txt")) == sorted(p.name for p in ser.glob("*.txt"))
    for path in ser.glob("*.txt"):
        assert (par / path.name).read_bytes() == path.read_bytes()
    assert (ok_notebooks / "executed-par" / "smoke" / "01_alpha.ipynb").is_file()


@pytest.fixture(scope="module")
def failing_notebooks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fail")
    make_notebook(root / "notebooks", "01_broken", fail=True)
    make_notebook(root / "notebooks", "02_independent")
    return root


def test_failure_is_reported_kept_and_the_others_still_run(failing_notebooks: Path) -> None:
    root = failing_notebooks
    results = runner.reproduce("mini", parameters={"out": str(root / "lib")},
                               paths=runner.Paths(out_dir=root / "executed", notebooks_dir=root / "notebooks"),
                               execution=runner.Execution(echo=lambda _: None))
    broken, independent = results
    assert (broken.status, independent.status) == ("failed", "ok")
    assert broken.cell_index == 2 and broken.error == "ValueError: boom"
    assert broken.cell_source == 'raise ValueError("boom")'
    assert "01_broken" in broken.describe() and "cell 2" in broken.describe()
    executed = nbformat.read(broken.output, as_version=4)  # executed copy kept, with the traceback
    assert any(o.get("ename") == "ValueError" for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert (root / "lib" / "02_independent.txt").is_file()
    assert "1 ok, 1 failed, 0 skipped" in runner.summary(results)


def test_a_failed_first_notebook_skips_the_others(tmp_path: Path) -> None:
    """00 builds what every other notebook needs: when it fails, the rest are skipped, not run."""
    make_notebook(tmp_path / "notebooks", "00_setup", fail=True)
    make_notebook(tmp_path / "notebooks", "01_after")
    lines: list[str] = []
    first, after = runner.reproduce("smoke", gpus=[0], parameters={"out": str(tmp_path / "lib")},
                                    paths=runner.Paths(out_dir=tmp_path / "executed",
                                                       notebooks_dir=tmp_path / "notebooks"),
                                    execution=runner.Execution(echo=lines.append))
    assert (first.status, after.status) == ("failed", "skipped") and first.device == "0"
    assert "00_setup" in after.error and not (tmp_path / "lib" / "01_after.txt").exists()
    assert "[2/2] 01_after: skipped (depends on 00_setup, which did not succeed)" in lines


def test_workers_run_the_independent_notebooks_beside_the_first_and_the_rest_longest_first(tmp_path: Path) -> None:
    """00 first; 11 (independent of 00) starts beside it, before 00 ends; 01 and 02 wait for 00 and start in
    the order of their expected cost (the longer first); when 00 fails, 11 still runs."""
    names = ("00_setup", "01_short", "02_long", "11_muse")
    for name in names:
        make_notebook(tmp_path / "notebooks", name)
    tasks = {n[:2]: runner._Task(n, Path(n), Path(n), {}, "python3", tmp_path, False) for n in names}
    assert runner.run_order(tasks, {"01_short": 5.0, "02_long": 50.0, "11_muse": 20.0}) == ["00", "02", "11", "01"]
    assert runner.run_order(tasks, {"01_short": 5.0}) == ["00", "02", "11", "01"]  # unmeasured first, by number
    assert [p for p in tasks if runner.needs_first(p)] == ["01", "02"]

    lines: list[str] = []
    runner.reproduce("smoke", gpus=[0, 1], parameters={"out": str(tmp_path / "lib")},
                     paths=runner.Paths(out_dir=tmp_path / "executed", notebooks_dir=tmp_path / "notebooks"),
                     execution=runner.Execution(echo=lines.append, stream=False))
    starts = [line.split()[1].rstrip(":") for line in lines if line.endswith("running (CUDA_VISIBLE_DEVICES=0)")
              or line.endswith("running (CUDA_VISIBLE_DEVICES=1)")]
    assert starts[:2] == ["00_setup", "11_muse"] and sorted(starts[2:]) == ["01_short", "02_long"]
    first_done = next(i for i, line in enumerate(lines) if "00_setup: ok" in line)
    started = [lines.index(next(x for x in lines if f"{n}: running" in x)) for n in ("01_short", "02_long")]
    assert min(started) > first_done

    make_notebook(tmp_path / "broken", "00_setup", fail=True)
    make_notebook(tmp_path / "broken", "01_after")
    make_notebook(tmp_path / "broken", "12_rwku")
    results = runner.reproduce("smoke", gpus=[0, 1], parameters={"out": str(tmp_path / "lib2")},
                               paths=runner.Paths(out_dir=tmp_path / "executed2", notebooks_dir=tmp_path / "broken"),
                               execution=runner.Execution(echo=lambda _: None))
    assert [r.status for r in results] == ["failed", "skipped", "ok"]


def test_cli_exits_nonzero_naming_notebook_and_cell(failing_notebooks: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PAPERLIB_CACHE": str(tmp_path / "runs")}
    proc = subprocess.run([sys.executable, "-m", "paperlib.cli", "reproduce", "--only", "01", "--notebooks",
                           str(failing_notebooks / "notebooks"), "--out", str(tmp_path / "executed")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0
    assert "01_broken" in proc.stderr and "cell 2" in proc.stderr and "ValueError: boom" in proc.stderr
    assert (tmp_path / "executed" / "mini" / "01_broken.ipynb").is_file()


def test_bad_input_fails_before_anything_runs(ok_notebooks: Path, tmp_path: Path) -> None:
    nbs = ok_notebooks / "notebooks"
    with pytest.raises(ValueError, match=r"unknown notebook\(s\) \['07'\]; available: 01 \(01_alpha\)"):
        runner.reproduce(only=["07"], paths=runner.Paths(notebooks_dir=nbs, out_dir=tmp_path))
    with pytest.raises(ValueError, match="profile 'huge'; allowed: smoke, mini, paper"):
        runner.reproduce("huge", paths=runner.Paths(notebooks_dir=nbs, out_dir=tmp_path))
    with pytest.raises(ValueError, match="gpus"):
        runner.reproduce(gpus=[], paths=runner.Paths(notebooks_dir=nbs, out_dir=tmp_path))
    with pytest.raises(ValueError, match="kernel 'nope' is not installed"):
        runner.reproduce(paths=runner.Paths(notebooks_dir=nbs, out_dir=tmp_path),
                         execution=runner.Execution(kernel_name="nope"))
    with pytest.raises(ValueError, match="no notebooks named"):
        runner.reproduce(paths=runner.Paths(notebooks_dir=tmp_path, out_dir=tmp_path))
    assert not list(tmp_path.iterdir())  # nothing executed, nothing written
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["reproduce", "--only", "09", "--notebooks", str(nbs)])
    assert exit_info.value.code == 2


def test_cli_workers_without_cuda_print_no_device_and_no_kernel_transport_warning(ok_notebooks: Path, tmp_path: Path,
                                                                                  capfd, monkeypatch) -> None:
    """`make reproduce` (`--workers 2`) on a machine without CUDA: the worker ids are no devices, so no line
    says CUDA_VISIBLE_DEVICES; and the kernels, whose stderr is the terminal's, log no `[IPKernelApp] WARNING |
    Kernel is running over TCP without encryption` (their transport is encrypted). `--gpus` still names them."""
    monkeypatch.setattr(runner, "_cuda_available", lambda: False)
    nbs = str(ok_notebooks / "notebooks")
    cli.main(["reproduce", "--profile", "smoke", "--only", "01,02", "--workers", "2", "--notebooks", nbs,
              "--out", str(tmp_path / "workers")])
    out, err = capfd.readouterr()  # file-descriptor level: the workers' and kernels' output too
    assert "01_alpha: ok" in out and "02_beta: ok" in out
    assert "CUDA_VISIBLE_DEVICES" not in out + err, out + err
    assert "Kernel is running over TCP" not in out + err, err
    cli.main(["reproduce", "--profile", "smoke", "--only", "01", "--gpus", "0", "--notebooks", nbs,
              "--out", str(tmp_path / "gpus")])
    out, err = capfd.readouterr()
    assert "01_alpha: ok" in out and "(CUDA_VISIBLE_DEVICES=0)" in out, out


def test_cli_executor_settings_reach_the_kernels(ok_notebooks: Path, tmp_path: Path) -> None:
    """`--executor local --partition p --time 30`: every kernel sees the executor (engine.executors.current)."""
    cli.main(["reproduce", "--only", "03", "--notebooks", str(ok_notebooks / "notebooks"), "--out", str(tmp_path),
              "--executor", "local", "--partition", "p", "--time", "30"])
    seen = json.loads(json.loads((ok_notebooks / "out" / "03_gamma.env.json").read_text())["PAPERLIB_EXECUTOR"])
    assert (seen["kind"], seen["cluster"], seen["partition"], seen["time_min"]) == ("slurm", "local", "p", 30)
    for argv in (["--partition", "p"], ["--executor", "pbs"], ["--executor", "inprocess", "--time", "5"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["reproduce", "--only", "03", "--notebooks", str(ok_notebooks / "notebooks"), *argv])
        assert exit_info.value.code == 2


def test_cli_default_workers_fill_the_machine(monkeypatch, tmp_path: Path) -> None:
    """No --workers / --gpus on a CPU machine with 8 cores: 8 notebook workers (of one thread each), not 2 of 4."""
    import torch

    seen = {}
    monkeypatch.delenv(threads.VAR, raising=False)  # the default: one thread per process
    monkeypatch.setattr(threads, "cores", lambda: 8)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runner, "reproduce", lambda profile, only, devices, **kw: seen.update(d=devices) or [])
    monkeypatch.setattr(runner, "summary", lambda results: "")
    cli.main(["reproduce", "--only", "03"])
    assert seen["d"] == [str(i) for i in range(8)]
    seen.clear()
    cli.main(["reproduce", "--only", "03", "--workers", "1"])
    assert seen["d"] is None


def test_selection(ok_notebooks: Path) -> None:
    found = runner.discover(ok_notebooks / "notebooks")
    assert list(found) == ["01", "02", "03"]
    assert list(runner.select(found, ["03", "1"])) == ["01", "03"]  # number order, "1" means "01"
    assert list(runner.select(found, ["02_beta"])) == ["02"]


# ------------------------------------------------------------------------------------------- dry run

def fake_plan(profile) -> list[dict]:
    return [{"model": profile.model.original, "method": "PALU", "hyperparameters": {"lr": 1e-5, "N": 3},
             "n_examples": 200, "epochs": 10, "passes": 2}]


def test_plan_lists_runs_and_notebooks_without_runs(ok_notebooks: Path) -> None:
    planned = runner.plan("paper", notebooks_dir=ok_notebooks / "notebooks",
                          plans={"01": fake_plan, "02": f"{__name__}:fake_plan"})
    assert list(planned) == ["01_alpha", "02_beta", "03_gamma"]
    run = planned["01_alpha"][0]
    assert run.model == "open-unlearning/tofu_Llama-2-7b-chat-hf_full" and run.hyperparameters["N"] == 3
    assert planned["03_gamma"] == []
    text = runner.format_plan(planned)
    assert "03_gamma: no runs declared" in text and "PALU" in text and "GPU-h" in text


def test_gpu_hour_estimate_follows_the_stated_formula() -> None:
    run = runner.PlannedRun("x", "m", "GA", {}, n_examples=200, epochs=10, params_b=7.0, evaluations=0)
    expected = 6 * 7e9 * runner.TOKENS_PER_EXAMPLE * 2000 / runner.SUSTAINED_FLOPS / 3600
    assert run.gpu_hours == pytest.approx(expected)
    double = runner.PlannedRun("x", "m", "GD", {}, n_examples=200, epochs=10, passes=2.0, evaluations=0)
    assert double.gpu_hours == pytest.approx(2 * expected)
    evaluated = runner.PlannedRun("x", "m", "GA", {}, n_examples=200, epochs=10, evaluations=1)
    assert evaluated.gpu_hours == pytest.approx(expected + 7 * runner.EVAL_GPU_HOURS_PER_B)


def test_bad_plan_rows_are_named(ok_notebooks: Path) -> None:
    with pytest.raises(ValueError, match=r"plan of 01_alpha: .* lacks \['epochs'\]"):
        runner.plan(notebooks_dir=ok_notebooks / "notebooks",
                    plans={"01": lambda p: [{"model": "m", "method": "GA", "hyperparameters": {}, "n_examples": 1}]})
    with pytest.raises(ValueError, match="cannot import"):
        runner.plan(notebooks_dir=ok_notebooks / "notebooks", plans={"01": "paperlib.nothing:plan"})


def test_registered_plans_resolve_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Every plan in runner.PLANS resolves for the paper profile without any network access."""
    for prefix in {*runner.PLANS, "00"}:
        make_notebook(tmp_path / "notebooks", f"{prefix}_nb")

    def no_network(*args, **kwargs):
        raise AssertionError("the dry run tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    planned = runner.plan("paper", notebooks_dir=tmp_path / "notebooks")
    assert set(planned) == {f"{p}_nb" for p in {*runner.PLANS, "00"}}
    cli.main(["reproduce", "--profile", "paper", "--dry-run", "--notebooks", str(tmp_path / "notebooks")])
    assert "total:" in capsys.readouterr().out


NOTE = '''from paperlib import report
report.save_note("{name} " + profile, "{name}", out)'''


def test_up_to_date_notebooks_are_not_executed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stamp beside each executed copy: a second run executes nothing; a changed output or notebook source
    executes that notebook again; a failure leaves no stamp (the next run executes it)."""
    import papermill

    from paperlib.engine import stamps

    for name in ("01_alpha", "02_beta"):
        path = make_notebook(tmp_path / "notebooks", name)
        nb = nbformat.read(path, as_version=4)
        nb.cells.insert(2, nbformat.v4.new_code_cell(NOTE.format(name=name)))
        nbformat.write(nb, path)
    make_notebook(tmp_path / "notebooks", "03_gamma", fail=True)
    out = tmp_path / "out"

    def run(**kwargs) -> dict[str, runner.Result]:
        results = runner.reproduce("smoke", parameters={"out": str(out)},
                                   paths=runner.Paths(out_dir=tmp_path / "executed",
                                                      notebooks_dir=tmp_path / "notebooks"),
                                   execution=runner.Execution(stream=False, echo=lambda line: None,
                                                              skip_up_to_date=True), **kwargs)
        return {r.notebook: r for r in results}

    first = run()
    assert [(r.status, r.up_to_date) for r in first.values()] == [("ok", False), ("ok", False), ("failed", False)]
    stamp = json.loads(stamps.stamp_path(first["01_alpha"].output).read_text())
    assert list(stamp["outputs"]) == [str((out / "01_alpha.md").resolve())]  # what report saved, by digest
    assert not stamps.stamp_path(first["03_gamma"].output).exists()

    executed = []
    real = papermill.execute_notebook
    monkeypatch.setattr(papermill, "execute_notebook", lambda src, *a, **k: executed.append(Path(src).stem)
                        or real(src, *a, **k))
    second = run(only=["01", "02"])
    assert executed == [] and all(r.up_to_date and r.ok for r in second.values())
    assert "up to date" in runner.summary(list(second.values()))

    (out / "01_alpha.md").write_text("edited by hand\n")  # an output changed: executed again, rewritten
    nb = nbformat.read(tmp_path / "notebooks" / "02_beta.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("a new sentence"))  # the source changed
    nbformat.write(nb, tmp_path / "notebooks" / "02_beta.ipynb")
    third = run()
    assert executed == ["01_alpha", "02_beta", "03_gamma"] and not any(r.up_to_date for r in third.values())
    assert (out / "01_alpha.md").read_text() == "01_alpha smoke\n"
    executed.clear()
    runner.reproduce("smoke", only=["01"], parameters={"out": str(out)},  # the library: executes
                     paths=runner.Paths(out_dir=tmp_path / "executed", notebooks_dir=tmp_path / "notebooks"),
                     execution=runner.Execution(stream=False, echo=lambda line: None))
    assert executed == ["01_alpha"]
