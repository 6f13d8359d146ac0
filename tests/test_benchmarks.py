"""The scripts in benchmarks/ run end to end, at sizes too small to mean anything, and print their tables.

Nothing here checks a speed or a quality figure (those are the scripts' job, not the suite's): only
that each script still runs against the current code and prints a row for everything it was asked for.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow  # trains runs or starts processes: left out of `make test-fast`

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
NUMBER = r"\d+(?:\.\d+)?"


def bench(script: str, *args: str, cwd: Path, returncode: int = 0) -> str:
    proc = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "TQDM_DISABLE": "1"}, timeout=300)
    assert proc.returncode == returncode, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout if returncode == 0 else proc.stderr


def test_throughput_prints_a_ratio_for_each_precision(tmp_path: Path) -> None:
    out = bench("throughput.py", "--steps", "8", "--rounds", "1", "--precisions", "fp32", "bf16", cwd=tmp_path)
    for precision in ("fp32", "bf16"):
        assert re.search(rf"^mlp +64 {precision} +\d+ +\d+ +{NUMBER}x$", out, re.M), out


def test_throughput_resizes_the_digits_for_a_variant_that_needs_another_side(tmp_path: Path) -> None:
    out = bench("throughput.py", "--variants", "dcgan", "--image-size", "32", "--steps", "4", "--rounds", "1", cwd=tmp_path)
    assert re.search(rf"^dcgan +64 fp32 +\d+ +\d+ +{NUMBER}x$", out, re.M), out


def test_throughput_measures_a_variant_with_other_model_settings_and_refuses_other_settings(tmp_path: Path) -> None:
    out = bench("throughput.py", "--variants", "dcgan", "--set", "base_width=8", "--steps", "4", "--rounds", "1", cwd=tmp_path)
    assert re.search(rf"^dcgan +64 fp32 +\d+ +\d+ +{NUMBER}x$", out, re.M), out
    error = bench("throughput.py", "--variants", "dcgan", "--set", "base_width=0", cwd=tmp_path, returncode=1)
    assert error.strip().splitlines() == [error.strip()] and "base_width" in error, error
    error = bench("throughput.py", "--variants", "dcgan", "--set", "lr_d=0.1", cwd=tmp_path, returncode=1)
    assert "only dcgan's model settings apply here, not lr_d" in error, error


def test_throughput_measures_a_conditional_variant_against_the_textbook_conditional_loop(tmp_path: Path) -> None:
    out = bench("throughput.py", "--variants", "cgan", "--steps", "4", "--rounds", "1", cwd=tmp_path)
    assert re.search(rf"^cgan +64 fp32 +\d+ +\d+ +{NUMBER}x$", out, re.M), out


def test_a_benchmark_writes_its_table_into_a_results_page_and_replaces_it_when_run_again(tmp_path: Path) -> None:
    import ganforge

    page = tmp_path / "speed.md"
    page.write_text("# Speed\n\n<!-- throughput.py -->\n\nText after the table.\n")
    for _ in range(2):
        bench("throughput.py", "--steps", "4", "--rounds", "1", "--markdown", str(page), cwd=tmp_path)
    text = page.read_text()
    assert text.count("<!-- begin python benchmarks/throughput.py --steps 4 --rounds 1 -->") == 1
    assert text.index("<!-- throughput.py -->") < text.index("<!-- begin ") < text.index("Text after the table.")
    assert "`python benchmarks/throughput.py --steps 4 --rounds 1`" in text
    assert re.search(rf"^\d{{4}}-\d\d-\d\d · ganforge {re.escape(ganforge.__version__)} · torch .+ · \d+ threads? · .+$",
                     text, re.M), text
    assert "| variant | batch | precision | reference img/s | ganforge img/s | ratio |" in text
    assert re.search(rf"^\| mlp \| 64 \| fp32 \| \d+ \| \d+ \| {NUMBER}x \|$", text, re.M), text


def test_step_profile_prints_phases_and_the_profiler_table(tmp_path: Path) -> None:
    phases = bench("step_profile.py", "--phases", "--steps", "5", "--precision", "fp32", "bf16", cwd=tmp_path)
    for phase in ("G forward", "Adam step, D", "backward passes, batch, noise", "step"):
        assert re.search(rf"^{re.escape(phase)} +{NUMBER} +{NUMBER}$", phases, re.M), phases
    table = bench("step_profile.py", "--steps", "5", "--rows", "5", cwd=tmp_path)
    assert "Self CPU time total" in table and "aten::" in table


def test_settings_ab_compares_two_sets_of_settings(tmp_path: Path) -> None:
    out = bench("settings_ab.py", "--precision", "bf16", "--a", "bf16_weights=true", "--b", "bf16_weights=false",
                "--rounds", "2", "--steps", "2", "--warmup", "2", cwd=tmp_path)
    assert re.search(rf"^A +bf16_weights=true +{NUMBER} +\d+$", out, re.M), out
    assert re.search(rf"^A is {NUMBER}x as fast as B", out, re.M), out


def test_settings_ab_refuses_an_unknown_setting_in_one_line(tmp_path: Path) -> None:
    err = bench("settings_ab.py", "--a", "colour=blue", cwd=tmp_path, returncode=1)
    assert err.strip().splitlines()[-1].startswith("settings_ab.py: error: --a colour: unknown key")


def test_gemm_prints_each_layer_shape(tmp_path: Path) -> None:
    out = bench("gemm.py", "--repeats", "2", cwd=tmp_path)
    assert re.search(rf"^ *1024x784 +{NUMBER} +{NUMBER} +{NUMBER}x", out, re.M), out


@pytest.mark.slow
def test_quality_scores_the_reference_and_a_variant(tmp_path: Path) -> None:
    out = bench("quality.py", "--data", "mnist5k", "--variants", "reference", "reference-normalised", "mlp",
                "--epochs", "0.02", "--out", str(tmp_path / "runs"), "--markdown", str(tmp_path / "q.md"), cwd=tmp_path)
    for variant in ("reference", "reference-normalised", "mlp"):  # cFID from both evaluators
        assert re.search(rf"^{variant} +0 mnist5k +1 +\d+ +{NUMBER} +{NUMBER} ", out, re.M), out
    assert "evaluators: mnist-cnn (sha256 " in out and ", mnist-resnet (sha256 " in out
    page = (tmp_path / "q.md").read_text()
    assert "### mnist5k: 0.02 epochs at batch 64" in page and "| variant | seed | data | steps | wall s | cFID | cFID2 |" in page
    assert re.search(rf"^\| reference-normalised \| 0 \| mnist5k \| 1 \| \d+ \| {NUMBER} \| {NUMBER} \|", page, re.M), page


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_gpu_benchmark_says_it_needs_cuda(tmp_path: Path) -> None:
    assert bench("gpu.py", cwd=tmp_path, returncode=1).strip() == "benchmarks/gpu.py needs a CUDA device"


@pytest.mark.slow
def test_quality_compares_augmentations_on_a_subset(tmp_path: Path) -> None:
    out = bench("quality.py", "--data", "mnist5k", "--variants", "mlp", "--epochs", "0.02", "--subset", "100",
                "--augment", "none", "diffaugment", "--seeds", "0", "1", "--out", str(tmp_path / "runs"), cwd=tmp_path)
    for label in ("mlp", "mlp+diffaugment"):
        for seed in ("0", "1", "mean", "sd"):
            assert re.search(rf"^{re.escape(label)} +{seed} mnist5k +1 +\d+ +{NUMBER} ", out, re.M), out
    assert "trained on a class-balanced subset of 100 images" in out
    assert re.search(rf"^mlp\+diffaugment against mlp, paired by training seed: cFID {NUMBER} vs {NUMBER} \(p = {NUMBER}\); "
                     rf"cFID2 {NUMBER} vs {NUMBER} \(p = {NUMBER}\): not shown either way: 2 seeds cannot reach p < 0.05",
                     out, re.M), out


def test_throughput_compares_streamed_with_resident_data(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "imgs" / f"{i}.png")
    assert subprocess.run([sys.executable, "-m", "ganforge", "prepare", "imgs", "--out", "d.zip", "--size", "16",
                           "--workers", "1"], cwd=tmp_path, capture_output=True).returncode == 0
    out = bench("throughput.py", "--data", "d.zip", "--variants", "mlp", "--batch-sizes", "8", "--steps", "16",
                "--rounds", "1", cwd=tmp_path)
    assert "40 images of 3x16x16, 30.7 KB decoded" in out
    assert re.search(rf"^mlp +8 fp32 +\d+ +\d+ +{NUMBER}x +{NUMBER} MB +{NUMBER} MB$", out, re.M), out
