"""The 14 output classes of BianqueNet, in channel order (spec section 2.9), and a display palette."""

from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = (
    "background",
    "CSF",
    "L1",
    "L1/L2",
    "L2",
    "L2/L3",
    "L3",
    "L3/L4",
    "L4",
    "L4/L5",
    "L5",
    "L5/S1",
    "S1",
    "presacral fat",
)
NUM_CLASSES = len(CLASS_NAMES)

BACKGROUND = 0
CSF = 1
PRESACRAL_FAT = 13
VERTEBRA_CHANNELS: tuple[int, ...] = (2, 4, 6, 8, 10, 12)  # L1, L2, L3, L4, L5, S1
DISC_CHANNELS: tuple[int, ...] = (3, 5, 7, 9, 11)  # L1/L2 ... L5/S1
SPINE_CHANNELS_HEAD_TO_FEET: tuple[int, ...] = tuple(range(2, 13))  # L1, L1/L2, ..., L5/S1, S1

# RGB colours, one per class (background black). Bones warm, discs cool, CSF light blue, fat yellow.
PALETTE_RGB: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),
    (120, 200, 255),
    (230, 25, 75),
    (60, 180, 75),
    (245, 130, 48),
    (0, 130, 200),
    (240, 50, 230),
    (70, 240, 240),
    (210, 245, 60),
    (0, 128, 128),
    (170, 110, 40),
    (145, 30, 180),
    (128, 0, 0),
    (255, 225, 25),
)


def class_index(name: str) -> int:
    try:
        return CLASS_NAMES.index(name)
    except ValueError:
        raise ValueError(f"unknown class {name!r}; known: {', '.join(CLASS_NAMES)}") from None
