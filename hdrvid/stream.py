"""Model output straight to the encoders: how `convert` makes videos when no EXRs were asked for.

`StreamSink` stands where the EXR writer stands in `engine.run_frames`: it takes each output
frame in order and hands it to one encoder thread per video. A frame is first made what its
EXR would have held and what `render` would have read back from it (`exr.stored_pixels`, then
`source.as_linear`), so a streamed video is byte for byte the one the EXR round trip made.

Not every conversion can stream (`streamable`): HDR10 states MaxCLL/MaxFALL, which need every
frame, before its first one, and MXF checks every timestamp first; those, `--resume` of frames
already on disk, and chunks run elsewhere (Ray) go through EXRs (docs/architecture.md).
"""

from __future__ import annotations

import fractions
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hdrvid import tonemap
from hdrvid.exr import stored_pixels
from hdrvid.job import Job, cut_times, frame_total
from hdrvid.render import OUTPUT_KINDS, SequenceStats, encode_frames
from hdrvid.source import (
    KEY_FRAMES,
    HdrSource,
    as_linear,
    key_sample,
    pts_shift,
    sidecar_fps,
)
from hdrvid.tonemap import SequenceKey

STREAMED_KINDS = ("sdr", "hlg", "prores", "dnxhr")
STREAM_SDR_FRAMES = 4 * KEY_FRAMES  # the shortest run whose sdr video streams
_QUEUE_FRAMES = 4  # frames waiting for each encoder: enough to ride out its uneven pace
_END, _ABORT = object(), object()


def streamable(job: Job, videos: dict[str, Path]) -> bool:
    """Whether the job's videos can be encoded as its frames come (see the module's note).
    SDR needs its key first, from the model's output at frames sampled over the run: that
    costs less than the EXR round trip only on runs much longer than the sample."""
    bounded = job.last is None or job.frame_times  # the audio's end known before the frames
    count = frame_total(job, len(job.frame_times or ()))
    counted = "sdr" not in videos or (count is not None and count >= STREAM_SDR_FRAMES)
    return bool(videos) and not job.done and bool(bounded) and counted and all(
        kind in STREAMED_KINDS and path.suffix.lower() != ".mxf" for kind, path in videos.items())


@dataclass
class StreamPlan:
    """The videos a job streams to, what each kind needs before its first frame, and what the
    encoders reported once the run is over."""

    videos: dict[str, Path]
    options: dict  # kind -> RenderOptions
    key: SequenceKey | None = None  # sdr's tone-mapping key (the engine's `stream_key`)
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # each encoder's busy time

    @property
    def tone_mapped(self) -> bool:
        return any(OUTPUT_KINDS[kind].tone_mapped for kind in self.videos)


def key_frames(job: Job) -> list[int]:
    """Indices of the output frames whose key stands for the whole run's: those `render` would
    sample from the run's EXRs (`source.key_sample`)."""
    count = frame_total(job, len(job.frame_times or ()))
    return [job.first + int(i) for i in key_sample(count)]


def stream_key(job: Job, images: Iterable[np.ndarray], dtype: type,
               matrix_t: np.ndarray | None, chromaticities: tuple[float, ...]) -> SequenceKey:
    """sdr's key from the model's output at `key_frames`, each stored and read back as its EXR
    would be: the key `render` would measure on the job's EXRs."""
    sequence = _stored_sequence(job, chromaticities)
    frames = (as_linear(stored_pixels(image, dtype, matrix_t), sequence) for image in images)
    return tonemap.sequence_key(frames, sequence.longest_exposure)


def _stored_sequence(job: Job, chromaticities: tuple[float, ...]) -> HdrSource:
    """What `render` reads from the job's EXRs and hdrvid.json before any frame: primaries,
    --scale factor and the longest exposure (the tone mapper's key)."""
    return HdrSource([], [], chromaticities=chromaticities,
                     scale_factor=float(job.scale_factor or 1.0),
                     longest_exposure=float(job.pattern.as_dict()["times"][-1]))


def stream_source(job: Job, chromaticities: tuple[float, ...], first: dict) -> HdrSource:
    """The `HdrSource` that `render` would read from the job's EXR folder, built before the
    frames exist: ``first`` is the record of the first output frame (`cut_times` needs it)."""
    info = job.info
    # the run's last frame, as far as the cut is concerned: the end of a bounded range
    last = first if job.last is None else {"index": job.last - 1, "time": first["time"]}
    cut = cut_times(info, job, [first, last], job.frame_times)
    sequence = _stored_sequence(job, chromaticities)
    if info.fps:
        sequence.fps = sidecar_fps(float(info.fps))
    sequence.source = info.path if Path(info.path).is_file() else None
    sequence.size = (info.height, info.width)
    sequence.audio_cut = (cut["start"], cut["end"], cut["offset"])
    if first["pts"] is not None and info.time_base:
        sequence.pts, sequence.time_base = [], fractions.Fraction(str(info.time_base))
    return sequence


