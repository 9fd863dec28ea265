"""The conversion pipeline, `convert()`: decode -> exposures -> windows -> model -> EXR writer.

A decode thread feeds a bounded queue, the model runs in the calling thread on batches of
windows, and a pool of writer threads compresses EXRs behind another bounded queue, so memory
stays flat on long videos.

`convert` owns the output folder (checks, resume, ``hdrvid.json``, video outputs); an engine
owns the frames: `LocalEngine` runs the model here, `hdrvid.cluster.RayEngine` runs chunks of
the video on Ray actors through the same `run_frames`.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import queue
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from hdrvid import __version__, tonemap
from hdrvid.calibrate import resolve_auto
from hdrvid.errors import ExposureError, HdrvidError, InputError, ModelError, OutputError
from hdrvid.exposure import (
    DETECTION_FRAMES,
    CycleMonitor,
    ExposurePattern,
    contradicted,
    detect_exposure_pattern,
    fit_phase,
    flicker_stops,
    measure_steps,
    parse_exposures,
    pattern_from_stops,
    read_exposure_file,
    trained_range_warning,
)
from hdrvid.predictor import HdrPredictor
from hdrvid.primaries import CHROMATICITIES, PRIMARIES, conversion
from hdrvid.registry import get_spec
from hdrvid.render import (
    OTHER_MEDIA_SUFFIXES,
    VIDEO_FORMATS,
    VIDEO_SUFFIXES,
    RenderOptions,
    check_format,
    render,
)
from hdrvid.response import AUTO, Response, load_response
from hdrvid.video import (
    Frame,
    VideoInfo,
    frame_at,
    frame_timestamps,
    parse_position,
    probe,
    read_frames,
)
from hdrvid.windows import Chunk, Window, halo, sliding_windows
from hdrvid.writers import (
    ExrSequenceWriter,
    frame_name,
    primaries_header,
    read_exr,
    write_json_atomic,
)

END = sys.maxsize  # a frame index no video reaches: "to the end"
# the output alternating more than this with the exposure cycle means the exposures are wrong:
# right ones merge every frame to the same scale
FLICKER_STOPS = 0.5
SCALE_NOTE = "linear light; 1.0 = the clipping point of the shortest exposure"
SCALES = ("native", "mid-grey")
# frames spread over the part converted whose log-average sets --scale mid-grey's one factor:
# the tone mapper's key is measured on a like sample (render.py)
SCALE_SAMPLES = 8
FORMATS = {"exr": ("exr",), "sdr": ("sdr",), "hdr10": ("hdr10",), "hlg": ("hlg",),
           "prores": ("prores",), "dnxhr": ("dnxhr",), "all": ("exr", "sdr", "hdr10")}


@dataclass(frozen=True)
class ConvertOptions:
    """Options of `convert`; field names equal the CLI's option names."""

    model: str = "merge"
    weights: str | None = None
    exposures: str | None = None
    stops: float | None = None
    cycle: int | None = None
    exposure_file: str | None = None
    force_exposures: bool = False  # convert with given exposures the video's frames contradict
    input_transfer: str = "gamma2.2"
    device: str = "auto"
    precision: str = "auto"
    batch_size: int | None = None  # None: the model's (HdrPredictor.default_batch)
    tile: int | None = None
    yuv_on: str = "auto"
    float32: bool = False
    compression: str | None = None  # None: piz, or none for ACES2065-1 (an ACES container)
    primaries: str | None = None  # of the EXRs; None: the input's (rec709, or bt2020 if tagged)
    overwrite: bool = False
    resume: bool = False
    max_frames: int | None = None
    start: str | None = None  # the first frame: frames (60), seconds (2.5s) or a timecode
    duration: str | None = None  # how much: frames or seconds, as start; not with max_frames
    scale: str = "native"  # of the EXR values: native, or mid-grey (see scale_note)
    workers: int | None = None
    format: str = "exr"
    tonemap: str = "hable"
    codec: str | None = None  # None: each format's default (render.VIDEO_FORMATS)
    crf: int = 18
    preset: str = "medium"
    peak_nits: float = 1000.0
    audio: bool = True
    transfer: str | None = None  # prores, dnxhr: pq (default) or hlg

    def render_options(self, kind: str | None = None) -> RenderOptions:
        """How the video output ``kind`` is rendered. With ``format`` all, --codec h264 is the
        SDR video's alone: the HDR10 video keeps its default codec."""
        codec = self.codec
        if self.format == "all" and kind not in (None, "sdr") and codec == "h264":
            codec = None
        return RenderOptions(operator=self.tonemap, codec=codec, crf=self.crf,
                             preset=self.preset, peak_nits=self.peak_nits, audio=self.audio,
                             transfer=self.transfer)

    def exr_compression(self) -> str:
        return self.compression or ("none" if self.primaries == "aces2065-1" else "piz")


@dataclass(frozen=True)
class ProgressEvent:
    """Sent to the progress callback after every written batch."""

    done: int
    total: int | None
    seconds: float
    stage: str = "convert"  # or "sdr", "hdr10": encoding a video output


