"""`train --resume` with other settings: what a continued run may change is applied and recorded,
everything else is refused in one line naming the setting, its recorded value and the new one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ganforge import GanforgeError, resume
from ganforge.runs import RunDir

pytestmark = pytest.mark.slow  # trains runs or starts processes: left out of `make test-fast`

SMALL = ["--set", "g_hidden=[32]", "--set", "d_hidden=[32]"]


@pytest.fixture
def run(cli, tmp_path: Path) -> Path:
    proc = cli("train", "mlp", "--steps", "4", "--out", "run", *SMALL, "--set", "checkpoint_every=2", "--set", "log_every=2")
    assert proc.returncode == 0, proc.stderr
    return tmp_path / "run"


@pytest.mark.parametrize(("args", "expected"), [
    (["--batch-size", "32"], "batch_size is 64 in the run and 32 here, and a continued run keeps it (the checkpoint continues its data order)"),
    (["--loss", "hinge"], "loss is None in the run and 'hinge' here"),
    (["--set", "latent_dim=64"], "model.latent_dim is 100 in the run and 64 here, and a continued run keeps it (it decides the networks' shapes"),
    (["--data", "fashion-mnist"], "data.name is 'mnist5k' in the run and 'fashion-mnist' here"),
    (["--image-size", "32"], "data.image_size is None in the run and 32 here"),
    (["--seed", "3"], "seed is 0 in the run and 3 here"),
    (["--ema", "0.5"], "ema is 0.999 in the run and 0.5 here"),
    (["--config", "other.toml"], "n_critic is 1 in the run and 2 here"),
    (["--out", "elsewhere"], "--resume continues"),
])
def test_settings_that_define_the_run_are_refused_on_resume(cli, one_line_error, run: Path, args: list[str],
                                                            expected: str) -> None:
    (run.parent / "other.toml").write_text("n_critic = 2\n")
    before = (run / "config.json").read_text(), (run / "checkpoints" / "last.pt").read_bytes()
    error = one_line_error(cli("train", "--resume", "run", "--steps", "6", *args))
    assert expected in error
    assert (before[0], before[1]) == ((run / "config.json").read_text(), (run / "checkpoints" / "last.pt").read_bytes())


def test_learning_rates_and_cadence_change_on_resume_and_are_recorded(cli, run: Path) -> None:
    import torch

    proc = cli("train", "--resume", "run", "--steps", "8", "--set", "lr_d=5e-05", "--set", "log_every=1",
               "--set", "checkpoint_every=1")
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((run / "config.json").read_text())
    assert saved["train"]["lr_d"] == 5e-05 and saved["resolved"]["lr_d"] == 5e-05 and saved["train"]["log_every"] == 1
    assert saved["earlier_segments"][-1]["train"]["lr_d"] is None and saved["earlier_segments"][-1]["resolved"]["lr_d"] == 2e-4
    assert saved["changed_on_resume"]["lr_d"] == {"from": None, "to": 5e-05}
    assert saved["changed_on_resume"]["steps"] == {"from": 4, "to": 8}
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["opt_d"]["param_groups"][0]["lr"] == 5e-05 and state["opt_g"]["param_groups"][0]["lr"] == 2e-4
    assert [r["step"] for r in RunDir(run).read_metrics()] == [2, 4, 5, 6, 7, 8]
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*")) == [f"step_{s:07d}.pt" for s in (2, 4, 5, 6, 7, 8)]


def test_the_same_value_given_again_is_no_change(cli, run: Path) -> None:
    proc = cli("train", "--resume", "run", "--steps", "6", "--batch-size", "64", "--seed", "0", "--data", "mnist5k")
    assert proc.returncode == 0, proc.stderr


def test_python_resume_takes_the_same_settings(run: Path) -> None:
    with pytest.raises(GanforgeError, match="batch_size is 64 in the run and 8 here"):
        resume(run, steps=6, settings={"batch_size": 8})
    result = resume(run, steps=6, settings={"lr_g": 1e-4, "sample_every": 1})
    assert result.step == 6
    assert sorted(p.name for p in (run / "samples").iterdir())[-2:] == ["step_0000005.png", "step_0000006.png"]
