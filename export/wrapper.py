"""The TorchScript module Nuke's Inference node runs.

:class:`CorridorKeyNuke` holds the *traced* GreenFormer (``[1, 4, S, S]`` ->
coarse alpha/fg logits and delta logits) and does everything that depends on a
knob in scripted code, by calling the shared reference math of
:mod:`corridorkey_model.keying.frame` (TorchScript compiles those very functions):

    plate [1,4,H,W] -> preprocess (resize to S, sRGB encode if linear, normalise)
                    -> run_network (the traced GreenFormer)
                    -> postprocess (combine with refiner strength, resize back, despill)
                    -> [1,4,H,W]

Each stage is also a TorchScript method of the saved file (``@torch.jit.export``),
taking its knob values as arguments named exactly as the knobs, and ``forward``
only reads each knob attribute and passes it to the stage of the same parameter
name. ``--validate`` relies on that: it checks the wiring of ``forward`` in the
saved graph, checks the stage methods against the reference over the whole knob
sweep on cached network outputs (cheap), and calls ``forward`` end to end only a
few times (each such call is a full network forward).

The knobs are plain ``float`` / ``int`` attributes named exactly as in
:data:`corridorkey_model.keying.knobs.KNOBS`; Nuke writes them before each render and
``forward`` reads them on every call. Every tensor made in ``forward`` takes
its device and dtype from the input (the frame functions are written that way),
so "Use GPU if available" and "Optimize for Speed and Memory" (fp16) work on
the saved file.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from corridorkey_model.keying import frame
from corridorkey_model.keying.knobs import CPU_BF16, KNOBS, KNOBS_BY_NAME

#: The file's stage methods, in the order ``forward`` runs them.
STAGE_METHODS = ("preprocess", "run_network", "postprocess")


class CorridorKeyNuke(nn.Module):
    """Nuke wrapper: ``forward(x [1, 4, H, W]) -> [1, 4, H, W]`` (straight sRGB fg, linear alpha).

    ``network`` is the traced GreenFormer at model resolution ``img_size`` (it
    returns ``(alpha_logits, fg_logits, delta_logits)``); ``preview_network``, if
    given, the one traced at ``preview_size``, run when the ``quality`` knob is 1.
    Knob attributes start at the spec's defaults.
    """

    #: RGB index of the screen colour the weights were trained on (1 green, 2 blue): a constant of the
    #: file, not a knob (the weights belong to one screen); despill acts on this channel.
    __constants__ = ["screen_channel"]

    def __init__(self, network: nn.Module, img_size: int, screen_channel: int = 1,
                 preview_network: Optional[nn.Module] = None, preview_size: int = 0,
                 network_bf16: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.network = network
        # CPU bfloat16 route (issue #29) begin: ``network_bf16`` is the same network traced under CPU
        # autocast (same weights, shared in the file); ``cpu_bf16`` = 1 runs it for fp32 input on a CPU.
        # Nothing in the file can tell whether the CPU has bfloat16 units: whoever sets the attribute checks
        # (corridorkey_model.devices.cpu_bf16_support; the gizmo's onCreate on each machine). Not a KNOBS entry
        # (it changes how, not what, is computed) but a .cat knob (CAT_KNOBS), so Nuke writes it like the others.
        self.network_bf16 = network if network_bf16 is None else network_bf16
        self.has_cpu_bf16 = 0 if network_bf16 is None else 1
        self.cpu_bf16 = CPU_BF16.typed_default
        # CPU bfloat16 route end
        self.img_size = int(img_size)
        # ---- quality (issue #27): the preview path ----
        # ``preview_network``: the GreenFormer traced at ``preview_size`` (< img_size), sharing the final
        # network's weight tensors, so the file stores them once. Without it the file has no
        # ``preview_network`` attribute at all (``forward`` is compiled without that branch: TorchScript
        # evaluates ``hasattr`` on a module when it compiles), ``preview_size`` is 0 and the ``quality``
        # knob is read and ignored.
        self.preview_size = 0
        if preview_network is not None:
            if not 0 < int(preview_size) < self.img_size:
                raise ValueError(f"preview_size must lie between 0 and img_size {self.img_size} (exclusive), "
                                 f"not {preview_size!r}")
            self.preview_network = preview_network
            self.preview_size = int(preview_size)
        # ---- end quality ----
        if screen_channel not in (1, 2):
            raise ValueError(f"screen_channel must be 1 (green) or 2 (blue), not {screen_channel!r}")
        self.screen_channel = int(screen_channel)
        # TorchScript types attributes from their Python values: float / int, never bool.
        self.despill_strength = KNOBS_BY_NAME["despill_strength"].typed_default
        self.gamma_input = KNOBS_BY_NAME["gamma_input"].typed_default
        self.refiner_strength = KNOBS_BY_NAME["refiner_strength"].typed_default
        self.despeckle_size = KNOBS_BY_NAME["despeckle_size"].typed_default
        self.auto_hint = KNOBS_BY_NAME["auto_hint"].typed_default
        self.quality = KNOBS_BY_NAME["quality"].typed_default
        missing = [k.name for k in KNOBS if not hasattr(self, k.name)]
        if missing:  # the knob spec grew a knob that forward() does not read
            raise RuntimeError(f"CorridorKeyNuke does not implement knob(s) {missing} of the knob spec")

    def forward(self, x: Tensor) -> Tensor:
        height = x.shape[-2]
        width = x.shape[-1]
        net_in = self.preprocess(x, self.gamma_input, self.auto_hint, self.quality)
        alpha_logits, fg_logits, delta_logits = self.run_network(net_in)
        return self.postprocess(alpha_logits, fg_logits, delta_logits, height, width,
                                self.refiner_strength, self.despill_strength, self.despeckle_size)

    @torch.jit.export
    def model_size(self, quality: int) -> int:
        """The resolution ``quality`` keys at: the preview size for 1 in a file that has one, else S."""
        if quality == 1 and self.preview_size > 0:
            return self.preview_size
        return self.img_size

    @torch.jit.export
    def preprocess(self, x: Tensor, gamma_input: int, auto_hint: int, quality: int) -> Tensor:
        """Plate ``[1, 4, H, W]`` -> network input ``[1, 4, s, s]``, ``s`` = :meth:`model_size` of ``quality``
        (:func:`corridorkey_model.keying.frame.preprocess`; ``auto_hint`` 1 makes the hint from the plate on
        the file's screen channel)."""
        return frame.preprocess(x, self.model_size(quality), gamma_input, auto_hint, self.screen_channel)

    @torch.jit.export
    def run_network(self, net_in: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """The traced GreenFormer of the input's size: ``[1, 4, s, s]`` -> ``(alpha_logits, fg_logits,
        delta_logits)`` at s (the preview network when s is the preview size, else the final one).

        With ``cpu_bf16`` = 1, an fp32 input on the CPU runs the final network's bfloat16 copy and its logits
        come back as fp32 (on a GPU, for half input, or on the preview path, the attribute changes nothing).
        """
        if hasattr(self, "preview_network"):  # compiled only into a file with a preview path (issue #27)
            if net_in.shape[-1] == self.preview_size:
                return self.preview_network(net_in)
        if self.cpu_bf16 == 1 and self.has_cpu_bf16 == 1 and net_in.is_cpu \
                and net_in.dtype == torch.float32:
            alpha_logits, fg_logits, delta_logits = self.network_bf16(net_in)
            return alpha_logits.float(), fg_logits.float(), delta_logits.float()
        return self.network(net_in)

    @torch.jit.export
    def postprocess(self, alpha_logits: Tensor, fg_logits: Tensor, delta_logits: Tensor, height: int, width: int,
                    refiner_strength: float, despill_strength: float, despeckle_size: int) -> Tensor:
        """Network outputs at S -> ``[1, 4, height, width]``, with every knob that acts after the network.

        :func:`corridorkey_model.keying.frame.combine` (refiner strength), then
        :func:`corridorkey_model.keying.frame.postprocess` (resize back, despill on the file's screen channel,
        despeckle).
        """
        alpha, fg = frame.combine(alpha_logits, fg_logits, delta_logits, refiner_strength)
        return frame.postprocess(alpha, fg, height, width, despill_strength, despeckle_size, self.screen_channel)


def knob_values(module: nn.Module) -> dict:
    """The current knob values of a wrapper (eager or loaded TorchScript), by knob name."""
    return {k.name: getattr(module, k.name) for k in KNOBS}


def set_knobs(module: nn.Module, **values) -> None:
    """Set knob attributes on a wrapper (eager or loaded TorchScript), checked against the knob spec.

    Values are cast to the knob's type (a TorchScript ``float`` attribute refuses a Python int).
    """
    for name, value in values.items():
        spec = KNOBS_BY_NAME.get(name)
        if spec is None:
            raise KeyError(f"unknown knob {name!r}; knobs are {', '.join(KNOBS_BY_NAME)}")
        setattr(module, name, spec.check(value))


__all__ = ["CorridorKeyNuke", "STAGE_METHODS", "knob_values", "set_knobs"]