@dataclass
class Report:
    """What a conversion did: frames written, time taken, exposures used, warnings."""

    input: Path
    output: Path
    model: str
    pattern: ExposurePattern | None = None
    frames: int = 0
    resumed: int = 0  # frames found complete on disk and kept (--resume)
    seconds: float = 0.0
    # seconds per stage: decode and prepare (the decode thread: decoding, and Y'CbCr -> R'G'B'
    # with yuv_on host; the cycle check, camera response, host -> device, and Y'CbCr -> R'G'B'
    # there with yuv_on device), model, fetch (device -> host), write (EXR compression, summed
    # over the writer threads), decode_wait / write_wait (the main thread starved / held back),
    # encode_sdr / encode_hdr10 (video outputs)
    stages: dict[str, float] = field(default_factory=dict)
    gpu_peak_bytes: int | None = None
    host_peak_bytes: int | None = None
    videos: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    response: dict | None = None  # --input-transfer auto: the estimated curve (Estimate.as_dict)
    workers: dict[str, dict] = field(default_factory=dict)  # distributed runs: frames, seconds
    writer_threads: int = 1
    batch_size: int | None = None  # windows per model call
    threads_per_window: int | None = None  # torch threads each window ran on (CPU)
    parallel_windows: bool = False  # a call's windows ran at once, each on its own threads

    def throughput(self) -> dict[str, float]:
        """Frames per second each concurrent part of the run could sustain alone: decode (its
        thread: decoding, camera response, host -> device), compute (the model and device ->
        host, on the main thread) and write (the EXR pool); the slowest limits the run."""
        s = self.stages
        busy = {"decode": s.get("decode", 0.0) + s.get("prepare", 0.0),
                "compute": s.get("model", 0.0) + s.get("fetch", 0.0),
                "write": s.get("write", 0.0) / max(1, self.writer_threads)}
        return {part: self.frames / t if t else math.inf for part, t in busy.items()}

    def bottleneck(self) -> str | None:
        fps = self.throughput()
        return min(fps, key=fps.get) if self.frames and self.stages else None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {"input": str(self.input), "output": str(self.output), "model": self.model,
                "exposures": self.pattern.as_dict() if self.pattern else None,
                "frames": self.frames, "resumed": self.resumed,
                "seconds": round(self.seconds, 3),
                "fps": round(self.fps, 3),
                "stages": {name: round(s, 3) for name, s in self.stages.items()},
                "throughput": {part: round(fps, 2) if math.isfinite(fps) else None
                               for part, fps in self.throughput().items()},
                "bottleneck": self.bottleneck(),
                "batch_size": self.batch_size, "threads_per_window": self.threads_per_window,
                "parallel_windows": self.parallel_windows,
                "gpu_peak_bytes": self.gpu_peak_bytes, "host_peak_bytes": self.host_peak_bytes,
                "videos": [str(v) for v in self.videos],
                "warnings": self.warnings, "response": self.response, "workers": self.workers}

    def __str__(self) -> str:
        frames = f"{self.frames} frame{'' if self.frames == 1 else 's'}"
        return (f"{self.input}: {frames} -> {self.output} in {self.seconds:.1f} s "
                f"({self.fps:.2f} fps, model {self.model})")


def resolve_exposures(info: VideoInfo, options: ConvertOptions, response: Response,
                      warnings: list[str] | None = None) -> ExposurePattern:
    """The clip's exposure pattern, from (in order) --exposures, --stops/--cycle,
    --exposure-file, or detection on the first frames."""
    warnings = [] if warnings is None else warnings
    if options.stops is not None and options.cycle is None:
        raise ExposureError("--stops needs --cycle 2 or 3 (the number of exposures per cycle)")
    frames = [response.to_gamma22(f.rgb) for f in
              read_frames(info.path, info.color, max_frames=DETECTION_FRAMES)]
    if options.exposures is not None:
        pattern = parse_exposures(options.exposures)
    elif options.stops is not None:
        pattern = pattern_from_stops(options.stops, options.cycle)
        # the cycle's phase is read from the video: which frame is the short one
        phase, _ = fit_phase(measure_steps(frames), pattern.times)
        pattern = dataclasses.replace(pattern, phase=phase)
    elif options.exposure_file is not None:
        pattern = read_exposure_file(options.exposure_file)
    else:
        try:
            pattern = detect_exposure_pattern(frames)
        except ExposureError as exc:
            raise ExposureError(f"{info.path}: {exc}") from exc
        warnings += [pattern.assumed] if pattern.assumed else []
        return pattern
    if contradiction := contradicted(measure_steps(frames), pattern):
        if not options.force_exposures:
            raise ExposureError(f"{info.path}: {contradiction}; correct them (hdrvid info shows "
                                "what the video says), or pass --force-exposures to insist")
        warnings.append(f"{contradiction}; converting anyway (--force-exposures)")
    return pattern


@dataclass
class Job:
    """One input's frames to convert, as an engine sees them."""

    info: VideoInfo
    pattern: ExposurePattern
    frames_dir: Path
    options: ConvertOptions
    done: set[int] = field(default_factory=set)  # frames complete on disk (--resume)
    first: int = 0  # the output frames are first to last (exclusive; None: to the end)
    last: int | None = None
    scale_factor: float = 1.0  # what the EXR values are multiplied by (--scale mid-grey)
    frame_times: Sequence[int] | None = None  # the video's `frame_timestamps` (for seeking)
    # the exposure steps learned at the clip's start (`learn_cycle`): chunks check against them
    cycle_signature: np.ndarray | None = None


Progress = Callable[[ProgressEvent], None]


