"""Step terms as plugins: regularisers against their closed forms, augmentations against their contract,
losses that see both sides, and runs that train with them, resume exactly and record them."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
import torch
from torch import nn

from ganforge import GanforgeError, TrainConfig, hookimpl, load_catalog, resume, train
from ganforge.augment import ADA, ADAOptions, BUILTIN_AUGMENTATIONS, DiffAugmentOptions
from ganforge.losses import AdversarialLoss, bce_d_loss, relativistic_d_loss, relativistic_g_loss
from ganforge.plugins import PluginWarning, make_plugin_manager
from ganforge.regularizers import (
    BUILTIN_REGULARIZERS, LeCam, LeCamOptions, PhaseView, R1, R1Options, R2, RegularizerOptions, WGANGP, WGANGPOptions,
    lecam_penalty,
)
from ganforge.runs import RunDir
from ganforge.testing import assert_states_equal, check_augmentation, check_regularizer

SMALL = {"g_hidden": [32], "d_hidden": [32]}


class LinearCritic(nn.Module):
    """D(x) = w . x + b: its input gradient is w everywhere."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)
        self.b = nn.Parameter(torch.tensor(0.5))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return (x.flatten(1) @ self.w.flatten())[:, None] + self.b


def view(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, phase: str = "d", **logits) -> PhaseView:
    import contextlib

    return PhaseView(phase, 0, real, None, fake, None, logits.get("d_real"), logits.get("d_fake", critic(fake)), critic,
                     critic, critic, torch.Generator().manual_seed(0), contextlib.nullcontext, lambda images: images)


def test_r1_and_r2_of_a_linear_critic_are_gamma_over_two_times_its_squared_norm() -> None:
    w = torch.tensor([[[3.0, -4.0], [0.0, 12.0]]])  # ||w||^2 = 169
    critic = LinearCritic(w)
    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    assert R1(R1Options(gamma=10)).penalty(view(critic, real, fake)).item() == pytest.approx(5 * 169)
    assert R2(R1Options(gamma=2)).penalty(view(critic, real, fake)).item() == pytest.approx(169)
    # The penalty trains D: its gradient with respect to w is gamma * w.
    R1(R1Options(gamma=10)).penalty(view(critic, real, fake)).backward()
    torch.testing.assert_close(critic.w.grad, 10 * w)


def test_wgan_gp_of_a_linear_critic() -> None:
    critic = LinearCritic(torch.tensor([[[2.0, 2.0], [1.0, 0.0]]]))  # ||w|| = 3
    value = WGANGP(WGANGPOptions()).penalty(view(critic, torch.randn(4, 1, 2, 2), torch.randn(4, 1, 2, 2)))
    assert value.item() == pytest.approx((3.0 - 1.0) ** 2, rel=1e-5)


def test_lecam_follows_its_formula_with_moving_anchors() -> None:
    term = LeCam(LeCamOptions(decay=0.9))
    critic = LinearCritic(torch.zeros(1, 1, 1))
    first_real, first_fake = torch.tensor([[1.0], [3.0]]), torch.tensor([[-1.0], [0.0]])
    value = term.penalty(view(critic, torch.zeros(2, 1, 1, 1), torch.zeros(2, 1, 1, 1), d_real=first_real, d_fake=first_fake))
    # The first update takes the means themselves: anchors 2 and -0.5.
    assert (term.anchor_real.item(), term.anchor_fake.item()) == (2.0, -0.5)
    expected = (torch.relu(first_real + 0.5).square().mean() + torch.relu(2.0 - first_fake).square().mean()).item()
    assert value.item() == pytest.approx(expected)
    term.penalty(view(critic, torch.zeros(2, 1, 1, 1), torch.zeros(2, 1, 1, 1), d_real=torch.tensor([[4.0], [4.0]]),
                      d_fake=torch.tensor([[0.5], [0.5]])))
    assert term.anchor_real.item() == pytest.approx(0.9 * 2 + 0.1 * 4)
    assert term.anchor_fake.item() == pytest.approx(0.9 * -0.5 + 0.1 * 0.5)
    assert lecam_penalty(torch.tensor([0.0]), torch.tensor([5.0]), torch.tensor(1.0), torch.tensor(1.0)).item() == 0


def test_the_relativistic_loss_against_its_formula() -> None:
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 1.0])
    sig = torch.sigmoid
    expected_d = -(sig(real - fake.mean()).log().mean() + (1 - sig(fake - real.mean())).log().mean())
    expected_g = -(sig(fake - real.mean()).log().mean() + (1 - sig(real - fake.mean())).log().mean())
    assert relativistic_d_loss(real, fake).item() == pytest.approx(expected_d.item())
    assert relativistic_g_loss(real, fake).item() == pytest.approx(expected_g.item())


