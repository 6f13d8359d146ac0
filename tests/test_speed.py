"""Which speed settings a run resolves to, per device, and the combinations refused with a clear error."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
import torch

from ganforge import GanforgeError, TrainConfig
from ganforge.cpuinfo import cpu_vendor
from ganforge.accel.onednn_linear import onednn_linear_pays
from ganforge.accel.speed import Speed, cpu_description, resolve_speed

CUDA, CPU = torch.device("cuda"), torch.device("cpu")


def speed(device: torch.device, world_size: int = 1, *, bf16: bool = True, onednn: bool = True, onednn_pays: bool = True,
          not_copyable: str | None = None, **settings) -> Speed:
    return resolve_speed(TrainConfig(variant="mlp", **settings), device, world_size, not_copyable=not_copyable,
                         bf16_supported=bf16, onednn_available=onednn, onednn_pays=onednn_pays)


def test_one_cuda_process_defaults_to_bf16_and_a_captured_step_without_compile() -> None:
    assert speed(CUDA) == Speed(precision="bf16", compile=False, cuda_graphs=False, capture_step=True, onednn_linear=False,
                                bf16_weights=False)
    assert speed(CUDA, bf16=False).precision == "fp32"
    assert speed(CUDA, precision="fp32").precision == "fp32"


def test_under_torchrun_or_with_compile_the_step_is_not_captured() -> None:
    assert not speed(CUDA, world_size=2).capture_step
    compiled = speed(CUDA, compile=True, cuda_graphs=True)
    assert compiled.compile and compiled.cuda_graphs and not compiled.capture_step
    assert not speed(CUDA, capture_step=False).capture_step


def test_cpu_defaults_to_fp32_and_onednn_linear_where_it_pays() -> None:
    assert speed(CPU) == Speed(precision="fp32", compile=False, cuda_graphs=False, capture_step=False, onednn_linear=True,
                               bf16_weights=False)
    assert not speed(CPU, onednn=False).onednn_linear
    assert not speed(CPU, onednn_pays=False).onednn_linear  # AVX2 only, or an Intel CPU: MKL is as fast or faster
    assert speed(CPU, onednn_pays=False, onednn_linear=True).onednn_linear  # still there when asked for
    assert not speed(CPU, compile=True).onednn_linear
    assert not speed(CPU, compile=True, cuda_graphs=True).cuda_graphs  # CUDA graphs need CUDA


def test_bf16_on_one_cpu_process_keeps_bf16_weight_copies_for_linear_models() -> None:
    assert speed(CPU, precision="bf16").bf16_weights
    assert not speed(CPU, precision="bf16", not_copyable="the generator has Conv2d weights").bf16_weights
    assert not speed(CPU, 2, precision="bf16").bf16_weights
    assert not speed(CPU, precision="bf16", compile=True).bf16_weights
    assert not speed(CPU, precision="bf16", bf16_weights=False).bf16_weights
    assert not speed(CUDA, capture_step=False).bf16_weights


def test_fp16_is_asked_for_and_runs_its_loss_scaler_outside_a_captured_step() -> None:
    assert speed(CUDA, bf16=False).precision == "fp32"  # a GPU without bf16 keeps fp32 unless fp16 is asked for
    fp16 = speed(CUDA, bf16=False, precision="fp16")
    assert fp16.precision == "fp16" and not fp16.capture_step and not fp16.bf16_weights
    assert speed(CPU, precision="fp16").precision == "fp16"


@pytest.mark.parametrize(("device", "world_size", "settings", "message"), [
    (CPU, 1, {"capture_step": True}, "capture_step replays CUDA graphs; this run is on cpu"),
    (CUDA, 2, {"capture_step": True}, "capture_step does not run under torchrun"),
    (CUDA, 1, {"capture_step": True, "compile": True}, "capture_step and --compile do not combine"),
    (CUDA, 1, {"onednn_linear": True}, "onednn_linear needs an x86 CPU device"),
    (CPU, 1, {"onednn_linear": True, "compile": True}, "onednn_linear and --compile do not combine"),
    (CUDA, 1, {"bf16_weights": True, "capture_step": False}, "bf16_weights runs on the CPU; this run is on cuda"),
    (CPU, 1, {"bf16_weights": True}, "bf16_weights keeps bf16 copies for bf16 autocast; add --precision bf16"),
    (CPU, 2, {"bf16_weights": True, "precision": "bf16"}, "bf16_weights does not run under torchrun"),
    (CPU, 1, {"bf16_weights": True, "precision": "bf16", "compile": True}, "bf16_weights and --compile do not combine"),
    (CUDA, 1, {"capture_step": True, "precision": "fp16"}, "capture_step does not combine with --precision fp16"),
    (CPU, 1, {"bf16_weights": True, "precision": "fp16"}, "bf16_weights keeps bf16 copies for bf16 autocast"),
    (torch.device("mps"), 1, {"precision": "fp16"}, "--precision fp16 .* runs on CUDA or the CPU; this run is on mps"),
])
def test_impossible_combinations_are_refused(device: torch.device, world_size: int, settings: dict, message: str) -> None:
    with pytest.raises(GanforgeError, match=message):
        speed(device, world_size, **settings)


def test_bf16_weights_for_a_model_with_other_layers_is_refused() -> None:
    with pytest.raises(GanforgeError, match="every weight is in an nn.Linear and that hold no buffers; in variant 'mlp' "
                                            "the generator has Conv2d weights; drop --set bf16_weights=true"):
        speed(CPU, precision="bf16", bf16_weights=True, not_copyable="the generator has Conv2d weights")


def test_the_cpu_description_names_the_family_and_model_of_a_cpu_a_virtual_machine_calls_only_amd_epyc(tmp_path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
                       "model name\t: AMD EPYC\nflags\t\t: fpu avx512f\n\n"
                       "processor\t: 1\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: Other\n")
    description = cpu_description(cpuinfo)
    assert description.startswith("AMD EPYC (family 25, model 17), ")
    assert description.endswith(f"{torch.backends.cpu.get_cpu_capability()} kernels, bf16 products "
                                f"{'native' if torch.ops.mkldnn._is_mkldnn_bf16_supported() else 'emulated'}, "
                                f"fp16 products {'native' if torch.ops.mkldnn._is_mkldnn_fp16_supported() else 'emulated'}")
    assert cpu_description(tmp_path / "absent").split(",")[0] in (platform.processor(), platform.machine())


@pytest.mark.parametrize(("vendor", "capability", "pays"), [
    ("AuthenticAMD", "AVX512", True),  # Zen 4 and Zen 5: MKL takes its AVX2 path, oneDNN its AVX-512 one
    ("AuthenticAMD", "AVX2", False),  # Zen 3: both run AVX2 code
    ("GenuineIntel", "AVX512", False),  # MKL runs its own AVX-512 kernels, faster than oneDNN's
    ("GenuineIntel", "AVX2", False),
])
def test_onednn_linear_is_on_by_default_only_where_mkl_would_leave_avx512_unused(
        tmp_path: Path, vendor: str, capability: str, pays: bool) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: 6\n\nprocessor\t: 1\nvendor_id\t: Other\n")
    assert onednn_linear_pays(capability, cpuinfo) is pays
    assert cpu_vendor(cpuinfo) == vendor
