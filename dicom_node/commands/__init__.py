"""One module per ``bianque`` sub-command (see dicom_node.cli)."""