@pytest.mark.parametrize("spec", BUILTIN_REGULARIZERS, ids=lambda s: s.name)
def test_every_builtin_regularizer_keeps_the_contract(spec) -> None:
    check_regularizer(spec)


@pytest.mark.parametrize(("spec", "options"), [
    (BUILTIN_AUGMENTATIONS[0], None),
    (BUILTIN_AUGMENTATIONS[0], DiffAugmentOptions(policy="translation")),
    (BUILTIN_AUGMENTATIONS[1], ADAOptions(p=0.6, adjust=False)),
    (BUILTIN_AUGMENTATIONS[1], None),
], ids=["diffaugment", "diffaugment-translation", "ada-p0.6", "ada-p0"])
def test_every_builtin_augmentation_keeps_the_contract(spec, options) -> None:
    check_augmentation(spec, options, draws=400)


def test_the_contract_kit_catches_a_term_that_draws_its_own_randomness() -> None:
    from ganforge.regularizers import Regularizer, RegularizerSpec
    from ganforge.testing import ContractViolation

    class Noisy(Regularizer):
        """Draws from a private generator that no checkpoint keeps, so a resumed run would differ."""

        def __init__(self, options) -> None:
            super().__init__(options)
            self.private = torch.Generator()
            self.private.seed()

        def penalty(self, view):
            return view.d_fake.mean() * torch.rand((), generator=self.private)

    with pytest.raises(ContractViolation, match="draw random numbers from view.noise"):
        check_regularizer(RegularizerSpec("noisy", "random weights", Noisy))


def test_ada_p_rises_when_d_overfits_and_falls_when_it_does_not() -> None:
    from ganforge.accel.distributed import DistContext

    ada = ADA(ADAOptions(kimg=1, interval=1))
    single = DistContext()
    for step in range(1, 11):
        ada.observe(torch.full((64, 1), 3.0))  # D sure of every real image: sign 1 > 0.6
        ada.update(step, single)
    risen = ada.p.item()
    assert risen == pytest.approx(10 * 64 / 1000)
    for step in range(11, 16):
        ada.observe(torch.cat([torch.full((32, 1), 1.0), torch.full((32, 1), -1.0)]))  # signal 0 < 0.6
        ada.update(step, single)
    assert ada.p.item() == pytest.approx(risen - 5 * 64 / 1000)


def train_d_alone(ada: ADA, real: torch.Tensor, fake: torch.Tensor, steps: int) -> None:
    from ganforge.accel.distributed import DistContext
    from ganforge.builtin.mlp import MLP
    from ganforge.variant import DataShape, build_models

    torch.manual_seed(0)
    _, d = build_models(MLP, MLP.make_config({"d_hidden": [64]}), DataShape(1, 8, 8))
    opt = torch.optim.Adam(d.parameters(), lr=1e-3)
    noise = torch.Generator().manual_seed(0)
    for step in range(1, steps + 1):
        logits_real, logits_fake = d(ada(real, noise)), d(ada(fake, noise))
        ada.observe(logits_real)
        loss = bce_d_loss(logits_real, logits_fake)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ada.update(step, DistContext())


def test_ada_p_rises_while_d_overfits_a_few_real_images_and_falls_when_it_cannot() -> None:
    # D alone learns eight real images against eight fixed fakes: it overfits, and p climbs.
    real, fake = torch.rand(8, 1, 8, 8) * 2 - 1, torch.rand(8, 1, 8, 8) * 2 - 1
    ada = ADA(ADAOptions(kimg=2, interval=4))
    train_d_alone(ada, real, fake, 200)
    assert ada.p.item() > 0.15
    # Fakes that are the real images: D cannot tell them apart, E[sign D(real)] stays below 0.6, and p falls.
    ada = ADA(ADAOptions(kimg=2, interval=4, p=0.5))
    train_d_alone(ada, real, real.clone(), 200)
    assert ada.p.item() < 0.3


def small(tmp_path: Path, **overrides) -> TrainConfig:
    settings = {"variant": "mlp", "model": SMALL, "steps": 12, "batch_size": 16, "device": "cpu", "log_every": 3,
                "checkpoint_every": 6, "out": tmp_path / "run"}
    return TrainConfig.model_validate({**settings, **overrides})


