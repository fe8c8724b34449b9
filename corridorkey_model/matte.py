"""The reference pipeline's despeckle default, and the despeckle on NumPy arrays.

The despeckle itself is :func:`corridorkey_model.despeckle.despeckle`, the function
the exported ``.pt`` runs (docs/DESIGN.md §3.4, step 3); this module only adapts
it to ``H x W`` arrays. Its OpenCV original is the tests' oracle
(``tests/despeckle_oracle.py``).
"""

from __future__ import annotations

import numpy as np
import torch

from corridorkey_model.despeckle import despeckle as despeckle_tensor

#: ``corridorkey run --despeckle-size`` default: smallest solid island kept, in pixels (upstream's default).
DESPECKLE_SIZE = 400


def despeckle(alpha: np.ndarray, min_area: int = DESPECKLE_SIZE) -> np.ndarray:
    """:func:`corridorkey_model.despeckle.despeckle` of an ``H x W`` float alpha: a new float32 ``H x W`` array.

    ``min_area`` 0 is off (a copy of ``alpha``).
    """
    plane = torch.from_numpy(np.array(alpha, dtype=np.float32))  # a copy: the result never aliases `alpha`
    with torch.no_grad():
        return despeckle_tensor(plane[None, None], min_area)[0, 0].numpy()
