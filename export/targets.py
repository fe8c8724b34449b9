"""Per-Nuke-version export choices (``export-torchscript --target-nuke``).

Nuke does not run our torch: each Nuke release embeds its own libtorch. A
target names the export choices that make the saved file load and match on
that runtime. The choices below were measured, not assumed
(tests/export/test_compat_torch21.py runs in CI; docs/compatibility.md has the table
of what was verified, on which torch, and how):

* ``fused_attn``: timm's fused attention puts ``aten::scaled_dot_product_attention``
  into the traced graph. torch 2.1.2 loads and runs it (max abs error vs the
  exporting torch 2.15: ~1e-6 fp32, fused or not), so the 2.1-era targets keep it
  (the fused kernel is the faster, leaner one on GPU). The op does not exist
  before PyTorch 2.0: torch 1.13.1 rejects such a file at load time, and the
  same export with the unfused (matmul + softmax) attention loads and matches
  there, so the Nuke 14 target turns it off.
* Half precision on CPU: libtorch 2.1 and older have no CPU fp16 kernels for
  convolution, matmul, the norms or softmax ("... not implemented for 'Half'"),
  so a ``.half()`` module runs on GPU only there. Nuke offers "Optimize for Speed
  and Memory" (fp16) only together with "Use GPU if available", so this is not a
  path a compositor can reach; recorded in ``cpu_fp16``.
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
    # What this project verified for the target, with which torch (docs/compatibility.md).
    verified: str = ""
    cpu_fp16: bool = False  # whether that libtorch runs the file in fp16 on CPU (measured)


_VERIFIED_21 = ("loads and matches (fp32 CPU, max abs err <= 1e-5) in torch 2.1.2, in CI "
                "(tests/export/test_compat_torch21.py); fp16 on CPU unsupported by that libtorch; CUDA not verified here")

TARGETS: Dict[str, NukeTarget] = {
    "17": NukeTarget("17", "2.1", fused_attn=True, note="PyTorch 2.1-era libtorch (third-party reports)",
                     verified=_VERIFIED_21),
    "16": NukeTarget("16", "2.1", fused_attn=True, note="PyTorch 2.1-era libtorch (third-party reports)",
                     verified=_VERIFIED_21),
    "15.1": NukeTarget("15.1", "2.1", fused_attn=True, note="PyTorch 2.1-era libtorch (third-party reports)",
                       verified=_VERIFIED_21),
    "14": NukeTarget("14", "1.12", fused_attn=False,
                     note="PyTorch 1.12 (Foundry's documentation); stretch goal: 1.12 has no wheel for Python 3.11",
                     verified=("loads and matches (fp32 CPU, max abs err <= 1e-5) in torch 1.13.1, the oldest "
                               "PyPI torch for Python 3.11, by hand (tests/compat/check_torch113.sh); "
                               "the fused-attention export does not load there; 1.12 itself not verified")),
}

DEFAULT_TARGET = "16"
