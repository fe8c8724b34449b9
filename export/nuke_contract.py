"""The contract with Nuke's Inference node: what the ``.cat`` and the gizmo call things.

The keying math (:mod:`corridorkey_model.keying`) knows knobs and screens; this
module adds what only Nuke needs: each released model's Model Id and file names,
the channels the Inference node feeds in and reads back, and the output scale
(docs/DESIGN.md §4.1). The export, its manifest, the validation's printed .cat
settings and the Nuke file generator read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

from corridorkey_model.keying import knobs


@dataclass(frozen=True)
class NukeModel:
    """One released model as Nuke knows it: its screen, Model Id and file names."""

    screen: knobs.ScreenSpec
    model_id: str
    pt_filename: str
    cat_filename: str

    @property
    def name(self) -> str:
        return self.screen.name

    @property
    def label(self) -> str:
        return self.screen.label

    @property
    def channel(self) -> int:
        return self.screen.channel

    @property
    def verify_filename(self) -> str:
        """The Verify button's reference values as installed beside the .cat (``CorridorKey.verify.json``): the
        name the gizmo's Verify looks for."""
        return verify_filenames(self.cat_filename.rsplit(".", 1)[0])[1]

    @property
    def verify_plate_filename(self) -> str:
        """The Verify button's test plate as installed beside the .cat (``CorridorKey.verify.exr``)."""
        return verify_filenames(self.cat_filename.rsplit(".", 1)[0])[0]


def verify_filenames(stem: str) -> Tuple[str, str]:
    """``(test plate, reference values)`` of the Verify data named after a file's stem: the export writes
    ``<pt stem>.verify.exr/.json`` beside its ``.pt`` (so two exports in one folder never share them), the
    install copies them under the ``.cat``'s installed stem (``CorridorKey``), where the gizmo looks."""
    return f"{stem}.verify.exr", f"{stem}.verify.json"


GREEN = NukeModel(knobs.GREEN, "CorridorKey_v1.0_Nuke", "CorridorKey.pt", "CorridorKey.cat")
BLUE = NukeModel(knobs.BLUE, "CorridorKeyBlue_1.0_Nuke", "CorridorKeyBlue.pt", "CorridorKeyBlue.cat")
#: The released models, in the order of the gizmo's Screen menu (that of ``knobs.SCREENS``).
SCREENS: Tuple[NukeModel, ...] = (GREEN, BLUE)
SCREENS_BY_NAME: Dict[str, NukeModel] = {m.name: m for m in SCREENS}

#: Model Id written into the green model's .cat file (CatFileCreator ``modelId``).
MODEL_ID = GREEN.model_id

#: Nuke channels the Inference node feeds in and reads back, in tensor order.
CHANNELS_IN = ("rgba.red", "rgba.green", "rgba.blue", "rgba.alpha")
CHANNELS_OUT = ("rgba.red", "rgba.green", "rgba.blue", "rgba.alpha")

#: CatFileCreator ``outputScale``: the output has the input's size.
OUTPUT_SCALE = 1
