"""The Verify button's test plate and reference values, written beside the ``.pt`` at export time.

``export_torchscript`` writes, next to ``CorridorKey.pt``, files named after it
(:func:`corridorkey_export.nuke_contract.verify_filenames`; ``y.pt`` gets ``y.verify.*``):

* ``CorridorKey.verify.exr``: a small green-screen plate (blue for the blue model), float
  RGBA, the hint in alpha: what the Inference node receives;
* ``CorridorKey.verify.json``: the saved file's output on that plate at the knobs' defaults,
  at a grid of pixels, and the tolerance of each run mode
  (:data:`corridorkey_model.pipeline.compare.RUN_MODES`).

``--install-to ... --cat CorridorKey.cat`` checks both (:func:`check_reference`) and copies
them from the .cat's folder into the Cattery package under the installed names
(``CorridorKey.verify.*``, ``CorridorKeyBlue.verify.*``), where ``corridorkey_verify.verify(node)`` (shipped in the package, run
by the node's Verify button inside Nuke) finds them beside the .cat.

Pixel positions are in Nuke's image coordinates: x from the left, y from the *bottom*
(the NDK's coordinate system: the origin is the bottom-left corner; Foundry, NDK
Developer Guide, "2D Architecture"), sampled at the pixel centre (x + 0.5, y + 0.5) as
``Node.sample`` wants (Foundry Python API, ``nuke.sample``: "integers are at the corners
of pixels, to center on a pixel add .5 to both coordinates").
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from corridorkey_export.nuke_contract import CHANNELS_OUT, NukeModel, verify_filenames
from corridorkey_export.validate import VERIFY_PLATE
from corridorkey_export.wrapper import set_knobs
from corridorkey_model.keying.knobs import KNOBS
from corridorkey_model.pipeline.compare import RUN_MODES
from corridorkey_model.testing import green_screen_plate

VERIFY_FORMAT = 1
VERIFY_KIND = "corridorkey-verify"
#: Size of the test plate (width, height): small, non-square, odd. The plate is also one of the
#: validation's end-to-end plates (:func:`corridorkey_export.validate.verify_plate`).
PLATE_SIZE = VERIFY_PLATE[:2]
PLATE_SEED = VERIFY_PLATE[2]
#: Pixels sampled per axis (a grid over the plate, corners included).
GRID = 8
#: The run modes the Verify button tests in (``corridorkey_verify.run_mode``); the reference holds a tolerance
#: for every mode of RUN_MODES, and needs these (a reference written before a mode was added stays usable).
VERIFY_MODES = ("cpu", "gpu", "gpu-fp16")


def sample_positions(width: int, height: int, grid: int = GRID) -> List[Tuple[int, int]]:
    """A ``grid x grid`` lattice of pixel positions (x, row from the top), corners included, no repeats."""
    xs = sorted({int(round(v)) for v in np.linspace(0, width - 1, grid)})
    rows = sorted({int(round(v)) for v in np.linspace(0, height - 1, grid)})
    return [(x, r) for r in rows for x in xs]


def make_verify_data(module: torch.nn.Module, screen: NukeModel, pt_sha256: str,
                     output: Optional[torch.Tensor] = None, plate_name: Optional[str] = None
                     ) -> Tuple[np.ndarray, Dict]:
    """(test plate ``H x W x 4`` float32, reference JSON) for the loaded ``.pt`` ``module``.

    The reference is ``module``'s own output (fp32, CPU, every knob at its default): ``output``
    (``[1, 4, H, W]``) when the caller has it already (the validation's end-to-end call on this
    plate at the defaults), else one forward here. The module's knob attributes are restored.
    ``plate_name``: the test plate's file name the JSON names (default the installed name).
    """
    width, height = PLATE_SIZE
    plate = green_screen_plate(height, width, seed=PLATE_SEED, screen_channel=screen.channel)
    defaults = {k.name: k.typed_default for k in KNOBS}
    if output is None:
        saved = {k.name: getattr(module, k.name) for k in KNOBS}
        try:
            set_knobs(module, **defaults)
            with torch.no_grad():
                output = module(torch.from_numpy(plate).permute(2, 0, 1)[None].to(next(module.parameters()).device))
        finally:
            set_knobs(module, **saved)
    if tuple(output.shape) != (1, 4, height, width):
        raise ValueError(f"the Verify reference must be [1, 4, {height}, {width}], not {list(output.shape)}")
    out = output[0].permute(1, 2, 0).float().cpu().numpy()
    samples = [{"x": x, "y": height - 1 - row, "values": [float(v) for v in out[row, x]]}
               for x, row in sample_positions(width, height)]
    data = {
        "format": VERIFY_FORMAT,
        "kind": VERIFY_KIND,
        "model_id": screen.model_id,
        "screen": screen.name,
        "pt_sha256": pt_sha256,
        "img_size": int(module.img_size),
        # the file's preview resolution (knob quality = 1), 0 when it has none (quality is then ignored)
        "preview_size": int(getattr(module, "preview_size", 0)),
        "plate": plate_name or screen.verify_plate_filename,
        "width": width,
        "height": height,
        "knobs": defaults,
        "coordinates": "Nuke image coordinates: x from the left, y from the bottom; sample at (x + 0.5, y + 0.5)",
        "channels": list(CHANNELS_OUT),
        "samples": samples,
        "tolerances": {m.name: m.tolerance for m in RUN_MODES.values()},
        "torch": torch.__version__,
    }
    return plate, data


def verify_paths(output: Path, screen: Optional[NukeModel] = None) -> Tuple[Path, Path]:
    """(plate EXR, JSON) beside the exported file ``output``, named after it (``y.pt`` -> ``y.verify.exr``,
    ``y.verify.json``): an export never overwrites another ``.pt``'s Verify data. ``screen`` is not needed."""
    output = Path(output)
    plate, reference = verify_filenames(output.stem)
    return output.parent / plate, output.parent / reference


