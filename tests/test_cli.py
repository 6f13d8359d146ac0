"""The `ganforge` command through real subprocesses: listings, training, sampling, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from ganforge.accel.speed import cpu_bf16_native, cpu_description

pytestmark = pytest.mark.slow  # trains runs or starts processes: left out of `make test-fast`

SMALL = ["--set", "g_hidden=[32]", "--set", "d_hidden=[32]"]


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("ganforge: error: ")
    return lines[0]


def test_variants_lists_name_aliases_plugin_and_description(cli) -> None:
    proc = cli("variants")
    assert proc.returncode == 0
    header, *rows = proc.stdout.splitlines()
    assert header.split() == ["NAME", "ALIASES", "PLUGIN", "DISTRIBUTION", "DESCRIPTION"]
    mlp = next(r for r in rows if r.startswith("mlp "))
    assert mlp.split()[:4] == ["mlp", "gan,vanilla", "ganforge.builtin.mlp", "ganforge"]
    listed = json.loads(cli("variants", "--json").stdout)
    assert {"name": "mlp", "aliases": ["gan", "vanilla"], "plugin": "ganforge.builtin.mlp",
            "recipe": {"ema": 0.999, "ema_start": 5000}}.items() <= next(v for v in listed if v["name"] == "mlp").items()
    schema = json.loads(cli("variants", "--options", "gan").stdout)
    assert schema["properties"]["latent_dim"]["default"] == 100 and schema["additionalProperties"] is False


def test_plugins_lists_versions_and_hooks(cli) -> None:
    proc = cli("plugins", "--json")
    plugins = {p["name"]: p for p in json.loads(proc.stdout)}
    assert plugins["ganforge.builtin.mlp"]["hooks"] == ["ganforge_register_variants"]
    assert plugins["ganforge.losses"]["distribution"] == "ganforge"


def test_train_then_sample(cli, tmp_path: Path) -> None:
    proc = cli("train", "vanilla", "--steps", "12", "--batch-size", "32", "--out", "run", "--seed", "3", *SMALL,
               "--set", "log_every=4", "--loss", "hinge", "--set", "data.image_size=20")
    assert proc.returncode == 0, proc.stderr
    assert "trained to step 12" in proc.stdout
    # The mlp recipe's EMA starts at step 5,000; a shorter run says it samples G itself.
    assert "the EMA starts averaging after step 5000 (ema_start), this run ends at step 12" in proc.stderr
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train"]["seed"] == 3 and saved["train"]["loss"] == "hinge" and saved["model"]["g_hidden"] == [32]
    assert saved["train"]["data"]["image_size"] == 20 and saved["resolved"]["data_shape"] == [1, 20, 20, None]
    on_cuda = saved["resolved"]["device"].startswith("cuda")
    assert saved["machine"] == {"cpu": cpu_description(), "gpu": torch.cuda.get_device_name() if on_cuda else None}
    proc = cli("sample", "run", "--n", "9", "--out", "grid.png")
    assert proc.returncode == 0, proc.stderr
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.size == (3 * 22 + 2, 3 * 22 + 2)
    proc = cli("train", "--resume", "run", "--steps", "16")
    assert proc.returncode == 0 and "trained to step 16" in proc.stdout


def test_bf16_on_a_cpu_without_bf16_instructions_says_fp32_is_faster(cli) -> None:
    proc = cli("train", "mlp", "--device", "cpu", "--precision", "bf16", "--steps", "2", "--out", "run", *SMALL)
    assert proc.returncode == 0, proc.stderr
    note = "this CPU has no bf16 matrix instructions (AVX512-BF16 or AMX)"
    assert (note in proc.stderr) is not cpu_bf16_native(), proc.stderr


def test_train_reads_a_toml_config_and_flags_override_it(cli, tmp_path: Path) -> None:
    (tmp_path / "run.toml").write_text(
        'variant = "mlp"\nsteps = 4\nbatch_size = 16\nseed = 5\n[model]\ng_hidden = [16]\nd_hidden = [16]\n[data]\nname = "mnist5k"\n')
    proc = cli("train", "--config", "run.toml", "--out", "r", "--seed", "6", "--set", "ema_start=2")
    assert proc.returncode == 0, proc.stderr
    assert "EMA starts" not in proc.stderr
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["train"]["seed"] == 6 and saved["train"]["steps"] == 4 and saved["model"]["g_hidden"] == [16]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "dcgn"], "unknown variant 'dcgn'"),
        (["train", "mlpp"], "did you mean 'mlp'"),
        (["train", "mlp", "--steps", "0"], "steps: Input should be greater than or equal to 1"),
        (["train", "mlp", "--steps", "ten"], "argument --steps: invalid int value: 'ten'"),
        (["train", "mlp", "--set", "latent_dim=-3"], "model.latent_dim: Input should be greater than or equal to 1"),
        (["train", "mlp", "--set", "colour=blue"], "--set colour: unknown key"),
        (["train", "mlp", "--set", "noequals"], "expected KEY=VALUE"),
        (["train", "mlp", "--loss", "hing"], "unknown loss 'hing'; did you mean 'hinge'"),
        (["train", "mlp", "--data", "mnist", "--data-dir", "missing", "--set", "data.download=false"], "MNIST not found under missing"),
        (["train", "mlp", "--data", "image-folder"], "needs --data-dir"),
        pytest.param(["train", "mlp", "--device", "cuda"], "CUDA is not available",
                     marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
        pytest.param(["train", "mlp", "--set", "capture_step=true"], "capture_step replays CUDA graphs; this run is on cpu",
                     marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
        (["train", "mlp", "--device", "cpu", "--set", "bf16_weights=true"],
         "bf16_weights keeps bf16 copies for bf16 autocast; add --precision bf16"),
        (["train", "dcgan", "--device", "cpu", "--precision", "bf16", "--set", "bf16_weights=true"],
         "in variant 'dcgan' the generator has ConvTranspose2d weights"),
        (["train", "mlp", "--batch-size", "6000"], "larger than the 5000 images"),
        (["train", "mlp", "--config", "nope.toml"], "nope.toml: no such file"),
        (["train"], "name a variant"),
        (["sample", "nowhere"], "nowhere: not a ganforge run directory"),
        (["variants", "--options", "nope"], "unknown variant 'nope'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, args: list[str], expected: str) -> None:
    assert expected in one_line_error(cli(*args))


def test_unknown_key_in_a_toml_file_is_refused(cli, tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('variant = "mlp"\nstepz = 3\n')
    assert "stepz: Extra inputs are not permitted" in one_line_error(cli("train", "--config", "bad.toml"))
    (tmp_path / "bad2.toml").write_text('variant = "mlp"\n[model]\nwidth = 3\n')
    assert "model.width: Extra inputs are not permitted" in one_line_error(cli("train", "--config", "bad2.toml"))


def test_sample_refuses_bad_checkpoints_in_one_line(cli, tmp_path: Path) -> None:
    assert cli("train", "mlp", "--steps", "2", "--out", "run", *SMALL).returncode == 0
    assert "step_0000099.pt: no such checkpoint" in one_line_error(cli("sample", "run", "--checkpoint", "99"))
    assert "unconditional; it takes no --class" in one_line_error(cli("sample", "run", "--class", "3"))
    assert "--n 0: must be at least 1" in one_line_error(cli("sample", "run", "--n", "0"))
    (tmp_path / "run" / "checkpoints" / "last.pt").write_text("garbage")
    assert "not a readable ganforge checkpoint" in one_line_error(cli("sample", "run"))


CRASH_PROBE = Path(__file__).with_name("crash_probe.py")


def dies_after(step: int, *args: str, cwd: Path) -> None:
    """``ganforge ARGS`` through tests/crash_probe.py: the process dies after ``step``."""
    died = subprocess.run([sys.executable, str(CRASH_PROBE), "0", str(step), *args], cwd=cwd,
                          env={**os.environ, "TQDM_DISABLE": "1"}, capture_output=True, text=True, timeout=300)
    assert died.returncode == 1, died.stderr


def logged_steps(run: Path) -> dict[int, float]:
    """metrics.jsonl's d_loss by step; a step logged twice fails the test."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records]
    assert len(steps) == len(set(steps)), steps
    return {r["step"]: r["d_loss"] for r in records}


