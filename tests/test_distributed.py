"""Several processes within one run (issue 16 item 3, issue 11): `accelerate launch` with the shipped DDP config
on 2 CPU processes (gloo) gives the losses and weights of one process at the same effective batch (batch 2 x 2
processes = batch 2 x gradient accumulation 2, to float32 rounding), and every stop decision reaches every process: a
`Diverged` raised by the main process's epoch callback (its evaluation) and a NaN loss on one process only
stop both processes at the same step, in bounded time (a process left behind would hang in the next gradient
all-reduce). Run as a script, this file is the worker each launched process executes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from paperlib.engine.config import TrainConfig
from paperlib.engine.errors import PaperlibError
from paperlib.engine.train import Diverged, Loop, check_optimizer, check_precision, train

ROOT = Path(__file__).resolve().parents[1]
N, LENGTH, VOCAB = 8, 6, 32  # samples, tokens per sample (no padding), vocabulary
# Several processes sum the gradients and losses in another order than one process: losses ~3.4 and weights ~1
# agree to an ulp or two (measured 2.4e-7 / 1.2e-7), not bit for bit, so they are compared relatively (an
# absolute 1e-6 is only 4 ulps of the loss); a wrong scaling or a lost micro-batch is off by far more.
F32 = {"rel": 1e-5, "abs": 1e-6}


def close(a: list[float], b: list[float]) -> bool:
    return a == pytest.approx(b, **F32)


def tiny_model() -> torch.nn.Module:
    """A 1-layer Llama (hidden 16), the same weights in every process."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=16)
    return LlamaForCausalLM(config)


def data(n: int = N) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    return [{"input_ids": torch.randint(0, VOCAB, (LENGTH,), generator=g)} for _ in range(n)]


def collate(rows: list[dict]) -> dict:
    ids = torch.stack([r["input_ids"] for r in rows])
    return {"input_ids": ids, "labels": ids.clone()}


def nll(model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
    return model(**batch).loss, {}


def config(**kw) -> TrainConfig:
    return TrainConfig(**{"lr": 1e-2, "epochs": 2, "batch_size": 2, "warmup_epochs": 0.5, "seed": 3, **kw})


def run(cfg: TrainConfig, loss_fn=nll, on_epoch_end=None, n: int = N) -> dict:
    model = tiny_model()
    result = train(model, data(n), loss_fn, cfg, collate, loop=Loop(on_epoch_end=on_epoch_end, progress=False))
    return {"steps": [{k: r[k] for k in ("epoch", "step", "loss", "lr")} for r in result.steps],
            "diverged": [result.diverged_epoch, result.diverged_at, result.reason],
            "weights": {n: p.detach().flatten().tolist() for n, p in model.named_parameters()}}


def worker(out: Path) -> None:
    """Executed by every launched process: the three scenarios, one JSON file per process."""
    from accelerate import PartialState

    rank = PartialState(cpu=True).process_index
    calls = []

    def nan_on_rank_1(model, batch):  # step 2 of epoch 1 turns NaN on process 1 only
        calls.append(1)
        loss, parts = nll(model, batch)
        return (loss * float("nan") if rank == 1 and len(calls) == 2 else loss), parts

    def evaluate_on_main(model, epoch):  # as unlearn's: only the main process evaluates
        if rank == 0 and epoch == 1:
            raise Diverged("evaluation after epoch 1 is non-finite")
        return {}

    results = {"same": run(config()),
               "nan": run(config(epochs=3), loss_fn=nan_on_rank_1),
               "eval": run(config(epochs=3), on_epoch_end=evaluate_on_main),
               "uneven": run(config(warmup_epochs=1.0), n=10)}
    (out / f"rank{rank}.json").write_text(json.dumps(results))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(args: list[str], timeout: float = 180) -> str:
    """`ACCELERATE_USE_CPU=1 accelerate launch --config_file configs/accelerate/ddp.yaml --num_processes 2 ARGS`
    (torchrun's launcher; on the CPU the processes talk over gloo); its output. Fails the test on a hang."""
    argv = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            str(ROOT / "configs/accelerate/ddp.yaml"), "--num_processes", "2", "--main_process_port",
            str(_free_port()), *args]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        import psutil  # torchrun starts its workers in sessions of their own: kill the whole tree

        for p in [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]:
            p.kill()
        proc.wait(timeout=30)
        pytest.fail(f"the 2-process run did not finish in {timeout} s: a process was left behind (hang)")
    assert proc.returncode == 0, log[-3000:]
    return log


@pytest.fixture(scope="module")
def launched(tmp_path_factory) -> list[dict]:
    """The worker launched on 2 CPU processes: their results."""
    out = tmp_path_factory.mktemp("ddp")
    _launch([__file__, "worker", str(out)])
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_two_processes_equal_one_process_with_gradient_accumulation(launched):
    one = run(config(grad_accum=2))
    for rank in launched:
        two = rank["same"]
        assert len(two["steps"]) == 4 and len(one["steps"]) == 8  # 2 epochs x 2 updates; rows per micro-batch
        for k, row in enumerate(two["steps"]):  # logged loss: mean over the processes' micro-batches
            pair = one["steps"][2 * k: 2 * k + 2]
            assert row["loss"] == pytest.approx((pair[0]["loss"] + pair[1]["loss"]) / 2, **F32)
            assert row["lr"] == pytest.approx(pair[1]["lr"], rel=1e-12)
        for name, values in one["weights"].items():
            assert close(two["weights"][name], values), name
    assert launched[0]["same"]["steps"] == launched[1]["same"]["steps"]


