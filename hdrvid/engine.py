"""The frame engine: decode -> model -> EXR writer (or video encoders, `hdrvid.stream`) for one
job, with memory flat in its length.

A decode thread feeds a bounded queue (`_Prefetch`), the model runs in the calling thread on
batches of windows (splitting a batch, then tiling a window, when memory runs out), and a pool
of writer threads compresses EXRs behind another bounded queue. `LocalEngine` runs it in this
process; `hdrvid.cluster.RayEngine` runs chunks of the video on Ray actors through the same
`run_frames`. Engines never touch the output folder's other files: that is `conversion`'s.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from hdrvid import __version__, tonemap
from hdrvid.errors import ExposureError, InputError, ModelError, OutputError
from hdrvid.exposure import DETECTION_FRAMES, CycleMonitor, ExposurePattern, flicker_stops
from hdrvid.exr import ExrSequenceWriter, frame_name, primaries_header
from hdrvid.job import (
    END,
    ConvertOptions,
    Job,
    Progress,
    ProgressEvent,
    Report,
    frame_total,
    model_key,
    scale_note,
)
from hdrvid.predictor import HdrPredictor
from hdrvid.primaries import CHROMATICITIES, PRIMARIES, conversion
from hdrvid.response import Response, load_response
from hdrvid.stream import StreamSink, key_frames, stream_key
from hdrvid.video import Frame, VideoInfo, read_frames
from hdrvid.windows import Chunk, Window, halo, sliding_windows

# the output alternating more than this with the exposure cycle means the exposures are wrong:
# right ones merge every frame to the same scale
FLICKER_STOPS = 0.5

# frames spread over the part converted whose log-average sets --scale mid-grey's one factor:
# the tone mapper's key is measured on a like sample (render.py)
SCALE_SAMPLES = 8
# frames apart beyond which sampling a run's output seeks rather than decodes through: typical
# keyframe intervals are longer, so a seek decodes about as much and costs a demuxer reset
SEEK_FRAMES = 48


class Engine(Protocol):
    """What `convert` needs from an engine: load the model for an input, then convert its
    frames (writing EXRs into ``job.frames_dir`` and a record per frame into ``entries``)."""

    def prepare(self, info: VideoInfo, pattern: ExposurePattern, options: ConvertOptions
                ) -> tuple[ConvertOptions, list[str]]: ...

    def run(self, job: Job, report: Report, entries: list[dict], progress: Progress | None,
            started: float) -> None: ...

    def log_average(self, job: Job) -> float: ...

    # engines that run in this process can stream frames to encoders, and give the key
    streams: bool

    def stream_key(self, job: Job) -> tonemap.SequenceKey: ...


def build_predictor(options: ConvertOptions, period: int) -> HdrPredictor:
    """The model the options ask for, for a cycle of ``period`` exposures."""
    return HdrPredictor(options.model, period, options.device,
                        load_response(options.input_transfer), options.weights,
                        options.precision, options.tile, options.yuv_on)


class LocalEngine:
    """Runs the model in this process: the default engine of `convert`."""

    def __init__(self) -> None:
        self.predictor: HdrPredictor | None = None
        self._loaded: tuple | None = None

    def prepare(self, info: VideoInfo, pattern: ExposurePattern, options: ConvertOptions
                ) -> tuple[ConvertOptions, list[str]]:
        """Load the model for this input (kept for the next input of a batch when model and
        cycle stay the same); the batch size is lowered where memory is short. Returns the
        options with that batch size, and warnings."""
        wanted = model_key(options, pattern)
        if wanted != self._loaded:
            self.predictor, self._loaded = build_predictor(options, pattern.period), wanted
        batch_size, warning = self.predictor.check_memory(info.height, info.width,
                                                          options.batch_size)
        warnings = self.predictor.warnings + ([warning] if warning else [])
        return dataclasses.replace(options, batch_size=batch_size), warnings

    def run(self, job: Job, report: Report, entries: list[dict], progress: Progress | None,
            started: float) -> None:
        run_frames(job, self.predictor, report, entries, progress, started)
        check_complete(job, report.frames)

    def log_average(self, job: Job) -> float:
        return log_average(job, self.predictor)

    streams = True  # its frames can go straight to encoders (`hdrvid.stream`)

    def stream_key(self, job: Job) -> tonemap.SequenceKey:
        """The tone-mapping key of a streamed job: the model's output at the frames `render`
        would sample from the job's EXRs, stored and read back as they would be."""
        dtype, matrix_t, chromaticities = _stored_form(job)
        images = outputs_at(job, self.predictor, key_frames(job),
                            torch.float16 if dtype == np.float16 else torch.float32)
        return stream_key(job, images, dtype, matrix_t, chromaticities)