def test_a_run_that_died_past_its_checkpoint_resumes_without_logging_steps_twice(cli, tmp_path: Path) -> None:
    args = ["train", "mlp", "--steps", "12", "--out", "run", *SMALL, "--set", "log_every=1", "--set", "checkpoint_every=4"]
    dies_after(7, *args, cwd=tmp_path)
    before = logged_steps(tmp_path / "run")
    assert list(before) == [1, 2, 3, 4, 5, 6, 7]
    with open(tmp_path / "run" / "metrics.jsonl", "a") as metrics:
        metrics.write('{"step": 8, "d_lo')  # a line cut short, as when the disk fills up
    proc = cli("train", "--resume", "run")
    assert proc.returncode == 0 and "trained to step 12" in proc.stdout, proc.stderr
    after = logged_steps(tmp_path / "run")
    assert list(after) == list(range(1, 13))
    # Steps 5 to 7 were trained again from the step-4 checkpoint, exactly as the first time.
    assert all(after[step] == before[step] for step in before)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["from_step"] == 4 and [s["from_step"] for s in saved["earlier_segments"]] == [0]


def test_resume_if_exists_starts_continues_or_refuses_a_run(cli, tmp_path: Path) -> None:
    args = ["train", "mlp", "--out", "run", *SMALL, "--set", "log_every=1", "--set", "checkpoint_every=4", "--resume-if-exists"]
    # Died before its first checkpoint: the same command starts it over.
    dies_after(3, *args, "--steps", "6", cwd=tmp_path)
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()
    assert list(logged_steps(tmp_path / "run")) == [1, 2, 3]
    proc = cli(*args, "--steps", "6")
    assert proc.returncode == 0 and "trained to step 6" in proc.stdout, proc.stderr
    assert list(logged_steps(tmp_path / "run")) == [1, 2, 3, 4, 5, 6]
    assert "earlier_segments" not in json.loads((tmp_path / "run" / "config.json").read_text())
    # A run that exists with these settings: continued, further if asked.
    proc = cli(*args, "--steps", "9")
    assert proc.returncode == 0 and "trained to step 9" in proc.stdout, proc.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["from_step"] == 6
    # Already there: nothing to train, and a success, so a restarted finished job ends well.
    last = (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes()
    proc = cli(*args, "--steps", "9")
    assert proc.returncode == 0 and "trained to step 9" in proc.stdout, proc.stderr
    assert (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes() == last
    assert list(logged_steps(tmp_path / "run")) == list(range(1, 10))
    # Other settings are another run: refused, naming the difference, the run left as it was.
    error = one_line_error(cli(*args, "--steps", "12", "--batch-size", "32"))
    assert "run holds a run with other settings (batch_size is 64 in the run and 32 here, and a continued run keeps it" in error
    assert (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes() == last
    assert "--resume-if-exists needs --out DIR" in one_line_error(cli("train", "mlp", "--resume-if-exists"))
    assert "do not combine" in one_line_error(cli("train", "--resume", "run", "--resume-if-exists"))


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_saves_a_checkpoint_and_the_run_resumes(tmp_path: Path, stop: signal.Signals) -> None:
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ganforge", "train", "mlp", "--steps", "1000000", "--out", "run",
                             *SMALL, "--set", "log_every=20"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.1)
    proc.send_signal(stop)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "checkpoint saved" in err and "--resume run" in err and "Traceback" not in err
    import torch

    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] >= 40
    last_logged = json.loads(metrics.read_text().splitlines()[-1])["step"]
    assert last_logged == state["step"]
    resumed = subprocess.run([sys.executable, "-m", "ganforge", "train", "--resume", "run", "--steps", str(state["step"] + 5)],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0 and f"trained to step {state['step'] + 5}" in resumed.stdout
