"""Video probing and decoding with PyAV (with `encode.py`, the only module that imports av).

Decoded frames are R'G'B' float32 in [0, 1], converted from the Y'CbCr planes in float with the
stream's own matrix and range (ITU-R BT.601 / BT.709 / BT.2020). swscale's rgb24 path is biased
about one code dark and rounds to 8 bits, which lowers a merge's PSNR-T, so it is used only for
RGB-coded sources. Also here: positions in a video (`parse_position`, `frame_at`) and the
packets' timestamps (`frame_timestamps`). Encoding is in `encode.py`.
"""

from __future__ import annotations

import fractions
import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

from hdrvid import color as colour
from hdrvid.errors import InputError

_MATRIX_FROM_AV = {1: "bt709", 4: "bt601", 5: "bt601", 6: "bt601", 7: "bt601", 9: "bt2020", 10: "bt2020"}


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
        raise InputError(f"{path}: not a video file ffmpeg can read ({error_reason(exc)}); "
                         "check the file or re-encode it") from exc
    if not container.streams.video or container.streams.video[0].codec_context is None:
        container.close()
        raise InputError(f"{path}: has no video stream ffmpeg can decode; pass a video file, "
                         "or re-encode it if it is damaged")
    return container


def error_reason(exc: Exception) -> str:
    """A PyAV error's cause in a few words (FFmpeg's message without its details)."""
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
        stream.thread_type = "AUTO"  # frame threading: single-slice streams decode faster
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
            raise InputError(f"{path}: decoding failed at frame {index} ({error_reason(exc)}); "
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
    without decoding (far cheaper than decoding); None when the packets carry none.
    Their count is the exact frame count, and `read_frames` seeks with them."""
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        try:
            stamps = [packet.pts for packet in container.demux(stream) if packet.size]
        except av.error.FFmpegError as exc:
            raise InputError(f"{path}: cannot read the video's packets ({error_reason(exc)}); the "
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
