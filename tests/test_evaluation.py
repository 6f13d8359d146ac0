"""Evaluation through the real loop and the real CLI: eval_every and best.pt, `ganforge eval`,
raw samples, `ganforge report`, the TensorBoard logger, and the mode-collapse warning."""

from __future__ import annotations

import base64
import json
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge import DataShape, GanforgeError, Generator, TrainConfig, VariantSpec, hookimpl, load_catalog, train
from ganforge.builtin.mlp import MLPConfig, MLPDiscriminator
from ganforge.config import DataConfig
from ganforge.data import load_mnist5k
from ganforge.nn import draw_latent
from ganforge.plugins import make_plugin_manager
from ganforge.runs import RunDir

pytestmark = pytest.mark.slow  # trains runs or starts processes: left out of `make test-fast`

SMALL = ["--set", "g_hidden=[32]", "--set", "d_hidden=[32]"]


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory) -> Path:
    """A short mlp run scored every 10 steps, with a TensorBoard log."""
    root = tmp_path_factory.mktemp("evaluated")
    config = TrainConfig(variant="mlp", model={"g_hidden": [64], "d_hidden": [64]}, steps=30, batch_size=32,
                         device="cpu", log_every=10, sample_every=10, checkpoint_every=10, eval_every=10, eval_samples=300,
                         loggers=["tensorboard"], out=root / "run")
    train(config)
    return root / "run"


def test_eval_every_logs_figures_and_keeps_the_best_checkpoint(evaluated_run: Path) -> None:
    run = RunDir(evaluated_run)
    evals = [r for r in run.read_metrics() if "fid" in r]
    assert [r["step"] for r in evals] == [10, 20, 30]
    for record in evals:
        assert record["n"] == 300 and record["evaluator"] == "mnist-cnn" and len(record["evaluator_sha256"]) == 64
        assert record["reference"] == "mnist5k/train, 300 images, seed 0"
        assert {"kid", "kid_std", "precision", "recall", "modes", "modes_kl"} <= record.keys()
    best = min(evals, key=lambda r: r["fid"])
    assert run.load_checkpoint("best")["step"] == best["step"]
    assert run.load_checkpoint("best")["best_fid"] == pytest.approx(best["fid"])


def test_eval_command_prints_a_table_and_writes_eval_json(cli, evaluated_run: Path) -> None:
    proc = cli("eval", str(evaluated_run), "--n", "300", "--checkpoint", "best")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].split() == ["METRIC", "VALUE"]
    figures = json.loads((evaluated_run / "eval.json").read_text())
    assert figures["checkpoint"] == "best" and figures["n"] == 300 and figures["evaluator"] == "mnist-cnn"
    assert "fid" in proc.stdout and figures["fid"] > 0
    assert "per_class" not in figures and "CLASS" not in proc.stdout  # per-class figures are for conditional runs
    assert "--n 10" in cli("eval", str(evaluated_run), "--n", "10").stderr


def test_eval_repeats_reports_each_figures_mean_and_spread(cli, evaluated_run: Path) -> None:
    assert cli("eval", str(evaluated_run), "--n", "300").returncode == 0
    single = json.loads((evaluated_run / "eval.json").read_text())
    proc = cli("eval", str(evaluated_run), "--n", "300", "--repeats", "3")
    assert proc.returncode == 0, proc.stderr
    figures = json.loads((evaluated_run / "eval.json").read_text())
    assert figures["repeats"] == 3 and figures["n"] == 300 and figures["reference"] == single["reference"]
    runs = figures["per_repeat"]
    # The first set is the one a single evaluation draws; two processes agree to float32 rounding only,
    # since a BLAS may sum in another order when its buffers land at other addresses.
    assert runs[0]["fid"] == pytest.approx(single["fid"], rel=1e-5)
    fids = [r["fid"] for r in runs]
    assert len(set(fids)) == 3  # independent sample sets, one reference
    assert figures["fid"] == pytest.approx(statistics.fmean(fids))
    assert figures["fid_sd"] == pytest.approx(statistics.stdev(fids)) and figures["fid_sd"] > 0
    assert "kid_std_sd" not in figures
    assert "fid_sd" in proc.stdout and "per_repeat" not in proc.stdout
    bad = cli("eval", str(evaluated_run), "--repeats", "0")
    assert bad.returncode == 2 and bad.stderr.strip().startswith("ganforge: error: --repeats 0: give 1")


