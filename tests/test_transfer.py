"""Transfer learning: a new run from another run's weights, fresh optimisers and step 0, possibly on
other data; shape mismatches refused naming the tensor; FreezeD; provenance in config.json."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from ganforge import GanforgeError, TrainConfig, train
from ganforge.runs import CheckpointError, RunDir
from ganforge.testing import assert_states_equal

pytestmark = pytest.mark.slow  # trains runs or starts processes: left out of `make test-fast`

SMALL = {"base_width": 4}


def config(out: Path, **overrides) -> TrainConfig:
    settings = {"variant": "dcgan", "model": SMALL, "steps": 4, "batch_size": 16, "device": "cpu", "ema": 0.9,
                "log_every": 2, "checkpoint_every": 2, "out": out}
    return TrainConfig.model_validate({**settings, **overrides})


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return train(config(tmp_path_factory.mktemp("source") / "run")).run_dir


def test_a_run_starts_from_another_runs_weights_with_fresh_optimisers(source: Path, tmp_path: Path) -> None:
    # Fine-tune on other data (Fashion-MNIST's shape is MNIST's): zero steps would end where the source ended.
    from ganforge.training import Trainer

    trainer = Trainer(config(tmp_path / "new", init_from=source, data={"name": "mnist5k", "subset": 100}))
    trainer.initialize_from(source)
    state = RunDir(source).load_checkpoint("last")
    assert_states_equal(trainer.generator.state_dict(), state["generator"], "generator")
    assert_states_equal(trainer.discriminator.state_dict(), state["discriminator"], "discriminator")
    assert_states_equal(trainer.ema.state_dict(), state["ema"], "ema")
    assert trainer.step == 0 and all(not opt.state for opt in (trainer.context.opt_g, trainer.context.opt_d))
    result = train(config(tmp_path / "run", init_from=source, steps=2))
    resolved = json.loads((result.run_dir / "config.json").read_text())["resolved"]
    last = RunDir(source).checkpoint_path("last")
    assert resolved["init_from"] == {"path": str(last), "sha256": hashlib.sha256(last.read_bytes()).hexdigest(),
                                     "step": 4, "variant": "dcgan"}
    assert RunDir(result.run_dir).load_checkpoint("last")["step"] == 2


def test_weights_that_do_not_fit_are_refused_naming_the_first_tensor(cli, one_line_error, source: Path) -> None:
    error = one_line_error(cli("train", "dcgan", "--init-from", str(source), "--set", "base_width=8", "--steps", "2",
                               "--out", "run"))
    assert "its generator weights do not fit" in error and "size mismatch for net.0.weight" in error
    assert "no such checkpoint" in one_line_error(cli("train", "dcgan", "--init-from", "nowhere.pt", "--steps", "2"))


def test_freeze_d_keeps_the_first_blocks_of_d_as_they_were(source: Path, tmp_path: Path) -> None:
    result = train(config(tmp_path / "run", init_from=source, steps=3, freeze_d=2))
    before, after = RunDir(source).load_checkpoint("last"), RunDir(result.run_dir).load_checkpoint("last")
    # DCGAN's D: conv, LeakyReLU (block 1 and 2), then strided convs with batch norm.
    assert torch.equal(before["discriminator"]["net.0.weight"], after["discriminator"]["net.0.weight"])
    assert not torch.equal(before["discriminator"]["net.2.weight"], after["discriminator"]["net.2.weight"])
    resolved = json.loads((result.run_dir / "config.json").read_text())["resolved"]
    assert resolved["frozen_d_weights"] == before["discriminator"]["net.0.weight"].numel() + before["discriminator"]["net.0.bias"].numel()
    with pytest.raises(GanforgeError, match=r"freeze_d=99: variant 'dcgan' .* has \d+ blocks"):
        train(config(tmp_path / "too-many", freeze_d=99))


def test_a_resumed_transfer_run_does_not_read_its_source_again(source: Path, tmp_path: Path) -> None:
    import shutil

    from ganforge import resume

    copy = tmp_path / "source"
    shutil.copytree(source, copy)
    result = train(config(tmp_path / "run", init_from=copy, steps=2))
    shutil.rmtree(copy)
    assert resume(result.run_dir, steps=4).step == 4
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        train(config(tmp_path / "again", init_from=copy, steps=2))
