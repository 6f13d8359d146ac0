"""The shared loop under a real torchrun: 2 processes on CPU with gloo, DDP-wrapped G and D."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ganforge.testing import assert_states_equal

PROBE = Path(__file__).with_name("ddp_probe.py")


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_cli_under_torchrun_writes_one_run_from_rank_0(tmp_path: Path) -> None:
    proc = torchrun("-m", "ganforge", "train", "mlp", "--steps", "8", "--batch-size", "16", "--out", "run",
                    "--set", "g_hidden=[32]", "--set", "d_hidden=[32]", "--set", "log_every=2", cwd=tmp_path)
    assert proc.stdout.count("trained to step 8") == 1
    run = tmp_path / "run"
    saved = json.loads((run / "config.json").read_text())
    assert saved["resolved"]["world_size"] == 2
    # Had rank 1 written too, every log line would be there twice.
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [2, 4, 6, 8]
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert len(state["rng"]) == 2 and not torch.equal(state["rng"][0]["noise"], state["rng"][1]["noise"])


@pytest.mark.parametrize("variant", ["mlp", "dcgan"])
def test_ranks_end_identical_and_resume_exactly(tmp_path: Path, variant: str) -> None:
    if variant == "dcgan":
        pytest.importorskip("ganforge_dcgan")
    torchrun(str(PROBE), str(tmp_path / "straight"), variant, "6", cwd=tmp_path)
    rank0 = torch.load(tmp_path / "straight-rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "straight-rank1.pt", weights_only=True)
    assert rank0["step"] == rank1["step"] == 6
    for key in ("generator", "discriminator", "opt_g"):
        assert_states_equal(rank0[key], rank1[key], key)  # batch-norm running statistics included
    last = torch.load(tmp_path / "straight" / "checkpoints" / "last.pt", weights_only=True)
    assert_states_equal(last["generator"], rank0["generator"], "generator")
    # Resume under torchrun: 3 steps, then on to 6, ends where 6 straight steps end.
    torchrun(str(PROBE), str(tmp_path / "halves"), variant, "3", cwd=tmp_path)
    torchrun(str(PROBE), str(tmp_path / "halves"), variant, "6", "resume", cwd=tmp_path)
    resumed = torch.load(tmp_path / "halves" / "checkpoints" / "last.pt", weights_only=True)
    for key in ("generator", "discriminator", "opt_g", "opt_d", "ema"):
        assert_states_equal(last[key], resumed[key], key)
