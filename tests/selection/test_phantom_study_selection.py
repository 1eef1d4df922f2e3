"""Selection on the phantom study of inference.synthetic.study: the sagittal T2 middle slice is the phantom."""

from __future__ import annotations

from dicom_node.selection import center_index, read_headers, select_series, series_slices
from inference.synthetic.study import write_study


def test_phantom_study_selects_t2_and_its_middle_slice(tmp_path):
    manifest = write_study(tmp_path, seed=3, rows=128, cols=128, n_sagittal_slices=7, n_t1_slices=3, n_axial_slices=2)
    headers, unreadable = read_headers([tmp_path])
    assert not unreadable
    selection = select_series(headers)
    assert selection.chosen is not None
    assert selection.chosen.series_uid == manifest.mid_sagittal_series_uid
    refused = {d.description: d for d in selection.decisions if not d.accepted}
    assert refused["T1 TSE SAG"].weighting == "T1"
    assert refused["T2 TSE TRA"].plane == "axial"
    slices = series_slices([h for h in headers if h.series_uid == selection.chosen.series_uid])
    assert slices[center_index(slices)].sop_instance_uid == manifest.mid_sagittal_sop_uid
