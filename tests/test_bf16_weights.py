"""bf16 copies of Linear weights: a bf16 CPU run trains bit for bit as it does with autocast's own casts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from ganforge import Catalog, TrainConfig, hookimpl, load_catalog, train
from ganforge.accel.bf16_weights import BF16Weights, why_not_copyable
from ganforge.plugins import make_plugin_manager
from ganforge.runs import RunDir
from ganforge.testing import assert_states_equal
from ganforge.variant import build_models
from ganforge.variant import DataShape


def _run(tmp_path: Path, name: str, catalog: Catalog | None = None, **settings) -> RunDir:
    config = TrainConfig.model_validate({
        "variant": "mlp", "model": {"g_hidden": [32, 64], "d_hidden": [48]}, "steps": 12, "batch_size": 16,
        "device": "cpu", "precision": "bf16", "log_every": 4, "out": tmp_path / name, **settings})
    return RunDir(train(config, catalog).run_dir)


@pytest.mark.parametrize("extra", [{}, {"loss": "wasserstein", "gradient_penalty": 10.0, "n_critic": 2, "ema": 0.9, "ema_start": 4}])
def test_bf16_copies_train_exactly_as_autocast_does(tmp_path: Path, extra: dict) -> None:
    copies = _run(tmp_path, "copies", **extra)
    autocast = _run(tmp_path, "autocast", bf16_weights=False, **extra)
    assert json.loads(copies.config_path.read_text())["resolved"]["bf16_weights"] is True
    assert json.loads(autocast.config_path.read_text())["resolved"]["bf16_weights"] is False
    a, b = copies.load_checkpoint("last"), autocast.load_checkpoint("last")
    for key in ("generator", "discriminator", "opt_g", "opt_d", "ema"):
        assert (key in a) == (key in b)
        if key in a:
            assert_states_equal(a[key], b[key], key)
    assert a["generator"]["net.0.weight"].dtype == torch.float32  # the masters are what is saved
    losses = [(r["d_loss"], r["g_loss"]) for r in copies.read_metrics()]
    assert losses == [(r["d_loss"], r["g_loss"]) for r in autocast.read_metrics()]
    # and the step did run in bf16: fp32 ends elsewhere
    fp32 = _run(tmp_path, "fp32", **{**extra, "precision": "fp32"}).load_checkpoint("last")
    assert not torch.equal(fp32["generator"]["net.0.weight"], a["generator"]["net.0.weight"])


class ClipCritic:
    """The original WGAN's weight clipping, as a user would add it: a hook that clamps D's weights in place."""

    @hookimpl
    def ganforge_step_end(self, context, step, metrics) -> None:
        for p in context.discriminator.parameters():
            p.data.clamp_(-0.01, 0.01)


def test_weights_a_hook_changes_between_steps_reach_the_copies(tmp_path: Path) -> None:
    runs = {}
    for name, settings in (("copies", {}), ("autocast", {"bf16_weights": False})):
        pm = make_plugin_manager()
        pm.register(ClipCritic(), name="clip")
        runs[name] = _run(tmp_path, name, load_catalog(pm), loss="wasserstein", n_critic=2, **settings)
    a, b = runs["copies"].load_checkpoint("last"), runs["autocast"].load_checkpoint("last")
    for key in ("generator", "discriminator", "opt_g", "opt_d"):
        assert_states_equal(a[key], b[key], key)


def test_a_layer_without_a_gradient_is_skipped_as_under_autocast() -> None:
    # Only the first layer is used: its master moves, the other keeps its weights and gets no Adam state.
    torch.manual_seed(0)
    mine, theirs = nn.ModuleList([nn.Linear(6, 5), nn.Linear(5, 4)]), nn.ModuleList([nn.Linear(6, 5), nn.Linear(5, 4)])
    theirs.load_state_dict(mine.state_dict())
    unused = mine[1].weight.clone()
    copies = BF16Weights(mine)
    opt_mine, opt_theirs = torch.optim.Adam(mine.parameters(), fused=True), torch.optim.Adam(theirs.parameters(), fused=True)
    x = torch.randn(8, 6)
    for _ in range(3):
        copies.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = copies.module[0](x).float().square().mean()
        loss.backward()
        copies.step(opt_mine)
        copies.sync()
        opt_theirs.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = theirs[0](x).float().square().mean()
        loss.backward()
        opt_theirs.step()
    assert_states_equal(mine.state_dict(), theirs.state_dict())
    assert torch.equal(mine[1].weight, unused) and mine[1].weight not in opt_mine.state
    assert torch.equal(copies.module[0].weight, mine[0].weight.bfloat16())


def test_only_models_built_of_linear_layers_qualify_and_the_others_are_named() -> None:
    catalog = load_catalog()
    spec = catalog.variants.get("mlp")
    generator, discriminator = build_models(spec, spec.make_config(), DataShape(1, 28, 28))
    assert why_not_copyable(generator=generator, discriminator=discriminator) is None

    class ScaledLinear(nn.Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * super().forward(x)

    with_buffer = nn.Linear(4, 4)
    with_buffer.register_buffer("scale", torch.ones(4))
    cases = [
        (nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)), "the model has LayerNorm weights"),
        (nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4)), "the model has Embedding weights"),
        (ScaledLinear(4, 4), "the model has ScaledLinear weights"),  # its forward is its own
        (nn.Tanh(), "they have no weights"),
        (with_buffer, "the model holds a buffer (scale)"),  # the step would use the copy's buffer
    ]
    for model, why in cases:
        assert why_not_copyable(model=model) == why
    assert why_not_copyable(generator=generator, discriminator=with_buffer) == "the discriminator holds a buffer (scale)"
