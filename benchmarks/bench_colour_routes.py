"""How much the two colour routes for a linear plate differ in what the network sees.

* the gizmo's default (Input Gamma sRGB): OCIO converts the plate to sRGB first, then the
  model resizes it to S x S: ``resize(srgb(plate))``;
* ``--gamma linear`` (and the gizmo's Linear): the model resizes the linear plate, then
  encodes: ``srgb(resize(plate))``.

Both use the project's sRGB curve (what OCIO's sRGB equals in a nuke-default-like config,
within 1e-4: tests/model/pipeline/test_pipeline_media.py). The antialiased resize averages
pixels, and averaging before or after a non-linear curve differs where the picture has
contrast: on edges, hair and noise. Printed: max, 99.9th percentile and mean absolute
difference of the network's RGB input, in sRGB 8-bit code values, for synthetic linear
green-screen plates (soft subject, hair-like wisps, screen noise) at 1080p and 4K.

    python benchmarks/bench_colour_routes.py
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from corridorkey_model.keying.colour import linear_to_srgb, resize_bilinear_aa
from corridorkey_model.testing import green_screen_plate

PLATES = {"1080p": (1080, 1920), "4K": (2160, 4096)}
SIZES = (1024, 2048)


def routes(plate_rgb: np.ndarray, s: int):
    """(gizmo default, --gamma linear) network RGB inputs, ``[3, S, S]`` sRGB floats."""
    x = torch.from_numpy(np.ascontiguousarray(plate_rgb)).permute(2, 0, 1)[None]
    default = resize_bilinear_aa(linear_to_srgb(x), s, s)[0]
    linear = linear_to_srgb(resize_bilinear_aa(x, s, s))[0]
    return default, linear


def main() -> int:
    print("| plate | S | max | 99.9th pct | mean |  (|difference| of the network input, sRGB 8-bit codes)")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, (h, w) in PLATES.items():
        plate = green_screen_plate(h, w, seed=0, linear=True)[..., :3]
        for s in SIZES:
            a, b = routes(plate, s)
            d = (a - b).abs().flatten().numpy() * 255.0
            print(f"| {name} | {s} | {d.max():.2f} | {np.quantile(d, 0.999):.2f} | {d.mean():.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