def test_draw_latent_with_a_truncation_redraws_entries_beyond_it() -> None:
    model = load_catalog().variants.get("mlp").build_generator(MLPConfig(g_hidden=(8,)), DataShape(1, 28, 28))
    assert torch.equal(draw_latent(model, 5, generator=torch.Generator().manual_seed(0)),
                       model.sample_latent(5, generator=torch.Generator().manual_seed(0)))  # no truncation: the prior
    z = draw_latent(model, 500, 0.5, generator=torch.Generator().manual_seed(0))
    assert z.shape == (500, 100) and z.abs().max() <= 0.5
    assert torch.equal(z, draw_latent(model, 500, 0.5, generator=torch.Generator().manual_seed(0)))
    # N(0, 1) truncated to [-a, a] has variance 1 - 2a pdf(a) / (2 cdf(a) - 1): std 0.2838 at a = 0.5
    # (clamping instead of redrawing would pile values on +-0.5, std about 0.45).
    a = torch.tensor(0.5, dtype=torch.float64)
    normal = torch.distributions.Normal(0.0, 1.0)
    expected = (1 - 2 * a * normal.log_prob(a).exp() / (2 * normal.cdf(a) - 1)).sqrt()
    assert z.double().std().item() == pytest.approx(expected.item(), rel=0.02)
    with pytest.raises(GanforgeError, match="give a positive threshold"):
        draw_latent(model, 5, 0.0)
    with pytest.raises(GanforgeError, match="too few draws"):
        draw_latent(model, 5, 1e-9, max_rounds=3)


def test_eval_and_sample_take_a_truncation(cli, evaluated_run: Path, tmp_path: Path) -> None:
    proc = cli("eval", str(evaluated_run), "--n", "300", "--truncation", "1.0")
    assert proc.returncode == 0, proc.stderr
    figures = json.loads((evaluated_run / "eval.json").read_text())
    assert figures["truncation"] == 1.0 and figures["n"] == 300
    proc = cli("sample", str(evaluated_run), "--n", "4", "--truncation", "0.5", "--out", str(tmp_path / "s.npz"))
    assert proc.returncode == 0, proc.stderr
    bad = cli("sample", str(evaluated_run), "--truncation", "-1")
    assert bad.returncode == 2 and bad.stderr.strip() == "ganforge: error: --truncation -1.0: give a positive threshold (1.0 keeps about 68% of N(0, 1) draws)"


