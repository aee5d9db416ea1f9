"""Class taxonomies: names, colours and the ignore index.

The built-in taxonomy is Cityscapes' 19 training classes (trainIds, official palette, 255 =
ignore). Other taxonomies are declared in ``params.yaml``; no code assumes 19 classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE_INDEX = 255

CITYSCAPES_CLASSES: tuple[str, ...] = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)

CITYSCAPES_PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128),
    (244, 35, 232),
    (70, 70, 70),
    (102, 102, 156),
    (190, 153, 153),
    (153, 153, 153),
    (250, 170, 30),
    (220, 220, 0),
    (107, 142, 35),
    (152, 251, 152),
    (70, 130, 180),
    (220, 20, 60),
    (255, 0, 0),
    (0, 0, 142),
    (0, 0, 70),
    (0, 60, 100),
    (0, 80, 100),
    (0, 0, 230),
    (119, 11, 32),
)

# Official Cityscapes labelId -> trainId mapping (cityscapesScripts/helpers/labels.py).
# Every labelId not listed (0-6, 9, 10, 14-16, 18, 29, 30, -1) maps to the ignore index.
CITYSCAPES_LABELID_TO_TRAINID: dict[int, int] = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}


@dataclass(frozen=True)
class Taxonomy:
    """An ordered set of classes; a class's index is its train id."""

    name: str
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_index: int = IGNORE_INDEX

    def __post_init__(self) -> None:
        if len(self.classes) != len(self.palette):
            raise ValueError(
                f"taxonomy {self.name!r}: {len(self.classes)} classes but "
                f"{len(self.palette)} palette colours"
            )
        if not 0 < len(self.classes) <= self.ignore_index:
            raise ValueError(
                f"taxonomy {self.name!r}: need 1..{self.ignore_index} classes, "
                f"got {len(self.classes)}"
            )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def palette_lut(self) -> np.ndarray:
        """A 256x3 uint8 lookup table; ignore and unknown ids are black."""
        lut = np.zeros((256, 3), dtype=np.uint8)
        lut[: self.num_classes] = np.asarray(self.palette, dtype=np.uint8)
        return lut

    def colorize(self, label: np.ndarray) -> np.ndarray:
        """Map an HxW uint8 train-id map to an HxWx3 RGB image."""
        return self.palette_lut()[label]


CITYSCAPES = Taxonomy("cityscapes", CITYSCAPES_CLASSES, CITYSCAPES_PALETTE)


def labelids_to_trainids_lut() -> np.ndarray:
    """A 256-entry uint8 table mapping Cityscapes labelIds to trainIds (255 elsewhere)."""
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for label_id, train_id in CITYSCAPES_LABELID_TO_TRAINID.items():
        lut[label_id] = train_id
    return lut
