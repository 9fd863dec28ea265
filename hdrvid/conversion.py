"""`convert()`: one video in, an output folder (or one video file) out.

This module owns the output folder: where things go (`output_layout`), the checks before any
work, `--resume`, the sidecar ``hdrvid.json`` (written at every stage, so an interrupted or
failed run says what it left) and the videos, rendered from the EXRs or streamed from the
model (`hdrvid.stream`). The frames themselves are an engine's (`hdrvid.engine`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from hdrvid import __version__, tonemap
from hdrvid.calibrate import resolve_auto
from hdrvid.engine import Engine, LocalEngine, exr_colour
from hdrvid.errors import HdrvidError, OutputError
from hdrvid.exposure import ExposurePattern, resolve_exposures, trained_range_warning
from hdrvid.exr import read_exr, write_json_atomic
from hdrvid.job import (
    SCALE_NOTE,
    SCALES,
    ConvertOptions,
    Job,
    Progress,
    ProgressEvent,
    Report,
    cut_times,
    frame_range,
    scale_note,
)
from hdrvid.registry import get_spec
from hdrvid.render import (
    CONVERT_FORMATS,
    OTHER_MEDIA_SUFFIXES,
    VIDEO_FORMATS,
    VIDEO_SUFFIXES,
    check_format,
    render,
)
from hdrvid.response import AUTO, Response, load_response
from hdrvid.stream import StreamPlan, streamable
from hdrvid.video import VideoInfo, frame_timestamps, probe


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
    options, pattern = _plan(info, options, engine, report)
    for kind, path in videos.items():  # refused now, not after the conversion
        check_format(kind, path, options.render_options(kind))
    report.warnings += exr_colour(info, options)[2]
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
    if frames_dir != output and getattr(engine, "streams", False) and streamable(job, videos):
        job.stream = _stream_plan(job, videos, engine)
    sidecar = {**_sidecar(info, options, pattern), "response": report.response,
               "range": {"first": first, "last": last}, "scale": scale_note(job.scale_factor),
               "scale_factor": job.scale_factor}
    timestamps = _run(engine, job, report, sidecar, videos, progress, started)
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


def _plan(info: VideoInfo, options: ConvertOptions, engine: Engine, report: Report
          ) -> tuple[ConvertOptions, ExposurePattern]:
    """The exposures, the camera response (``--input-transfer auto``) and the loaded model:
    everything decided before the output folder is touched."""
    auto = options.input_transfer == AUTO
    response = Response() if auto else load_response(options.input_transfer)
    pattern, warnings = resolve_exposures(info, options.exposure_hints(), response)
    report.pattern = pattern
    report.warnings += warnings
    if auto:  # the curve from the video; the exposures were found assuming gamma 2.2
        spec, estimate = resolve_auto(info, pattern, report.warnings)
        options = dataclasses.replace(options, input_transfer=spec)
        report.response = estimate.as_dict() if estimate else None
    if get_spec(options.model).trained and (warning := trained_range_warning(pattern)):
        report.warnings.append(warning)
    options, warnings = engine.prepare(info, pattern, options)
    report.warnings += warnings
    return options, pattern


def _run(engine: Engine, job: Job, report: Report, sidecar: dict, videos: dict[str, Path],
         progress: Progress | None, started: float) -> list[dict]:
    """Run the engine over the job's frames, then render the videos; the sidecar records each
    stage, and what a failure or Ctrl-C left. Returns the frames' records."""
    if job.stream is not None:
        return _run_streamed(engine, job, report, sidecar, progress, started)
    frames_dir = job.frames_dir
    write_json_atomic(frames_dir / "hdrvid.json", {**sidecar, "status": "running"})
    timestamps: list[dict] = []
    try:
        engine.run(job, report, timestamps, progress, started)
        _remove_stale_frames(frames_dir, {entry["index"] for entry in timestamps})
        sidecar["range"] = cut_times(job.info, job, timestamps, job.frame_times)
        write_json_atomic(frames_dir / "hdrvid.json", {**sidecar, "status": "rendering",
                                                       "frames": timestamps})
        for kind, path in videos.items():
            _render_video(frames_dir, path, kind, job.options, report, progress)
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
    return timestamps


def _run_streamed(engine: Engine, job: Job, report: Report, sidecar: dict,
                  progress: Progress | None, started: float) -> list[dict]:
    """Run the engine with its frames streamed to the videos (`hdrvid.stream`). Nothing is
    kept for --resume: a failed or interrupted run removes its partial videos, and the hidden
    frames folder, which holds no frames."""
    timestamps: list[dict] = []
    try:
        engine.run(job, report, timestamps, progress, started)
    except BaseException:
        shutil.rmtree(job.frames_dir, ignore_errors=True)
        raise
    sidecar["range"] = cut_times(job.info, job, timestamps, job.frame_times)
    _record_stream(job.stream, report)
    return timestamps


def output_layout(input: Path, output: Path, format: str
                  ) -> tuple[Path, Path, dict[str, Path]]:
    """Where a conversion writes: (the folder, where the EXRs go, the videos by kind).

    ``output`` named like a video (.mp4, .mov, .mkv, .mxf) is that video file, for a format
    that makes one video; the EXRs it is rendered from are then kept in a hidden folder beside
    it until it is done. Any other name is a folder: EXRs (exr, all) and
    ``<input stem>-<format>`` videos go into it. Other media names (.avi, .png, ...) are
    refused rather than made folders.
    """
    if format not in CONVERT_FORMATS:
        raise OutputError(f"--format {format}: choose one of {', '.join(CONVERT_FORMATS)}")
    kinds = CONVERT_FORMATS[format]
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


def _stream_plan(job: Job, videos: dict[str, Path], engine: Engine) -> StreamPlan:
    """The videos the job's frames will stream to, with sdr's key measured first."""
    plan = StreamPlan(videos, {kind: job.options.render_options(kind) for kind in videos})
    if plan.tone_mapped:
        plan.key = engine.stream_key(job)
    return plan


def _record_stream(plan: StreamPlan, report: Report) -> None:
    report.warnings += plan.warnings
    report.stages.update({f"encode_{kind}": seconds for kind, seconds in plan.seconds.items()})
    report.videos += plan.videos.values()


def _render_video(frames_dir: Path, path: Path, kind: str, options: ConvertOptions,
                  report: Report, progress: Progress | None) -> None:
    tick = time.perf_counter()
    on_frame = (lambda done: progress(ProgressEvent(done, report.frames,
                                                    time.perf_counter() - tick, kind))
                ) if progress else None
    report.warnings += render(frames_dir, path, kind, options.render_options(kind), on_frame)
    report.stages[f"encode_{kind}"] = time.perf_counter() - tick
    report.videos.append(path)


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


def _earlier_factor(frames_dir: Path) -> float | None:
    """The --scale mid-grey factor of the run being resumed: its frames must not be mixed with
    frames at another factor (on a GPU, a second measurement may differ in the last bits)."""
    try:
        return json.loads((frames_dir / "hdrvid.json").read_text()).get("scale_factor")
    except (OSError, ValueError, AttributeError):
        return None