def run_frames(job: Job, predictor: HdrPredictor, report: Report, timestamps: list[dict],
               progress: Progress | None = None, started: float | None = None,
               chunk: Chunk | None = None) -> None:
    """Decode, run the model on the windows of frames not in ``job.done``, write them; only
    ``chunk``'s frames when given (decoded with its halo)."""
    info, pattern, options = job.info, job.pattern, job.options
    started = time.perf_counter() if started is None else started
    writer = _frame_sink(job)
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
    # Python's full collections walk every object alive (many, once torch is imported) holding
    # the GIL; what exists now outlives the loop, so the collector skips it until the end
    gc.freeze()
    complete = False
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
        complete = True
    finally:
        gc.unfreeze()
        decoded.close()
        if isinstance(writer, StreamSink):  # a failed run's videos are removed, not finished
            writer.close(complete)
        else:  # EXRs written are complete either way: --resume keeps them
            writer.close()
        _record_run(report, predictor, options.batch_size or 1, decoded, writer, stages)


def _frame_sink(job: Job) -> ExrSequenceWriter | StreamSink:
    """Where the job's frames go: its EXR writer (pixel type, compression, colour header and
    --scale factor), or the encoders of the videos it streams to."""
    if job.stream is not None:
        return StreamSink(job, job.stream, *_stored_form(job))
    options = job.options
    colour, matrix = _colour_and_matrix(job)
    return ExrSequenceWriter(
        job.frames_dir, options.exr_compression(), half=not options.float32, fps=job.info.fps,
        workers=options.workers,
        attributes={**_exr_attributes(options, job.scale_factor), **colour}, matrix=matrix)


def _colour_and_matrix(job: Job) -> tuple[dict, np.ndarray | None]:
    """The job's EXR colour header and the writer's matrix, with the --scale factor in it."""
    colour, matrix, _ = exr_colour(job.info, job.options)
    return colour, _scaled(matrix, job.scale_factor)


def _stored_form(job: Job) -> tuple[type, np.ndarray | None, tuple[float, ...]]:
    """How the job's EXRs would store its frames: (pixel type, the writer's matrix transposed,
    the header's chromaticities as 32-bit floats), for frames that skip the EXRs."""
    colour, matrix = _colour_and_matrix(job)
    return (np.float32 if job.options.float32 else np.float16,
            None if matrix is None else np.asarray(matrix, np.float32).T.copy(),
            tuple(float(c) for c in np.asarray(colour["chromaticities"], np.float32)))


