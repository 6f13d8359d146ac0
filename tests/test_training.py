"""The shared loop: the run directory it writes, exact resume, divergence, hooks, checkpoints."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
import torch
from PIL import Image

from ganforge import GanforgeError, TrainConfig, hookimpl, load_catalog, load_run, resume, train
from ganforge.losses import AdversarialLoss, bce_d_loss, nonsaturating_g_loss
from ganforge.plugins import make_plugin_manager
from ganforge.runs import CheckpointError, RunDir
from ganforge.testing import assert_states_equal
from ganforge.training import TrainingDiverged

pytestmark = pytest.mark.slow  # trains runs or starts processes: left out of `make test-fast`

SMALL = {"g_hidden": [32, 64], "d_hidden": [32]}


def config(tmp_path: Path, **overrides) -> TrainConfig:
    settings = {"variant": "mlp", "model": SMALL, "steps": 20, "batch_size": 16, "device": "cpu",
                "log_every": 5, "checkpoint_every": 10, "sample_every": 10, "num_samples": 16, "out": tmp_path / "run"}
    return TrainConfig.model_validate({**settings, **overrides})


def test_a_short_run_writes_the_run_directory(tmp_path: Path) -> None:
    result = train(config(tmp_path, ema=0.9))
    run = RunDir(result.run_dir)
    assert result.status == "completed" and result.step == 20
    saved = json.loads(run.config_path.read_text())
    assert saved["variant"] == "mlp" and saved["plugin"] == "ganforge.builtin.mlp"
    assert saved["model"]["g_hidden"] == [32, 64] and saved["model"]["latent_dim"] == 100
    assert saved["train"]["steps"] == 20 and saved["resolved"]["loss"] == "nonsaturating"
    assert saved["resolved"]["data_shape"] == [1, 28, 28, None] and saved["versions"]["torch"] == torch.__version__
    records = run.read_metrics()
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    assert all(r["d_loss"] > 0 and r["images_per_s"] > 0 for r in records)
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["last.pt", "step_0000010.pt", "step_0000020.pt"]
    assert not list(run.path.rglob("*.tmp"))
    for name in ("step_0000010.png", "step_0000020.png"):
        with Image.open(run.samples / name) as grid:
            assert grid.size == (4 * 30 + 2, 4 * 30 + 2)
    state = run.load_checkpoint("last")
    assert state["step"] == 20 and "ema" in state


def test_default_length_is_twenty_epochs(tmp_path: Path) -> None:
    from ganforge.training import Trainer

    trainer = Trainer(config(tmp_path, steps=None, batch_size=500))
    assert trainer.config.steps == 20 * 10
    assert Trainer(config(tmp_path, steps=None, epochs=2, batch_size=500, n_critic=2)).config.steps == 10


@pytest.mark.parametrize("extra", [{}, {"ema": 0.95, "ema_start": 20, "n_critic": 2, "loss": "wasserstein", "gradient_penalty": 10.0},
                                   {"precision": "bf16"},  # bf16 on the CPU: the step's bf16 weight copies follow the resumed masters
                                   {"precision": "fp16", "loss": "wasserstein", "gradient_penalty": 10.0}])  # with loss scales
def test_resuming_continues_exactly(tmp_path: Path, extra: dict) -> None:
    # 2N steps straight through, against N steps and a resume to 2N: the same weights and optimiser
    # states, bit for bit, because the data order, the noise and every RNG state are restored.
    n = 15
    straight = train(config(tmp_path / "a", steps=2 * n, **extra))
    half = train(config(tmp_path / "b", steps=n, **extra))
    assert half.step == n
    resumed = resume(half.run_dir, steps=2 * n)
    assert resumed.step == 2 * n
    a = RunDir(straight.run_dir).load_checkpoint("last")
    b = RunDir(resumed.run_dir).load_checkpoint("last")
    if extra.get("precision") == "fp16":
        assert {"scaler_g", "scaler_d"} <= b.keys()  # their clean-step counts differ unless restored
    for key in ("generator", "discriminator", "opt_g", "opt_d", "ema", "rng", "batch_cursor", "scaler_g", "scaler_d"):
        assert (key in a) == (key in b)
        if key in a:
            assert_states_equal(a[key], b[key], key)
    assert [r["step"] for r in RunDir(resumed.run_dir).read_metrics()][-1] == 2 * n
    with pytest.raises(GanforgeError, match="already reached step 30"):
        resume(resumed.run_dir)


def test_config_json_keeps_each_resumed_segments_settings(tmp_path: Path) -> None:
    # A resume may run elsewhere (another device, machine or version); config.json describes the
    # segment now training and keeps what each earlier one ran with.
    run = train(config(tmp_path, steps=4)).run_dir
    resume(run, steps=6)
    resume(run, steps=8)
    saved = json.loads(RunDir(run).config_path.read_text())
    assert saved["from_step"] == 6 and saved["train"]["steps"] == 8
    earlier = saved["earlier_segments"]
    assert [(s["from_step"], s["train"]["steps"]) for s in earlier] == [(0, 4), (4, 6)]
    assert all(s["resolved"] == saved["resolved"] and s["machine"] == saved["machine"] for s in earlier)


def test_an_existing_run_is_never_overwritten(tmp_path: Path) -> None:
    train(config(tmp_path, steps=5))
    with pytest.raises(GanforgeError, match="already holds a run.*--resume"):
        train(config(tmp_path, steps=5))


def exploding_plugin(after_calls: int) -> types.ModuleType:
    calls = {"n": 0}

    def d_loss(real, fake):
        calls["n"] += 1
        loss = bce_d_loss(real, fake)
        return loss * float("nan") if calls["n"] > after_calls else loss

    module = types.ModuleType("exploding")

    @hookimpl
    def ganforge_register_losses(register):
        register(AdversarialLoss("exploding", "turns NaN after a while", d_loss, nonsaturating_g_loss))

    module.ganforge_register_losses = ganforge_register_losses
    return module


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    pm = make_plugin_manager()
    pm.register(exploding_plugin(after_calls=12), name="exploding")
    with pytest.raises(TrainingDiverged, match=r"NaN/Inf between steps 10 and 15.*last good checkpoint"):
        train(config(tmp_path, loss="exploding", checkpoint_every=5), load_catalog(pm))
    run = RunDir(tmp_path / "run")
    assert run.load_checkpoint("last")["step"] == 10
    assert [r["step"] for r in run.read_metrics()] == [5, 10]


def test_an_fp16_update_whose_gradients_overflow_is_skipped_and_the_loss_scale_halved(tmp_path: Path) -> None:
    # D's loss on its third call is finite in fp32 but its gradients overflow fp16: without loss scaling
    # that update would write inf into D's weights.
    calls = {"n": 0}

    def d_loss(real, fake):
        calls["n"] += 1
        return bce_d_loss(real, fake) * (1e30 if calls["n"] == 3 else 1.0)

    plugin = types.ModuleType("overflowing")
    plugin.ganforge_register_losses = hookimpl(  # type: ignore[attr-defined]
        lambda register: register(AdversarialLoss("overflowing", "overflows fp16 once", d_loss, nonsaturating_g_loss)))
    pm = make_plugin_manager()
    pm.register(plugin, name="overflowing")
    train(config(tmp_path, steps=4, precision="fp16", loss="overflowing", checkpoint_every=1), load_catalog(pm))
    run = RunDir(tmp_path / "run")
    before, skipped, after = (run.load_checkpoint(step) for step in (2, 3, 4))
    assert_states_equal(before["discriminator"], skipped["discriminator"], "discriminator")
    assert_states_equal(before["opt_d"], skipped["opt_d"], "opt_d")  # Adam's step count does not advance either
    assert skipped["scaler_d"]["scale"] == before["scaler_d"]["scale"] / 2
    assert skipped["scaler_g"]["scale"] == before["scaler_g"]["scale"]
    assert not torch.equal(before["generator"]["net.0.weight"], skipped["generator"]["net.0.weight"])
    assert all(torch.isfinite(w).all() for w in after["discriminator"].values())
    assert not torch.equal(skipped["discriminator"]["net.0.weight"], after["discriminator"]["net.0.weight"])


def test_under_fp16_the_gradient_penalty_runs_in_fp32(tmp_path: Path) -> None:
    # Its input gradients come before any loss scaling, where fp16 would flush the small ones to zero.
    from ganforge.training import Trainer

    trainer = Trainer(config(tmp_path, steps=1, precision="fp16", loss="wasserstein", gradient_penalty=10.0))
    seen = []
    trainer.discriminator.net[0].register_forward_hook(lambda layer, inputs, out: seen.append(out.dtype))
    trainer.fit()
    # D's forwards: the check of the plugin's outputs before the first step (fp32, outside the step),
    # then the step's: on real and fake together, in the penalty, and in G's update.
    assert seen == [torch.float32, torch.float16, torch.float32, torch.float16]


class Recorder:
    """A logger plugin: it implements the training-time hooks and keeps what it saw."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    @hookimpl
    def ganforge_train_start(self, context) -> None:
        self.events.append(("start", context.step))

    @hookimpl
    def ganforge_step_end(self, context, step, metrics) -> None:
        self.events.append(("step", step, None if metrics is None else round(metrics["d_loss"], 6)))

    @hookimpl
    def ganforge_train_end(self, context, status) -> None:
        self.events.append(("end", status))


