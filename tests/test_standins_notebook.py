"""Notebook 01 itself, executed by papermill on the paper setting pointed at the stand-ins (issue 16 item 1): a local
TOFU copy in the hub layout and tiny checkpoints in open-unlearning's layout, named by a profile file as the
notebook's `profile` parameter, unlearning settings (optimizer=adamw, PALU's K) carried by it; no network in
this process or in the kernel (an IPython startup file refuses every non-loopback connection)."""

from __future__ import annotations

import dataclasses
import json
import socket

import nbformat
import pandas as pd
import pytest
from conftest import ROOT

from paperlib.benchmarks.tofu import standins
from paperlib.engine.config import get_profile
from paperlib.engine.errors import PaperlibError
from paperlib.methods import tuning
from paperlib.studies import claims
from paperlib.studies import palu as experiments

OFFLINE_STARTUP = '''import pathlib, socket
_connect = socket.socket.connect
def _refuse(self, address, *args):
    host = address[0] if isinstance(address, tuple) else "local"
    if self.family != socket.AF_UNIX and host not in ("127.0.0.1", "localhost", "::1"):
        raise OSError(f"network access attempted in an offline test: {address}")
    return _connect(self, address, *args)
socket.socket.connect = _refuse
pathlib.Path(__file__).with_suffix(".loaded").write_text("yes")
'''


def test_profile_file_round_trip_and_errors(tmp_path, shared_data):
    path = standins.save_profile(tmp_path, shared_data, tuning={"seeds": (0, 4)})
    profile = get_profile(str(path))
    assert profile == standins.standin_profile(tmp_path, shared_data, unlearn=standins.STANDIN_UNLEARN,
                                               tuning={"seeds": (0, 4)})
    assert tuning.grid(profile) == dataclasses.replace(tuning.GRIDS["paper"], seeds=(0, 4))
    assert profile.name == "paper" and profile.model.original.endswith("tofu_Llama-2-7b-chat-hf_full")
    assert experiments.profile_settings(profile, "PALU") == {"optimizer": "adamw", "k": 20}
    assert experiments.profile_settings(profile, "NPO") == {"optimizer": "adamw"}  # K is PALU's only
    with pytest.raises(PaperlibError, match="profile unlearn settings \\['kk'\\]; allowed: TrainConfig fields"):
        experiments.profile_settings(dataclasses.replace(profile, unlearn=(("kk", 1),)), "PALU")
    with pytest.raises(PaperlibError, match="does not exist; allowed: a profile name"):
        get_profile(str(tmp_path / "none.json"))
    (tmp_path / "bad.json").write_text(json.dumps({"base": "huge", "model": {}}))
    with pytest.raises(PaperlibError, match="base 'huge'"):
        get_profile(str(tmp_path / "bad.json"))
    (tmp_path / "bad.json").write_text(json.dumps({"base": "paper", "tuning": {"seed": [0]}}))
    with pytest.raises(PaperlibError, match=r"tuning \['seed'\]; allowed: lrs, epochs, seeds, every_epoch"):
        get_profile(str(tmp_path / "bad.json"))


def test_notebook_01_on_the_standin_paper_profile(tmp_path, monkeypatch, shared_data):
    import papermill

    monkeypatch.setattr(socket.socket, "connect", lambda *a, **k: (_ for _ in ()).throw(OSError("no network")))
    startup = tmp_path / "ipython" / "profile_default" / "startup" / "00-offline.py"
    startup.parent.mkdir(parents=True)
    startup.write_text(OFFLINE_STARTUP)
    for var, value in {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                       "IPYTHONDIR": str(tmp_path / "ipython"), "PAPERLIB_CACHE": str(tmp_path / "runs"),
                       "TQDM_DISABLE": "1"}.items():
        monkeypatch.setenv(var, value)  # inherited by the kernel
    standins.write_standins(tmp_path / "hub", shared_data, families=("llama2",))
    profile = standins.save_profile(tmp_path / "hub", shared_data, tuning={"seeds": [0]})  # the sweep run only
    params = {"profile": str(profile), "methods": "PALU", "figures_dir": str(tmp_path / "figures"),
              "tables_dir": str(tmp_path / "tables")}
    out = tmp_path / "01_main_results.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "01_main_results.ipynb"), str(out), parameters=params,
                               kernel_name="python3", cwd=str(tmp_path), progress_bar=False)
    assert startup.with_suffix(".loaded").read_text() == "yes"  # the kernel ran with the network refused
    table = pd.read_csv(tmp_path / "tables" / "01_tofu_main.csv")
    assert list(table["method"]) == ["Original", "Retain", "PALU"]
    assert table["FQ"].notna().all() and (table["seeds"].dropna() == "1/1").all()  # the profile file's one seed
    assert "FQ (paper)" in table.columns  # the paper profile puts the published numbers beside ours
    for name in ("01_fq_mu_scatter", "01_frontier"):
        assert (tmp_path / "figures" / f"{name}.png").is_file()
    # the verdict the notebook showed is `claims.main_claim` of the table it saved (not some other table)
    verdicts = claims.collect([out])
    assert verdicts == [claims.main_claim(table)]
    executed = nbformat.read(out, as_version=4)
    assert not [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