def model_key(options: ConvertOptions, pattern: ExposurePattern) -> tuple:
    """What a loaded model depends on: engines reload only when it changes."""
    return (options.model, pattern.period, options.device, options.input_transfer,
            options.weights, options.precision, options.tile, options.yuv_on)


class Engine(Protocol):
    """What `convert` needs from an engine: load the model for an input, then convert its
    frames (writing EXRs into ``job.frames_dir`` and a record per frame into ``entries``)."""

    def prepare(self, info: VideoInfo, pattern: ExposurePattern, options: ConvertOptions,
                warnings: list[str]) -> ConvertOptions: ...

    def run(self, job: Job, report: Report, entries: list[dict], progress: Progress | None,
            started: float) -> None: ...

    def log_average(self, job: Job) -> float: ...


class LocalEngine:
    """Runs the model in this process: the default engine of `convert`."""

    def __init__(self) -> None:
        self.predictor: HdrPredictor | None = None
        self._loaded: tuple | None = None
        self._load_warnings: list[str] = []

    def prepare(self, info: VideoInfo, pattern: ExposurePattern, options: ConvertOptions,
                warnings: list[str]) -> ConvertOptions:
        """Load the model for this input (kept for the next input of a batch when model and
        cycle stay the same); the batch size is lowered where memory is short."""
        wanted = model_key(options, pattern)
        if wanted != self._loaded:
            self.predictor = HdrPredictor(options.model, pattern.period, options.device,
                                          load_response(options.input_transfer), options.weights,
                                          options.precision, options.tile, options.yuv_on)
            self._loaded, self._load_warnings = wanted, list(self.predictor.warnings)
        self.predictor.warnings = list(self._load_warnings)  # not the last input's batch warning
        batch_size = self.predictor.check_memory(info.height, info.width, options.batch_size)
        warnings += self.predictor.warnings
        return dataclasses.replace(options, batch_size=batch_size)

    def run(self, job: Job, report: Report, entries: list[dict], progress: Progress | None,
            started: float) -> None:
        run_frames(job, self.predictor, report, entries, progress, started)
        check_complete(job, report.frames)

    def log_average(self, job: Job) -> float:
        return log_average(job, self.predictor)


def convert(input: str | Path, output: str | Path, options: ConvertOptions = ConvertOptions(),
            progress: Progress | None = None, engine: Engine | None = None) -> Report:
    """Convert an alternating-exposure video to an EXR sequence and/or videos in ``output``.

    Writes ``output/frame_NNNNNN.exr`` (one per input frame: linear HDR, 1.0 = the clipping point
    of the shortest exposure) and ``output/hdrvid.json`` (input, model, exposures, per-frame
    timestamps, options). ``options.format`` sdr / hdr10 / all adds ``output/<stem>-sdr.mp4``
    and / or ``output/<stem>-hdr10.mp4``, rendered from the EXRs (kept only for exr and all).
    ``engine`` runs the frames: `LocalEngine` (default) or `hdrvid.cluster.RayEngine`.
    Raises HdrvidError subclasses with a message for the user.
    """
    started = time.perf_counter()
    engine = engine or LocalEngine()
    info = probe(input)
    output = Path(output)
    folder, frames_dir, videos = output_layout(Path(input), output, options.format)
    if options.scale not in SCALES:
        raise OutputError(f"--scale {options.scale}: choose one of {', '.join(SCALES)}")
    # the timestamps place --start and --duration, cut the audio and let the decoder seek
    cut = options.start is not None or options.duration is not None or options.max_frames
    stamps = frame_timestamps(info.path) if cut or options.scale != "native" else None
    first, last = frame_range(info, options, stamps)
    report = Report(Path(input), output, options.model)
    auto = options.input_transfer == AUTO
    response = Response() if auto else load_response(options.input_transfer)
    pattern = resolve_exposures(info, options, response, report.warnings)
    report.pattern = pattern
    if auto:  # the curve from the video; the exposures were found assuming gamma 2.2
        spec, estimate = resolve_auto(info, pattern, report.warnings)
        options = dataclasses.replace(options, input_transfer=spec)
        report.response = estimate.as_dict() if estimate else None
    if get_spec(options.model).trained and (warning := trained_range_warning(pattern)):
        report.warnings.append(warning)
    options = engine.prepare(info, pattern, options, report.warnings)
    for kind, path in videos.items():  # refused now, not after the conversion
        check_format(kind, path, options.render_options(kind))
    report.warnings += _exr_colour(info, options)[2]
    if folder == output:
        _prepare_output(output, options.overwrite or options.resume, videos.values())
    else:  # one video file: its folder may hold anything else
        _prepare_video_file(output, options.overwrite or options.resume)
    _prepare_output(frames_dir, True)
    job = Job(info, pattern, frames_dir, options, frame_times=stamps, first=first, last=last)
    job.done = _complete_frames(frames_dir, info, options, pattern, first) if options.resume \
        else set()

    if options.scale == "mid-grey":
        job.scale_factor = _earlier_factor(frames_dir) if options.resume else None
        job.scale_factor = job.scale_factor or tonemap.MID_GREY / engine.log_average(job)
    sidecar = {**_sidecar(info, options, pattern), "response": report.response,
               "range": {"first": first, "last": last}, "scale": scale_note(job.scale_factor),
               "scale_factor": job.scale_factor}
    write_json_atomic(frames_dir / "hdrvid.json", {**sidecar, "status": "running"})
    timestamps: list[dict] = []
    try:
        engine.run(job, report, timestamps, progress, started)
        _remove_stale_frames(frames_dir, {entry["index"] for entry in timestamps})
        sidecar["range"] = cut_times(info, job, timestamps, stamps)
        write_json_atomic(frames_dir / "hdrvid.json", {**sidecar, "status": "rendering",
                                                       "frames": timestamps})
        for kind, path in videos.items():
            _render_video(frames_dir, path, kind, options, report, progress)
    except OutputError as exc:  # e.g. a full or read-only disk: what was written stays
        write_json_atomic(frames_dir / "hdrvid.json",
                          {**sidecar, "status": "failed", "error": str(exc), "frames": timestamps})
        written = len(list(frames_dir.glob("frame_*.exr")))
        raise OutputError(f"{exc}; {written} complete frames are in {frames_dir} (finish with "
                          "--resume)") from exc
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: in-flight frames were finished, not lost
        write_json_atomic(frames_dir / "hdrvid.json",
                          {**sidecar, "status": "interrupted", "frames": timestamps})
        raise
    except BaseException as exc:
        reason = str(exc) if isinstance(exc, HdrvidError) else repr(exc)
        write_json_atomic(frames_dir / "hdrvid.json",
                          {**sidecar, "status": "failed", "error": reason, "frames": timestamps})
        raise
    if frames_dir != output:
        shutil.rmtree(frames_dir)
    report.seconds = time.perf_counter() - started
    report.host_peak_bytes = _peak_rss()
    if folder == output:  # a video file named by -o comes alone, as ffmpeg writes it
        write_json_atomic(output / "hdrvid.json", {**sidecar, "status": "complete",
                                                   "exr_kept": frames_dir == output,
                                                   "report": report.as_dict(),
                                                   "frames": timestamps})
    return report