def test_training_hooks_see_every_step_and_the_logged_figures(tmp_path: Path) -> None:
    pm = make_plugin_manager()
    recorder = Recorder()
    pm.register(recorder, name="recorder")
    train(config(tmp_path, steps=10), load_catalog(pm))
    steps = [e for e in recorder.events if e[0] == "step"]
    assert recorder.events[0] == ("start", 0) and recorder.events[-1] == ("end", "completed")
    assert [e[1] for e in steps] == list(range(1, 11))
    logged = [e for e in steps if e[2] is not None]
    records = RunDir(tmp_path / "run").read_metrics()
    assert [(e[1], e[2]) for e in logged] == [(r["step"], round(r["d_loss"], 6)) for r in records]


def test_checkpoints_that_are_corrupt_or_foreign_get_a_clear_error(tmp_path: Path) -> None:
    result = train(config(tmp_path, steps=5))
    last = RunDir(result.run_dir).checkpoint_path("last")
    torch.save({"state": torch.zeros(2)}, last)
    with pytest.raises(CheckpointError, match="not a ganforge checkpoint"):
        load_run(result.run_dir)
    last.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match=f"{last}: not a readable ganforge checkpoint"):
        load_run(result.run_dir)
    torch.save({"format": "ganforge-checkpoint/1", "evil": types.SimpleNamespace(x=1)}, last)
    with pytest.raises(CheckpointError, match="not a readable ganforge checkpoint"):
        load_run(result.run_dir)


