"""``bianque select``: the dry-run prints every series with its reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dicom_node.cli import main
from dicom_node.selection import read_headers, select_series

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def test_select_on_node_fixture_study(mr_study):
    headers, _ = read_headers([mr_study.directory])
    selection = select_series(headers)
    assert selection.chosen is not None and selection.chosen.description == "SAG T2 TSE"


def test_select_command_prints_every_series_and_the_choice(study_writer, capsys):
    w = study_writer()
    w.series("t1_tse_sag", te=10.0, tr=600.0)
    w.series("t2_tse_sag", te=100.0, tr=3500.0)
    w.series("t2_tse_tra", te=100.0, tr=4000.0, orientation=AXIAL)
    assert main(["select", str(w.root)]) == 0
    out = capsys.readouterr().out
    assert "t1_tse_sag" in out and "t2_tse_tra" in out
    assert "CHOSEN" in out and "refused" in out and "T1 weighted" in out
    assert "Mid-sagittal slice" in out and "4 of 7" in out


def test_select_command_without_candidate_exits_3(study_writer, capsys):
    w = study_writer()
    w.series("t2_tse_tra", orientation=AXIAL)
    assert main(["select", str(w.root)]) == 3
    assert "No series selected" in capsys.readouterr().out


def test_select_console_script_runs(study_writer):
    w = study_writer()
    w.series("t2_tse_sag")
    bianque = Path(sys.executable).with_name("bianque")
    result = subprocess.run([str(bianque), "select", str(w.root)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "CHOSEN" in result.stdout


def test_select_command_reads_selection_rules_from_the_config_file(study_writer, node_config_file, capsys):
    w = study_writer()
    w.series("T2 SAG", series_number=1)
    w.series("T2 SAG research", series_number=2)
    config = node_config_file({"selection": {"include_series_regex": ["research"]}})
    assert main(["select", "--config", str(config), str(w.root)]) == 0
    out = capsys.readouterr().out
    assert "Selected:" in out and "series 2 'T2 SAG research'" in out