def output_layout(input: Path, output: Path, format: str
                  ) -> tuple[Path, Path, dict[str, Path]]:
    """Where a conversion writes: (the folder, where the EXRs go, the videos by kind).

    ``output`` named like a video (.mp4, .mov, .mkv, .mxf) is that video file, for a format
    that makes one video; the EXRs it is rendered from are then kept in a hidden folder beside
    it until it is done. Any other name is a folder: EXRs (exr, all) and
    ``<input stem>-<format>`` videos go into it. Other media names (.avi, .png, ...) are
    refused rather than made folders.
    """
    if format not in FORMATS:
        raise OutputError(f"--format {format}: choose one of {', '.join(FORMATS)}")
    kinds = FORMATS[format]
    suffix = output.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        if len(kinds) > 1 or kinds == ("exr",):
            what = "an EXR sequence" if format == "exr" else "EXRs and two videos"
            raise OutputError(f"{output}: --format {format} writes {what} into a folder; name a "
                              "folder, or pass one video format (--format sdr, hdr10, hlg, "
                              "prores or dnxhr) to write this one video file")
        return output.parent, output.parent / f".{output.name}.hdrvid-frames", \
            {kinds[0]: output}
    if suffix in OTHER_MEDIA_SUFFIXES:
        raise OutputError(f"{output}: hdrvid does not write {suffix} files; name a folder, or a "
                          f"{', '.join(VIDEO_SUFFIXES)} video with one video --format")
    frames_dir = output if "exr" in kinds else output / ".hdrvid-frames"  # removed at the end
    videos = {kind: output / f"{input.stem}-{kind}{VIDEO_FORMATS[kind].containers[0]}"
              for kind in kinds if kind != "exr"}
    return output, frames_dir, videos


def _render_video(frames_dir: Path, path: Path, kind: str, options: ConvertOptions,
                  report: Report, progress: Callable[[ProgressEvent], None] | None) -> None:
    tick = time.perf_counter()
    on_frame = (lambda done: progress(ProgressEvent(done, report.frames,
                                                    time.perf_counter() - tick, kind))
                ) if progress else None
    report.warnings += render(frames_dir, path, kind, options.render_options(kind), on_frame)
    report.stages[f"encode_{kind}"] = time.perf_counter() - tick
    report.videos.append(path)


def frame_total(job: Job, count: int | None = None) -> int | None:
    """Frames the conversion should produce: those from ``job.first`` to ``job.last`` of the
    video's ``count`` (an exact count, e.g. of the packets) or else the container's."""
    count = count or job.info.frame_count
    end = job.last if count is None else min(count, job.last or count)
    return None if end is None else max(0, end - job.first)


def frame_range(info: VideoInfo, options: ConvertOptions,
                timestamps: Sequence[int] | None) -> tuple[int, int | None]:
    """(first, last) output frame indices (last exclusive, None: to the end) from --start and
    --frames or --duration; ``timestamps`` place times on frames (`frame_timestamps`)."""
    if options.duration is not None and options.max_frames is not None:
        raise InputError("--frames and --duration both say how much to convert; give one")

    def index(text: str, option: str, origin: float = 0.0) -> int:
        position = parse_position(text, option)
        if position.frames is not None:
            return position.frames
        return frame_at(origin + position.seconds, timestamps, info.time_base, info.fps)

    first = index(options.start, "--start") if options.start else 0
    count = len(timestamps) if timestamps else info.frame_count
    if first and count is not None and first >= count:
        raise InputError(f"{info.path}: --start {options.start} is at or past the end of the "
                         f"video ({count} frames); start earlier")
    if options.max_frames is not None:
        return first, first + options.max_frames
    if options.duration is None:
        return first, None
    position = parse_position(options.duration, "--duration")
    if position.frames is not None:
        last = first + position.frames
    else:  # the frames shown within that time of the first one
        origin = float((timestamps[first] - timestamps[0]) * info.time_base) if timestamps \
            and first < len(timestamps) else first / float(info.fps or 25)
        last = index(options.duration, "--duration", origin)
    if last <= first:
        raise InputError(f"--duration {options.duration}: holds no frame; give a longer one")
    return first, last