def test_weights_that_no_longer_fit_the_variant_get_a_clear_error(tmp_path: Path, cli) -> None:
    # As after an upgrade that changed a variant's default architecture: the run's config now builds
    # a model of other shapes than its checkpoint holds.
    result = train(config(tmp_path, steps=5))
    run = RunDir(result.run_dir)
    saved = json.loads(run.config_path.read_text())
    saved["model"]["g_hidden"] = saved["train"]["model"]["g_hidden"] = [32, 48]
    run.config_path.write_text(json.dumps(saved))
    done = cli("sample", str(run.path), "--n", "4", "--out", str(tmp_path / "x.npz"))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert f"{run.checkpoint_path('last')}: its generator weights do not fit" in line and "size mismatch for net." in line
    with pytest.raises(CheckpointError, match="its generator weights do not fit"):
        resume(run.path, steps=10)
    assert not (tmp_path / "x.npz").exists() and run.load_checkpoint("last")["step"] == 5


def test_load_run_samples_from_the_trained_generator(tmp_path: Path) -> None:
    result = train(config(tmp_path, steps=10, ema=0.9))
    loaded = load_run(result.run_dir, device="cpu")
    images, labels = loaded.sample(7, seed=3)
    assert images.shape == (7, 1, 28, 28) and labels is None and loaded.step == 10
    again, _ = loaded.sample(7, seed=3)
    assert torch.equal(images, again)
    state = RunDir(result.run_dir).load_checkpoint("last")
    ema_weight = state["ema"]["module.net.0.weight"]
    assert torch.equal(loaded.generator.net[0].weight, ema_weight)


def test_a_plugin_data_set_trains_by_name(tmp_path: Path) -> None:
    from ganforge.data import DatasetSpec, ImageData

    class Squares:
        @hookimpl
        def ganforge_register_datasets(self, register):
            def load(data_config):
                images = torch.zeros(40, 3, 8, 8, dtype=torch.uint8)
                images[:, :, 2:6, 2:6] = 255
                return ImageData(images, source="squares")

            register(DatasetSpec("squares", "white squares on black", load))

    pm = make_plugin_manager()
    pm.register(Squares(), name="squares-plugin")
    catalog = load_catalog(pm)
    assert catalog.datasets.entry("squares").plugin == "squares-plugin"
    result = train(config(tmp_path, steps=4, batch_size=8, data={"name": "squares"}), catalog)
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["resolved"]["data_shape"] == [3, 8, 8, None] and saved["resolved"]["data_size"] == 40


def test_a_variants_recipe_fills_only_what_the_user_left_unset(tmp_path: Path) -> None:
    from ganforge.training import Trainer

    recipe = Trainer(config(tmp_path)).config
    assert (recipe.ema, recipe.ema_start) == (0.999, 5000)  # the mlp recipe
    mine = Trainer(config(tmp_path, ema=0.5)).config
    assert (mine.ema, mine.ema_start) == (0.5, 5000)
    assert Trainer(config(tmp_path, ema=None)).config.ema is None
    trainer = Trainer(config(tmp_path))
    described = trainer.describe()["resolved"]
    assert described["precision"] == "fp32" and described["compile"] is False and described["channels_last"] is False


@pytest.mark.parametrize("extra", [{}, {"loss": "wasserstein", "gradient_penalty": 10.0, "n_critic": 2}])
def test_torch_compile_path_trains_and_matches_eager_closely(tmp_path: Path, extra: dict) -> None:
    # WGAN-GP too: its penalty differentiates D's gradient, which a compiled D cannot.
    eager = train(config(tmp_path / "eager", steps=10, compile=False, **extra))
    compiled = train(config(tmp_path / "compiled", steps=10, compile=True, **extra))
    saved = json.loads((compiled.run_dir / "config.json").read_text())
    assert saved["resolved"]["compile"] is True
    a = RunDir(eager.run_dir).read_metrics()[-1]
    b = RunDir(compiled.run_dir).read_metrics()[-1]
    assert b["d_loss"] == pytest.approx(a["d_loss"], rel=1e-3) and b["g_loss"] == pytest.approx(a["g_loss"], rel=1e-3)
