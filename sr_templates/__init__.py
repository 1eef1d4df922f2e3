"""sr_templates: the DICOM objects the node sends back (SEG, TID 1500 SR, report image)."""

from sr_templates.identity import AlgorithmInfo, derive_uid, device_uid
from sr_templates.segmentation import build_segmentation
from sr_templates.source_slice import OutputEncodingError

__all__ = ["AlgorithmInfo", "OutputEncodingError", "build_segmentation", "derive_uid", "device_uid"]
