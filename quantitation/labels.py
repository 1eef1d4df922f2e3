"""Class indices of the 14-class BianqueNet label map (spec section 2.9) and level bookkeeping."""

from __future__ import annotations

BACKGROUND = 0
CSF = 1
FAT = 13  # presacral ("pre-iliac") fat

# vertebra level -> class index
VERTEBRA_CLASS: dict[str, int] = {"L1": 2, "L2": 4, "L3": 6, "L4": 8, "L5": 10, "S1": 12}
# disc level -> class index
DISC_CLASS: dict[str, int] = {"L1/L2": 3, "L2/L3": 5, "L3/L4": 7, "L4/L5": 9, "L5/S1": 11}
# disc level -> (upper vertebra, lower vertebra)
DISC_NEIGHBOURS: dict[str, tuple[str, str]] = {
    "L1/L2": ("L1", "L2"),
    "L2/L3": ("L2", "L3"),
    "L3/L4": ("L3", "L4"),
    "L4/L5": ("L4", "L5"),
    "L5/S1": ("L5", "S1"),
}
NUM_CLASSES = 14
