"""The processing job: one completed study in, SEG + SR + report image files out.

select -> load -> segment -> quantify -> encode -> write. The node calls :func:`build_processor` once
per worker process; the returned processor keeps one :class:`StudyPipeline`, whose model is loaded
lazily on the first job and reused for every later one. ``bianque analyze`` runs the same pipeline
offline.

Idempotent: every output UID derives from ``uid_seed`` = study UID + job version + algorithm identity
(+ the settings that change the result), so processing the same study twice gives byte-for-byte the
same objects with the same UIDs, and a new job version (a study re-sent with new instances) gives new
ones. A failure raises :class:`StageError` naming the stage; a study without a lumbar sagittal T2
series is not a failure: it yields no SEG/SR, a logged reason (and, when configured, a short SR
saying so).
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import structlog
from pydicom.dataset import Dataset

from dicom_node.pipeline_results import map_quantitation, results_document, write_json
from dicom_node.scu import SR_CLASS_BY_KIND
from dicom_node.selection import (
    InstanceHeader,
    SelectionRules,
    SliceRef,
    StudySelection,
    center_index,
    central_indices,
    read_headers,
    rules_from_config,
    select_series,
    series_slices,
    stack_spacing_mm,
)
from dicom_node.slice_choice import best_index
from dicom_node.spool import write_durably

PIPELINE_VERSION = "1"
FALLBACK_SLICES = 2  # neighbours tried, nearest first, when the mid-sagittal slice cannot be read
STAGES = ("select", "load", "segment", "quantify", "encode", "write")

log = structlog.get_logger("bianque.pipeline")


class StageError(Exception):
    """A job failed in ``stage`` (one of :data:`STAGES`); the message says what to check."""

    def __init__(self, stage: str, message: str, study_uid: str = "") -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage
        self.study_uid = study_uid
        self.detail = message


def complete_slice_spacing(source: Dataset, slices: Sequence[SliceRef]) -> str | None:
    """A single-frame source with neither Slice Thickness (Type 2: may be empty) nor Spacing Between Slices
    gets the stack's own spacing as Spacing Between Slices, so that the SEG can be placed; returns a
    note for the results, or None when nothing was missing (or nothing could be derived)."""
    if "PerFrameFunctionalGroupsSequence" in source or source.get("SliceThickness") or source.get("SpacingBetweenSlices"):
        return None
    spacing = stack_spacing_mm(slices)
    if spacing is None or spacing <= 0:
        return None
    source.SpacingBetweenSlices = f"{spacing:.4f}".rstrip("0").rstrip(".")
    return (f"slice thickness and spacing missing in the source header; the SEG uses the stack's slice spacing "
            f"{source.SpacingBetweenSlices} mm from ImagePositionPatient")


@dataclass(frozen=True)
class PipelineSettings:
    """Everything the job needs from the configuration (see :meth:`from_config`)."""

    weights: str = "default"
    device: str = "auto"
    cpu_threads: int = 2
    method: str = "default"  # quantitation method: "default" or "bianque2022"
    decoding: str = "argmax"  # mask decoding: "argmax" or "threshold"
    level_assignment: str = "sacrum"  # levels counted from the sacrum ("sacrum") or the network's own ("off")
    selection: SelectionRules = field(default_factory=SelectionRules)
    report_image: bool = True
    no_series_sr: bool = False
    sr_kind: str = "enhanced"  # the SR every study gets
    extra_sr_kinds: tuple[str, ...] = ()  # further SR kinds some destinations ask for (same content)

    @classmethod
    def from_config(cls, config: Any) -> PipelineSettings:
        model = config.model
        outputs = getattr(config, "outputs", None)
        destinations = list(getattr(config, "destinations", []) or [])
        sr_kinds = {getattr(d, "sr_kind", "enhanced") for d in destinations}
        primary = "enhanced" if not sr_kinds or "enhanced" in sr_kinds else sorted(sr_kinds)[0]
        return cls(
            weights=str(model.weights),
            device=str(model.device),
            cpu_threads=int(model.cpu_threads),
            method=str(getattr(model, "quantitation_method", "default")),
            decoding=str(getattr(model, "mask_decoding", "argmax")),
            level_assignment=str(getattr(model, "level_assignment", "sacrum")),
            selection=rules_from_config(getattr(config, "selection", None)),
            report_image=bool(getattr(outputs, "report_image", True)),
            no_series_sr=bool(getattr(outputs, "no_series_sr", False)),
            # one SR per kind the destinations ask for; the sender gives each destination its own kind
            sr_kind=primary,
            extra_sr_kinds=tuple(sorted(sr_kinds - {primary})),
        )

    def fingerprint(self) -> str:
        """The settings that change the outputs (go into the UID seed)."""
        return (
            f"method={self.method};decoding={self.decoding};mid={self.selection.mid_slice};"
            + ("" if self.level_assignment == "sacrum" else f"levels={self.level_assignment};")
            + f"report={self.report_image};sr={self.sr_kind}"
            + (f";extra_sr={','.join(self.extra_sr_kinds)}" if self.extra_sr_kinds else "")
        )


@dataclass(frozen=True)
class OutputFile:
    kind: str  # "seg", "sr", "report", "no_series_sr"
    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str


@dataclass(frozen=True)
class StudyOutcome:
    study_uid: str
    version: str
    selection: StudySelection
    slice: SliceRef | None  # the analysed slice (None: no suitable series)
    quantitation: Any  # quantitation.results.SliceQuantitation (source-grid points) or None
    outputs: tuple[OutputFile, ...]
    results_json: Path | None
    reason: str
    timings_s: tuple[tuple[str, float], ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def paths(self) -> list[Path]:
        return [o.path for o in self.outputs]

    def output(self, kind: str) -> OutputFile | None:
        return next((o for o in self.outputs if o.kind == kind), None)


class _Timer:
    def __init__(self) -> None:
        self.timings: list[tuple[str, float]] = []

    def run(self, stage: str, study_uid: str, func: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return func()
        except StageError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is reported with its stage
            raise StageError(stage, f"{exc.__class__.__name__}: {exc}", study_uid) from exc
        finally:
            self.timings.append((stage, round(time.perf_counter() - start, 4)))


class StudyPipeline:
    """One per worker process: holds the settings and (lazily) the model."""

    def __init__(self, settings: PipelineSettings, segmenter: Any | None = None) -> None:
        self.settings = settings
        self._segmenter = segmenter

    # -- the model ------------------------------------------------------------------------------------
    @property
    def segmenter(self) -> Any:
        """The Segmenter, created on first use and kept (the model stays loaded)."""
        if self._segmenter is None:
            from inference import Segmenter

            started = time.perf_counter()
            segmenter = Segmenter(
                self.settings.weights,
                device=self.settings.device,
                cpu_threads=self.settings.cpu_threads,
                decoding=self.settings.decoding,
                level_assignment=self.settings.level_assignment,
            )
            self._segmenter = segmenter
            log.info(
                "model_loaded",
                variant=segmenter.identity.variant,
                weights_sha256=segmenter.identity.weights_sha256,
                device=str(segmenter.device),
                precision=segmenter.precision,
                precision_agreement={k: round(v, 5) for k, v in segmenter.precision_choice.agreement.items()},
                precision_skipped=segmenter.precision_choice.skipped or None,
                precision_range_scaling=segmenter.range_scaling,
                factored_fusion=segmenter.model.classifier.factored_fusion,
                seconds=round(time.perf_counter() - started, 2),
            )
        return self._segmenter

    def algorithm(self) -> Any:
        from sr_templates.identity import AlgorithmInfo

        identity = self.segmenter.identity
        return AlgorithmInfo(
            name="BianqueNet",
            version=f"{identity.version}+pipeline{PIPELINE_VERSION}",
            variant=str(identity.variant),
            weights_sha256=str(identity.weights_sha256),
        )

    def uid_seed(self, study_uid: str, version: str) -> str:
        algorithm = self.algorithm()
        return "|".join(
            (
                study_uid,
                f"v{version}",
                algorithm.name,
                algorithm.version,
                algorithm.variant,
                algorithm.weights_sha256,
                self.settings.fingerprint(),
            )
        )

    # -- the job --------------------------------------------------------------------------------------
    def process_files(self, paths: Sequence[Path], out_dir: Path, *, version: str | int = "1") -> StudyOutcome:
        """Process one study given as DICOM files/folders (headers are read here)."""
        headers, unreadable = read_headers(paths)
        for line in unreadable:
            log.warning("file_skipped", reason=line)
        return self.process(headers, out_dir, version=version)

    def process(self, headers: Sequence[InstanceHeader], out_dir: Path, *, version: str | int = "1") -> StudyOutcome:
        version = str(version)
        timer = _Timer()
        study_uids = {str(h.dataset.get("StudyInstanceUID", "")) for h in headers}
        study_uid = next(iter(study_uids), "")
        if len(study_uids) != 1:
            raise StageError("select", f"one study per job, got {len(study_uids)} study UIDs", study_uid)
        bound = log.bind(study_uid=study_uid, job_version=version)
        out_dir = Path(out_dir)

        selection: StudySelection = timer.run("select", study_uid, lambda: select_series(headers, self.settings.selection))
        for decision in selection.decisions:
            bound.info(
                "series_decision",
                series_uid=decision.series_uid,
                accepted=decision.accepted,
                chosen=decision.chosen,
                reasons=list(decision.reasons),
            )
        if selection.chosen is None:
            bound.warning("no_suitable_series", reason=selection.reason)
            outputs: list[OutputFile] = []
            if self.settings.no_series_sr:
                outputs = timer.run(
                    "encode", study_uid, lambda: self._no_series_outputs(headers, selection, out_dir, version)
                )
            results_path = timer.run(
                "write", study_uid, lambda: self._write_results(out_dir, selection, None, None, None, outputs, ())
            )
            return StudyOutcome(
                study_uid=study_uid,
                version=version,
                selection=selection,
                slice=None,
                quantitation=None,
                outputs=tuple(outputs),
                results_json=results_path,
                reason=selection.reason,
                timings_s=tuple(timer.timings),
            )

        chosen_uid = selection.chosen.series_uid
        series = [h for h in headers if h.series_uid == chosen_uid]
        slices: list[SliceRef] = timer.run("select", study_uid, lambda: series_slices(series))
        bound = bound.bind(series_uid=chosen_uid)

        best_mode = self.settings.selection.mid_slice == "best" and len(slices) > 1
        if best_mode:
            candidates = central_indices(slices, self.settings.selection.best_candidates)
        else:
            # the centre first, then its nearest neighbours as fall-backs when it cannot be read
            candidates = central_indices(slices, 1 + FALLBACK_SLICES)
            centre = center_index(slices)
            candidates.sort(key=lambda i: (abs(i - centre), i))
        usable, slice_warnings = timer.run(
            "load", study_uid, lambda: self._load_candidates(slices, candidates, stop_at_first=not best_mode)
        )
        for warning in slice_warnings:
            bound.warning("slice_unusable", detail=warning)
        if not usable:
            raise StageError("load", "no usable slice near the middle of the series: " + "; ".join(slice_warnings),
                             study_uid)
        candidates = [i for i, _, _ in usable]
        loaded = [(slices[i], ds) for i, ds, _ in usable]
        prepared = [prep for _, _, prep in usable]
        overflows_before = self.segmenter.fp16_overflows
        results = timer.run("segment", study_uid, lambda: list(self.segmenter.segment(prepared)))
        if self.segmenter.fp16_overflows > overflows_before:
            bound.warning("fp16_overflow_rerun_in_fp32",
                          batches=self.segmenter.fp16_overflows - overflows_before, precision=self.segmenter.precision)
        pick = 0
        if len(results) > 1:
            pick = best_index(
                [np.asarray(r.label_map_model) for r in results], center_index(slices), candidates
            )
        ref, source = loaded[pick]
        prep, result = prepared[pick], results[pick]
        bound = bound.bind(sop_instance_uid=ref.sop_instance_uid, frame_index=ref.frame_index)
        bound.info("slice_chosen", mode=self.settings.selection.mid_slice, candidates=len(candidates))
        geometry_note = complete_slice_spacing(source, slices)
        if geometry_note:
            bound.warning("slice_spacing_derived", detail=geometry_note)
            slice_warnings = [*slice_warnings, geometry_note]
        for note in prep.notes():
            bound.warning("slice_read_with_assumption", detail=note)
            slice_warnings = [*slice_warnings, note]

        quantitation = timer.run("quantify", study_uid, lambda: self._quantify(source, prep, result))
        uid_seed = self.uid_seed(study_uid, version)
        outputs = timer.run(
            "encode", study_uid, lambda: self._encode(source, ref, result, quantitation, uid_seed, out_dir)
        )
        warnings = tuple(slice_warnings) + tuple(str(w) for w in result.postprocess_warnings)
        results_path = timer.run(
            "write",
            study_uid,
            lambda: self._write_results(out_dir, selection, ref, quantitation, self.algorithm(), outputs, warnings),
        )
        bound.info(
            "study_processed",
            outputs=[o.sop_instance_uid for o in outputs],
            timings_s=dict(timer.timings),
        )
        return StudyOutcome(
            study_uid=study_uid,
            version=version,
            selection=selection,
            slice=ref,
            quantitation=quantitation,
            outputs=tuple(outputs),
            results_json=results_path,
            reason=selection.reason,
            timings_s=tuple(timer.timings),
            warnings=warnings,
        )

    # -- stages -----------------------------------------------------------------------------------------
    def _load_candidates(
        self, slices: Sequence[SliceRef], candidates: Sequence[int], stop_at_first: bool
    ) -> tuple[list[tuple[int, Dataset, Any]], list[str]]:
        """Read and prepare candidate slices; an unreadable one is skipped with a warning, not fatal."""
        usable: list[tuple[int, Dataset, Any]] = []
        warnings: list[str] = []
        for index in candidates:
            ref = slices[index]
            where = f"slice {index + 1} of {len(slices)} (SOP {ref.sop_instance_uid}" + (
                f", frame {ref.frame_index + 1})" if ref.frame_index is not None else ")"
            )
            try:
                ds = _load_slice(ref)
                prepared = self._prepare(ds, ref)
            except Exception as exc:  # noqa: BLE001 - a bad slice must not lose the study
                warnings.append(f"{where} unusable: {exc.__class__.__name__}: {exc}")
                continue
            usable.append((index, ds, prepared))
            if stop_at_first:
                if warnings:
                    warnings.append(f"used {where} instead")
                break
        return sorted(usable, key=lambda item: item[0]), warnings

    def _prepare(self, ds: Dataset, ref: SliceRef) -> Any:
        return self.segmenter.prepare(ds, ref.frame_index)

    def _quantify(self, source: Dataset, prepared: Any, result: Any) -> Any:
        from quantitation import quantify_slice
        from quantitation.demographics import demographics_from_header

        sex, age = demographics_from_header(
            _str_or_none(source.get("PatientAge")),
            _str_or_none(source.get("PatientSex")),
            _str_or_none(source.get("PatientBirthDate")),
            _str_or_none(source.get("StudyDate")),
        )
        model_result = quantify_slice(
            np.asarray(result.label_map_model),
            np.asarray(prepared.model_image_8bit),
            tuple(prepared.model_pixel_spacing_mm),
            method=self.settings.method,
            sex=sex,
            age_years=age,
        )
        return map_quantitation(model_result, prepared.transform.model_to_source)

    def _encode(
        self, source: Dataset, ref: SliceRef, result: Any, quantitation: Any, uid_seed: str, out_dir: Path
    ) -> list[OutputFile]:
        from sr_templates import build_measurement_report, build_outputs

        label_map = np.asarray(result.label_map).astype(np.uint8)
        built = build_outputs(
            source,
            label_map,
            quantitation,
            self.algorithm(),
            frame_index=ref.frame_index,
            sr_kind=self.settings.sr_kind,
            report_image=self.settings.report_image,
            uid_seed=uid_seed,
        )
        kinds = ["seg", "sr", "report"]
        outputs = [_write_dataset(out_dir, kind, ds) for kind, ds in zip(kinds, built.datasets())]
        for sr_kind in self.settings.extra_sr_kinds:  # same report for destinations that read another SR IOD
            report = build_measurement_report(
                source, built.segmentation, quantitation, self.algorithm(), frame_index=ref.frame_index,
                sr_kind=sr_kind, uid_seed=uid_seed,  # instance/series UIDs carry the kind; tracking UIDs stay shared
            )
            outputs.append(_write_dataset(out_dir, f"sr-{sr_kind}", report))
        return outputs

    def _no_series_outputs(
        self, headers: Sequence[InstanceHeader], selection: StudySelection, out_dir: Path, version: str
    ) -> list[OutputFile]:
        from sr_templates import build_no_series_report

        images = [h for h in headers if str(h.dataset.get("Modality", "")) == "MR"] or list(headers)
        reference = images[0].dataset
        algorithm = self.algorithm()
        report = build_no_series_report(
            reference,
            algorithm,
            reason=f"No lumbar sagittal T2 series was found in this study. {selection.reason}",
            sr_kind=self.settings.sr_kind,
            uid_seed=self.uid_seed(selection.study_uid, version),
        )
        return [_write_dataset(out_dir, "no_series_sr", report)]

    def _write_results(
        self,
        out_dir: Path,
        selection: StudySelection,
        ref: SliceRef | None,
        quantitation: Any,
        algorithm: Any,
        outputs: Sequence[OutputFile],
        warnings: Sequence[str],
    ) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        chosen = selection.chosen
        document = results_document(
            study_uid=selection.study_uid,
            series_uid=chosen.series_uid if chosen else None,
            sop_instance_uid=ref.sop_instance_uid if ref else None,
            frame_index=ref.frame_index if ref else None,
            quantitation=quantitation,
            selection_reason=selection.reason,
            algorithm=(
                {"name": algorithm.name, "version": algorithm.version, "variant": algorithm.variant,
                 "weights_sha256": algorithm.weights_sha256}
                if algorithm is not None
                else {}
            ),
            outputs={o.kind: o.path.name for o in outputs},
            warnings=warnings,
        )
        path = out_dir / "results.json"
        write_json(path, document)
        return path


# ------------------------------------------------------------------------------------------------------
# helpers

OUTPUT_NAMES = {"seg": "seg.dcm", "sr": "sr.dcm", "report": "report.dcm", "no_series_sr": "sr.dcm",
                **{f"sr-{kind}": f"sr-{kind}.dcm" for kind in SR_CLASS_BY_KIND}}


def _write_dataset(out_dir: Path, kind: str, ds: Dataset) -> OutputFile:
    path = out_dir / OUTPUT_NAMES[kind]
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    write_durably(path, buffer.getvalue())
    return OutputFile(
        kind=kind,
        path=path,
        sop_class_uid=str(ds.SOPClassUID),
        sop_instance_uid=str(ds.SOPInstanceUID),
        series_instance_uid=str(ds.SeriesInstanceUID),
    )


def _load_slice(ref: SliceRef) -> Dataset:
    try:
        return pydicom.dcmread(ref.path)
    except Exception as exc:  # noqa: BLE001
        raise StageError("load", f"cannot read {ref.path} (SOP {ref.sop_instance_uid}): {exc}") from exc


def _str_or_none(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def study_version_from_instances(sop_instance_uids: Sequence[str]) -> str:
    """A job version for offline runs: changes when the study's instance set changes."""
    digest = hashlib.sha256("\n".join(sorted(sop_instance_uids)).encode()).hexdigest()
    return digest[:16]


