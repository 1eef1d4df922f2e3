"""Intermediate geometry results shared by both methods (internal to ``quantitation``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

Point = tuple[float, float]


class GeometryError(Exception):
    """A structure could not be measured; the message is the reason recorded in the result."""


@dataclass(frozen=True)
class VertebraGeometry:
    corners: tuple[Point, Point, Point, Point]  # (row, col): [ant-sup, post-sup, ant-inf, post-inf]
    height_px: float
    height_mm: float
    tilt_deg: float  # superior endplate angle to the column axis, positive = anterior corner lower


@dataclass(frozen=True)
class DiscAxis:
    anterior_mid: Point
    posterior_mid: Point
    wd_small_px: float
    wd_small_mm: float
    tilt_deg: float


@dataclass(frozen=True)
class DiscHeight:
    dh_px: float
    dh_mm: float


@dataclass(frozen=True)
class DiscWidth:
    wd_big_px: float
    wd_big_mm: float


class DiscGeometryMethod(Protocol):
    """What ``quantify`` needs from a geometry module (``geometry_default`` / ``geometry_bianque2022``)."""

    def disc_axis(self, upper: VertebraGeometry, lower: VertebraGeometry, spacing: tuple[float, float]) -> DiscAxis: ...

    def disc_height(self, disc: NDArray[np.bool_], axis: DiscAxis, spacing: tuple[float, float]) -> DiscHeight: ...

    def wd_big(self, disc: NDArray[np.bool_], axis: DiscAxis, spacing: tuple[float, float]) -> DiscWidth: ...