@pytest.mark.parametrize("suffix", [".npz", ".pt"])
def test_raw_samples_for_external_evaluators(cli, evaluated_run: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"samples{suffix}"
    proc = cli("sample", str(evaluated_run), "--n", "12", "--out", str(out), "--checkpoint", "20")
    assert proc.returncode == 0, proc.stderr
    if suffix == ".npz":
        arrays = np.load(out)
        images, labels = arrays["images"], arrays.get("labels")
    else:
        saved = torch.load(out, weights_only=True)
        images, labels = saved["images"].numpy(), saved["labels"]
    assert images.shape == (12, 1, 28, 28) and images.dtype == np.uint8 and labels is None
    assert images.min() >= 0 and images.max() <= 255 and images.std() > 0


def test_report_draws_curves_and_samples(cli, evaluated_run: Path) -> None:
    proc = cli("report", str(evaluated_run))
    assert proc.returncode == 0, proc.stderr
    with Image.open(evaluated_run / "report.png") as image:
        assert image.size == (1200, 760)
        assert len(image.convert("RGB").getcolors(1 << 20)) > 50  # curves and grids, not a blank page
    page = (evaluated_run / "report.html").read_text()
    encoded = page.split("data:image/png;base64,")[1].split("'")[0]
    assert base64.b64decode(encoded) == (evaluated_run / "report.png").read_bytes()
    assert "evaluator_sha256" in page


def test_tensorboard_logger_writes_scalars_and_grids(evaluated_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(evaluated_run / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert {"d_loss", "g_loss", "fid", "precision"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("d_loss")] == [10, 20, 30]
    logged = {r["step"]: r["d_loss"] for r in RunDir(evaluated_run).read_metrics() if "d_loss" in r}
    assert all(e.value == pytest.approx(logged[e.step], rel=1e-6) for e in events.Scalars("d_loss"))
    assert [e.step for e in events.Images("samples")] == [10, 20, 30]


class ReplayGenerator(Generator):
    """Replays real digits; ``allowed`` restricts it to some classes, to make a real collapse happen."""

    allowed = list(range(10))

    def __init__(self, config: MLPConfig, shape: DataShape) -> None:
        super().__init__(config.latent_dim, shape.image_shape)
        data = load_mnist5k(DataConfig())
        self.register_buffer("bank", data.images.float().div(127.5).sub(1.0))
        self.register_buffer("labels", data.labels)
        self.scale = torch.nn.Parameter(torch.ones(()))

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        pool = torch.nonzero(torch.isin(self.labels, torch.tensor(self.allowed))).flatten()
        pick = pool[(z[:, 0].abs() * 1e4).long() % len(pool)]
        return (self.bank[pick] * self.scale).clamp(-1, 1)


class CollapseAt20:
    @hookimpl
    def ganforge_register_variants(self, register):
        register(VariantSpec("replay", "replays real digits", MLPConfig, ReplayGenerator, MLPDiscriminator))

    @hookimpl
    def ganforge_step_end(self, context, step, metrics):
        if step == 15:
            ReplayGenerator.allowed = [1, 7]


def test_a_drop_in_coverage_is_warned_about(tmp_path: Path, capsys) -> None:
    pm = make_plugin_manager()
    pm.register(CollapseAt20(), name="collapse")
    config = TrainConfig(variant="replay", model={"d_hidden": [16]}, steps=30, batch_size=32, device="cpu",
                         log_every=10, eval_every=10, eval_samples=500, out=tmp_path / "run")
    try:
        train(config, load_catalog(pm))
    finally:
        ReplayGenerator.allowed = list(range(10))
    evals = [r for r in RunDir(tmp_path / "run").read_metrics() if "fid" in r]
    assert [r["modes"] for r in evals] == [10, 2, 2]
    assert "warning" not in evals[0]
    assert evals[1]["warning"] == "mode collapse? the evaluator finds 2 of 10 classes at step 20, down from 10"
    assert "ganforge: warning: mode collapse? the evaluator finds 2 of 10 classes at step 20" in capsys.readouterr().err


class FeatureNorm:
    """A third-party metric plugin: the mean norm of the evaluator's features, fake and real."""

    @hookimpl
    def ganforge_register_metrics(self, register):
        from ganforge.metrics.spec import MetricSpec

        def feature_norm(samples, reference, seed):
            return {"feature_norm": float(samples.features.norm(dim=1).mean()),
                    "reference_feature_norm": float(reference.features.norm(dim=1).mean())}

        register(MetricSpec("feature-norm", "mean L2 norm of the evaluator features", feature_norm))


def test_a_plugin_metric_is_computed_and_logged(tmp_path: Path) -> None:
    pm = make_plugin_manager()
    pm.register(FeatureNorm(), name="feature-norm-plugin")
    catalog = load_catalog(pm)
    assert catalog.metrics.entry("feature-norm").plugin == "feature-norm-plugin"
    assert {"fid", "kid", "precision-recall", "modes", "conditional-accuracy"} <= set(catalog.metrics.names())
    config = TrainConfig(variant="mlp", model={"g_hidden": [16], "d_hidden": [16]}, steps=4, batch_size=16,
                         device="cpu", log_every=2, eval_every=4, eval_samples=200, out=tmp_path / "run")
    train(config, catalog)
    record = [r for r in RunDir(tmp_path / "run").read_metrics() if "fid" in r][-1]
    assert record["feature_norm"] > 0 and record["reference_feature_norm"] > 0
