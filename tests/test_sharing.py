"""Evaluation you can publish and models you can share, through the real CLI: protocols and the
reference cache, the evaluator recorded for a run, `ganforge compare`, `export`, `from_pretrained`
(from a folder and from the Hugging Face Hub's cache), `sample` and `eval` on an exported folder,
`verify`, and `report` drawing eval.json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import ganforge
from ganforge import GanforgeError, TrainConfig, train
from ganforge.runs import RunDir
from ganforge.sampling import load_run

from conftest import write_distribution

pytestmark = pytest.mark.slow  # trains runs or starts processes: left out of `make test-fast`

TINY = {"g_hidden": [32], "d_hidden": [32]}


def tiny_run(out: Path, seed: int = 0, steps: int = 40) -> Path:
    train(TrainConfig(variant="mlp", model=TINY, steps=steps, batch_size=32, device="cpu", log_every=20,
                      sample_every=20, checkpoint_every=20, eval_every=20, eval_samples=200, seed=seed, ema=0.9,
                      ema_start=0, out=out))
    return out


REPLAY = """
import torch
from ganforge import Generator, VariantSpec, hookimpl
from ganforge.builtin.mlp import MLPConfig, MLPDiscriminator
from ganforge.config import DataConfig
from ganforge.data import load_mnist5k


class Replay(Generator):
    \"\"\"Draws real digits: a model whose samples are as good as the data.\"\"\"

    def __init__(self, config, shape):
        super().__init__(config.latent_dim, shape.image_shape)
        self.register_buffer("bank", load_mnist5k(DataConfig()).images.float().div(127.5).sub(1.0))
        self.scale = torch.nn.Parameter(torch.ones(()))

    def generate(self, z, labels):
        pick = (z[:, 0].abs() * 1e4).long() % len(self.bank)
        return (self.bank[pick] * self.scale).clamp(-1, 1)