@pytest.mark.parametrize("extra", [
    {"augment": {"name": "ada", "kimg": 0.5, "interval": 2}, "regularizers": [{"name": "lecam", "weight": 0.5}]},
    {"augment": {"name": "diffaugment"}, "regularizers": [{"name": "r1", "gamma": 1, "interval": 4}]},
    {"regularizers": [{"name": "bcr"}, {"name": "r2", "interval": 3}], "loss": "relativistic"},
], ids=["ada+lecam", "diffaugment+lazy-r1", "bcr+lazy-r2+relativistic"])
def test_resuming_with_step_terms_continues_exactly(tmp_path: Path, extra: dict) -> None:
    straight = train(small(tmp_path / "a", **extra))
    half = train(small(tmp_path / "b", steps=6, **extra))
    resumed = resume(half.run_dir, steps=12)
    a, b = (RunDir(r.run_dir).load_checkpoint("last") for r in (straight, resumed))
    for key in ("generator", "discriminator", "opt_g", "opt_d", "rng", "terms"):
        assert_states_equal(a[key], b[key], key)
    records = RunDir(resumed.run_dir).read_metrics()
    logged = records[-1]
    for name in [r["name"] for r in extra.get("regularizers", [])]:
        # A lazy term is logged in the windows where it ran.
        assert any(f"reg_{name}" in r for r in records)
    if extra.get("augment", {}).get("name") == "ada":
        assert a["terms"]["augment"]["p"] > 0 and logged["ada_p"] == pytest.approx(float(a["terms"]["augment"]["p"]))


def test_config_json_records_every_terms_resolved_options(tmp_path: Path) -> None:
    result = train(small(tmp_path, steps=2, regularizers=[{"name": "r1", "gamma": 2}], augment={"name": "diffaugment"}))
    resolved = json.loads((result.run_dir / "config.json").read_text())["resolved"]
    assert resolved["regularizers"] == [{"name": "r1", "weight": 1.0, "interval": 1, "gamma": 2.0}]
    assert resolved["augment"] == {"name": "diffaugment", "policy": "color,translation,cutout", "translation": 0.125,
                                   "cutout": 0.5}


def test_the_old_gradient_penalty_setting_is_the_wgan_gp_regularizer(tmp_path: Path) -> None:
    old = train(small(tmp_path / "old", loss="wasserstein", gradient_penalty=10.0))
    new = train(small(tmp_path / "new", loss="wasserstein", regularizers=[{"name": "wgan-gp"}]))
    a, b = (RunDir(r.run_dir).load_checkpoint("last") for r in (old, new))
    assert_states_equal(a["discriminator"], b["discriminator"], "discriminator")
    with pytest.raises(GanforgeError, match="the gradient penalty is chosen twice"):
        train(small(tmp_path / "both", gradient_penalty=10.0, regularizers=[{"name": "gp"}]))


def test_a_recipes_regularizers_merge_with_the_users_by_name(tmp_path: Path) -> None:
    from ganforge.training.loop import with_recipe

    recipe = {"regularizers": [{"name": "r1", "gamma": 10, "interval": 16}, {"name": "lecam"}]}
    mine = with_recipe(small(tmp_path, regularizers=[{"name": "r1", "gamma": 1}]), recipe)
    assert [(c.name, c.options) for c in mine.regularizers] == [("lecam", {}), ("r1", {"gamma": 1})]
    dropped = with_recipe(small(tmp_path, regularizers=[{"name": "lecam", "weight": 0}]), recipe)
    from ganforge.training.terms import choose_terms

    terms = choose_terms(dropped, load_catalog().variants.get("mlp"), load_catalog())
    assert [r.name for r in terms.regularizers] == ["r1"]


def test_a_loss_written_for_ganforge_0_1_still_trains_with_a_one_line_warning(tmp_path: Path) -> None:
    plugin = types.ModuleType("old_loss")

    def old_g_loss(fake):
        return torch.nn.functional.softplus(-fake).mean()

    @hookimpl
    def ganforge_register_losses(register):
        register(AdversarialLoss("old-style", "written for 0.1", bce_d_loss, old_g_loss))

    plugin.ganforge_register_losses = ganforge_register_losses
    pm = make_plugin_manager()
    pm.register(plugin, name="old_loss")
    with pytest.warns(PluginWarning, match=r"loss 'old-style': g_loss\(fake_logits\) is the form of ganforge 0.1"):
        catalog = load_catalog(pm)
    new = train(small(tmp_path / "new", loss="nonsaturating"))
    old = train(small(tmp_path / "old", loss="old-style"), catalog)
    a, b = (RunDir(r.run_dir).load_checkpoint("last") for r in (new, old))
    assert_states_equal(a["generator"], b["generator"], "generator")