def cut_times(info: VideoInfo, job: Job, entries: list[dict],
              timestamps: Sequence[int] | None) -> dict:
    """Where the converted frames lie in the source, for the videos made from them: ``start``
    and ``end`` (seconds on the source's clock; None: its own start or end) bound the audio
    kept, and ``offset`` is subtracted from every timestamp so the video starts as the source
    did (as ffmpeg's -ss does)."""
    cut = {"first": job.first, "last": job.last, "start": None, "end": None, "offset": 0.0}
    if not entries:
        return cut
    if job.first > 0:
        origin = float(timestamps[0] * info.time_base) if timestamps else 0.0
        cut["start"] = entries[0]["time"]
        cut["offset"] = entries[0]["time"] - origin
    count = len(timestamps) if timestamps else info.frame_count
    end = entries[-1]["index"] + 1
    if job.last is not None and (count is None or end < count):  # the frame after the last kept one
        cut["end"] = float(timestamps[end] * info.time_base) if timestamps and end < \
            len(timestamps) else entries[-1]["time"] + 1 / float(info.fps or 25)
    return cut


def run_frames(job: Job, predictor: HdrPredictor, report: Report, timestamps: list[dict],
               progress: Progress | None = None, started: float | None = None,
               chunk: Chunk | None = None) -> None:
    """Decode, run the model on the windows of frames not in ``job.done``, write them; only
    ``chunk``'s frames when given (decoded with its halo)."""
    info, pattern, options = job.info, job.pattern, job.options
    started = time.perf_counter() if started is None else started
    colour, matrix, _ = _exr_colour(info, options)
    writer = ExrSequenceWriter(
        job.frames_dir, options.exr_compression(), half=not options.float32, fps=info.fps,
        workers=options.workers,
        attributes={**_exr_attributes(options, job.scale_factor), **colour},
        matrix=_scaled(matrix, job.scale_factor))
    # the frames first to last, each window read with its true neighbours (decoded as a halo
    # and not emitted), so that they equal the frames of a run over the whole video
    span = chunk or Chunk(str(info.path), job.first, END if job.last is None else job.last,
                          halo(predictor.window, pattern.period))
    total = frame_total(job) if chunk is None else chunk.last - chunk.first
    start, stop = span.decode_start, span.decode_stop
    out_dtype = torch.float16 if writer.dtype == np.float16 else torch.float32  # the EXRs' type
    stages = dict.fromkeys(("prepare", "model", "fetch"), 0.0)
    monitor = CycleMonitor(pattern, signature=job.cycle_signature)
    brightness: dict[int, float] = {}  # log2 mean luminance of each output frame (flicker)
    # the cycle check and the model's input conversion run in the decode thread, which has time
    # to spare: the main thread is left to the model (on a GPU, the thread that feeds it)
    decoded = _Prefetch(_prepared(read_frames(info.path, info.color, stop, start,
                                              job.frame_times, predictor.yuv_on_device),
                                  predictor, monitor, info.path, stages), maxsize=8)
    # Python's full collections walk every object alive, ~180,000 once torch is imported,
    # holding the GIL ~50 ms each: 0.22 s of a 7.4 s conversion. What exists now outlives the
    # loop, so the collector skips it until the end.
    gc.freeze()
    try:
        windows = span.windows(_windows(decoded, predictor.window, pattern.period, info.path))
        for batch in _batched(windows, options.batch_size):
            todo = [w for w in batch if w.center not in job.done]
            images = iter(_infer(predictor, todo, pattern, stages, report.warnings,
                                 out_dtype) if todo else [])
            for window in batch:
                entry = _frame_entry(window, pattern)
                if window.center not in job.done:
                    image = next(images)
                    brightness[entry["index"]] = _log2_brightness(image)
                    _write_frame(writer, entry, image)
                timestamps.append(entry)
            report.frames += len(batch)
            report.resumed += len(batch) - len(todo)
            if progress:
                progress(ProgressEvent(report.frames, total, time.perf_counter() - started))
        if (flicker := flicker_stops(pattern, brightness)) > FLICKER_STOPS:
            report.warnings.append(
                f"the result flickers: its frames alternate by {flicker:.1f} stops with the "
                f"exposure cycle, so the exposures ({pattern.source}: {pattern.describe()}) "
                "look wrong; check them with hdrvid info")
    finally:
        gc.unfreeze()
        decoded.close()
        writer.close()
        report.stages = {"decode": decoded.busy_seconds - stages["prepare"], **stages,
                         "write": writer.write_seconds,
                         "decode_wait": decoded.wait_seconds, "write_wait": writer.wait_seconds}
        report.writer_threads = writer.threads
        report.batch_size = batch = options.batch_size or 1
        report.threads_per_window = predictor.threads_per_window(batch)
        report.parallel_windows = predictor.windows_at_once(batch)
        if predictor.device.type == "cuda":
            report.gpu_peak_bytes = torch.cuda.max_memory_allocated(predictor.device)


