"""One conversion as the library sees it: its options, the job an engine runs, the progress
events it sends and the report it returns.

`conversion.convert` turns options into a `Job` per input; an engine (`engine.LocalEngine`, or
`cluster.RayEngine`) runs the job's frames. Nothing here touches a file.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hdrvid.errors import InputError
from hdrvid.exposure import ExposureHints, ExposurePattern
from hdrvid.render import RenderOptions
from hdrvid.video import VideoInfo, frame_at, parse_position

if TYPE_CHECKING:
    from hdrvid.stream import StreamPlan

END = sys.maxsize  # a frame index no video reaches: "to the end"
SCALE_NOTE = "linear light; 1.0 = the clipping point of the shortest exposure"
SCALES = ("native", "mid-grey")
CHUNK_FRAMES = 48  # output frames per chunk of `convert --ray` (cluster.RayEngine)


@dataclass(frozen=True)
class ConvertOptions:
    """Options of `convert`; field names equal the CLI's option names."""

    model: str = "f2hdr"  # registry.DEFAULT_MODEL, not imported: `import hdrvid` needs no torch
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
    # how videos are rendered: RenderOptions' defaults, written there once
    tonemap: str = RenderOptions.operator
    codec: str | None = RenderOptions.codec
    crf: int = RenderOptions.crf
    preset: str = RenderOptions.preset
    peak_nits: float = RenderOptions.peak_nits
    audio: bool = RenderOptions.audio
    transfer: str | None = RenderOptions.transfer

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

    def exposure_hints(self) -> ExposureHints:
        """What the options say about the exposures (`exposure.resolve_exposures`)."""
        return ExposureHints(self.exposures, self.stops, self.cycle, self.exposure_file,
                             self.force_exposures)


@dataclass(frozen=True)
class ProgressEvent:
    """Sent to the progress callback after every written batch."""

    done: int
    total: int | None
    seconds: float
    stage: str = "convert"  # or "sdr", "hdr10": encoding a video output


Progress = Callable[[ProgressEvent], None]


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
    # the videos its frames stream to instead of EXRs (`hdrvid.stream`); None: EXRs
    stream: StreamPlan | None = None


def model_key(options: ConvertOptions, pattern: ExposurePattern) -> tuple:
    """What a loaded model depends on: engines reload only when it changes."""
    return (options.model, pattern.period, options.device, options.input_transfer,
            options.weights, options.precision, options.tile, options.yuv_on)


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


def scale_note(factor: float) -> str:
    """What the EXR values mean, for hdrvid.json and the EXRs' comment."""
    if factor == 1.0:
        return SCALE_NOTE
    return (f"linear light, scaled so that the sequence's log-average luminance is 0.18 (one "
            f"factor, {factor:.6g}, for every frame); the clipping point of the shortest "
            f"exposure is at {factor:.6g}")


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
