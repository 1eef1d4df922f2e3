"""Series selection on generated studies (headers only), including the tricky cases."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pydicom
import pytest

from dicom_node.selection import (
    InstanceHeader,
    SelectionRules,
    center_index,
    central_indices,
    read_headers,
    select_series,
    series_slices,
)

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
FLIPPED_SAGITTAL = (0.0, -1.0, 0.0, 0.0, 0.0, 1.0)  # rows posterior->anterior, columns feet->head
TRANSPOSED_SAGITTAL = (0.0, 0.0, -1.0, 0.0, 1.0, 0.0)  # rows head->feet, columns anterior->posterior
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _select(root: Path, rules: SelectionRules | None = None):
    headers, unreadable = read_headers([root])
    assert not unreadable
    return select_series(headers, rules)


def _decision(selection, number):
    return next(d for d in selection.decisions if d.series_number == number)


def test_typical_lumbar_study_picks_sagittal_t2(study_writer):
    w = study_writer()
    w.series("3-plane loc", te=2.0, tr=8.0, n_slices=3, ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    w.series("t1_tse_sag", te=10.0, tr=600.0)
    w.series("t2_tse_sag", te=100.0, tr=3500.0)
    w.series("t2_tse_tra", te=100.0, tr=4000.0, orientation=AXIAL)
    w.series("t2_tirm_sag", te=60.0, tr=4000.0, ScanningSequence="IR", InversionTime=160.0)
    selection = _select(w.root)
    assert selection.chosen is not None and selection.chosen.description == "t2_tse_sag"
    assert [d.chosen for d in selection.decisions] == [False, False, True, False, False]
    loc, t1, _t2, axial, stir = (_decision(selection, n) for n in (1, 2, 3, 4, 5))
    assert any("LOCALIZER" in r for r in loc.reasons)
    assert t1.weighting == "T1" and any("T1 weighted" in r for r in t1.reasons)
    assert axial.plane == "axial" and any("not sagittal" in r for r in axial.reasons)
    assert any("STIR" in r for r in stir.reasons)
    assert "t2_tse_sag" in selection.reason


def test_sagittal_t1_only_gives_no_series_with_reasons(study_writer):
    w = study_writer()
    w.series("t1_tse_sag", te=12.0, tr=550.0)
    w.series("t2_tse_tra", te=100.0, tr=4000.0, orientation=AXIAL)
    w.series("t2 cor", te=100.0, tr=4000.0, orientation=CORONAL)
    selection = _select(w.root)
    assert selection.chosen is None
    assert selection.reason.startswith("no lumbar sagittal T2 series")
    assert "T1 weighted" in selection.reason and "not sagittal" in selection.reason
    assert _decision(selection, 3).plane == "coronal"


@pytest.mark.parametrize("orientation", [FLIPPED_SAGITTAL, TRANSPOSED_SAGITTAL])
def test_flipped_and_transposed_sagittal_are_sagittal(study_writer, orientation):
    w = study_writer()
    w.series("T2 SAG", orientation=orientation)
    selection = _select(w.root)
    assert selection.chosen is not None and selection.chosen.plane == "sagittal"


def test_oblique_sagittal_within_and_beyond_tolerance(study_writer):
    import math

    def tilted(deg: float):
        a = math.radians(deg)
        # row turned by deg in the axial plane: the normal is deg away from left-right
        return (-math.sin(a), math.cos(a), 0.0, 0.0, 0.0, -1.0)

    w = study_writer()
    w.series("sag t2 oblique 15", orientation=tilted(15))
    w.series("sag t2 oblique 40", orientation=tilted(40))
    selection = _select(w.root)
    assert _decision(selection, 1).accepted
    refused = _decision(selection, 2)
    assert not refused.accepted and any("40°" in r for r in refused.reasons)
    narrow = _select(w.root, SelectionRules(max_obliquity_deg=10))
    assert narrow.chosen is None


def test_fat_suppression_variants_refused(study_writer):
    w = study_writer()
    w.series("T2 SAG", ScanOptions=["FS"])  # 1
    w.series("t2_tse_sag_fs")  # 2
    w.series("T2 SAG DIXON W", ImageType=["DERIVED", "PRIMARY", "DIXON", "WATER"])  # 3
    w.series("sag spair t2")  # 4
    w.series("T2 SAG", enhanced=True, AcquisitionContrast="T2", SpectrallySelectedSuppression="FAT")  # 5
    w.series("T2 SAG", SequenceName="*tir2d1rr15")  # 6
    w.series("T2 FSE SAG")  # 7: FSE is not FS
    selection = _select(w.root)
    for number in range(1, 7):
        decision = _decision(selection, number)
        assert not decision.accepted, decision
        assert any(("fat" in r.lower() or "dixon" in r.lower() or "stir" in r.lower()) for r in decision.reasons)
    assert selection.chosen is not None and selection.chosen.series_number == 7


def test_flair_refused_because_csf_is_dark(study_writer):
    w = study_writer()
    w.series("T2 FLAIR SAG", te=120.0, tr=9000.0, ScanningSequence="IR", InversionTime=2500.0)
    selection = _select(w.root)
    assert selection.chosen is None
    assert "FLAIR" in _decision(selection, 1).reasons[0]


def test_localiser_by_name_and_by_slice_count(study_writer):
    w = study_writer()
    w.series("Scout T2", n_slices=5)
    w.series("t2 sag", n_slices=2)
    w.series("t2_block_sag")  # 'block' must not read as 'loc'
    selection = _select(w.root)
    assert any("localiser by name" in r for r in _decision(selection, 1).reasons)
    assert any("only 2 slice" in r for r in _decision(selection, 2).reasons)
    assert selection.chosen is not None and selection.chosen.series_number == 3


def test_multiple_sagittal_t2_tie_broken_by_description_then_series_number(study_writer):
    w = study_writer()
    w.series("SPINE 2", series_number=2)
    w.series("T2 SAG", series_number=3)
    w.series("T2 SAG", series_number=4)  # repeat: higher number wins
    w.series("Sag T2 LSPINE", series_number=5)
    selection = _select(w.root)
    assert selection.chosen is not None and selection.chosen.series_number == 5
    assert "chosen over 3 other" in selection.reason
    rules = SelectionRules(preferred_description_patterns=(r"^T2 SAG$",))
    again = _select(w.root, rules)
    assert again.chosen is not None and again.chosen.series_number == 4
    # no pattern at all: highest series number
    plain = _select(w.root, SelectionRules(preferred_description_patterns=()))
    assert plain.chosen is not None and plain.chosen.series_number == 5


def test_small_field_of_view_ranks_after_a_full_lumbar_one(study_writer):
    """A high-resolution series of the lumbosacral junction only (96 mm head-feet) must not win over the
    full lumbar series (320 mm) by having the higher series number; among full fields the number decides."""
    w = study_writer()
    w.series("T2 SAG", series_number=3, rows=16, pixel_spacing_mm=20.0)  # 320 mm
    w.series("T2 SAG HR L4-S1", series_number=4, rows=16, pixel_spacing_mm=6.0)  # 96 mm
    selection = _select(w.root)
    assert selection.chosen is not None and selection.chosen.series_number == 3, selection.reason
    assert selection.chosen.head_feet_mm == pytest.approx(320.0)
    assert "head-feet coverage" in selection.reason
    small = _decision(selection, 4)
    assert small.accepted and any("ranked after full fields" in r for r in small.reasons)
    # transposed images (rows anterior-posterior): the extent follows the orientation, not the row count
    w2 = study_writer()
    w2.series("T2 SAG", series_number=3, rows=16, columns=40, pixel_spacing_mm=8.0,
              orientation=(0.0, 0.0, -1.0, 0.0, 1.0, 0.0))  # 40 columns x 8 mm head-feet
    assert _select(w2.root).chosen.head_feet_mm == pytest.approx(320.0)


def test_enhanced_mr_t2_and_t1_by_acquisition_contrast(study_writer):
    w = study_writer()
    w.series("sag A", enhanced=True, te=None, tr=None, AcquisitionContrast="T1")
    w.series("sag B", enhanced=True, te=110.0, tr=3000.0, AcquisitionContrast="T2", n_slices=9)
    selection = _select(w.root)
    assert selection.chosen is not None and selection.chosen.series_number == 2
    assert selection.chosen.n_slices == 9 and selection.chosen.n_instances == 1
    assert "AcquisitionContrast T2" in selection.chosen.reasons[1]
    assert "AcquisitionContrast T1" in _decision(selection, 1).reasons[0]


def test_enhanced_mr_timing_from_functional_groups(study_writer):
    w = study_writer()
    w.series("sag", enhanced=True, te=95.0, tr=2800.0)  # AcquisitionContrast UNKNOWN -> TE/TR from groups
    selection = _select(w.root)
    assert selection.chosen is not None
    assert "TE 95 ms, TR 2800 ms" in selection.chosen.reasons[1]


def test_not_mr_and_other_body_parts_refused(study_writer, tmp_path):
    w = study_writer()
    w.series("T2 SAG C-spine", BodyPartExamined="CSPINE")
    paths = w.series("BianqueNet report", SOPClassUID="1.2.840.10008.5.1.4.1.1.7")
    selection = _select(w.root)
    assert any("CSPINE" in r for r in _decision(selection, 1).reasons)
    assert any("not an MR image" in r and "Secondary Capture" in r for r in _decision(selection, 2).reasons)
    assert selection.chosen is None
    assert paths


def test_weighting_from_description_when_timing_missing(study_writer):
    w = study_writer()
    w.series("sag t2 frfse", te=None, tr=None)
    w.series("sag t1", te=None, tr=None)
    selection = _select(w.root)
    assert selection.chosen is not None and selection.chosen.series_number == 1
    assert "unknown" in _decision(selection, 2).reasons[0]


def test_real_philips_enhanced_mr_header_refused_as_t1():
    path = SHARED / "dicom_mr_samples" / "nibabel" / "philips_mprage.dcm.gz"
    assert path.exists(), f"shared data missing: {path}"
    ds = pydicom.dcmread(io.BytesIO(gzip.open(path).read()), stop_before_pixels=True)
    selection = select_series([InstanceHeader(path=path, dataset=ds)])
    decision = selection.decisions[0]
    assert decision.plane == "sagittal"  # the MPRAGE is acquired sagittally
    assert decision.n_slices == 176
    assert decision.weighting == "T1"
    assert any("WATER" in r for r in decision.reasons)  # water excitation = fat suppressed
    assert any("ORBIT" in r for r in decision.reasons)
    assert selection.chosen is None


def test_centre_slice_classic_and_enhanced(study_writer):
    w = study_writer()
    w.series("t2 sag", n_slices=7, first_position=-12.0)
    w.series("t2 sag enh", n_slices=8, first_position=-14.0, enhanced=True, AcquisitionContrast="T2")
    headers, _ = read_headers([w.root])
    by_series: dict[str, list] = {}
    for h in headers:
        by_series.setdefault(int(h.dataset.SeriesNumber), []).append(h)
    classic = series_slices(by_series[1])
    assert len(classic) == 7
    assert [s.position_mm for s in classic] == sorted(s.position_mm for s in classic)
    mid = classic[center_index(classic)]
    assert mid.frame_index is None and abs(mid.position_mm - 0.0) < 1e-6
    assert int(pydicom.dcmread(mid.path, stop_before_pixels=True).InstanceNumber) == 4
    enhanced = series_slices(by_series[2])
    assert len(enhanced) == 8 and {s.frame_index for s in enhanced} == set(range(8))
    centre = center_index(enhanced)
    assert abs(enhanced[centre].position_mm - (-2.0)) < 1e-6  # positions -14..14: -2 and 2 tie, lower wins
    assert central_indices(enhanced, 3) == [centre - 1, centre, centre + 1]


def test_centre_slice_independent_of_file_order_and_flipped_normal(study_writer):
    w = study_writer()
    w.series("t2 sag", n_slices=9, orientation=FLIPPED_SAGITTAL, first_position=-20.0, spacing_mm=5.0)
    headers, _ = read_headers([w.root])
    forward = series_slices(headers)
    backward = series_slices(list(reversed(headers)))
    assert forward == backward
    assert int(pydicom.dcmread(forward[center_index(forward)].path).InstanceNumber) == 5


def test_rules_reject_bad_regex():
    with pytest.raises(ValueError, match="invalid regular expression"):
        SelectionRules(preferred_description_patterns=("t2(",))


def test_non_dicom_files_reported(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    headers, unreadable = read_headers([tmp_path])
    assert headers == [] and len(unreadable) == 1 and "notes.txt" in unreadable[0]


def test_rules_from_node_config_section(study_writer):
    from dicom_node.config import SelectionConfig

    from dicom_node.selection import rules_from_config

    rules = rules_from_config(
        SelectionConfig(include_series_regex=[r"^SPINE"], exclude_series_regex=[r"research"], mid_slice="best")
    )
    assert rules.preferred_description_patterns == (r"^SPINE",)
    assert rules.excluded_description_patterns == (r"research",)
    assert rules.mid_slice == "best"
    w = study_writer()
    w.series("T2 SAG research")
    w.series("SPINE t2", series_number=1)
    w.series("T2 SAG", series_number=9)
    selection = _select(w.root, rules)
    refused = next(d for d in selection.decisions if d.description == "T2 SAG research")
    assert not refused.accepted and any("exclude_series_regex" in r for r in refused.reasons)
    assert selection.chosen is not None and selection.chosen.description == "SPINE t2"
