"""Per-Nuke-version export choices (``export-torchscript --target-nuke``).

Nuke does not run our torch: each Nuke release embeds its own libtorch. A
target names the export choices that make the saved file load and match on
that runtime. Filled in and verified by the compatibility tests
(tests/test_compat_torch21.py); the README's compatibility table says what
was verified and how.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict


@dataclass(frozen=True)
class NukeTarget:
    nuke: str  # Nuke version(s) this target is for
    libtorch: str  # PyTorch version of the libtorch that Nuke ships
    fused_attn: bool  # timm's fused attention (F.scaled_dot_product_attention) in the traced graph
    note: str


TARGETS: Dict[str, NukeTarget] = {
    "17": NukeTarget("17", "2.1", fused_attn=True, note="PyTorch 2.1-era libtorch (third-party reports)"),
    "16": NukeTarget("16", "2.1", fused_attn=True, note="PyTorch 2.1-era libtorch (third-party reports)"),
    "15.1": NukeTarget("15.1", "2.1", fused_attn=True, note="PyTorch 2.1-era libtorch (third-party reports)"),
    "14": NukeTarget("14", "1.12", fused_attn=False, note="PyTorch 1.12 (Foundry's documentation); stretch goal"),
}

DEFAULT_TARGET = "16"
