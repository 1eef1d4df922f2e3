"""All result objects of one analysed slice in one call."""

from __future__ import annotations

from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom import Dataset

from quantitation.results import SliceQuantitation
from sr_templates.identity import AlgorithmInfo
from sr_templates.measurement_report import SR_SERIES_NUMBER, SrKind, build_measurement_report
from sr_templates.report_image import REPORT_SERIES_NUMBER, build_report_image
from sr_templates.segmentation import SEG_SERIES_NUMBER, build_segmentation


@dataclass(frozen=True)
class DicomOutputs:
    """The objects to send, in sending order (SEG before the SR that references it)."""

    segmentation: hd.seg.Segmentation
    measurement_report: Dataset
    report_image: Dataset | None

    def datasets(self) -> list[Dataset]:
        out: list[Dataset] = [self.segmentation, self.measurement_report]
        if self.report_image is not None:
            out.append(self.report_image)
        return out


def build_outputs(
    source: Dataset,
    label_map: np.ndarray,
    quantitation: SliceQuantitation,
    algorithm: AlgorithmInfo,
    *,
    frame_index: int | None = None,
    sr_kind: SrKind = "enhanced",
    report_image: bool = True,
    seg_series_number: int = SEG_SERIES_NUMBER,
    sr_series_number: int = SR_SERIES_NUMBER,
    report_series_number: int = REPORT_SERIES_NUMBER,
    uid_seed: str,
) -> DicomOutputs:
    """SEG + TID 1500 SR (+ Secondary Capture report image unless ``report_image=False``).

    ``source`` needs its pixel data only when the report image is built. ``label_map`` and all
    points in ``quantitation`` are on the source pixel grid (see the builders' docstrings).
    """
    seg = build_segmentation(source, label_map, algorithm, frame_index=frame_index,
                             series_number=seg_series_number, uid_seed=uid_seed)
    sr = build_measurement_report(source, seg, quantitation, algorithm, frame_index=frame_index, sr_kind=sr_kind,
                                  series_number=sr_series_number, uid_seed=uid_seed)
    image = None
    if report_image:
        image = build_report_image(source, label_map, quantitation, algorithm, frame_index=frame_index,
                                   series_number=report_series_number, uid_seed=uid_seed)
    return DicomOutputs(segmentation=seg, measurement_report=sr, report_image=image)
