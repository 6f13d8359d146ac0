"""Files that parse but hold the wrong structure, and files that are not what their name says: one
line naming the file and what is wrong, for every command that reads them."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import pytest
import torch
from PIL import Image

from ganforge import GanforgeError, TrainConfig, train
from ganforge.runs import RunDir

pytestmark = pytest.mark.slow  # trains runs or starts processes: left out of `make test-fast`

SMALL = {"g_hidden": [32], "d_hidden": [32]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    train(TrainConfig(variant="mlp", model=SMALL, steps=4, batch_size=16, device="cpu", checkpoint_every=2, out=out))
    return out


def copy_run(trained: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(trained, to)
    return to


CONFIGS = {
    "a list": [],
    "an empty object": {},
    "null": None,
    "no variant": "drop:variant",
    "no resolved": "drop:resolved",
    "a number for the variant": "set:variant=7",
    "a string for the data shape": "set:resolved.data_shape=\"28x28\"",
    "train settings of the wrong type": "set:train.batch_size=\"64\"",
}


def damaged_config(original: dict, how: object) -> object:
    if not isinstance(how, str):
        return how
    config = json.loads(json.dumps(original))
    action, _, what = how.partition(":")
    if action == "drop":
        del config[what]
    else:
        path, _, value = what.partition("=")
        *parents, key = path.split(".")
        target = config
        for parent in parents:
            target = target[parent]
        target[key] = json.loads(value)
    return config


@pytest.mark.parametrize("damage", list(CONFIGS))
@pytest.mark.parametrize("command", [["train", "--resume", "run"], ["sample", "run", "--out", "x.png"],
                                     ["eval", "run", "--n", "100"], ["report", "run"]])
def test_a_config_json_of_the_wrong_structure_is_one_line(cli, one_line_error, trained: Path, tmp_path: Path,
                                                          damage: str, command: list[str]) -> None:
    run = copy_run(trained, tmp_path / "run")
    original = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(damaged_config(original, CONFIGS[damage])))
    error = one_line_error(cli(*command))
    assert "run/config.json" in error, error


@pytest.mark.parametrize(("change", "expected"), [
    (lambda s: s.pop("generator"), "generator: Field required"),
    (lambda s: s.update(step="abc"), "step: Input should be a valid integer"),
    (lambda s: s.update(rng=[]), "rng: List should have at least 1 item"),
    (lambda s: s.update(opt_d={"state": {}, "param_groups": []}), "optimiser or random states do not fit"),
    (lambda s: s.update(generator={"net.0.weight": torch.zeros(3)}), "its generator weights do not fit"),
])
def test_a_crafted_checkpoint_is_one_line(cli, one_line_error, trained: Path, tmp_path: Path, change, expected: str) -> None:
    run = copy_run(trained, tmp_path / "run")
    last = run / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    change(state)
    last.unlink()  # a second name of step_0000004.pt: write a file of its own
    torch.save(state, last)
    for command in (["train", "--resume", "run", "--steps", "6"], ["sample", "run", "--out", "x.png"]):
        if ("optimiser" in expected or "generator weights" in expected) and command[0] == "sample":
            continue  # sampling reads neither the optimisers' states nor G's own weights (it draws from the EMA)
        error = one_line_error(cli(*command))
        assert "run/checkpoints/last.pt: " in error and expected in error, error


def test_a_metrics_line_of_the_wrong_types_is_skipped(cli, trained: Path, tmp_path: Path) -> None:
    run = copy_run(trained, tmp_path / "run")
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": "abc", "d_loss": "high"}) + "\n")
        f.write(json.dumps({"step": 3, "d_loss": [1, 2]}) + "\n")
        f.write("[1, 2, 3]\n")
    assert cli("report", "run").returncode == 0
    proc = cli("train", "--resume", "run", "--steps", "6")
    assert proc.returncode == 0 and "trained to step 6" in proc.stdout, proc.stderr
    assert [r["step"] for r in RunDir(run).read_metrics()] == [2, 4, 6]


def test_a_sample_grid_that_is_not_an_image_is_named(cli, one_line_error, trained: Path, tmp_path: Path) -> None:
    run = copy_run(trained, tmp_path / "run")
    (run / "samples" / "step_0000001.png").write_text("not a picture")
    (run / "samples" / "step_notes.png").write_text("not a step's grid: ignored")
    error = one_line_error(cli("report", "run"))
    assert "run/samples/step_0000001.png: not a readable image" in error


@pytest.mark.parametrize(("content", "expected"), [("{not json", "unreadable"), ("[1, 2]", "holds no figures of `ganforge eval`")])
def test_a_damaged_eval_json_is_one_line_for_every_reader(cli, one_line_error, trained: Path, tmp_path: Path,
                                                          content: str, expected: str) -> None:
    run = copy_run(trained, tmp_path / "run")
    (run / "eval.json").write_text(content)
    for command in (["report", "run"], ["export", "run", "--out", "model"]):
        error = one_line_error(cli(*command))
        assert f"run/eval.json: {expected}; run `ganforge eval` again, or delete it" in error, error
    assert not (tmp_path / "model").exists() and not (run / "report.png").exists()


def test_an_idx_file_with_no_images_is_one_line(cli, one_line_error, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(struct.pack(">BBBBIII", 0, 0, 8, 3, 0, 28, 28)))
    (data / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(struct.pack(">BBBBI", 0, 0, 8, 1, 0)))
    error = one_line_error(cli("train", "mlp", "--data", "mnist", "--data-dir", "data", "--steps", "1"))
    assert "train-images-idx3-ubyte.gz: holds no images or labels (its header gives dimensions (0, 28, 28))" in error
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("stream", ["false", "true"])
def test_a_decompression_bomb_is_refused_by_name(cli, one_line_error, tmp_path: Path, stream: str) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("L", (8, 8)).save(folder / "fine.png")
    # 14,000 x 14,000 pixels of one colour: a small file, beyond twice PIL's limit when decoded.
    Image.new("1", (14000, 14000)).save(folder / "bomb.png")
    error = one_line_error(cli("train", "mlp", "--data", "image-folder", "--data-dir", "photos", "--steps", "1",
                               "--batch-size", "1", "--set", f"data.stream={stream}"))
    assert "photos/bomb.png: too large to decode" in error


def test_read_config_names_the_file_for_python_callers(trained: Path, tmp_path: Path) -> None:
    run = copy_run(trained, tmp_path / "run")
    (run / "config.json").write_text("null")
    with pytest.raises(GanforgeError, match=r"config.json: holds NoneType, not a ganforge run's config"):
        RunDir(run).read_config()