def check_complete(job: Job, decoded: int) -> None:
    """Decoders stop quietly at a truncated end: compare with the length the container states
    (the duration times the frame rate where it states no count: allow 2 frames or 2 %)."""
    expected = frame_total(job)
    if expected and decoded + max(2, 0.02 * expected) < expected:
        raise InputError(f"{job.info.path}: decoding stopped at frame {decoded} of about "
                         f"{expected} (the file looks truncated or corrupt); the {decoded} frames "
                         f"before are converted in {job.frames_dir}")


def learn_cycle(info: VideoInfo, pattern: ExposurePattern, response: Response,
                frames: int = 48) -> np.ndarray | None:
    """The exposure steps of the clip's first cycles, as `CycleMonitor` learns them, for parts
    of the clip converted separately (chunks), which start later."""
    monitor = CycleMonitor(pattern)
    for frame in read_frames(info.path, info.color, frames):
        _check_cycle(monitor, frame, response, info.path)
        if monitor.signature is not None:
            break
    return monitor.signature


def _check_cycle(monitor: CycleMonitor, frame: Frame, response: Response, path: Path) -> None:
    try:  # brightness quantiles need few pixels
        monitor.check(frame.index, response.to_gamma22(frame.sample()))
    except ExposureError as exc:
        raise ExposureError(f"{path}: {exc}") from exc


def _prepared(decoded: Iterable[Frame], predictor: HdrPredictor, monitor: CycleMonitor,
              path: Path, stages: dict[str, float]) -> Iterator[tuple[Frame, torch.Tensor]]:
    """Each frame as the model's input, after checking it keeps the exposure cycle."""
    for frame in decoded:
        tick = time.perf_counter()
        _check_cycle(monitor, frame, predictor.response, path)
        tensor = predictor.prepare(frame.pixels)
        stages["prepare"] += time.perf_counter() - tick
        yield frame, tensor


def _windows(frames: Iterable[tuple[Frame, torch.Tensor]], size: int, period: int,
             path: Path) -> Iterator[Window]:
    count = 0
    try:
        for window in sliding_windows(frames, size, period):
            count += 1
            yield window
    except ValueError as exc:  # the clip is shorter than one exposure cycle
        raise InputError(f"{path}: too few frames ({exc}); hdrvid needs at least {period} frames, "
                         "one full exposure cycle") from exc
    if count == 0:
        raise InputError(f"{path}: no frames could be decoded; check the file")


