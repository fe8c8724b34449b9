"""Devices named on a command line (``cpu``, ``cuda``, ``cuda:N``) and the precision a device can run.

``--precision bf16`` runs the network in bfloat16 (``torch.autocast``). On a CPU that
pays only where the CPU has bfloat16 units: AVX512-BF16 (Intel Cooper Lake and
later, AMD Zen 4 and later) or AMX-BF16 (Intel Sapphire Rapids and later). Without
them oneDNN emulates bfloat16 with conversions, which is no faster than fp32, so
:func:`resolve_precision` falls back to fp32 and says why. The support is read from
the CPU's feature flags (``/proc/cpuinfo`` on Linux), never guessed from the model
name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import FrozenSet, Optional, Tuple

import torch

from corridorkey_model.keying.knobs import CPU_BF16_FLAGS

log = logging.getLogger(__name__)

#: ``--precision`` values: what the network runs in. Pre- and post-processing stay fp32.
PRECISIONS: Tuple[str, ...] = ("fp32", "bf16")


_CPUINFO = Path("/proc/cpuinfo")


def parse_device(text: str) -> torch.device:
    """``text`` as a usable torch device, or ``ValueError`` saying what is wrong and what to use."""
    text = text.strip()
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ValueError(f"{text!r} is not a torch device; use cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"{text!r}: only cpu and cuda devices are supported")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{text} asked for, but this machine / PyTorch build has no CUDA; use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{text} asked for, but there are {torch.cuda.device_count()} CUDA device(s)")
    return device


def cpu_flags(cpuinfo: Optional[str] = None) -> FrozenSet[str]:
    """The CPU feature flags of the first ``flags`` line of ``/proc/cpuinfo`` (or of the given text).

    Empty where there is no such file (macOS, Windows) or no such line (a non-x86 CPU).
    """
    if cpuinfo is None:
        try:
            cpuinfo = _CPUINFO.read_text()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


@dataclass(frozen=True)
class CpuBf16Support:
    """Whether this CPU computes bfloat16 natively, and the evidence.

    ``flags``: the bfloat16 flags found (of :data:`CPU_BF16_FLAGS`); ``capability``:
    what ATen dispatches its vector kernels to (``torch.backends.cpu.get_cpu_capability()``).
    """

    supported: bool
    flags: Tuple[str, ...]
    capability: str

    def describe(self) -> str:
        if self.supported:
            return f"CPU bfloat16 units: {', '.join(self.flags)} (ATen kernels: {self.capability})"
        if self.flags:
            return (f"the CPU has {', '.join(self.flags)} but torch runs its {self.capability} kernels "
                    f"(ATEN_CPU_CAPABILITY?), which have no bfloat16 arithmetic")
        return (f"this CPU has no bfloat16 units (none of the CPU flags {', '.join(CPU_BF16_FLAGS)}; ATen kernels: "
                f"{self.capability})")


def cpu_bf16_support(flags: Optional[FrozenSet[str]] = None, capability: Optional[str] = None) -> CpuBf16Support:
    """Native bfloat16 support of this CPU (or of the given flags and ATen capability).

    Supported when the CPU has AVX512-BF16 or AMX-BF16 and ATen runs its AVX-512 kernels
    (an ATen limited to AVX2, e.g. by ``ATEN_CPU_CAPABILITY``, would convert every value).
    """
    flags = cpu_flags() if flags is None else frozenset(flags)
    if capability is None:
        capability = torch.backends.cpu.get_cpu_capability()
    found = tuple(f for f in CPU_BF16_FLAGS if f in flags)
    return CpuBf16Support(bool(found) and capability.upper().startswith("AVX512"), found, capability)


@dataclass(frozen=True)
class Precision:
    """What ``--precision`` resolved to on a device: ``name`` (fp32 / bf16) and the autocast dtype (None: fp32)."""

    name: str
    autocast_dtype: Optional[torch.dtype]
    note: str = ""  # why a request was changed, empty when it was not


def resolve_precision(requested: str, device: torch.device,
                      cpu_support: Optional[CpuBf16Support] = None) -> Precision:
    """The precision to run ``requested`` in on ``device``; ``ValueError`` for an unknown name.

    ``bf16`` on a CPU without bfloat16 units, or on a GPU without bfloat16 support, falls
    back to fp32 with a ``note`` saying so (the caller logs it once).
    """
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}; choose from {', '.join(PRECISIONS)}")
    if requested == "fp32":
        return Precision("fp32", None)
    if device.type == "cpu":
        support = cpu_bf16_support() if cpu_support is None else cpu_support
        if not support.supported:
            return Precision("fp32", None, f"--precision bf16 runs in fp32 instead: {support.describe()}, and "
                                           f"emulated bfloat16 is no faster than fp32")
        return Precision("bf16", torch.bfloat16)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return Precision("fp32", None, f"--precision bf16 runs in fp32 instead: {torch.cuda.get_device_name(device)} "
                                       f"has no bfloat16 support")
    return Precision("bf16", torch.bfloat16)


__all__ = ["PRECISIONS", "CPU_BF16_FLAGS", "parse_device", "cpu_flags", "CpuBf16Support", "cpu_bf16_support",
           "Precision", "resolve_precision"]
