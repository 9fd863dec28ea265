"""Video decoding and encoding with PyAV (the only module that imports av).

Decoded frames are R'G'B' float32 in [0, 1], converted from the Y'CbCr planes in float with the
stream's own matrix and range (ITU-R BT.601 / BT.709 / BT.2020). swscale's rgb24 path is biased
about one code dark and rounds to 8 bits, which costs ~0.65 dB PSNR-T in a merge, so it is used
only for RGB-coded sources.
"""

from __future__ import annotations

import fractions
import functools
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

from hdrvid import color as colour
from hdrvid.errors import InputError, OutputError

_MATRIX_FROM_AV = {1: "bt709", 4: "bt601", 5: "bt601", 6: "bt601", 7: "bt601", 9: "bt2020", 10: "bt2020"}
_MATRIX_TO_AV = {"bt601": Colorspace.ITU601, "bt709": Colorspace.ITU709, "bt2020": Colorspace.BT2020}


@dataclass(frozen=True)
class ColorInfo:
    """How Y'CbCr maps to R'G'B': matrix name, full or limited range, and whether tags said so."""

    matrix: str
    full_range: bool
    tagged: bool

    def describe(self) -> str:
        rng = "full" if self.full_range else "limited"
        return f"{self.matrix.upper()} {rng} range" + ("" if self.tagged else " (untagged: assumed)")


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` learns about a video without decoding it all."""

    path: Path
    width: int
    height: int
    codec: str
    pix_fmt: str
    bit_depth: int
    color: ColorInfo
    time_base: fractions.Fraction
    fps: fractions.Fraction | None
    frame_count: int | None
    duration: float | None
    audio_streams: int = 0
    container: str = ""
    color_tags: dict = field(default_factory=dict)
    rotation: int = 0  # display rotation, degrees clockwise; width and height are as displayed

    def as_dict(self) -> dict:
        return {
            "path": str(self.path), "width": self.width, "height": self.height,
            "codec": self.codec, "pix_fmt": self.pix_fmt, "bit_depth": self.bit_depth,
            "matrix": self.color.matrix, "full_range": self.color.full_range,
            "color_tagged": self.color.tagged,
            "fps": float(self.fps) if self.fps else None,
            "time_base": str(self.time_base), "frame_count": self.frame_count,
            "duration": self.duration, "audio_streams": self.audio_streams,
            "container": self.container, "rotation": self.rotation,
        }


@dataclass(frozen=True)
class YCbCr:
    """A frame's Y'CbCr planes as decoded (uint8, or uint16 above 8 bits; chroma may be
    subsampled), left for conversion to R'G'B' elsewhere: `read_frames(keep_ycbcr=True)` hands
    them to a GPU, which then receives 1.5 bytes a pixel (8-bit 4:2:0) instead of 12 and does
    the matrix and chroma upsampling itself."""

    planes: tuple[np.ndarray, np.ndarray, np.ndarray]
    bits: int
    color: ColorInfo
    turns: int = 0  # clockwise quarter turns that show the frame upright

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) as displayed."""
        h, w = self.planes[0].shape
        return (w, h) if self.turns % 2 else (h, w)

    @property
    def matrix(self) -> np.ndarray:
        """3×4 affine matrix from these code values to R'G'B' in [0, 1]."""
        return ycbcr_to_rgb_matrix(self.bits, self.color)

    def to_rgb(self) -> np.ndarray:
        """R'G'B' float32 (H, W, 3) in [0, 1], upright; chroma upsampled bilinearly
        (centre-sited)."""
        y, cb, cr = (p.astype(np.float32) for p in self.planes)
        h, w = y.shape
        if cb.shape != y.shape:
            cb = cv2.resize(cb, (w, h), interpolation=cv2.INTER_LINEAR)
            cr = cv2.resize(cr, (w, h), interpolation=cv2.INTER_LINEAR)
        return _upright(ycbcr_to_rgb(y, cb, cr, self.bits, self.color), self.turns)

    def sample(self, step: int) -> np.ndarray:
        """R'G'B' of every ``step``-th pixel each way (not upright; chroma from the nearest
        sample): enough for brightness statistics at a fraction of `to_rgb`'s cost."""
        y, cb, cr = self.planes
        rows, cols = np.arange(0, y.shape[0], step), np.arange(0, y.shape[1], step)
        sub_y, sub_x = -(-y.shape[0] // cb.shape[0]), -(-y.shape[1] // cb.shape[1])
        chroma = np.ix_(rows // sub_y, cols // sub_x)
        return ycbcr_to_rgb(y[np.ix_(rows, cols)], cb[chroma], cr[chroma], self.bits, self.color)


@dataclass
class Frame:
    """One decoded frame: its index in decode order, timestamp and pixels: R'G'B' float32
    (H, W, 3) in [0, 1], or (``rgb`` None) the Y'CbCr planes when the reader was asked to keep
    them."""

    index: int
    pts: int | None
    time: float
    rgb: np.ndarray | None
    ycbcr: YCbCr | None = None

    @property
    def pixels(self) -> np.ndarray | YCbCr:
        return self.ycbcr if self.rgb is None else self.rgb

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) as displayed."""
        return self.ycbcr.shape if self.rgb is None else self.rgb.shape[:2]

    def sample(self, pixels: int = 180) -> np.ndarray:
        """R'G'B' of every k-th pixel each way, the shorter side keeping about ``pixels``:
        enough for brightness statistics (the exposure-cycle check)."""
        step = max(1, min(self.shape) // pixels)
        return self.ycbcr.sample(step) if self.rgb is None else self.rgb[::step, ::step]


def _upright(rgb: np.ndarray, turns: int) -> np.ndarray:
    """(H, W, 3) turned ``turns`` quarter turns clockwise, as players show it."""
    return np.ascontiguousarray(np.rot90(rgb, k=-turns)) if turns else rgb


def _open(path: Path):
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found; check the path")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; pass a video file")
    try:
        # damaged files can carry metadata that is not UTF-8: it must not stop decoding
        container = av.open(str(path), metadata_errors="replace")
    except av.error.FFmpegError as exc:
        raise InputError(f"{path}: not a video file ffmpeg can read ({_reason(exc)}); "
                         "check the file or re-encode it") from exc
    if not container.streams.video or container.streams.video[0].codec_context is None:
        container.close()
        raise InputError(f"{path}: has no video stream ffmpeg can decode; pass a video file, "
                         "or re-encode it if it is damaged")
    return container


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc).split(":")[0] or type(exc).__name__


def _color_info(stream, pix_fmt: str, height: int) -> ColorInfo:
    cc = stream.codec_context
    matrix = _MATRIX_FROM_AV.get(int(cc.colorspace or 0))
    tagged = matrix is not None
    if matrix is None:  # untagged: BT.709 for HD and larger, BT.601 for SD
        matrix = "bt709" if height >= 720 else "bt601"
    color_range = int(cc.color_range or 0)
    full = color_range == 2 or pix_fmt.startswith("yuvj")
    return ColorInfo(matrix, full, tagged)


def probe(path: str | Path) -> VideoInfo:
    """Read a video's size, codec, colour tags, timing and audio streams (decodes nothing)."""
    path = Path(path)
    container = _open(path)
    with container:
        stream = container.streams.video[0]
        cc = stream.codec_context
        pix_fmt = cc.pix_fmt or "yuv420p"
        fmt = av.VideoFormat(pix_fmt)
        duration = None
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        fps = stream.average_rate or stream.guessed_rate
        count = stream.frames or (round(duration * float(fps)) if duration and fps else None)
        rotation = _display_rotation(container, stream)
        width, height = (cc.height, cc.width) if rotation % 180 else (cc.width, cc.height)
        return VideoInfo(
            path=path, width=width, height=height, codec=cc.name, pix_fmt=pix_fmt,
            bit_depth=max(c.bits for c in fmt.components),
            color=_color_info(stream, pix_fmt, cc.height),
            time_base=stream.time_base or fractions.Fraction(1, 1000),
            fps=fractions.Fraction(fps) if fps else None, frame_count=count or None,
            duration=duration, audio_streams=len(container.streams.audio),
            container=container.format.name,
            color_tags={"colorspace": int(cc.colorspace or 0), "range": int(cc.color_range or 0),
                        "primaries": int(cc.color_primaries or 0), "trc": int(cc.color_trc or 0)},
            rotation=rotation,
        )


def _display_rotation(container, stream) -> int:
    """Clockwise rotation (0, 90, 180, 270) a player applies to show the video upright, from the
    first frame's display matrix (phones and cameras store portrait video this way)."""
    try:
        frame = next(container.decode(stream), None)
    except av.error.FFmpegError:
        return 0  # undecodable streams are reported by read_frames, with the frame
    return _clockwise(frame.rotation) if frame is not None else 0


def _clockwise(rotation: float) -> int:
    """FFmpeg's display-matrix angle (counter-clockwise) as a clockwise multiple of 90°."""
    return round(-rotation / 90) % 4 * 90


def read_frames(path: str | Path, color: ColorInfo | None = None,
                max_frames: int | None = None, start: int = 0,
                timestamps: Sequence[int] | None = None,
                keep_ycbcr: bool = False) -> Iterator[Frame]:
    """Decode frames one at a time, in order, as R'G'B' float32 (H, W, 3) in [0, 1], or with
    ``keep_ycbcr`` as their Y'CbCr planes (`Frame.ycbcr`; RGB and grey frames still come as
    R'G'B').

    Frames are streamed: memory does not grow with the video's length. ``color`` overrides the
    matrix and range found by `probe`. Frames ``start`` to ``max_frames`` (exclusive) are
    yielded, with their indices in the whole video; given the video's `frame_timestamps`, the
    decoder seeks to the keyframe before ``start`` instead of decoding every frame before it.
    A decoding error raises InputError naming the frame.
    """
    path = Path(path)
    try:
        yield from _read_frames(path, color, max_frames, start, timestamps, keep_ycbcr)
    except _SeekMissed:  # the container's index did not lead to the frame: decode from the start
        yield from _read_frames(path, color, max_frames, start, None, keep_ycbcr)


class _SeekMissed(Exception):
    pass


def _read_frames(path: Path, color: ColorInfo | None, max_frames: int | None, start: int,
                 timestamps: Sequence[int] | None, keep_ycbcr: bool) -> Iterator[Frame]:
    container = _open(path)
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threading: 1.3-1.4x faster on single-slice streams
        if color is None:
            color = _color_info(stream, stream.codec_context.pix_fmt or "yuv420p",
                                stream.codec_context.height)
        time_base = stream.time_base or fractions.Fraction(1, 1000)
        fps = stream.average_rate or stream.guessed_rate or 25
        index = start
        size = None
        try:
            for index, frame in _indexed(container, stream, start, timestamps):
                if max_frames is not None and index >= max_frames:
                    break
                if index < start:
                    continue
                size = size or (frame.width, frame.height)
                if (frame.width, frame.height) != size:
                    raise InputError(f"{path}: frame {index} is {frame.width}×{frame.height} but "
                                     f"the video starts at {size[0]}×{size[1]}; split it where "
                                     "the size changes")
                pts = frame.pts
                time = float(pts * time_base) if pts is not None else index / float(fps)
                turns = _clockwise(frame.rotation) // 90  # shown upright, as players do
                ycbcr = frame_ycbcr(frame, color, turns) if keep_ycbcr else None
                if ycbcr is not None:
                    yield Frame(index, pts, time, None, ycbcr)
                else:
                    yield Frame(index, pts, time, _upright(frame_to_rgb(frame, color), turns))
                index += 1
        except av.error.FFmpegError as exc:
            raise InputError(f"{path}: decoding failed at frame {index} ({_reason(exc)}); "
                             "the file may be truncated or corrupt") from exc


def _indexed(container, stream, start: int, timestamps: Sequence[int] | None
             ) -> Iterator[tuple[int, av.VideoFrame]]:
    """(index in the video, frame) in display order, from the keyframe before ``start`` when
    ``timestamps`` allow a seek, else from the first frame."""
    if not (start and timestamps and start < len(timestamps)):
        yield from enumerate(container.decode(stream))
        return
    index_of = {pts: i for i, pts in enumerate(timestamps)}
    container.seek(timestamps[start], stream=stream, backward=True)
    first = True
    for frame in container.decode(stream):
        index = index_of.get(frame.pts)
        if index is None or (first and index > start):
            raise _SeekMissed
        first = False
        yield index, frame


@dataclass(frozen=True)
class Position:
    """A point in a video, or a length: a number of frames or of seconds (one of the two)."""

    frames: int | None = None
    seconds: float | None = None

    def describe(self) -> str:
        return f"frame {self.frames}" if self.frames is not None else f"{self.seconds:g} s"


def parse_position(text: str, option: str = "--start") -> Position:
    """``60`` (frames), ``2.5s`` (seconds) or ``[HH:]MM:SS[.fff]`` (a timecode as ffmpeg
    writes it). A bare number with a decimal point is refused: frames or seconds would be a
    guess."""
    value = text.strip().lower()
    try:
        if value.isdigit():
            return Position(frames=int(value))
        if value.endswith("s") and value[:-1]:
            seconds = float(value[:-1])
        elif ":" in value:
            parts = [float(part) for part in value.split(":")]
            if len(parts) > 3 or any(part < 0 for part in parts) or \
                    any(part >= 60 for part in parts[1:]):
                raise ValueError(value)
            seconds = sum(part * 60 ** k for k, part in enumerate(reversed(parts)))
        else:
            raise ValueError(value)
    except ValueError:
        raise InputError(f"{option} {text}: give frames (60), seconds (2.5s) or a timecode "
                         "([HH:]MM:SS[.fff], e.g. 00:00:02.5)") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise InputError(f"{option} {text}: a time must be zero or more seconds")
    return Position(seconds=seconds)


def frame_at(seconds: float, timestamps: Sequence[int] | None, time_base: fractions.Fraction,
             fps: fractions.Fraction | None) -> int:
    """Index of the first frame shown at or after ``seconds`` from the first frame, from the
    video's `frame_timestamps` (variable frame rates too), else from its frame rate."""
    tolerance = 5e-4  # timestamps are rounded to their time base: 2.5 s is frame 60 at 24 fps
    if timestamps:
        origin = timestamps[0]
        times = (float((pts - origin) * time_base) for pts in timestamps)
        return next((i for i, t in enumerate(times) if t >= seconds - tolerance),
                    len(timestamps))
    return math.ceil((seconds - tolerance) * float(fps or 25))


def frame_timestamps(path: str | Path) -> list[int] | None:
    """Presentation timestamps of the video's frames in display order, read from the packets
    without decoding (a few ms per thousand frames); None when the packets carry none.
    Their count is the exact frame count, and `read_frames` seeks with them."""
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        try:
            stamps = [packet.pts for packet in container.demux(stream) if packet.size]
        except av.error.FFmpegError as exc:
            raise InputError(f"{path}: cannot read the video's packets ({_reason(exc)}); the "
                             "file may be truncated or corrupt") from exc
    if not stamps or None in stamps or len(set(stamps)) != len(stamps):
        return None
    return sorted(stamps)


def frame_to_rgb(frame: av.VideoFrame, color: ColorInfo) -> np.ndarray:
    """Convert a decoded frame to R'G'B' float32 (H, W, 3) in [0, 1] (not rotated)."""
    ycbcr = frame_ycbcr(frame, color)
    if ycbcr is None:
        rgb = frame.to_ndarray(format="gbrpf32le")  # no matrix involved; gray is replicated
        return np.clip(rgb, 0.0, 1.0, out=rgb)
    return ycbcr.to_rgb()


def frame_ycbcr(frame: av.VideoFrame, color: ColorInfo, turns: int = 0) -> YCbCr | None:
    """A decoded frame's Y'CbCr planes (packed or big-endian formats are first made planar
    4:4:4); None for RGB and grey frames, which need no matrix."""
    fmt = frame.format
    if fmt.is_rgb or len(fmt.components) < 3:
        return None
    if not (fmt.is_planar and len(frame.planes) >= 3) or fmt.is_big_endian:
        frame = frame.reformat(format="yuv444p16le" if _bits(fmt) > 8 else "yuv444p")
    planes = tuple(_plane(frame, i) for i in range(3))
    return YCbCr(planes, _bits(frame.format), color, turns)


def _bits(fmt: av.VideoFormat) -> int:
    return max(c.bits for c in fmt.components)


def _plane(frame: av.VideoFrame, i: int) -> np.ndarray:
    plane = frame.planes[i]
    dtype = np.uint16 if plane.line_size >= 2 * plane.width and _bits(frame.format) > 8 else np.uint8
    data = np.frombuffer(plane, dtype=dtype)  # a view: the frame's buffer stays alive with it
    return data.reshape(plane.height, -1)[:, : plane.width]


@functools.lru_cache
def ycbcr_to_rgb_matrix(bits: int, color: ColorInfo) -> np.ndarray:
    """3×4 affine matrix from Y'CbCr code values to R'G'B' in [0, 1] (before clipping):
    `color.ycbcr_to_rgb_matrix` for the stream's matrix and range, computed once."""
    return colour.ycbcr_to_rgb_matrix(bits, color.matrix, color.full_range)


def ycbcr_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, bits: int,
                 color: ColorInfo) -> np.ndarray:
    """Y'CbCr code values (float32 arrays of equal shape) to R'G'B' float32 (H, W, 3) in [0, 1]
    (`color.ycbcr_to_rgb`)."""
    ycbcr = cv2.merge([np.asarray(p, np.float32) for p in (y, cb, cr)])
    return colour.ycbcr_to_rgb(ycbcr, ycbcr_to_rgb_matrix(bits, color))


@functools.lru_cache
def rgb_to_ycbcr_matrix(bits: int, color: ColorInfo) -> np.ndarray:
    """3×4 affine matrix from R'G'B' in [0, 1] to Y'CbCr code values: `ycbcr_to_rgb_matrix`'s
    inverse."""
    forward = np.vstack([ycbcr_to_rgb_matrix(bits, color).astype(np.float64), [0, 0, 0, 1]])
    return np.linalg.inv(forward)[:3].astype(np.float32)


def rgb_to_ycbcr(rgb: np.ndarray, bits: int, color: ColorInfo) -> tuple[np.ndarray, ...]:
    """R'G'B' float (H, W, 3) in [0, 1] to Y'CbCr code values (float32, unrounded): the
    inverse of `ycbcr_to_rgb`."""
    ycbcr = cv2.transform(np.asarray(rgb, np.float32), rgb_to_ycbcr_matrix(bits, color))
    return cv2.split(ycbcr)


ENCODERS = {"h264": "libx264", "hevc": "libx265", "av1": "libsvtav1", "prores": "prores_ks",
            "dnxhr": "dnxhd"}
_PRIMARIES_TO_AV = {"bt709": ColorPrimaries.BT709, "bt2020": ColorPrimaries.BT2020}
_TRANSFER_TO_AV = {"bt709": ColorTrc.BT709, "smpte2084": ColorTrc.SMPTE2084,
                   "arib-std-b67": ColorTrc.ARIB_STD_B67}
# x264/x265 preset names as SVT-AV1 presets (0 slowest ... 13 fastest) and NVENC presets
_SVT_PRESETS = {"ultrafast": 12, "superfast": 11, "veryfast": 10, "faster": 9, "fast": 8,
                "medium": 7, "slow": 5, "slower": 4, "veryslow": 2}
_NVENC_PRESETS = {"ultrafast": "p1", "superfast": "p2", "veryfast": "p3", "faster": "p3",
                  "fast": "p4", "medium": "p5", "slow": "p6", "slower": "p7", "veryslow": "p7"}
# the mezzanine encoders' 4:4:4 10-bit profiles: ProRes 4444 and DNxHR 444
_MEZZANINE_OPTIONS = {"prores_ks": {"profile": "4444", "vendor": "apl0"},
                      "dnxhd": {"profile": "dnxhr_444"}}
DNXHR_MIN_SIZE = (256, 120)  # FFmpeg's dnxhd encoder refuses smaller DNxHR frames
# audio codecs the MP4/MOV muxers take by stream copy; Matroska takes anything
_MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}


def resolve_encoder(codec: str) -> str:
    """``h264`` / ``hevc`` / ``av1`` (or an FFmpeg encoder name) -> an encoder this build has."""
    name = ENCODERS.get(codec, codec)
    try:
        av.Codec(name, "w")
    except (av.error.FFmpegError, ValueError) as exc:
        have = [c for c in ENCODERS.values() if _has_encoder(c)]
        raise OutputError(f"encoder {name!r} is not in this FFmpeg build; use one of "
                          f"{', '.join(have)}") from exc
    return name


def cuda_present() -> bool:
    """Whether an NVIDIA driver is loaded (its control device exists): the cheap test before
    trying NVENC, which costs a CUDA context."""
    return Path("/dev/nvidiactl").exists()


def nvenc_error(width: int, height: int, bits: int) -> str | None:
    """Why ``hevc_nvenc`` cannot encode frames of this size and depth here; None if it opens."""
    if not _has_encoder("hevc_nvenc"):
        return "not in this FFmpeg build"
    context = av.CodecContext.create("hevc_nvenc", "w")
    context.width, context.height = width + width % 2, height + height % 2
    context.pix_fmt = "p010le" if bits > 8 else "yuv420p"
    context.time_base = fractions.Fraction(1, 25)
    try:
        context.open()  # freed with the object: PyAV has no close
    except (av.error.FFmpegError, ValueError) as exc:
        log = str(exc).rpartition("last error log: ")[2] if "last error log" in str(exc) else ""
        return log.strip() or _reason(exc)  # the log names the cause: no driver, no GPU, ...
    return None


def pick_hevc_encoder(width: int, height: int, bits: int) -> tuple[str, str | None]:
    """``hevc_nvenc`` when CUDA is present and the encoder opens, else ``libx265``; with a note
    when NVENC was tried and failed."""
    if not cuda_present():
        return "libx265", None
    reason = nvenc_error(width, height, bits)
    if reason is None:
        return "hevc_nvenc", None
    return "libx265", f"hevc_nvenc did not open ({reason}); encoded with libx265 instead"


def _has_encoder(name: str) -> bool:
    try:
        av.Codec(name, "w")
        return True
    except (av.error.FFmpegError, ValueError):
        return False


class VideoWriter:
    """Encode R'G'B' float frames (H, W, 3) in [0, 1] to 4:2:0 (or, with ``chroma="444"``, 4:4:4)
    video with explicit colour tags.

    The RGB -> Y'CbCr conversion is done here in float (the exact inverse of decoding), so
    clips written by tests and by `hdrvid.synth` decode back without bias. ``pts`` may be given
    per frame (in units of ``time_base``) for variable-frame-rate output. Odd sizes are padded
    to even ones by repeating the last row and column. ``primaries`` / ``transfer`` tag the
    stream (e.g. bt2020 / smpte2084 for HDR10); ``codec_params`` go to x265 as x265-params and
    to SVT-AV1 as svtav1-params. prores_ks writes ProRes 4444 and dnxhd DNxHR 444 (both 4:4:4
    10-bit; crf and preset do not apply). ``audio_from`` copies the audio streams of another
    file, interleaved by timestamp; ``audio_cut`` (start, end, offset) in seconds on that
    file's clock keeps only the packets that start from ``start`` and before ``end`` (None:
    no bound), moved ``offset`` earlier: the audio of a part of a video.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: fractions.Fraction | int = 24,
                 codec: str = "libx264", bits: int = 8, crf: int = 16,
                 color: ColorInfo = ColorInfo("bt709", False, True),
                 time_base: fractions.Fraction | None = None, preset: str = "medium",
                 primaries: str | None = None, transfer: str | None = None,
                 codec_params: str = "", audio_from: str | Path | None = None,
                 chroma: str = "420",
                 audio_cut: tuple[float | None, float | None, float] = (None, None, 0.0)):
        codec = resolve_encoder(codec)
        _check_size(path, codec, width, height)
        if codec == "libsvtav1":
            os.environ.setdefault("SVT_LOG", "1")  # errors only: SVT-AV1 logs ~22 lines a stream
        self.path = Path(path)
        self.bits, self.color, self.chroma = bits, color, chroma
        self.width, self.height = width + width % 2, height + height % 2
        self.warnings: list[str] = []
        try:
            self._container = av.open(str(self.path), "w")
        except (av.error.FFmpegError, ValueError) as exc:
            raise OutputError(f"{self.path}: cannot create the video ({_reason(exc)}); use a .mp4, "
                              ".mkv or .mov name in a writable folder") from exc
        self._stream = self._container.add_stream(codec, rate=fractions.Fraction(fps))
        self._stream.width, self._stream.height = self.width, self.height
        self._pix_fmt = f"yuv{chroma}p" + ("" if bits == 8 else "10le")
        # NVENC takes 10-bit 4:2:0 as P010 only: frames are repacked (exactly) before encoding
        self._stream.pix_fmt = "p010le" if codec == "hevc_nvenc" and bits > 8 else self._pix_fmt
        # frame pts count in this time base: 1/fps unless given (variable frame rate)
        self._time_base = time_base or 1 / fractions.Fraction(fps)
        if time_base is not None:  # the encoder reads frame pts in its own time base
            self._stream.time_base = time_base
            self._stream.codec_context.time_base = time_base
        cc = self._stream.codec_context
        if color.tagged:
            cc.colorspace = _MATRIX_TO_AV[color.matrix]
            cc.color_range = ColorRange.JPEG if color.full_range else ColorRange.MPEG
        if primaries:
            cc.color_primaries = _PRIMARIES_TO_AV[primaries]
        if transfer:
            cc.color_trc = _TRANSFER_TO_AV[transfer]
        self._stream.options = _encoder_options(codec, crf, preset, codec_params, bits)
        if codec in ("libx265", "hevc_nvenc") and self._container.format.name in ("mp4", "mov"):
            self._stream.codec_tag = "hvc1"  # what Apple players need
        self._count = 0
        self._audio = _AudioCopy(audio_from, self._container, self.warnings, audio_cut) \
            if audio_from else None

    def write(self, rgb: np.ndarray, pts: int | None = None) -> None:
        rgb = np.clip(rgb, 0, 1).astype(np.float32, copy=False)
        h, w = rgb.shape[:2]
        if (h, w) != (self.height, self.width):
            rgb = np.pad(rgb, ((0, self.height - h), (0, self.width - w), (0, 0)), mode="edge")
        h, w = self.height, self.width
        y, cb, cr = rgb_to_ycbcr(rgb, self.bits, self.color)
        if self.chroma == "420":
            # 2x2 box average of chroma: centre-sited, matching the bilinear upsampling on decode
            cb = cv2.resize(cb, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
            cr = cv2.resize(cr, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        frame = _frame_from_planes((y, cb, cr), self._pix_fmt, self.bits, w, h)
        if frame.format.name != self._stream.pix_fmt:
            frame = frame.reformat(format=self._stream.pix_fmt)
        # the frames carry the tags too: ProRes writes them into each frame's header from there
        cc = self._stream.codec_context
        frame.color_primaries, frame.color_trc = cc.color_primaries, cc.color_trc
        frame.colorspace, frame.color_range = cc.colorspace, cc.color_range
        frame.pts = self._count if pts is None else pts
        if self._audio and frame.pts is not None:
            self._audio.mux_until(float(frame.pts * self._time_base))
        self._mux(self._stream.encode(frame))
        self._count += 1

    def _mux(self, packets) -> None:
        for packet in packets:
            self._container.mux(packet)

    def close(self) -> None:
        self._mux(self._stream.encode())
        if self._audio:
            self._audio.mux_until(float("inf"))
            self._audio.close()
        self._container.close()

    def __enter__(self) -> VideoWriter:  # noqa: PYI034
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_size(path, codec: str, width: int, height: int) -> None:
    if codec == "libx265" and min(width, height) < 64:
        # x265 4.2 corrupts its heap on 10-bit frames narrower than one 64-pixel CTU
        raise OutputError(f"{path}: HEVC needs frames of at least 64×64 (these are "
                          f"{width}×{height}); use --codec h264 or a larger input")
    if codec == "dnxhd" and (width < DNXHR_MIN_SIZE[0] or height < DNXHR_MIN_SIZE[1]):
        raise OutputError(f"{path}: DNxHR needs frames of at least {DNXHR_MIN_SIZE[0]}×"
                          f"{DNXHR_MIN_SIZE[1]} (these are {width}×{height}); use --format "
                          "prores or a larger input")


def _encoder_options(codec: str, crf: int, preset: str, params: str, bits: int) -> dict:
    """The encoder's options (all str, as PyAV wants them) for a quality, an x264-style preset
    name and the encoder's own parameter string."""
    if codec in _MEZZANINE_OPTIONS:
        return dict(_MEZZANINE_OPTIONS[codec])
    if codec == "libsvtav1":
        opts = {"crf": str(crf), "preset": str(_SVT_PRESETS.get(preset, preset))}
        return {**opts, "svtav1-params": params} if params else opts
    if codec == "hevc_nvenc":
        return {"preset": _NVENC_PRESETS.get(preset, preset), "rc": "vbr", "cq": str(crf),
                "profile": "main10" if bits > 8 else "main"}
    opts = {"crf": str(crf), "preset": preset}
    if codec == "libx265":
        opts["x265-params"] = ":".join(p for p in ("log-level=error", params) if p)
    return opts


def _frame_from_planes(planes, pix_fmt: str, bits: int, width: int, height: int
                       ) -> av.VideoFrame:
    """A frame of ``pix_fmt`` from float Y', Cb, Cr code values (rounded and clipped here)."""
    dtype = np.uint8 if bits == 8 else np.uint16
    frame = av.VideoFrame(width, height, pix_fmt)
    for plane, values in zip(frame.planes, planes):
        codes = np.clip(np.rint(values), 0, 2**bits - 1).astype(dtype)
        padded = np.zeros((plane.height, plane.line_size // codes.itemsize), dtype)
        padded[:, : codes.shape[1]] = codes  # rows are padded to the frame's line size
        plane.update(padded)
    return frame


class _AudioCopy:
    """The audio streams of ``source``, copied packet by packet into ``output`` (re-encoded to
    AAC only where the container cannot hold the codec; to 24-bit PCM at 48 kHz for MXF, which
    holds nothing else)."""

    def __init__(self, source: str | Path, output, warnings: list[str],
                 cut: tuple[float | None, float | None, float] = (None, None, 0.0)):
        self._start, self._end, self._offset = cut
        self._input = av.open(str(source))
        self._output = output
        self._map = {}
        self._resamplers = {}
        for stream in self._input.streams.audio:
            name = stream.codec_context.name
            if output.format.name == "mxf":
                self._map[stream.index] = (output.add_stream("pcm_s24le", rate=48000), stream)
                self._resamplers[stream.index] = av.AudioResampler(
                    format="s32", layout=stream.codec_context.layout, rate=48000)
                warnings.append(f"audio stream {stream.index} ({name}) re-encoded to 24-bit "
                                "PCM at 48 kHz: MXF holds no other audio")
            elif output.format.name in ("mp4", "mov") and name not in _MP4_AUDIO:
                self._map[stream.index] = (output.add_stream("aac", rate=stream.rate), stream)
                warnings.append(f"audio stream {stream.index} ({name}) re-encoded to AAC: "
                                f"{output.format.name} cannot hold {name}")
            else:
                self._map[stream.index] = (output.add_stream_from_template(stream), None)
        self._packets = self._input.demux(*self._input.streams.audio) if self._map else iter(())
        self._next = None

    def mux_until(self, seconds: float) -> None:
        """Mux every audio packet that starts before ``seconds`` (on the output's clock)."""
        while True:
            if self._next is None:
                self._next = next(self._packets, None)
                if self._next is None:
                    return
            packet = self._next
            start = None if packet.pts is None else float(packet.pts * packet.time_base)
            if start is not None and start - self._offset > seconds:
                return
            self._next = None
            if packet.dts is None and packet.size == 0:
                continue  # a demuxer flush packet
            if start is not None and not self._kept(start):
                continue
            if self._offset:
                self._move(packet)
            out_stream, decode_from = self._map[packet.stream.index]
            if decode_from is None:
                packet.stream = out_stream
                self._output.mux(packet)
            else:
                for frame in self._resampled(packet.stream.index, packet.decode()):
                    frame.pts = None  # the encoder counts samples itself
                    for encoded in out_stream.encode(frame):
                        self._output.mux(encoded)

    def _kept(self, start: float) -> bool:
        """Whether a packet starting at ``start`` (seconds) lies in the cut: whole packets are
        copied, as ffmpeg's stream copy does, so the cut is exact to one packet."""
        tolerance = 1e-6
        return ((self._start is None or start >= self._start - tolerance) and
                (self._end is None or start < self._end - tolerance))

    def _move(self, packet) -> None:
        shift = round(self._offset / packet.time_base)
        packet.pts = None if packet.pts is None else packet.pts - shift
        packet.dts = None if packet.dts is None else packet.dts - shift

    def _resampled(self, index: int, frames):
        resampler = self._resamplers.get(index)
        for frame in frames:
            yield from resampler.resample(frame) if resampler else (frame,)

    def close(self) -> None:
        for index, (out_stream, decode_from) in self._map.items():
            if decode_from is not None:
                if index in self._resamplers:  # what the resampler still holds
                    for frame in self._resamplers[index].resample(None):
                        frame.pts = None
                        for encoded in out_stream.encode(frame):
                            self._output.mux(encoded)
                for encoded in out_stream.encode():
                    self._output.mux(encoded)
        self._input.close()