def _infer(predictor: HdrPredictor, windows: list[Window], pattern: ExposurePattern,
           stages: dict[str, float], warnings: list[str], dtype: torch.dtype) -> np.ndarray:
    """HDR frames (B, H, W, 3) of a batch of windows, as ``dtype``. A batch that runs out of memory
    is split in halves (the results do not depend on the batch size); one window that does not
    fit is run in tiles, halving their size down to 64 pixels, before giving up."""
    try:
        return _infer_batch(predictor, windows, pattern, stages, dtype)
    except torch.OutOfMemoryError as exc:
        if predictor.device.type == "cuda":
            torch.cuda.empty_cache()
        if len(windows) == 1:
            height, width = windows[0].items[0][1].shape[-2:]
            tile = min(512, (predictor.tile or max(height, width)) // 2)
            if tile < 64:
                raise ModelError(
                    f"out of {predictor.device.type.upper()} memory on one {width}×{height} "
                    f"window of model {predictor.spec.name}, even in 64×64 tiles; use --device "
                    "cpu, a smaller input, or a device with more memory") from exc
            predictor.tile = tile
            warnings.append(f"out of memory on one {width}×{height} window: frames from "
                            f"{windows[0].center} on run in {tile}×{tile} tiles (results "
                            "differ slightly at tile seams)")
            return _infer(predictor, windows, pattern, stages, warnings, dtype)
    half = len(windows) // 2
    return np.concatenate([_infer(predictor, windows[:half], pattern, stages, warnings, dtype),
                           _infer(predictor, windows[half:], pattern, stages, warnings, dtype)])


def _infer_batch(predictor: HdrPredictor, windows: list[Window], pattern: ExposurePattern,
                 stages: dict[str, float], dtype: torch.dtype) -> np.ndarray:
    tick = time.perf_counter()
    ldr = torch.stack([torch.stack([t for _, t in w.items]) for w in windows])
    times = torch.tensor([[pattern.time(i) for i in w.indices] for w in windows])
    hdr = predictor.predict_torch(ldr, times)
    if hdr.is_cuda:
        torch.cuda.synchronize()  # so that the model's time is not counted as the copy's
    stages["model"] += (tock := time.perf_counter()) - tick
    # cast on the device, then lay out as the writer wants: one pass, half the bytes to copy
    # (numpy's cast of the permuted view took 2.6 ms per 640×360 frame, this 0.3)
    hdr = hdr.to(dtype).permute(0, 2, 3, 1).contiguous().cpu().numpy()
    stages["fetch"] += time.perf_counter() - tock
    return hdr


def _frame_entry(window: Window, pattern: ExposurePattern) -> dict:
    """The centre frame's record in hdrvid.json."""
    frame: Frame = window.items[len(window.items) // 2][0]
    return {"index": frame.index, "file": frame_name(frame.index), "pts": frame.pts,
            "time": frame.time, "exposure": pattern.time(frame.index)}


def _log2_brightness(image: np.ndarray) -> float:
    """log2 of a frame's mean luminance, on every 8th pixel of every 8th row."""
    sample = np.asarray(image[::8, ::8], np.float32)
    luminance = float(np.mean(sample @ np.array([0.2126, 0.7152, 0.0722], np.float32)))
    return math.log2(max(luminance, 1e-6))


def _write_frame(writer: ExrSequenceWriter, entry: dict, image: np.ndarray) -> None:
    attributes = {"hdrvid:time": float(entry["time"]), "hdrvid:exposure": float(entry["exposure"])}
    if entry["pts"] is not None:
        attributes["hdrvid:pts"] = int(entry["pts"])
    writer.write(entry["index"], image, attributes)


def _complete_frames(frames_dir: Path, info: VideoInfo, options: ConvertOptions,
                     pattern: ExposurePattern, first: int) -> set[int]:
    """Indices of the EXRs an earlier run of the same conversion finished (--resume).

    Each is read in full and must have the video's size, the requested pixel type and the same
    model; anything else is converted again. A run with another model, other exposures or
    another first frame (--start) is refused rather than mixed in.
    """
    sidecar_path = frames_dir / "hdrvid.json"
    if sidecar_path.is_file():
        earlier = json.loads(sidecar_path.read_text())
        same = (earlier.get("model") == options.model and
                earlier.get("exposures", {}).get("times") == list(pattern.times) and
                earlier.get("exposures", {}).get("phase") == pattern.phase)
        if not same:
            raise OutputError(f"{frames_dir}: holds a run with model {earlier.get('model')} and "
                              f"exposures {earlier.get('exposures', {}).get('times')}; resume with "
                              "the same options, or pass --overwrite")
        primaries = earlier.get("options", {}).get("primaries")
        if primaries != options.primaries:  # frames in two colour spaces must not be mixed
            held = primaries or "of the input"
            raise OutputError(f"{frames_dir}: holds frames in primaries {held}; resume with the "
                              "same --primaries, or pass --overwrite")
        earlier_scale = earlier.get("options", {}).get("scale", "native")
        if earlier_scale != options.scale:
            raise OutputError(f"{frames_dir}: holds frames at --scale {earlier_scale}; resume with "
                              "the same --scale, or pass --overwrite")
        earlier_first = (earlier.get("range") or {}).get("first", 0)
        if earlier_first != first:
            raise OutputError(f"{frames_dir}: holds a run that starts at frame {earlier_first} "
                              f"and this one starts at frame {first}; resume with the same "
                              "--start, or pass --overwrite")
    expected = ((info.height, info.width, 3), np.float32 if options.float32 else np.float16,
                options.model)
    return {int(path.stem.removeprefix("frame_")) for path in frames_dir.glob("frame_*.exr")
            if path.stem.removeprefix("frame_").isdigit() and _exr_matches(path, *expected)}


def _exr_matches(path: Path, shape: tuple, dtype: type, model: str) -> bool:
    """Whether ``path`` reads back whole with this shape, pixel type and model."""
    try:
        pixels, header = read_exr(path)
    except Exception:  # noqa: BLE001 - unreadable for any reason: convert it again
        return False
    return pixels.shape == shape and pixels.dtype == dtype and header.get("hdrvid:model") == model


def _peak_rss() -> int | None:
    """Peak resident memory of this process so far, in bytes (None where unknown).

    On Linux, VmHWM: ``ru_maxrss`` of a process started by another counts the parent's peak
    too (it is carried over at fork and exec), so a conversion run from a benchmark that had
    rendered a 4K clip reported the benchmark's memory as its own.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS counts bytes, Linux KiB


def _batched(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _prepare_output(output: Path, overwrite: bool, videos: Iterable[Path] = ()) -> None:
    if output.exists() and not output.is_dir():
        raise OutputError(f"{output}: exists and is not a folder; choose an output folder")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{output}: cannot create the output folder ({exc.strerror})") from exc
    existing = list(output.glob("frame_*.exr"))
    if existing and not overwrite:
        count = f"{len(existing)} frame{'' if len(existing) == 1 else 's'}"
        if _unfinished(output):
            raise OutputError(f"{output}: holds {count} of an unfinished run; pass --resume to "
                              "finish it, --overwrite to start again, or choose another folder")
        raise OutputError(f"{output}: already holds {count} from another run; pass "
                          "--overwrite to replace them or choose another folder")
    if not overwrite and (video := next((v for v in videos if v.exists()), None)):
        raise OutputError(f"{video}: exists; pass --overwrite to replace it or choose another "
                          "folder")


def _prepare_video_file(video: Path, overwrite: bool) -> None:
    if video.is_dir():
        raise OutputError(f"{video}: is a folder; remove it or name another video file")
    if video.exists() and not overwrite:
        raise OutputError(f"{video}: exists; pass --overwrite to replace it or name another "
                          "video file")
    _prepare_output(video.parent, True)


def _unfinished(output: Path) -> bool:
    """Whether the folder's hdrvid.json records a run that did not complete."""
    try:
        status = json.loads((output / "hdrvid.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return False
    return status in ("running", "interrupted", "failed")


def _remove_stale_frames(output: Path, kept: set[int]) -> None:
    """After an --overwrite run, remove frames of an earlier run that this one did not write."""
    for path in output.glob("frame_*.exr"):
        index = path.stem.removeprefix("frame_")
        if index.isdigit() and int(index) not in kept:
            path.unlink()


def _sidecar(info: VideoInfo, options: ConvertOptions, pattern: ExposurePattern) -> dict:
    return {"hdrvid": __version__, "input": info.as_dict(), "model": options.model,
            "exposures": pattern.as_dict(), "options": dataclasses.asdict(options),
            "scale": SCALE_NOTE, "time_base": str(info.time_base),
            "fps": float(info.fps) if info.fps else None}


def _exr_attributes(options: ConvertOptions, factor: float) -> dict:
    return {"hdrvid:scale": factor, "hdrvid:model": options.model,
            "hdrvid:version": __version__, "comment": f"hdrvid {scale_note(factor)}"}


def scale_note(factor: float) -> str:
    """What the EXR values mean, for hdrvid.json and the EXRs' comment."""
    if factor == 1.0:
        return SCALE_NOTE
    return (f"linear light, scaled so that the sequence's log-average luminance is 0.18 (one "
            f"factor, {factor:.6g}, for every frame); the clipping point of the shortest "
            f"exposure is at {factor:.6g}")


def _scaled(matrix: np.ndarray | None, factor: float) -> np.ndarray | None:
    """The writer's colour matrix with the --scale factor folded in (None: neither)."""
    if factor == 1.0:
        return matrix
    return (np.eye(3) if matrix is None else np.asarray(matrix)) * factor


def log_average(job: Job, predictor: HdrPredictor, samples: int = SCALE_SAMPLES) -> float:
    """The log-average luminance (`tonemap.log_average_luminance`) of the frames ``job`` will
    write, on the native scale, measured on up to ``samples`` of them spread evenly over the
    part converted: each is run through the model with its true neighbours, as in the run."""
    info, pattern = job.info, job.pattern
    count = frame_total(job, len(job.frame_times or ())) or DETECTION_FRAMES
    centres = np.unique(np.linspace(job.first, job.first + count - 1,
                                    min(samples, count)).round().astype(int))
    to_709 = None if info.color_tags.get("primaries") != 9 else \
        conversion(CHROMATICITIES["bt2020"], CHROMATICITIES["rec709"]).T.astype(np.float32)
    stages = dict.fromkeys(("prepare", "model", "fetch"), 0.0)
    pooled = []
    for centre in centres:
        span = Chunk(str(info.path), int(centre), int(centre) + 1,
                     halo(predictor.window, pattern.period))
        decoded = read_frames(info.path, info.color, span.decode_stop, span.decode_start,
                              job.frame_times, predictor.yuv_on_device)
        prepared = ((frame, predictor.prepare(frame.pixels)) for frame in decoded)
        for window in span.windows(_windows(prepared, predictor.window, pattern.period,
                                            info.path)):
            image = _infer(predictor, [window], pattern, stages, [], torch.float32)[0]
            step = max(1, min(image.shape[:2]) // tonemap.KEY_PIXELS)
            sample = image[::step, ::step].reshape(-1, 3)
            pooled.append(sample if to_709 is None else sample @ to_709)
    if not pooled:
        raise InputError(f"{info.path}: no frame to measure --scale mid-grey on; check --start")
    return tonemap.log_average_luminance(np.concatenate(pooled))


def _earlier_factor(frames_dir: Path) -> float | None:
    """The --scale mid-grey factor of the run being resumed: its frames must not be mixed with
    frames at another factor (on a GPU, a second measurement may differ in the last bits)."""
    try:
        return json.loads((frames_dir / "hdrvid.json").read_text()).get("scale_factor")
    except (OSError, ValueError, AttributeError):
        return None


def _exr_colour(info: VideoInfo, options: ConvertOptions
                ) -> tuple[dict, np.ndarray | None, list[str]]:
    """The EXRs' colour header entries, the matrix from the model's primaries (the input's:
    BT.2020 when tagged so, else Rec.709) to --primaries (None: the same), and warnings."""
    if options.primaries not in (None, *PRIMARIES):
        raise OutputError(f"--primaries {options.primaries}: choose one of {', '.join(PRIMARIES)}")
    source = "bt2020" if info.color_tags.get("primaries") == 9 else "rec709"
    target = options.primaries or source
    header, warnings = primaries_header(target, options.exr_compression(), not options.float32)
    matrix = None if target == source else conversion(CHROMATICITIES[source],
                                                      CHROMATICITIES[target])
    return header, matrix, warnings


class _Prefetch:
    """Run an iterator in a thread, handing items over through a bounded queue."""

    _END = object()

    def __init__(self, iterator: Iterator, maxsize: int):
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._stop = threading.Event()
        self.busy_seconds = 0.0  # producing items, in the thread
        self.wait_seconds = 0.0  # the consumer waiting for an item
        self._thread = threading.Thread(target=self._fill, args=(iterator,), daemon=True)
        self._thread.start()

    def _fill(self, iterator: Iterator) -> None:
        try:
            tick = time.perf_counter()
            for item in iterator:
                self.busy_seconds += time.perf_counter() - tick
                if not self._put(item):
                    return
                tick = time.perf_counter()
            self._put(self._END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(exc)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator:
        while True:
            tick = time.perf_counter()
            item = self._queue.get()
            self.wait_seconds += time.perf_counter() - tick
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
