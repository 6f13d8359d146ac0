"""The EMA of G: a copy of G until ``ema_start``, then an exponential moving average."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ganforge import TrainConfig, hookimpl, load_catalog, load_run, train
from ganforge.ema import EMA
from ganforge.plugins import make_plugin_manager
from ganforge.runs import RunDir

SMALL = {"g_hidden": [32, 64], "d_hidden": [32]}


def test_the_average_copies_the_model_until_its_start_then_moves_by_one_minus_decay() -> None:
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    ema = EMA(model, 0.9, start=3)
    expected = None
    for step in range(1, 9):
        with torch.no_grad():
            model.weight.copy_(torch.randn(3, 5))
        ema.update(step)
        w = model.weight.detach()
        expected = w.clone() if step <= 3 else 0.9 * expected + 0.1 * w
        torch.testing.assert_close(ema.synced().weight, expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(ema.state_dict()["module.weight"], expected, rtol=0, atol=1e-6)


def record_generator_weights(seen: list[torch.Tensor]) -> object:
    class Recorder:
        @hookimpl
        def ganforge_step_end(self, context, step, metrics):
            seen.append(context.generator.net[0].weight.detach().clone())

    return Recorder()


def run(tmp_path: Path, seen: list[torch.Tensor], **settings) -> Path:
    pm = make_plugin_manager()
    pm.register(record_generator_weights(seen), name="recorder")
    config = TrainConfig(variant="mlp", model=SMALL, batch_size=16, device="cpu", out=tmp_path / "run", **settings)
    return train(config, load_catalog(pm)).run_dir


def test_a_run_shorter_than_ema_start_samples_its_generator(tmp_path: Path) -> None:
    seen: list[torch.Tensor] = []
    run_dir = run(tmp_path, seen, steps=12, ema=0.999, ema_start=100)
    loaded = load_run(run_dir, device="cpu")
    assert torch.equal(loaded.generator.net[0].weight, seen[-1])


def test_after_ema_start_the_run_samples_the_average_of_the_steps_since(tmp_path: Path) -> None:
    seen: list[torch.Tensor] = []
    run_dir = run(tmp_path, seen, steps=12, ema=0.8, ema_start=5)
    assert len(seen) == 12
    expected = seen[4].double()  # the generator after step 5
    for w in seen[5:]:
        expected = 0.8 * expected + 0.2 * w.double()
    averaged = RunDir(run_dir).load_checkpoint("last")["ema"]["module.net.0.weight"]
    torch.testing.assert_close(averaged.double(), expected, rtol=0, atol=1e-6)


def test_a_process_fitting_many_short_runs_notes_the_late_ema_start_once(tmp_path: Path, monkeypatch,
                                                                          capsys) -> None:
    monkeypatch.setattr("ganforge.training.loop._SHOWN_NOTES", set())  # as in a fresh process
    for name in ("a", "b"):
        train(TrainConfig(variant="mlp", model=SMALL, steps=3, batch_size=16, device="cpu", out=tmp_path / name))
    assert capsys.readouterr().err.count("the EMA starts averaging after step 5000 (ema_start)") == 1
