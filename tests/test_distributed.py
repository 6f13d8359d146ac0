"""The shared loop under a real torchrun: 2 processes on CPU with gloo (on a GPU machine too), DDP-wrapped G and D."""

from __future__ import annotations

import collections
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

import pytest
import torch
import torchvision.datasets
from PIL import Image

from ganforge.accel.distributed import restarts_need_a_store_per_attempt
from ganforge.testing import assert_states_equal

from download_probe import TRAIN_FILES  # tests/download_probe.py, beside this file

pytestmark = pytest.mark.distributed  # real torchrun processes

PROBE = Path(__file__).with_name("ddp_probe.py")
DOWNLOAD_PROBE = Path(__file__).with_name("download_probe.py")
CRASH_PROBE = Path(__file__).with_name("crash_probe.py")
SMALL_MODEL = ("--set", "g_hidden=[32]", "--set", "d_hidden=[32]")
RESTART_ARGS = ("train", "mlp", "--device", "cpu", "--steps", "8", "--batch-size", "16", *SMALL_MODEL,
                "--set", "log_every=1", "--set", "checkpoint_every=4")


def torchrun(*args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 or not check, proc.stdout + proc.stderr
    return proc


def test_cli_under_torchrun_writes_one_run_from_rank_0(tmp_path: Path) -> None:
    proc = torchrun("-m", "ganforge", "train", "mlp", "--device", "cpu", "--steps", "8", "--batch-size", "16",
                    "--out", "run", *SMALL_MODEL, "--set", "log_every=2", cwd=tmp_path)
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


def test_ada_ends_with_the_same_p_and_weights_on_every_rank(tmp_path: Path) -> None:
    # Each rank sees other images and draws other augmentations; the overfitting signal is all-reduced,
    # so every rank moves p alike, and DDP keeps the weights alike.
    settings = {"GANFORGE_PROBE_SETTINGS": json.dumps({"augment": {"name": "ada", "kimg": 0.2, "interval": 2},
                                                       "regularizers": [{"name": "r1", "interval": 2}]})}
    torchrun(str(PROBE), str(tmp_path / "run"), "mlp", "8", cwd=tmp_path, env=settings)
    rank0, rank1 = (torch.load(tmp_path / f"run-rank{r}.pt", weights_only=True) for r in (0, 1))
    assert rank0["augmentation"]["p"] > 0
    assert_states_equal(rank0["augmentation"], rank1["augmentation"], "augmentation")
    for key in ("generator", "discriminator", "opt_g"):
        assert_states_equal(rank0[key], rank1[key], key)
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert_states_equal(last["terms"]["augment"], rank0["augmentation"], "checkpointed augmentation")


def test_a_streamed_run_under_torchrun_ends_identical_on_both_ranks(tmp_path: Path) -> None:
    # Each rank's DataLoader reads its own share of every epoch from the ZIP; SNGAN at 32 px (hinge, 5 D steps).
    pytest.importorskip("ganforge_resnet")
    from ganforge.data import load_mnist5k
    from ganforge import DataConfig

    folder = tmp_path / "digits"
    digits = load_mnist5k(DataConfig())
    for i in range(64):
        (folder / str(int(digits.labels[i]))).mkdir(parents=True, exist_ok=True)
        Image.fromarray(digits.images[i, 0].numpy()).save(folder / str(int(digits.labels[i])) / f"{i}.png")
    assert subprocess.run([sys.executable, "-m", "ganforge", "prepare", str(folder), "--out", str(tmp_path / "d.zip"),
                           "--size", "32", "--channels", "1", "--workers", "1"], capture_output=True).returncode == 0
    settings = {"GANFORGE_PROBE_SETTINGS": json.dumps({
        "model": {"ch": 2}, "data": {"name": "image-zip", "data_dir": str(tmp_path / "d.zip"), "stream": True, "workers": 1}})}
    torchrun(str(PROBE), str(tmp_path / "run"), "sngan", "4", cwd=tmp_path, env=settings)
    rank0, rank1 = (torch.load(tmp_path / f"run-rank{r}.pt", weights_only=True) for r in (0, 1))
    for key in ("generator", "discriminator", "opt_g"):
        assert_states_equal(rank0[key], rank1[key], key)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["resolved"]["data_path"]["mode"] == "streamed" and saved["resolved"]["world_size"] == 2


@pytest.fixture
def mnist_server(tmp_path: Path) -> Iterator[tuple[str, collections.Counter[str]]]:
    """A local HTTP server with MNIST's training files (the embedded digits), slow to answer as a
    real mirror is, and a count of the requests for each file."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    embedded = files("ganforge") / "data_files"
    for kind in ("images-idx3", "labels-idx1"):
        shutil.copyfile(str(embedded / f"mnist5k-{kind}-ubyte.gz"), folder / f"train-{kind}-ubyte.gz")
    requests: collections.Counter[str] = collections.Counter()

    class Mirror(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self) -> None:
            requests[self.path] += 1
            time.sleep(0.5)
            super().do_GET()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Mirror)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", requests
    server.shutdown()


def torchrun_two_nodes(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Two torchrun agents, one process each, meeting at a c10d rendezvous on this machine: two nodes
    sharing one file system. Returns both agents' stdout."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "ganforge-test", *args]
    agents = [subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    outputs = [agent.communicate(timeout=600) for agent in agents]
    for agent, (out, err) in zip(agents, outputs):
        assert agent.returncode == 0, out + err
    return "".join(out for out, _ in outputs)


@pytest.mark.parametrize("nodes", [1, 2])
def test_processes_download_a_data_set_once_and_in_turn(tmp_path: Path, mnist_server, nodes: int, monkeypatch) -> None:
    # What one process fetches: torchvision's own downloader, into a folder of its own.
    url, requests = mnist_server
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [url])
    monkeypatch.setattr(torchvision.datasets.MNIST, "resources", TRAIN_FILES)
    torchvision.datasets.MNIST(str(tmp_path / "alone"), train=True, download=True)
    one_process = dict(requests)
    requests.clear()
    # Two processes with an empty data folder, on one node or two: rank 0 downloads while rank 1
    # waits, then reads the files.
    args = (str(DOWNLOAD_PROBE), url, "train", "mlp", "--device", "cpu", "--data", "mnist", "--data-dir", "data",
            "--steps", "2", "--batch-size", "16", "--out", "run", *SMALL_MODEL)
    stdout = torchrun(*args, cwd=tmp_path).stdout if nodes == 1 else torchrun_two_nodes(*args, cwd=tmp_path)
    assert stdout.count("trained to step 2") == 1
    assert dict(requests) == one_process
    assert json.loads((tmp_path / "run" / "config.json").read_text())["resolved"]["data_size"] == 5000


def test_a_data_set_that_rank_0_cannot_load_stops_every_process_with_its_reason(tmp_path: Path) -> None:
    proc = torchrun("-m", "ganforge", "train", "mlp", "--device", "cpu", "--data", "mnist", "--data-dir", "missing",
                    "--set", "data.download=false", "--steps", "2", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert proc.stderr.count("ganforge: error: MNIST not found under missing") == 1
    assert "ganforge: error: rank 0 could not load data set 'mnist' (its error is above)" in proc.stderr
    assert not (tmp_path / "runs").exists()



@pytest.fixture(scope="module")
def straight_run(tmp_path_factory) -> Path:
    """RESTART_ARGS trained under torchrun with no process dying: what a restarted run must end as."""
    folder = tmp_path_factory.mktemp("straight")
    torchrun("-m", "ganforge", *RESTART_ARGS, "--out", "run", cwd=folder)
    return folder / "run"


def test_torchrun_restarts_after_a_dead_process_continue_from_the_last_checkpoint(tmp_path: Path, straight_run: Path) -> None:
    # Rank 1 dies after step 6 of the job's first start; step 4 is the last checkpoint.
    proc = torchrun("--max-restarts", "1", str(CRASH_PROBE), "1", "6", *RESTART_ARGS, "--out", "restarted",
                    "--resume-if-exists", cwd=tmp_path)
    assert proc.stdout.count("trained to step 8") == 1 and (tmp_path / "crash_probe.died").exists()
    assert_restarted_run_is_the_straight_one(tmp_path / "restarted", straight_run)
    # Without --resume-if-exists the restart refuses the run directory, says how to continue it, and leaves it be.
    (tmp_path / "refused").mkdir()
    proc = torchrun("--max-restarts", "1", str(CRASH_PROBE), "1", "6", *RESTART_ARGS, "--out", "run",
                    cwd=tmp_path / "refused", check=False)
    assert proc.returncode != 0
    assert proc.stderr.count("torchrun started this job again (restart 1): add --resume-if-exists") == 1
    assert "rank 0 did not start the run (its error is above)" in proc.stderr
    assert torch.load(tmp_path / "refused" / "run" / "checkpoints" / "last.pt", weights_only=True)["step"] == 4


def test_two_nodes_restart_with_a_store_per_attempt(tmp_path: Path, straight_run: Path) -> None:
    stdout = torchrun_two_nodes("--max-restarts", "1", str(CRASH_PROBE), "1", "6", *RESTART_ARGS, "--out", "restarted",
                                "--resume-if-exists", cwd=tmp_path, env={"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"})
    assert stdout.count("trained to step 8") == 1 and (tmp_path / "crash_probe.died").exists()
    assert_restarted_run_is_the_straight_one(tmp_path / "restarted", straight_run)


def test_restarts_across_nodes_in_torchruns_shared_store_are_flagged(monkeypatch) -> None:
    # What torchrun's agent sets in each process of a two-node job started with --max-restarts 1.
    for key, value in {"TORCHELASTIC_MAX_RESTARTS": "1", "GROUP_WORLD_SIZE": "2", "TORCHELASTIC_USE_AGENT_STORE": "True"}.items():
        monkeypatch.setenv(key, value)
    assert restarts_need_a_store_per_attempt()
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "False")  # TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1
    assert not restarts_need_a_store_per_attempt()
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    monkeypatch.setenv("GROUP_WORLD_SIZE", "1")  # one node: each attempt meets under its own prefix
    assert not restarts_need_a_store_per_attempt()
    monkeypatch.setenv("GROUP_WORLD_SIZE", "2")
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "0")
    assert not restarts_need_a_store_per_attempt()


def assert_restarted_run_is_the_straight_one(restarted: Path, straight: Path) -> None:
    """Trained from the step-4 checkpoint after the death, the run ends where 8 straight steps end, each step logged once."""
    ours = torch.load(restarted / "checkpoints" / "last.pt", weights_only=True)
    theirs = torch.load(straight / "checkpoints" / "last.pt", weights_only=True)
    for key in ("generator", "discriminator", "opt_g", "opt_d", "ema"):
        assert_states_equal(theirs[key], ours[key], key)
    logged = [json.loads(line) for line in (restarted / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == list(range(1, 9))
    assert json.loads((restarted / "config.json").read_text())["from_step"] == 4