def check_reference(path: Path, screen: NukeModel) -> Tuple[Dict, Path]:
    """``(reference JSON, test plate path)`` of a Verify reference file, checked as ``validate`` checks a
    manifest: readable JSON of this format and kind, for ``screen``, with samples the Verify module can
    use, a tolerance per run mode, and its test plate beside it. ValueError says what is wrong."""
    import json
    import math

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("kind") != VERIFY_KIND or data.get("format") != VERIFY_FORMAT:
        raise ValueError(f"{path} is not a CorridorKey Verify reference of format {VERIFY_FORMAT} "
                         f"(kind {data.get('kind') if isinstance(data, dict) else None!r})")
    if data.get("screen") != screen.name:
        raise ValueError(f"{path} holds the {data.get('screen')!r}-screen model's reference, not the "
                         f"{screen.name}-screen one")
    width, height, channels = data.get("width"), data.get("height"), data.get("channels")
    if not (type(width) is int and type(height) is int and width > 0 and height > 0
            and isinstance(channels, list) and channels):
        raise ValueError(f"{path}: width, height or channels missing or wrong")
    samples = data.get("samples")
    if not isinstance(samples, list) or not samples:
        raise ValueError(f"{path} holds no samples")
    for s in samples:
        ok = (isinstance(s, dict) and type(s.get("x")) is int and type(s.get("y")) is int
              and 0 <= s["x"] < width and 0 <= s["y"] < height and isinstance(s.get("values"), list)
              and len(s["values"]) == len(channels)
              and all(isinstance(v, (int, float)) and math.isfinite(v) for v in s["values"]))
        if not ok:
            raise ValueError(f"{path}: sample {s!r} is not a pixel of the {width}x{height} plate with "
                             f"{len(channels)} finite value(s)")
    tolerances = data.get("tolerances")
    if not isinstance(tolerances, dict) or not set(VERIFY_MODES) <= set(tolerances) or not all(
            isinstance(t, (int, float)) and math.isfinite(t) and t >= 0 for t in tolerances.values()):
        raise ValueError(f"{path}: tolerances must give one finite figure per run mode of the Verify button "
                         f"({', '.join(VERIFY_MODES)})")
    plate = Path(path).parent / str(data.get("plate") or "")
    if not data.get("plate") or not plate.is_file() or plate.stat().st_size == 0:
        raise ValueError(f"{path} names the test plate {data.get('plate')!r}, which is not beside it")
    return data, plate


__all__ = ["make_verify_data", "verify_paths", "check_reference", "sample_positions", "PLATE_SIZE", "PLATE_SEED",
           "VERIFY_FORMAT", "VERIFY_KIND"]
