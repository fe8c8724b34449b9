"""Device names from the command line."""

import pytest
import torch

from corridorkey_model.devices import parse_device


def test_cpu_is_accepted():
    assert parse_device(" cpu ") == torch.device("cpu")


@pytest.mark.parametrize("text,message", [("gpu", "not a torch device"), ("meta", "only cpu and cuda"),
                                          ("cuda:x", "not a torch device")])
def test_bad_names_say_what_to_use(text, message):
    with pytest.raises(ValueError, match=message):
        parse_device(text)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the no-CUDA message cannot show")
def test_cuda_without_a_gpu_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="no CUDA; use cpu"):
        parse_device("cuda:0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_index_beyond_the_devices_is_refused():
    with pytest.raises(ValueError, match="CUDA device"):
        parse_device(f"cuda:{torch.cuda.device_count()}")


# --------------------------------------------------------------------------- bfloat16 support (issue #29)

from corridorkey_model.devices import (  # noqa: E402
    CpuBf16Support,
    cpu_bf16_support,
    cpu_flags,
    resolve_precision,
)

SAPPHIRE_RAPIDS = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
                   "flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile\n\nprocessor\t: 1\n")
CASCADE_LAKE = "model name\t: Intel(R) Xeon(R) Gold 6248\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\n"


def test_flags_are_read_from_cpuinfo_text():
    flags = cpu_flags(SAPPHIRE_RAPIDS)
    assert {"avx512_bf16", "amx_bf16", "avx512f"} <= flags and "model" not in flags
    assert cpu_flags("processor\t: 0\nFeatures\t: fp asimd\n") == frozenset()  # no x86 flags line


@pytest.mark.parametrize("text,capability,supported", [
    (SAPPHIRE_RAPIDS, "AVX512", True),
    (CASCADE_LAKE, "AVX512", False),  # AVX-512 without bfloat16 units: oneDNN would emulate it
    (SAPPHIRE_RAPIDS, "AVX2", False),  # ATen held to AVX2 (ATEN_CPU_CAPABILITY): no bfloat16 vector kernels
    ("flags\t\t: avx2 avx512f avx512_bf16\n", "AVX512", True),  # Zen 4: AVX512-BF16, no AMX
])
def test_bf16_support_needs_the_bf16_flags(text, capability, supported):
    support = cpu_bf16_support(cpu_flags(text), capability)
    assert support.supported is supported
    assert ("no bfloat16 units" in support.describe()) is (not support.supported and capability != "AVX2")
    assert ("AVX2 kernels" in support.describe()) is (capability == "AVX2")


def test_bf16_on_a_cpu_without_bf16_units_falls_back_to_fp32_saying_why():
    no = cpu_bf16_support(cpu_flags(CASCADE_LAKE), "AVX512")
    p = resolve_precision("bf16", torch.device("cpu"), no)
    assert p.name == "fp32" and p.autocast_dtype is None
    assert "runs in fp32 instead" in p.note and "avx512_bf16" in p.note
    yes = resolve_precision("bf16", torch.device("cpu"), CpuBf16Support(True, ("amx_bf16",), "AVX512"))
    assert yes.name == "bf16" and yes.autocast_dtype == torch.bfloat16 and not yes.note
    assert resolve_precision("fp32", torch.device("cpu"), no).note == ""
    with pytest.raises(ValueError, match="fp32, bf16"):
        resolve_precision("fp16", torch.device("cpu"))
