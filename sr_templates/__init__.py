"""sr_templates: the DICOM objects the node sends back (SEG, TID 1500 SR, report image).

All builders take the analysed source slice (pydicom Dataset; Enhanced MR plus a 0-based
``frame_index``), data on the SOURCE pixel grid, an :class:`AlgorithmInfo` and a ``uid_seed`` from
which every UID is derived deterministically.
"""

from sr_templates.identity import AlgorithmInfo, derive_uid, device_uid
from sr_templates.measurement_report import build_measurement_report
from sr_templates.no_series_report import build_no_series_report
from sr_templates.outputs import DicomOutputs, build_outputs
from sr_templates.report_image import build_report_image
from sr_templates.segmentation import build_segmentation
from sr_templates.source_slice import OutputEncodingError

__all__ = [
    "AlgorithmInfo",
    "DicomOutputs",
    "OutputEncodingError",
    "build_measurement_report",
    "build_no_series_report",
    "build_outputs",
    "build_report_image",
    "build_segmentation",
    "derive_uid",
    "device_uid",
]