def test_two_processes_equal_one_process_with_the_whole_batch(launched):
    """Equal-length samples: the token mean of a batch of 4 is the mean of its two halves' token means."""
    one = run(config(batch_size=4))
    two = launched[0]["same"]
    assert close([r["loss"] for r in two["steps"]], [r["loss"] for r in one["steps"]])
    for name, values in one["weights"].items():
        assert close(two["weights"][name], values), name


def test_unlearn_command_under_two_processes(tmp_path, monkeypatch):
    """`paperlib unlearn` itself launched on 2 processes (smoke GA) on an empty cache: the models it needs are
    built by both processes together (the main one into the cache), the run completes, every process returns
    only after the main one copied it to --out (the command line then reads it), the schedule ends at lr 0."""
    out = tmp_path / "run"
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    log = _launch(["-m", "paperlib.cli", "unlearn", "--profile", "smoke", "--method", "GA", "--forget", "forget10",
                   "--set", "batch_size=4", "--set", "lr=2e-3", "--out", str(out)], timeout=300)
    assert log.count(f"copied to {out}") == 2  # both processes read the copy
    status = json.loads((out / "status.json").read_text())
    steps = json.loads((out / "train_log.json").read_text())
    assert status["status"] == "completed" and steps[-1]["lr"] == 0.0 and (out / "model").is_dir()
    from paperlib.engine.cache import verify_cache

    built = sorted(p.parent.parent.name for p in (tmp_path / "cache").glob("*/*/COMPLETE"))
    assert built.count("model") == 3 and "unlearn" in built  # base, original, retain; the run
    assert verify_cache(tmp_path / "cache") == {}


def test_nan_loss_on_one_process_stops_both_at_the_same_step(launched):
    main, other = (r["nan"]["diverged"] for r in launched)
    assert main[:2] == other[:2] == [1, 1]  # epoch 1, after 1 completed step
    assert main[2] == "non-finite loss on another process at step 2" and other[2].startswith("non-finite loss (nan)")
    assert len(launched[0]["nan"]["steps"]) == 1


def test_evaluation_divergence_on_the_main_process_stops_every_process(launched):
    main, other = (r["eval"]["diverged"] for r in launched)
    assert main == [1, 2, "evaluation after epoch 1 is non-finite"]
    assert other[:2] == [1, 2] and "another process raised Diverged" in other[2]


def test_schedule_spans_the_epochs_run_when_the_data_does_not_divide(launched):
    """10 samples, batch 2, 2 processes: accelerate pads each epoch to 3 batches per process (even_batches), so
    the schedule (1 warm-up epoch, linear decay over 2) peaks at the last update of epoch 1 and reaches 0 at the
    last update of epoch 2, as one process's does over its own epochs."""
    steps = launched[0]["uneven"]["steps"]
    assert [r["epoch"] for r in steps] == [1, 1, 1, 2, 2, 2]
    assert [r["lr"] for r in steps] == pytest.approx([1e-2 / 3, 2e-2 / 3, 1e-2, 2e-2 / 3, 1e-2 / 3, 0.0])


def test_bitsandbytes_optimizer_and_launcher_precision_are_checked(monkeypatch):
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None or not torch.cuda.is_available():
        for name in ("paged_adamw_32bit", "paged_adamw_8bit", "adamw_8bit"):
            with pytest.raises(PaperlibError, match=f"optimizer='{name}' needs bitsandbytes and a CUDA GPU"):
                check_optimizer(config(optimizer=name))
    check_optimizer(config())
    with pytest.raises(PaperlibError, match="allowed: adamw, paged_adamw_32bit, paged_adamw_8bit, adamw_8bit"):
        config(optimizer="sgd")
    with pytest.raises(PaperlibError, match="mixed_precision='fp8'; allowed: no, bf16"):
        config(mixed_precision="fp8")
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    with pytest.raises(PaperlibError, match="accelerate launch asks for mixed_precision='bf16'"):
        check_precision(config())
    check_precision(config(mixed_precision="bf16"))


@pytest.mark.parametrize("name", ["ddp", "fsdp"])
def test_accelerate_configs_parse(name):
    """The shipped launch configs load as accelerate's own config class (no unknown or misspelt keys)."""
    from accelerate.commands.config.config_args import ClusterConfig

    cfg = ClusterConfig.from_yaml_file(str(ROOT / "configs/accelerate" / f"{name}.yaml"))
    assert cfg.mixed_precision == "no" and cfg.num_machines == 1  # precision is the run's, not the launcher's
    assert (cfg.distributed_type.value, bool(cfg.fsdp_config)) == \
        {"ddp": ("MULTI_GPU", False), "fsdp": ("FSDP", True)}[name]


def test_fsdp_launch_of_an_unlearning_run_is_refused(monkeypatch):
    """What `accelerate launch --config_file configs/accelerate/fsdp.yaml` exports: refused before compute."""
    from paperlib.engine.train import check_launch

    check_launch()
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(PaperlibError, match="accelerate launch with FSDP: .* allowed: configs/accelerate/ddp.yaml"):
        check_launch()


def test_bf16_mixed_precision_trains(monkeypatch):
    """bf16 autocast (CPU here): finite losses close to fp32's, weights kept in fp32."""
    fp32, bf16 = run(config()), run(config(mixed_precision="bf16"))
    assert bf16["diverged"][0] is None
    assert [r["loss"] for r in bf16["steps"]] == pytest.approx([r["loss"] for r in fp32["steps"]], abs=0.05)


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    worker(Path(sys.argv[2]))
