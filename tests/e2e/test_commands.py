"""`bianque analyze` and `bianque demo` as an admin runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydicom

from inference.synthetic.study import write_study

BIANQUE = str(Path(sys.executable).with_name("bianque"))


def test_analyze_two_studies_writes_outputs_per_study(plumbing_weights_file, tmp_path):
    a = write_study(tmp_path / "in" / "a", seed=51, rows=256, cols=256, n_sagittal_slices=3, n_t1_slices=1, n_axial_slices=1)
    b = write_study(tmp_path / "in" / "b", seed=52, rows=256, cols=256, n_sagittal_slices=3, n_t1_slices=1, n_axial_slices=1)
    out = tmp_path / "out"
    result = subprocess.run([BIANQUE, "analyze", str(tmp_path / "in"), "--out", str(out), "--weights",
                             str(plumbing_weights_file), "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for manifest in (a, b):
        folder = out / manifest.study_uid
        assert {p.name for p in folder.iterdir()} == {"seg.dcm", "sr.dcm", "report.dcm", "results.json"}
        assert pydicom.dcmread(folder / "sr.dcm").StudyInstanceUID == manifest.study_uid
        data = json.loads((folder / "results.json").read_text())
        assert data["study_instance_uid"] == manifest.study_uid
        assert len(data["discs"]) == 5 and all("status" in d and "reasons" in d for d in data["discs"])
    assert "L4/L5" in result.stdout and "results" in result.stdout


def test_analyze_reports_missing_sagittal_t2(plumbing_weights_file, tmp_path):
    m = write_study(tmp_path / "in", seed=53, rows=128, cols=128, n_sagittal_slices=1, n_t1_slices=3, n_axial_slices=1)
    folders = [m.series_by_kind("sag_t1").files[0].parent]
    result = subprocess.run([BIANQUE, "analyze", *map(str, folders), "--out", str(tmp_path / "out"), "--weights",
                             str(plumbing_weights_file)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 3
    assert "no lumbar sagittal T2" in result.stdout
    assert not (tmp_path / "out" / m.study_uid / "sr.dcm").exists()


def test_demo_round_trip(plumbing_weights_file, tmp_path):
    result = subprocess.run([BIANQUE, "demo", "--weights", str(plumbing_weights_file), "--workdir", str(tmp_path)],
                            capture_output=True, text=True, timeout=170, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Round trip done" in result.stdout
    received = list((tmp_path / "received").glob("*.dcm"))
    classes = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPClassUID) for p in received}
    assert "1.2.840.10008.5.1.4.1.1.66.4" in classes  # SEG
    assert "1.2.840.10008.5.1.4.1.1.7" in classes  # report image (Secondary Capture)
    assert classes & {"1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.34"}


def test_analyze_prints_how_the_slice_was_read(plumbing_weights_file, tmp_path):
    """A replaced file window (here: full-range, as converted data often carry) is printed, not only logged."""
    study = write_study(tmp_path / "in", seed=53, rows=256, cols=256, n_sagittal_slices=3, n_t1_slices=1,
                        n_axial_slices=1)
    for path in study.series_by_kind("sag_t2").files:
        ds = pydicom.dcmread(path)
        ds.WindowCenter, ds.WindowWidth = "32768", "65536"
        ds.save_as(path)
    result = subprocess.run([BIANQUE, "analyze", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--weights",
                             str(plumbing_weights_file), "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "note:" in result.stdout and "percentile window was used instead" in " ".join(result.stdout.split())