@pytest.mark.parametrize(("args", "expected"), [
    (["--reg", "lecan"], "unknown regulariser 'lecan'; did you mean 'lecam'"),
    (["--reg", "r1:gamma=-1"], "--reg r1: gamma: Input should be greater than or equal to 0 (got -1)"),
    (["--reg", "r1:gama=1"], "--reg r1: gama: Extra inputs are not permitted"),
    (["--reg", "r1:10"], "'10' is not KEY=VALUE"),
    (["--augment", "diffaugment:policy=color,zoom"], "policy 'color,zoom': choose from color, translation, cutout"),
    (["--augment", "ada:p=true"], "--augment ada: p: Input should be a valid number (got True)"),
    (["--reg", "r1", "--reg", "r1:gamma=2"], "regulariser 'r1' is chosen twice"),
])
def test_bad_term_choices_are_one_line(cli, one_line_error, tmp_path: Path, args: list[str], expected: str) -> None:
    error = one_line_error(cli("train", "mlp", "--steps", "2", "--out", "run", *args))
    assert expected in error
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_terms_from_the_command_line_and_toml(cli, tmp_path: Path) -> None:
    (tmp_path / "terms.toml").write_text('variant = "mlp"\nsteps = 3\n[model]\ng_hidden = [16]\nd_hidden = [16]\n'
                                         '[[regularizers]]\nname = "lecam"\nweight = 0.1\n'
                                         '[augment]\nname = "diffaugment"\npolicy = "color,translation"\n')
    proc = cli("train", "--config", "terms.toml", "--out", "run", "--reg", "r1:gamma=5,interval=2")
    assert proc.returncode == 0, proc.stderr
    resolved = json.loads((tmp_path / "run" / "config.json").read_text())["resolved"]
    assert [r["name"] for r in resolved["regularizers"]] == ["r1"]  # the flag replaces the file's list
    assert resolved["augment"]["policy"] == "color,translation"
    listed = cli("regularizers")
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["NAME", "ALIASES", "PLUGIN", "DISTRIBUTION", "DESCRIPTION"]
    assert any(row.split()[:4] == ["r1", "-", "ganforge.regularizers", "ganforge"] for row in rows)
    assert json.loads(cli("augmentations", "--options", "ada").stdout)["properties"]["target"]["default"] == 0.6
    assert "DISTRIBUTION" in cli("losses").stdout.splitlines()[0]


def test_a_relativistic_loss_sees_real_logits_in_gs_phase(tmp_path: Path) -> None:
    seen = []

    def g_loss(real, fake):
        seen.append(real is not None and real.shape == fake.shape and not real.requires_grad)
        return relativistic_g_loss(real, fake)

    plugin = types.ModuleType("watch")
    plugin.ganforge_register_losses = hookimpl(lambda register: register(
        AdversarialLoss("watched", "RaSGAN", relativistic_d_loss, g_loss, g_needs_real=True)))
    pm = make_plugin_manager()
    pm.register(plugin, name="watch")
    train(small(tmp_path, steps=3, loss="watched"), load_catalog(pm))
    assert seen == [True, True, True]


def test_regularizer_options_are_validated_models() -> None:
    assert RegularizerOptions().interval == 1
    with pytest.raises(Exception, match="interval"):
        RegularizerOptions(interval=0)


class OwnTerms:
    """A plugin with a regulariser and an augmentation of its own, registered through the hooks."""

    @hookimpl
    def ganforge_register_regularizers(self, register):
        from ganforge.regularizers import Regularizer, RegularizerSpec

        class LogitSquares(Regularizer):
            phases = ("d", "g")

            def penalty(self, view):
                return view.d_fake.float().square().mean()

        register(RegularizerSpec("logit-squares", "D's logits on fakes, squared", LogitSquares))

    @hookimpl
    def ganforge_register_augmentations(self, register):
        from ganforge.augment import Augmentation, AugmentationSpec

        class Negate(Augmentation):
            def forward(self, images, noise):
                return -images

        register(AugmentationSpec("negate", "every image D sees, negated", Negate))


def test_a_plugins_own_terms_are_registered_listed_and_trained(tmp_path: Path) -> None:
    pm = make_plugin_manager()
    pm.register(OwnTerms(), name="own-terms")
    catalog = load_catalog(pm)
    assert catalog.regularizers.entry("logit-squares").plugin == "own-terms"
    assert catalog.augmentations.entry("negate").plugin == "own-terms"
    result = train(small(tmp_path, steps=3, regularizers=[{"name": "logit-squares", "weight": 0.5}],
                         augment={"name": "negate"}), catalog)
    assert "reg_logit-squares" in RunDir(result.run_dir).read_metrics()[-1]