@hookimpl
def ganforge_register_variants(register):
    register(VariantSpec("replay", "replays real digits", MLPConfig, Replay, MLPDiscriminator))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sharing")
    site = write_distribution(root / "site", "ganforge-replay", "ganforge_replay", REPLAY)
    replay = root / "replay"
    proc = subprocess.run([sys.executable, "-m", "ganforge", "train", "replay", "--steps", "10", "--out", str(replay),
                           "--set", "lr_g=1e-9", "--set", "d_hidden=[32]", "--device", "cpu"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(site), "TQDM_DISABLE": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return {"a": tiny_run(root / "a", seed=0), "b": tiny_run(root / "b", seed=1), "replay": replay, "site": site}


@pytest.fixture(scope="module")
def exported(runs: dict[str, Path], tmp_path_factory) -> Path:
    """Run a, scored on 2 sample sets of 200, exported."""
    from ganforge.metrics.scoring import evaluate_model

    evaluate_model(runs["a"], n=200, repeats=2, device="cpu")
    return ganforge.export_run(runs["a"], tmp_path_factory.mktemp("export") / "model")


def test_a_run_records_the_evaluator_it_is_scored_with(runs: dict[str, Path]) -> None:
    recorded = RunDir(runs["a"]).read_config()["resolved"]["evaluator"]
    index = json.loads((Path(ganforge.__file__).parent / "metrics" / "weights" / "evaluators.json").read_text())
    assert recorded == {"name": "mnist-cnn", "sha256": index["mnist-cnn"]["sha256"]}


def test_another_evaluator_digest_is_refused_in_one_line(cli, runs: dict[str, Path], tmp_path: Path, one_line_error) -> None:
    run = tmp_path / "run"
    shutil.copytree(runs["a"], run)
    config = json.loads((run / "config.json").read_text())
    config["resolved"]["evaluator"]["sha256"] = "0" * 64
    (run / "config.json").write_text(json.dumps(config))
    line = one_line_error(cli("eval", str(run), "--n", "200"))
    assert "scored with evaluator 'mnist-cnn' sha256 0000000000000000..." in line and "--evaluator mnist-cnn" in line
    assert not (run / "eval.json").exists()
    proc = cli("eval", str(run), "--n", "200", "--evaluator", "mnist-cnn")
    assert proc.returncode == 0, proc.stderr
    figures = json.loads((run / "eval.json").read_text())
    assert figures["evaluator"] == "mnist-cnn" and "cross_check" not in figures  # one evaluator, as asked


def test_eval_reports_the_second_evaluator_beside_the_first(cli, runs: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(runs["a"], run)
    proc = cli("eval", str(run), "--n", "200")
    assert proc.returncode == 0, proc.stderr
    figures = json.loads((run / "eval.json").read_text())
    second = figures["cross_check"]
    assert second["evaluator"] == "mnist-resnet" and second["evaluator_sha256"] != figures["evaluator_sha256"]
    assert second["n"] == 200 and second["fid"] > 0 and second["fid"] != figures["fid"]
    assert "second opinion, mnist-resnet: fid" in proc.stdout


@pytest.mark.slow
def test_a_named_protocol_is_recorded_and_its_reference_cached(cli, runs: dict[str, Path], tmp_path: Path) -> None:
    run, cache = tmp_path / "run", tmp_path / "cache"
    shutil.copytree(runs["a"], run)
    proc = cli("eval", str(run), "--protocol", "fid10k", env={"GANFORGE_CACHE": str(cache)}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads((run / "eval.json").read_text())
    assert figures["protocol"] == "fid10k" and figures["n"] == 10_000
    assert figures["reference"] == "mnist5k/train, 5000 images"  # fid10k's 10,000, as many as there are
    assert "bilinear" in figures["resize"] and figures["comparable_with_published"] is False
    entries = sorted((cache / "references").glob("*.pt"))
    assert len(entries) == 2  # the evaluator's and the second evaluator's
    stamps = [p.stat().st_mtime_ns for p in entries]
    again = cli("eval", str(run), "--protocol", "fid10k", env={"GANFORGE_CACHE": str(cache)}, timeout=600)
    assert again.returncode == 0, again.stderr
    assert [p.stat().st_mtime_ns for p in entries] == stamps  # read from the cache, not recomputed
    assert json.loads((run / "eval.json").read_text())["fid"] == figures["fid"]
    assert "--protocol 'fid1k': unknown; known: fid10k, fid50k_full" in cli("eval", str(run), "--protocol", "fid1k").stderr


def test_compare_reports_intervals_and_tests_each_pair(cli, runs: dict[str, Path], one_line_error) -> None:
    env = {"PYTHONPATH": str(runs["site"])}
    proc = cli("compare", str(runs["a"]), str(runs["b"]), str(runs["replay"]), "--repeats", "6", "--n", "200",
               "--no-pool-seeds", env=env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.splitlines()[0].split()[:4] == ["RUN", "EVALUATOR", "SETS", "FID"]
    assert "mnist-cnn" in out and "mnist-resnet" in out and "95% confidence interval" in out
    lines = [line for line in out.splitlines() if line.startswith("fid: ")]
    assert len(lines) == 3 and all("paired sign-flip permutation test over sample sets" in line for line in lines)
    # Real digits beat 40 steps of a tiny MLP on every sample set, for both evaluators.
    replay = [line for line in lines if str(runs["replay"]) in line]
    assert len(replay) == 2 and all(f"{runs['replay']} is better (p = 0.0312; mnist-resnet agrees, p = 0.0312)" in line
                                    for line in replay), replay
    line = one_line_error(cli("compare", str(runs["a"]), str(runs["replay"]), "--repeats", "5", "--n", "200", env=env))
    assert "--repeats 5: with so few sample sets no test can reach p < 0.05 (the smallest p-value possible is 0.0625); " \
           "use --repeats 6 or more" in line


def test_compare_pools_runs_that_differ_only_by_seed(runs: dict[str, Path], tmp_path: Path) -> None:
    longer = tiny_run(tmp_path / "longer", seed=0, steps=60)
    result = ganforge.compare_models([runs["a"], runs["b"], longer], repeats=4, n=200, device="cpu")
    assert [g.names for g in result.groups] == [[str(runs["a"]), str(runs["b"])], [str(longer)]]
    assert len(result.groups[0].sets) == 8 and len(result.groups[0].cross_sets) == 8
    assert {t.test for t in result.tests} == {"permutation test over sample sets"}
    with pytest.raises(GanforgeError, match="pool into one group; pass --no-pool-seeds"):
        ganforge.compare_models([runs["a"], runs["b"]], repeats=2, n=200, device="cpu")


def test_export_writes_safetensors_a_config_and_a_card(exported: Path, runs: dict[str, Path]) -> None:
    assert sorted(p.name for p in exported.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = load_run(runs["a"], device="cpu")
    with safe_open(str(exported / "model.safetensors"), "pt") as f:
        assert f.metadata() == {"format": "ganforge-export/1", "variant": "mlp"}
        assert set(f.keys()) == set(loaded.generator.state_dict())
        for key, value in loaded.generator.state_dict().items():
            assert torch.equal(f.get_tensor(key), value)  # the EMA of G, which the run samples with
    config = json.loads((exported / "config.json").read_text())
    assert config["variant"] == "mlp" and config["model"]["g_hidden"] == [32] and config["step"] == 40
    assert config["provider"]["distribution"] == "ganforge" and config["provider"]["version"] == ganforge.__version__
    assert config["weights"] == "the EMA of G" and config["resolved"]["data_shape"] == [1, 28, 28, None]
    card = (exported / "README.md").read_text()
    figures = json.loads((runs["a"] / "eval.json").read_text())
    assert card.startswith("---\nlibrary_name: ganforge\n")
    assert f"evaluator `mnist-cnn` (sha256 `{figures['evaluator_sha256']}`)" in card
    assert "Protocol `n200`: 200 samples against mnist5k/train, 200 images, seed 0" in card
    fids = [r["fid"] for r in figures["per_repeat"]]
    assert f"| fid | {sum(fids) / 2:.4g} | ±" in card and "40 steps" in card


def test_from_pretrained_samples_what_the_run_samples(exported: Path, runs: dict[str, Path]) -> None:
    model = ganforge.from_pretrained(exported, device="cpu")
    images, labels = model.sample(16, seed=3)
    expected, _ = load_run(runs["a"], device="cpu").sample(16, seed=3)
    assert labels is None and torch.equal(images, expected)


def test_from_pretrained_takes_a_hub_repository_id(exported: Path, tmp_path: Path, monkeypatch) -> None:
    """A repository laid out as huggingface_hub caches one: the same call reads it by its id."""
    cache = tmp_path / "hub"
    snapshot = cache / "models--someone--tiny-mlp" / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(exported, snapshot)
    (cache / "models--someone--tiny-mlp" / "refs").mkdir()
    (cache / "models--someone--tiny-mlp" / "refs" / "main").write_text(snapshot.name)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    images, _ = ganforge.from_pretrained("someone/tiny-mlp", device="cpu").sample(4)
    assert images.shape == (4, 1, 28, 28)
    with pytest.raises(GanforgeError, match="someone/absent: cannot fetch it from the Hugging Face Hub"):
        ganforge.from_pretrained("someone/absent")
    with pytest.raises(GanforgeError, match="no-such-folder: no such folder, and not a Hub repository id"):
        ganforge.from_pretrained("no-such-folder")


def test_sample_and_eval_take_an_exported_folder(cli, exported: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(exported, model)
    proc = cli("sample", str(model), "--n", "16", "--out", str(tmp_path / "grid.png"))
    assert proc.returncode == 0 and (tmp_path / "grid.png").is_file(), proc.stderr
    proc = cli("eval", str(model), "--n", "200")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((model / "eval.json").read_text())["step"] == 40


def test_verify_agrees_with_an_honest_card_and_not_with_a_doctored_one(cli, exported: Path, tmp_path: Path) -> None:
    proc = cli("verify", str(exported))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the figures agree with its card (protocol n200, 2 sample set(s), evaluator mnist-cnn)" in proc.stdout
    doctored = tmp_path / "doctored"
    shutil.copytree(exported, doctored)
    config = json.loads((doctored / "config.json").read_text())
    config["evaluation"]["figures"]["fid"]["value"] /= 3
    (doctored / "config.json").write_text(json.dumps(config))
    proc = cli("verify", str(doctored))
    assert proc.returncode == 1 and "DIFFERS" in proc.stdout and "differ from its card" in proc.stdout


def test_export_refusals_are_one_line(cli, runs: dict[str, Path], exported: Path, tmp_path: Path, one_line_error) -> None:
    line = one_line_error(cli("export", str(runs["a"]), "--out", str(exported)))
    assert "exists; name a new or empty folder, or pass --force" in line
    line = one_line_error(cli("verify", str(runs["a"])))
    assert "not a folder that `ganforge export` wrote" in line
    foreign = tmp_path / "foreign"
    shutil.copytree(exported, foreign)
    config = json.loads((foreign / "config.json").read_text())
    config["variant"], config["provider"]["distribution"] = "hypernet", "ganforge-hypernet"
    (foreign / "config.json").write_text(json.dumps(config))
    line = one_line_error(cli("sample", str(foreign), "--out", str(tmp_path / "x.png")))
    assert "its variant 'hypernet' is not installed; pip install ganforge-hypernet" in line


def test_report_draws_the_figures_of_eval_json(cli, runs: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(runs["b"], run)
    assert cli("eval", str(run), "--n", "200", "--repeats", "2").returncode == 0
    proc = cli("report", str(run))
    assert proc.returncode == 0, proc.stderr
    page = (run / "report.html").read_text()
    figures = json.loads((run / "eval.json").read_text())
    assert "<h2>ganforge eval (eval.json)</h2>" in page and f"<td>fid</td><td>{figures['fid']}</td>" in page
