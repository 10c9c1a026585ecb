"""The oracle pipeline and `paperlib mask` / `unlearn --mask` end to end in the smoke profile (reuses the smoke
models of the run cache; about 25 s once they exist). `oracle_runs` is `unlearn` in a loop: the
masked run of the first test covers it."""

from __future__ import annotations

from pathlib import Path

import torch

from paperlib import cache, localization, masks, pipeline
from paperlib.cli import main
from paperlib.config import get_profile
from paperlib.models import load_model
from paperlib.unlearn import read_run, unlearned_model


def _changed_only_inside(before: str, after: str, mask: dict[str, torch.Tensor]) -> None:
    a, b = dict(load_model(before).named_parameters()), dict(load_model(after).named_parameters())
    for n, p in b.items():
        keep = ~mask[n] if n in mask else torch.ones_like(p, dtype=torch.bool)
        assert torch.equal(p.detach()[keep], a[n].detach()[keep]), n
    assert any(not torch.equal(b[n].detach(), a[n].detach()) for n in mask)


def test_mask_cli_then_masked_unlearning(tmp_path, capsys):
    profile = get_profile("smoke")
    out = tmp_path / "mask"
    main(["mask", "--attribution", "gradient", "--ratio", "0.1", "--profile", "smoke", "--out", str(out)])
    mask, info = masks.load_mask(out, pipeline.original_model(profile))
    assert info["config"]["attribution"] == "gradient" and abs(info["summary"]["ratio"] - 0.1) < 1e-3
    main(["unlearn", "--method", "GA", "--profile", "smoke", "--mask", str(out), "--set", "epochs=1",
          "--out", str(tmp_path / "run")])
    assert read_run(tmp_path / "run")["status"]["status"] == "completed"
    _changed_only_inside(pipeline.original_model(profile), str(unlearned_model(tmp_path / "run")), mask)
    assert "copied to" in capsys.readouterr().out
    points = localization.run_points(tmp_path / "run")
    assert len(points) == 1 and 0 <= points[0]["FS"] <= 1 and points[0]["epoch"] == 1


def test_oracle_injection_and_runs():
    profile = get_profile("smoke")
    oracle = localization.oracle_mask(profile)
    comp = localization.oracle_mask(profile, complement=True)
    assert set(oracle) == set(comp) and all(n.endswith("mlp.down_proj.weight") for n in oracle)
    assert not any((oracle[n] & comp[n]).any() for n in oracle)
    assert sum(int(m.sum()) for m in oracle.values()) == sum(int(m.sum()) for m in comp.values())
    injected = localization.injected_model(profile)
    _changed_only_inside(pipeline.retain_model(profile, "forget10"), injected, oracle)
    # the injection is fingerprinted: an edit of paperlib/injection.py (or masks, train, ...) rebuilds it
    assert "injection" in cache.CODE["inject"] and "masks" in cache.CODE["inject"]
    assert cache.read_manifest(Path(injected))["code"] == cache.code_fingerprint("inject")
