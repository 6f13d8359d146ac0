"""A bounded fuzzer over ganforge's command line and the files its commands read.

Random arguments for every subcommand, and random damage to a run's config.json, metrics.jsonl and
checkpoint and to a TOML settings file, each run as a real subprocess with a timeout: every
invocation must end with status 0, or with one line ``ganforge: error: ...`` (status 2 for bad
input, 1 for a run that could not go on), and never with a traceback.

The default run tries ``GANFORGE_FUZZ_EXAMPLES`` (20) invocations from a fixed seed;
``GANFORGE_FUZZ_EXAMPLES=1000 pytest tests/test_fuzz.py`` tries more.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ganforge import TrainConfig, train

pytestmark = pytest.mark.slow  # trains runs or starts processes: left out of `make test-fast`

EXAMPLES = int(os.environ.get("GANFORGE_FUZZ_EXAMPLES", "20"))
ENV = {**os.environ, "TQDM_DISABLE": "1"}

# Any text a command line can carry: every character but NUL, which no process can receive in its argv.
ARGV_CHARACTERS = st.characters(exclude_characters="\x00", codec="utf-8")
SCALARS = st.one_of(st.integers(-2**70, 2**70), st.integers(-3, 70), st.floats(allow_nan=True, allow_infinity=True),
                    st.booleans(), st.none(), st.text(ARGV_CHARACTERS, max_size=8))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.text(max_size=5), SCALARS, max_size=2))
SET_KEYS = ["latent_dim", "g_hidden", "d_hidden", "negative_slope", "base_width", "depth", "spectral_norm", "embed_dim",
            "lr_d", "lr_g", "betas", "n_critic", "ema", "ema_start", "seed", "batch_size", "gradient_penalty",
            "log_every", "checkpoint_every", "sample_every", "num_samples", "fake_labels", "precision", "loss",
            "device", "capture_step", "onednn_linear", "bf16_weights", "channels_last", "data.image_size",
            "data.channels", "data.name", "data.download", "data.data_dir", "model.width", "colour", "", "steps"]
SMALL_INTS = st.one_of(st.integers(-5, 300), st.sampled_from([0, 2**31, 2**63, 2**70, -(2**63)]))
NUMBERS = st.one_of(SMALL_INTS, st.floats(allow_nan=True, allow_infinity=True)).map(str)
TEXT = st.one_of(st.text(ARGV_CHARACTERS, max_size=10), st.sampled_from(["mlp", "dcgan", "cgan", "cdcgan", "last", "best", "²", "-1", ""]))


def set_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


SET_ARGS = st.tuples(st.sampled_from(SET_KEYS), VALUES).map(lambda kv: ["--set", f"{kv[0]}={set_value(kv[1])}"])
TRAIN_FLAGS = st.one_of(
    SET_ARGS,
    st.tuples(st.sampled_from(["--batch-size", "--n-critic", "--seed", "--image-size", "--steps"]), SMALL_INTS.map(str)).map(list),
    st.tuples(st.sampled_from(["--ema", "--epochs"]), NUMBERS).map(list),
    st.tuples(st.sampled_from(["--loss", "--data", "--device", "--precision", "--data-dir", "--out"]), TEXT).map(list),
    st.tuples(st.just("--config"), st.just("settings.toml")).map(list),
    st.just(["--resume-if-exists"]),
)
SAMPLE_FLAGS = st.one_of(
    st.tuples(st.sampled_from(["--n", "--seed", "--class"]), SMALL_INTS.map(str)).map(list),
    st.tuples(st.just("--truncation"), NUMBERS).map(list),
    st.tuples(st.sampled_from(["--checkpoint", "--device"]), TEXT).map(list),
    st.tuples(st.just("--out"), st.sampled_from(["x.png", "x.npz", "x.pt", "x.txt", "", "run/checkpoints/last.pt",
                                                 "settings.toml", "run", "settings.toml/x.png"])).map(list),
    st.just(["--force"]),
)
EVAL_FLAGS = st.one_of(
    st.tuples(st.sampled_from(["--n", "--seed", "--repeats"]), SMALL_INTS.map(str)).map(list),
    st.tuples(st.just("--truncation"), NUMBERS).map(list),
    st.tuples(st.sampled_from(["--checkpoint", "--inception-weights"]), TEXT).map(list),
)


def flags(strategy: st.SearchStrategy[list[str]]) -> st.SearchStrategy[list[str]]:
    return st.lists(strategy, max_size=4).map(lambda parts: [arg for part in parts for arg in part])


COMMANDS = st.one_of(
    st.tuples(st.just(["train"]), TEXT.map(lambda v: [v]), flags(TRAIN_FLAGS)).map(lambda t: t[0] + t[1] + t[2] + ["--steps", "2"]),
    flags(TRAIN_FLAGS).map(lambda f: ["train", "--resume", "run", *f]),
    flags(SAMPLE_FLAGS).map(lambda f: ["sample", "run", *f]),
    flags(EVAL_FLAGS).map(lambda f: ["eval", "run", "--n", "100", *f]),
    st.lists(st.sampled_from(["--out", "r.png", "r.txt", "", "--force", "run/checkpoints/r.png"]), max_size=3).map(lambda f: ["report", "run", *f]),
    st.tuples(st.sampled_from(["variants", "losses", "datasets", "metrics", "plugins"]),
              st.lists(st.sampled_from(["--json", "--options", "mlp", "nope", "--x"]), max_size=2)).map(lambda t: [t[0], *t[1]]),
)

PATHS = st.lists(st.one_of(st.text(max_size=6), st.integers(0, 3)), min_size=1, max_size=3)


def mutate(tree: Any, path: list[Any], value: Any, delete: bool) -> Any:
    """``tree`` with the entry at ``path`` (keys or indices, taken modulo what exists) replaced or deleted."""
    if not path or not isinstance(tree, (dict, list)) or not tree:
        return value
    keys = list(tree) if isinstance(tree, dict) else list(range(len(tree)))
    key = keys[path[0] % len(keys)] if isinstance(path[0], int) else path[0]
    if isinstance(tree, list) and not isinstance(key, int):
        return tree
    if len(path) == 1 and delete and isinstance(tree, dict):
        return {k: v for k, v in tree.items() if k != key}
    copy = dict(tree) if isinstance(tree, dict) else list(tree)
    copy[key] = mutate(copy[key] if (isinstance(copy, dict) and key in copy) or isinstance(copy, list) else None,
                       path[1:], value, delete)
    return copy


DAMAGE = st.one_of(
    st.none(),
    st.tuples(st.just("config"), PATHS, VALUES, st.booleans()),
    st.tuples(st.just("config-whole"), VALUES, st.just([]), st.just(False)),
    st.tuples(st.just("metrics"), st.lists(st.one_of(VALUES.map(json.dumps), st.text(max_size=20)), max_size=3), st.just([]), st.just(False)),
    st.tuples(st.just("checkpoint"), PATHS, VALUES, st.booleans()),
)
TOML = st.lists(st.tuples(st.sampled_from(["variant", "steps", "batch_size", "seed", "lr_d", "[model]", "[data]", "name",
                                           "latent_dim", "zzz"]),
                          st.one_of(st.integers(-3, 2**65), st.text(max_size=5), st.booleans(), st.floats())), max_size=4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fuzz") / "run"
    train(TrainConfig(variant="mlp", model={"g_hidden": [16], "d_hidden": [16]}, steps=2, batch_size=16, device="cpu",
                      checkpoint_every=1, out=out))
    return out


def toml_line(key: str, value: Any) -> str:
    if key.startswith("["):
        return key
    if isinstance(value, float) and not math.isfinite(value):
        value = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return f"{key} = {value}"
    return f"{key} = {json.dumps(value)}"


def prepare(trained: Path, work: Path, damage: Any, toml: list[tuple[str, Any]]) -> None:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    run = work / "run"
    shutil.copytree(trained, run)
    (work / "settings.toml").write_text("\n".join(toml_line(k, v) for k, v in toml) + "\n")
    if damage is None:
        return
    kind, where, value, delete = damage
    if kind == "config":
        config = json.loads((run / "config.json").read_text())
        (run / "config.json").write_text(json.dumps(mutate(config, where, value, delete)))
    elif kind == "config-whole":
        (run / "config.json").write_text(json.dumps(where))
    elif kind == "metrics":
        with open(run / "metrics.jsonl", "a") as f:
            f.write("\n".join(where) + "\n")
    else:
        last = run / "checkpoints" / "last.pt"
        state = torch.load(last, weights_only=True)
        last.unlink()
        torch.save(mutate(state, where, value, delete), last)


def check(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    if proc.returncode == 0:
        return
    assert proc.returncode in (1, 2), (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.strip().splitlines() if not line.startswith(("ganforge: note:", "ganforge: warning:"))]
    assert len(lines) == 1 and lines[0].startswith("ganforge: error: "), proc.stderr


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])
@given(command=COMMANDS, damage=DAMAGE, toml=TOML)
@example(command=["train", "--resume", "run"], damage=("config-whole", [], [], False), toml=[])
@example(command=["train", "--resume", "run", "--config", "settings.toml"], damage=None, toml=[("variant", 0)])
@example(command=["sample", "run"], damage=("config", ["variant"], 7, False), toml=[])
@example(command=["report", "run"], damage=("config", ["resolved"], None, True), toml=[])
@example(command=["sample", "run"], damage=("checkpoint", ["step"], "abc", False), toml=[])
@example(command=["train", "--resume", "run", "--steps", "3"], damage=("metrics", ['{"step": "abc"}'], [], False), toml=[])
@example(command=["sample", "run", "--seed", str(2**70)], damage=None, toml=[])
@example(command=["eval", "run", "--n", "100", "--repeats", str(2**31)], damage=None, toml=[])
@example(command=["train", "mlp", "--set", "betas=[NaN, 1]", "--steps", "2"], damage=None, toml=[])
@example(command=["train", "--config", "settings.toml", "--steps", "2"], damage=None, toml=[("variant", 7)])
def test_no_command_ends_in_a_traceback(trained: Path, tmp_path_factory, command: list[str], damage: Any,
                                        toml: list[tuple[str, Any]]) -> None:
    work = tmp_path_factory.getbasetemp() / "fuzz-work"
    prepare(trained, work, damage, toml)
    proc = subprocess.run([sys.executable, "-m", "ganforge", *command], cwd=work, env=ENV, capture_output=True,
                          text=True, timeout=300)
    check(proc)