def _record_run(report: Report, predictor: HdrPredictor, batch: int, decoded: _Prefetch,
                writer: ExrSequenceWriter | StreamSink, stages: dict[str, float]) -> None:
    """Where the run's time went, and how the model ran, into ``report``."""
    report.stages = {"decode": decoded.busy_seconds - stages["prepare"], **stages,
                     "write": writer.write_seconds,
                     "decode_wait": decoded.wait_seconds, "write_wait": writer.wait_seconds}
    report.writer_threads = writer.threads
    report.batch_size = batch
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
            height, width = _input_size(windows[0])
            tile = min(512, (predictor.tile or max(height, width)) // 2)
            if tile < 64:
                raise ModelError(
                    f"out of {predictor.device.type.upper()} memory on one {width}×{height} "
                    f"window of model {predictor.spec.name}, even in 64×64 tiles; use --device "
                    "cpu, a smaller input, or a device with more memory") from exc
            predictor.use_tiles(tile)
            warnings.append(f"out of memory on one {width}×{height} window: frames from "
                            f"{windows[0].center} on run in {tile}×{tile} tiles (results "
                            "differ slightly at tile seams)")
            return _infer(predictor, windows, pattern, stages, warnings, dtype)
    half = len(windows) // 2
    return np.concatenate([_infer(predictor, windows[:half], pattern, stages, warnings, dtype),
                           _infer(predictor, windows[half:], pattern, stages, warnings, dtype)])


def _input_size(window: Window) -> tuple[int, int]:
    """(height, width) of a window's frames as the model reads them (`_prepared`'s tensors)."""
    _, tensor = window.items[0]
    return tuple(tensor.shape[-2:])


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
    # (numpy's cast of the permuted view is several times slower)
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
    luminance = float(np.mean(tonemap.luminance_bt709(np.asarray(image[::8, ::8], np.float32))))
    return math.log2(max(luminance, 1e-6))


def _write_frame(writer: ExrSequenceWriter | StreamSink, entry: dict, image: np.ndarray
                 ) -> None:
    if isinstance(writer, StreamSink):
        writer.write(entry, image)
        return
    attributes = {"hdrvid:time": float(entry["time"]), "hdrvid:exposure": float(entry["exposure"])}
    if entry["pts"] is not None:
        attributes["hdrvid:pts"] = int(entry["pts"])
    writer.write(entry["index"], image, attributes)


def _batched(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def log_average(job: Job, predictor: HdrPredictor, samples: int = SCALE_SAMPLES) -> float:
    """The log-average luminance (`tonemap.log_average_luminance`) of the frames ``job`` will
    write, on the native scale, measured on up to ``samples`` of them spread evenly over the
    part converted."""
    info = job.info
    count = frame_total(job, len(job.frame_times or ())) or DETECTION_FRAMES
    centres = np.unique(np.linspace(job.first, job.first + count - 1,
                                    min(samples, count)).round().astype(int))
    to_709 = None if info.color_tags.get("primaries") != 9 else \
        conversion(CHROMATICITIES["bt2020"], CHROMATICITIES["rec709"]).T.astype(np.float32)
    pooled = []
    for image in outputs_at(job, predictor, centres, torch.float32):
        step = max(1, min(image.shape[:2]) // tonemap.KEY_PIXELS)
        sample = image[::step, ::step].reshape(-1, 3)
        pooled.append(sample if to_709 is None else sample @ to_709)
    if not pooled:
        raise InputError(f"{info.path}: no frame to measure --scale mid-grey on; check --start")
    return tonemap.log_average_luminance(np.concatenate(pooled))


def outputs_at(job: Job, predictor: HdrPredictor, centres: Iterable[int],
               out_dtype: torch.dtype) -> Iterator[np.ndarray]:
    """The model's output frames at ``centres`` (ascending), each run with its true neighbours
    as in the run: a sample of a run's frames before the run. Centres close together are
    decoded in one pass, distant ones after a seek."""
    info, pattern = job.info, job.pattern
    stages = dict.fromkeys(("prepare", "model", "fetch"), 0.0)
    for group in _decoding_groups(list(centres)):
        span = Chunk(str(info.path), group[0], group[-1] + 1,
                     halo(predictor.window, pattern.period))
        decoded = read_frames(info.path, info.color, span.decode_stop, span.decode_start,
                              job.frame_times, predictor.yuv_on_device)
        prepared = ((frame, predictor.prepare(frame.pixels)) for frame in decoded)
        for window in span.windows(_windows(prepared, predictor.window, pattern.period,
                                            info.path)):
            if window.center in group:
                yield _infer(predictor, [window], pattern, stages, [], out_dtype)[0]


def _decoding_groups(centres: list[int]) -> list[list[int]]:
    """``centres`` in runs whose gaps are short enough to decode through rather than seek."""
    groups: list[list[int]] = []
    for centre in centres:
        if groups and centre - groups[-1][-1] <= SEEK_FRAMES:
            groups[-1].append(centre)
        else:
            groups.append([centre])
    return groups


def exr_colour(info: VideoInfo, options: ConvertOptions
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


def _exr_attributes(options: ConvertOptions, factor: float) -> dict:
    return {"hdrvid:scale": factor, "hdrvid:model": options.model,
            "hdrvid:version": __version__, "comment": f"hdrvid {scale_note(factor)}"}


def _scaled(matrix: np.ndarray | None, factor: float) -> np.ndarray | None:
    """The writer's colour matrix with the --scale factor folded in (None: neither)."""
    if factor == 1.0:
        return matrix
    return (np.eye(3) if matrix is None else np.asarray(matrix)) * factor


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
