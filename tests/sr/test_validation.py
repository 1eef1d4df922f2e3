"""Independent validators: dciodvfy (no Error lines, reviewed warnings), DCMTK dsrdump, dcmqi readers."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from peers import require_tool
from sr_checks import dciodvfy
from sr_inputs import draw_label_map, make_enhanced_mr, make_mr_slice, make_quantitation

from sr_templates import AlgorithmInfo, build_no_series_report, build_outputs, codes

ALGORITHM = AlgorithmInfo(name="BianqueNet", version="1.2.0", variant="big_apex", weights_sha256="ab" * 32)
VENV_BIN = Path(sys.executable).parent
DSRDUMP_ALLOWED = {
    # DCMTK 3.6.7's optional VR string checker cannot check UTF-8 text; parsing itself is strict
    "W: The VR checker does not support this Specific Character Set: ISO_IR 192",
}


@dataclass(frozen=True)
class Written:
    source: object
    label_map: np.ndarray
    seg: Path
    srs: dict[str, Path]
    image: Path
    seg_ds: object
    no_series: Path


def _write(tmp: Path, source, label_map: np.ndarray, frame_index: int | None) -> Written:
    q = make_quantitation()
    srs = {}
    out = None
    for kind in ("enhanced", "comprehensive", "comprehensive3d"):
        out = build_outputs(source, label_map, q, ALGORITHM, frame_index=frame_index, sr_kind=kind,
                            report_image=kind == "enhanced", uid_seed="validation")
        srs[kind] = tmp / f"sr_{kind}.dcm"
        out.measurement_report.save_as(srs[kind], enforce_file_format=True)
        if kind == "enhanced":
            out.segmentation.save_as(tmp / "seg.dcm", enforce_file_format=True)
            out.report_image.save_as(tmp / "image.dcm", enforce_file_format=True)
            seg_ds = out.segmentation
    no_series = tmp / "no_series.dcm"
    build_no_series_report(source, ALGORITHM, uid_seed="validation").save_as(no_series, enforce_file_format=True)
    return Written(source, label_map, tmp / "seg.dcm", srs, tmp / "image.dcm", seg_ds, no_series)


@pytest.fixture(scope="module", params=["single_frame_sagittal", "enhanced_oblique"])
def written(request, tmp_path_factory) -> Written:
    tmp = tmp_path_factory.mktemp(request.param)
    label_map = draw_label_map(omit=(11,))
    if request.param == "single_frame_sagittal":
        return _write(tmp, make_mr_slice("sagittal", label_map=label_map), label_map, None)
    return _write(tmp, make_enhanced_mr("oblique", n_frames=3, analysed_frame=1, label_map=label_map), label_map, 1)


def _assert_clean(path: Path, iod: str) -> None:
    report = dciodvfy(path)
    assert report.iod == iod, report.text
    assert report.errors == (), f"dciodvfy errors for {path.name}:\n{report.text}"
    assert report.unexpected_warnings == (), f"unreviewed dciodvfy warnings for {path.name}:\n{report.text}"


def test_dciodvfy_seg(written):
    _assert_clean(written.seg, "Segmentation")


@pytest.mark.parametrize("kind,iod", [("enhanced", "EnhancedSR"), ("comprehensive", "ComprehensiveSR"),
                                      ("comprehensive3d", "Comprehensive3DSR")])
def test_dciodvfy_sr(written, kind, iod):
    _assert_clean(written.srs[kind], iod)


def test_dciodvfy_report_image_and_no_series_report(written):
    _assert_clean(written.image, "SCImage")
    _assert_clean(written.no_series, "EnhancedSR")


def test_dciodvfy_check_can_fail(tmp_path, written):
    """The parser must see a real error: drop a Type 1 attribute and expect an Error line."""
    import pydicom

    ds = pydicom.dcmread(written.seg)
    del ds.SegmentSequence[0].SegmentLabel
    broken = tmp_path / "broken.dcm"
    ds.save_as(broken)
    assert dciodvfy(broken).errors


def test_dcmtk_dsrdump_parses_every_sr(written):
    dsrdump = require_tool("dsrdump")
    for path in [*written.srs.values(), written.no_series]:
        proc = subprocess.run([dsrdump, str(path)], capture_output=True, text=True, timeout=60)
        problems = [line for line in (proc.stdout + proc.stderr).splitlines() if re.match(r"^(W|E|F):", line)
                    and line not in DSRDUMP_ALLOWED]
        assert proc.returncode == 0 and not problems, f"{path.name}: {problems or proc.stderr}"


def _read_nrrd(path: Path) -> tuple[dict[str, str], np.ndarray]:
    raw = path.read_bytes()
    head, _, body = raw.partition(b"\n\n")
    fields = {}
    for line in head.decode("ascii").splitlines()[1:]:
        if ":" in line and not line.startswith("#"):
            key, value = line.split(":", 1)
            fields[key.strip()] = value.strip()
    assert fields["encoding"] in ("gzip", "raw"), fields["encoding"]
    data = gzip.decompress(body) if fields["encoding"] == "gzip" else body
    dtype = {"short": "<i2", "unsigned short": "<u2", "unsigned char": "u1", "uchar": "u1"}[fields["type"]]
    sizes = [int(s) for s in fields["sizes"].split()]
    return fields, np.frombuffer(data, dtype=dtype).reshape(sizes[::-1])


def test_dcmqi_reads_seg_back(written, tmp_path):
    exe = require_tool(str(VENV_BIN / "segimage2itkimage"))
    proc = subprocess.run([exe, "--inputDICOM", str(written.seg), "--outputDirectory", str(tmp_path), "-t", "nrrd",
                           "--mergeSegments", "-p", "merged"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fields, merged = _read_nrrd(tmp_path / "merged-1.nrrd")
    meta = json.loads((tmp_path / "merged-meta.json").read_text())
    by_type = {s.property_type.value: s.label_value for s in codes.STRUCTURES.values()}
    labels = np.zeros(merged.shape[-2:], dtype=np.uint8)
    for attrs in meta["segmentAttributes"][0]:
        labels[merged[0] == attrs["labelID"]] = by_type[attrs["SegmentedPropertyTypeCodeSequence"]["CodeValue"]]
        seg_item = written.seg_ds.SegmentSequence[attrs["labelID"] - 1]
        assert attrs["TrackingUniqueIdentifier"] == seg_item.TrackingUID
        structure = codes.STRUCTURES[by_type[attrs["SegmentedPropertyTypeCodeSequence"]["CodeValue"]]]
        # CIELab written by us, converted back to RGB by dcmqi: within rounding of our colour
        assert np.abs(np.array(attrs["recommendedDisplayRGBValue"]) - structure.display_rgb).max() <= 2
    np.testing.assert_array_equal(labels, written.label_map)
    # geometry as dcmqi sees it: origin = the analysed frame's position
    origin = [float(v) for v in fields["space origin"].strip("()").split(",")]
    ipp = written.seg_ds.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0].ImagePositionPatient
    np.testing.assert_allclose(origin, [float(v) for v in ipp], atol=1e-4)


def test_dcmqi_reads_sr_back_with_segment_links(written, tmp_path):
    exe = require_tool(str(VENV_BIN / "tid1500reader"))
    out = tmp_path / "sr.json"
    proc = subprocess.run([exe, "--inputDICOM", str(written.srs["enhanced"]), "--outputMetadata", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    meta = json.loads(out.read_text())
    assert meta["compositeContext"] == [written.seg_ds.SOPInstanceUID]
    segments = {str(s.TrackingUID): int(s.SegmentNumber) for s in written.seg_ds.SegmentSequence}
    q = make_quantitation()
    linked = {m["TrackingIdentifier"]: m for m in meta["Measurements"] if "ReferencedSegment" in m}
    assert len(linked) == 10  # 4 segmented discs + 5 vertebrae + sacrum
    for group in linked.values():
        assert group["ReferencedSegment"] == segments[group["TrackingUniqueIdentifier"]]
    for disc in q.discs:
        if disc.level == "L5/S1":
            assert f"{disc.level} disc" not in linked
            continue
        items = {(i["quantity"]["CodeValue"], i["quantity"]["CodingSchemeDesignator"]): i
                 for i in linked[f"{disc.level} disc"]["measurementItems"]}
        assert float(items[("121207", "DCM")]["value"]) == pytest.approx(disc.dh_mm)
        assert items[("121207", "DCM")]["units"]["CodeValue"] == "mm"
        assert float(items[("DHI", "99BIANQUE")]["value"]) == pytest.approx(disc.dhi)
        assert float(items[("HDR", "99BIANQUE")]["value"]) == pytest.approx(disc.hdr)
        if disc.delta_si is not None:
            assert float(items[("DSI", "99BIANQUE")]["value"]) == pytest.approx(disc.delta_si)
    device = meta["observerContext"]
    assert "BianqueNet" in json.dumps(device)


DCENTVFY_ALLOWED = (
    # dicom3tools files Accession Number under a different information entity for SR documents than
    # for images; the value itself is the source's in every file (asserted below)
    r"^Warning - Different information entities for attribute - Element=<AccessionNumber> IE <\w+> versus <\w+>",
)


def test_dcentvfy_patient_study_consistent_across_source_and_outputs(written, tmp_path):
    """dcentvfy: the source and all outputs agree on patient and study attributes."""
    import pydicom

    dcentvfy = require_tool("dcentvfy")
    source = tmp_path / "source.dcm"
    written.source.save_as(source, enforce_file_format=True)
    files = [source, written.seg, written.srs["enhanced"], written.image]
    proc = subprocess.run([dcentvfy, *map(str, files)], capture_output=True, text=True, timeout=60)
    lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert not [line for line in lines if line.startswith("Error")], "\n".join(lines)
    unexpected = [line for line in lines if not any(re.match(p, line) for p in DCENTVFY_ALLOWED)]
    assert unexpected == [], "\n".join(lines)
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "AccessionNumber", "StudyDate"):
        assert len({str(h.get(keyword)) for h in headers}) == 1, keyword


def test_source_without_type2_patient_and_study_attributes_gives_valid_objects(tmp_path):
    """De-identified files often drop Type 2 attributes (birth date, accession number, ...) entirely; the
    results must still be built, carry them empty, and validate."""
    from sr_templates.source_slice import TYPE2_PATIENT_STUDY

    label_map = draw_label_map()
    source = make_mr_slice("sagittal", label_map=label_map)
    for keyword in TYPE2_PATIENT_STUDY:
        if keyword in source:
            delattr(source, keyword)
    written = _write(tmp_path, source, label_map, None)
    import pydicom

    for path, iod in ((written.seg, "Segmentation"), (written.srs["enhanced"], "EnhancedSR"),
                      (written.image, "SCImage"), (written.no_series, "EnhancedSR")):
        ds = pydicom.dcmread(path)
        assert all(keyword in ds and not ds[keyword].value for keyword in TYPE2_PATIENT_STUDY), path.name
        report = dciodvfy(path)
        assert report.iod == iod and report.errors == (), report.text
        # empty because the source has none: dciodvfy notes only that a DICOMDIR would want them
        dicomdir = re.compile(r"^Warning - Missing attribute or value that would be needed to build DICOMDIR - "
                              r"(Patient ID|Study Date|Study Time|Study ID)$")
        assert [w for w in report.unexpected_warnings if not dicomdir.match(w)] == [], report.text
