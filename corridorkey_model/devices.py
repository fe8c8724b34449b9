"""Parsing a torch device named on a command line (``cpu``, ``cuda``, ``cuda:N``)."""

from __future__ import annotations

import torch


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