class _Encoder:
    """One video, encoded in a thread from a bounded queue of frames."""

    def __init__(self, kind: str, path: Path, sequence: HdrSource, options, key):
        self.kind, self.frames = kind, queue.Queue(_QUEUE_FRAMES)
        self.error: BaseException | None = None
        self.warnings: list[str] = []
        self.busy = self._idle = 0.0
        self._thread = threading.Thread(
            target=self._run, args=(path, sequence, options, SequenceStats(key=key)),
            name=f"encode-{kind}", daemon=True)
        self._thread.start()

    def _run(self, path: Path, sequence: HdrSource, options, stats: SequenceStats) -> None:
        started = time.perf_counter()
        try:
            self.warnings = encode_frames(self.kind, self._frames(), sequence, path, options,
                                          stats)
        except BaseException as exc:  # handed to the run's thread by put / close
            self.error = exc
        self.busy = time.perf_counter() - started - self._idle

    def _frames(self):
        while True:
            tick = time.perf_counter()
            frame = self.frames.get()
            self._idle += time.perf_counter() - tick
            if frame is _END:
                return
            if frame is _ABORT:  # the encoder's partial file is removed on the way out
                raise _Aborted()
            yield frame

    def put(self, frame) -> float:
        """Queue a frame; returns the seconds spent waiting for room. Raises the encoder's
        error, if it failed."""
        tick = time.perf_counter()
        while self.error is None:
            try:
                self.frames.put(frame, timeout=0.1)
                return time.perf_counter() - tick
            except queue.Full:
                continue
        raise self.error

    def close(self, complete: bool) -> None:
        while self._thread.is_alive():
            try:
                self.frames.put(_END if complete else _ABORT, timeout=0.1)
                break
            except queue.Full:
                if not complete:  # drop what waits: none of it will be encoded
                    _drain(self.frames)
        self._thread.join()
        if complete and self.error is not None:
            raise self.error


class _Aborted(Exception):
    """The run failed or was interrupted: the encoders stop without renaming their files."""


def _drain(frames: queue.Queue) -> None:
    try:
        while True:
            frames.get_nowait()
    except queue.Empty:
        pass


class StreamSink:
    """Takes the run's frames where the EXR writer would (`engine.run_frames`) and feeds one
    encoder per video of ``plan``."""

    def __init__(self, job: Job, plan: StreamPlan, dtype: type, matrix_t: np.ndarray | None,
                 chromaticities: tuple[float, ...]):
        self.job, self.plan, self.dtype = job, plan, dtype
        self.matrix_t, self.chromaticities = matrix_t, chromaticities
        self.threads = len(plan.videos)
        self.write_seconds = self.wait_seconds = 0.0
        self._sequence: HdrSource | None = None
        self._encoders: list[_Encoder] = []
        self._shift = 0

    def write(self, entry: dict, image: np.ndarray) -> None:
        if self._sequence is None:  # the cut (and so the timestamps' offset) starts here
            self._start(entry)
        sequence = self._sequence
        sequence.times.append(entry["time"] - sequence.audio_cut[2])
        if sequence.pts is not None:
            sequence.pts.append(entry["pts"] - self._shift)
        frame = as_linear(stored_pixels(image, self.dtype, self.matrix_t), sequence)
        for encoder in self._encoders:
            self.wait_seconds += encoder.put(frame)

    def _start(self, first: dict) -> None:
        self._sequence = stream_source(self.job, self.chromaticities, first)
        offset, time_base = self._sequence.audio_cut[2], self._sequence.time_base
        self._shift = pts_shift(offset, time_base) if offset and time_base else 0
        self._encoders = [_Encoder(kind, path, self._sequence, self.plan.options[kind],
                                   self.plan.key)
                          for kind, path in self.plan.videos.items()]

    def close(self, complete: bool = True) -> None:
        """Finish the videos (``complete``), or stop their encoders and remove their partial
        files. Raises an encoder's error."""
        for encoder in self._encoders:
            encoder.close(complete)
        for encoder in self._encoders:
            self.plan.warnings += encoder.warnings
            self.plan.seconds[encoder.kind] = encoder.busy
        self.write_seconds = sum(encoder.busy for encoder in self._encoders)
