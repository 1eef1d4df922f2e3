"""dicom_node package."""