# ------------------------------------------------------------------------------------------------------
# the node's seam (dicom_node.jobs.StudyProcessor)


class PipelineProcessor:
    """The StudyProcessor the node runs on its worker(s): one pipeline, one model, per process."""

    def __init__(self, settings: PipelineSettings, pipeline: StudyPipeline | None = None) -> None:
        import threading

        self.pipeline = pipeline or StudyPipeline(settings)
        self._lock = threading.Lock()  # one job at a time through the model (CPU threads are configured)

    def warm_up(self) -> None:
        """Load the model now (the node calls this on a background thread at start), so that the first
        study does not wait for the weights, the start-up precision check or a compilation."""
        with self._lock:
            _ = self.pipeline.segmenter
        _release_freed_memory()

    def __call__(self, job: Any) -> list[Path]:
        files = [path for series in job.series for path in series.files]
        with self._lock:
            try:
                outcome = self.pipeline.process_files(files, Path(job.work_dir), version=job.version)
            finally:
                _release_freed_memory()
        if not outcome.outputs:
            log.warning(
                "job_without_outputs", study_uid=job.study_uid, job_id=job.job_id, reason=outcome.reason
            )
        return outcome.paths


def _release_freed_memory() -> None:
    """Hand memory freed by a study back to the OS (glibc ``malloc_trim``; a no-op elsewhere)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def build_processor(config: Any) -> PipelineProcessor:
    """The node's entry point: a processor for ``config`` (NodeConfig); the node loads the model at start
    (``warm_up``, in the background; a job waits for it).

    Raises FileNotFoundError at start-up when the weights file is missing, so that the node never runs
    half-configured (receiving studies it can never analyse)."""
    from inference.weights_io import resolve_weights_path

    settings = PipelineSettings.from_config(config)
    path = resolve_weights_path(settings.weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"model weights not found: {path} (setting [model] weights = {settings.weights!r}). Point it at a "
            "weights file, or install the shipped light model (inference/weights/bianque-light.pt)."
        )
    return PipelineProcessor(settings)
