"""``bianque analyze PATH... --out DIR``: the node's pipeline offline on DICOM files or folders.

Per study, under ``DIR/<StudyInstanceUID>/``: ``seg.dcm``, ``sr.dcm``, ``report.dcm`` and
``results.json`` (per disc: level, every measurement with its unit, grade group, status, reasons).
Prints a per-disc table per study, and a progress bar when there are several studies.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from dicom_node.pipeline_results import disc_table
from dicom_node.commands._common import studies_from_paths


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="DICOM files or folders (any number of studies)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (one sub-folder per study)")
    parser.add_argument("--weights", default="default", help="weights file (default: the shipped light model)")
    parser.add_argument("--method", choices=("default", "bianque2022"), default=None, help="quantitation method")
    parser.add_argument("--decoding", choices=("argmax", "threshold"), default=None, help="mask decoding rule")
    parser.add_argument("--levels", choices=("sacrum", "off"), default=None,
                        help="vertebra/disc levels: counted from the sacrum (default) or the network's own")
    parser.add_argument("--mid-slice", choices=("centre", "best"), default=None, help="mid-sagittal slice choice")
    parser.add_argument("--config", type=Path, default=None, help="node configuration to take the settings from")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the model")
    parser.add_argument("--no-report-image", action="store_true", help="skip the report image")


def _settings(args: argparse.Namespace):  # -> PipelineSettings
    from dataclasses import replace

    from dicom_node.pipeline import PipelineSettings

    if args.config is not None:
        from dicom_node.config import load_config

        settings = PipelineSettings.from_config(load_config(args.config))
    else:
        settings = PipelineSettings()
    changes: dict[str, object] = {}
    if args.weights != "default" or args.config is None:
        changes["weights"] = str(args.weights)
    if args.method:
        changes["method"] = args.method
    if args.decoding:
        changes["decoding"] = args.decoding
    if args.levels:
        changes["level_assignment"] = args.levels
    if args.device:
        changes["device"] = args.device
    if args.threads:
        changes["cpu_threads"] = args.threads
    if args.no_report_image:
        changes["report_image"] = False
    if args.mid_slice:
        changes["selection"] = settings.selection.model_copy(update={"mid_slice": args.mid_slice})
    return replace(settings, **changes)


def safe_folder_name(uid: str) -> str:
    return re.sub(r"[^0-9.]", "_", uid) or "unknown-study"


def run(args: argparse.Namespace) -> int:
    from dicom_node.pipeline import StageError, StudyPipeline, study_version_from_instances

    console = Console()
    studies = studies_from_paths(args.paths, console)
    if studies is None:
        return 1
    pipeline = StudyPipeline(_settings(args))
    failures = 0
    no_series = 0
    with Progress(console=console, transient=True, disable=len(studies) < 2) as progress:
        task = progress.add_task("analysing studies", total=len(studies))
        for study_uid, study_headers in studies.items():
            out_dir = args.out / safe_folder_name(study_uid)
            version = study_version_from_instances([h.sop_instance_uid for h in study_headers])
            try:
                outcome = pipeline.process(study_headers, out_dir, version=version)
            except StageError as exc:
                failures += 1
                progress.console.print(f"[red]study {study_uid} failed at stage {exc.stage}:[/] {exc.detail}")
                progress.advance(task)
                continue
            if outcome.quantitation is None:
                no_series += 1
                progress.console.print(f"[yellow]study {study_uid}: no SEG/SR:[/] {outcome.reason}")
            else:
                ref = outcome.slice
                where = f"SOP {ref.sop_instance_uid}" + ("" if ref.frame_index is None else f" frame {ref.frame_index + 1}")
                progress.console.print(disc_table(outcome.quantitation, title=f"Study {study_uid} ({where})"))
                for warning in outcome.warnings:
                    progress.console.print(f"  [yellow]note:[/] {escape(warning)}")
            for output in outcome.outputs:
                progress.console.print(f"  {output.kind:7s} {output.path}")
            if outcome.results_json:
                progress.console.print(f"  results {outcome.results_json}")
            progress.advance(task)
    if failures:
        return 1
    return 3 if no_series == len(studies) else 0
