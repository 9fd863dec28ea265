"""The linear HDR frames that videos and PNGs are rendered from (`HdrSource`).

An EXR sequence (an hdrvid output folder, a folder of EXRs, a glob or one file) or an HDR10
(PQ) / HLG video, read back to linear Rec.709 on the native hdrvid scale (1.0 = the clipping
point of the shortest exposure): EXR values are divided by the ``--scale`` factor they were
written with, other primaries converted. PQ video is read with 1.0 = ``peak_nits`` cd/m², HLG
with 1.0 = E = 1.

Timestamps come from the sequence's ``hdrvid.json`` (the input video's own PTS, so variable
frame rate stays variable), and audio from the video the sequence was made from; an HDR video
keeps its own timestamps and audio.
"""

from __future__ import annotations

import fractions
import glob
import itertools
import json
import math
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hdrvid import primaries, tonemap
from hdrvid.errors import InputError
from hdrvid.exr import BT2020_CHROMATICITIES, REC709_CHROMATICITIES, read_exr, read_exr_header
from hdrvid.video import frame_timestamps, probe, read_frames

# FFmpeg colour tag values (ISO/IEC 23091-2) of HDR video inputs
TRC_PQ, TRC_HLG, PRIMARIES_BT709 = 16, 18, 1
KEY_FRAMES = 24  # frames sampled over a sequence for its tone-mapping key


@dataclass
class HdrSource:
    """Linear HDR frames in order, with what a video made of them needs: their timing,
    primaries and scale, and the video they came from (for its audio). The frames are EXR
    files (``files``), an HDR video (``video``), or, given to `render.encode_frames`, any
    iterable (then ``size`` is set)."""

    files: list[Path]
    times: list[float]
    pts: list[int] | None = None
    time_base: fractions.Fraction | None = None
    fps: fractions.Fraction = fractions.Fraction(24)
    source: Path | None = None
    chromaticities: tuple[float, ...] = REC709_CHROMATICITIES  # of the linear frames
    warnings: list[str] = field(default_factory=list)
    video: Path | None = None  # an HDR video to decode instead of EXRs
    transfer: int = 0  # the video's transfer tag: TRC_PQ or TRC_HLG
    peak_nits: float = 1000.0  # PQ video: cd/m² of hdrvid 1.0
    size: tuple[int, int] | None = None  # (H, W) of a video's frames
    # the longest exposure's relative time on the frames' scale (hdrvid.json), for the tone
    # mapper's key; None: unknown
    longest_exposure: float | None = None
    # a part of the source (convert --start, --frames): the audio kept, from start to end
    # (seconds on the source's clock, None: unbounded), moved offset seconds earlier as the
    # frames' timestamps are
    audio_cut: tuple[float | None, float | None, float] = (None, None, 0.0)
    # what the EXR values were multiplied by (convert --scale; hdrvid.json, else the EXRs'
    # hdrvid:scale): frames are divided by it on reading, so that everything here works on the
    # native scale (1.0 = the clipping point of the shortest exposure: --peak-nits, HLG's peak)
    scale_factor: float = 1.0

    @property
    def bt2020(self) -> bool:
        """The frames hold BT.2020 primaries (a BT.2020-tagged input)."""
        return primaries.named(self.chromaticities) == "bt2020"

    def __len__(self) -> int:
        return len(self.times)


def read_source(source: str | Path, peak_nits: float = 1000.0) -> HdrSource:
    """An hdrvid output folder, a folder of EXRs, a glob (``'out/*.exr'``), one EXR file, or an
    HDR10 / HLG video (PQ read with 1.0 = ``peak_nits`` cd/m²)."""
    text = str(source)
    path = Path(source)
    if path.is_file() and path.suffix.lower() != ".exr":
        return _video_sequence(path, peak_nits)
    if any(c in text for c in "*?["):
        files = sorted(Path(p) for p in glob.glob(text))
    elif path.is_dir():
        files = sorted(path.glob("frame_*.exr")) or sorted(path.glob("*.exr"))
    elif path.is_file():
        files = [path]
    else:
        raise InputError(f"{source}: not found; pass an EXR folder, a glob or an EXR file")
    if not files:
        raise InputError(f"{source}: no EXR files; pass the folder `hdrvid convert` wrote")
    sidecar = (path if path.is_dir() else files[0].parent) / "hdrvid.json"
    header = read_exr_header(files[0])
    chromaticities = tuple(header.get("chromaticities", REC709_CHROMATICITIES))
    sequence = HdrSource(files, [], chromaticities=chromaticities,
                        scale_factor=float(header.get("hdrvid:scale", 1.0)))
    if sidecar.is_file():
        _apply_sidecar(sequence, json.loads(sidecar.read_text()))
    else:  # the EXRs' own frame rate, else 24 fps
        fps = header.get("framesPerSecond")
        sequence.fps = fractions.Fraction(fps) if fps else sequence.fps
        sequence.times = [i / float(sequence.fps) for i in range(len(files))]
    return sequence


def _video_sequence(path: Path, peak_nits: float) -> HdrSource:
    """An HDR10 (PQ) or HLG video as a sequence: its timestamps, audio and colour tags."""
    info = probe(path)
    transfer = info.color_tags["trc"]
    if transfer not in (TRC_PQ, TRC_HLG):
        raise InputError(f"{path}: not an HDR video (its transfer tag is {transfer}, not PQ (16) "
                         "or HLG (18)); pass an HDR10 or HLG video, or an EXR sequence")
    pts = frame_timestamps(path)
    fps = info.fps or fractions.Fraction(24)
    bt709 = info.color_tags["primaries"] == PRIMARIES_BT709  # untagged HDR: BT.2020
    sequence = HdrSource([], [], fps=fps, source=path, video=path, transfer=transfer,
                        peak_nits=peak_nits, size=(info.height, info.width),
                        chromaticities=REC709_CHROMATICITIES if bt709 else BT2020_CHROMATICITIES)
    if pts:
        sequence.pts, sequence.time_base = pts, info.time_base
        sequence.times = [float((p - pts[0]) * info.time_base) for p in pts]
    else:
        count = sum(1 for _ in read_frames(path))  # no timestamps to count: decode once
        sequence.times = [i / float(fps) for i in range(count)]
    return sequence


def _apply_sidecar(sequence: HdrSource, sidecar: dict) -> None:
    by_file = {f["file"]: f for f in sidecar.get("frames", [])}
    frames = [by_file.get(p.name) for p in sequence.files]
    if sidecar.get("fps"):
        sequence.fps = sidecar_fps(sidecar["fps"])
    if all(frames):
        sequence.times = [f["time"] for f in frames]
        if all(f["pts"] is not None for f in frames) and sidecar.get("time_base"):
            sequence.pts = [f["pts"] for f in frames]
            sequence.time_base = fractions.Fraction(sidecar["time_base"])
        _apply_cut(sequence, sidecar.get("range") or {})
    else:
        sequence.times = [i / float(sequence.fps) for i in range(len(sequence.files))]
    if times := sidecar.get("exposures", {}).get("times"):
        sequence.longest_exposure = float(times[-1])  # frames are read on the native scale
    sequence.scale_factor = float(sidecar.get("scale_factor") or sequence.scale_factor)
    video = Path(sidecar.get("input", {}).get("path", ""))
    if video.is_file():
        sequence.source = video
    elif video != Path(""):
        sequence.warnings.append(f"{video}: the source video is gone; the output has no audio")


def sidecar_fps(fps: float) -> fractions.Fraction:
    """The frame rate hdrvid.json records (a float) as the rational rate videos are made at."""
    return fractions.Fraction(fps).limit_denominator(1001)


def pts_shift(offset: float, time_base: fractions.Fraction) -> int:
    """Timestamp units that a cut's ``offset`` (seconds) moves every frame earlier."""
    return round(offset / time_base)


def _apply_cut(sequence: HdrSource, cut: dict) -> None:
    """A part of the source starts at time 0 in the videos made from it, as in ffmpeg; the
    EXRs and hdrvid.json keep the source's timestamps."""
    offset = float(cut.get("offset") or 0.0)
    sequence.audio_cut = (cut.get("start"), cut.get("end"), offset)
    if not offset:
        return
    sequence.times = [t - offset for t in sequence.times]
    if sequence.pts:
        shift = pts_shift(offset, sequence.time_base)
        sequence.pts = [p - shift for p in sequence.pts]


def linear_frames(sequence: HdrSource, lookahead: int = 3) -> Iterator[np.ndarray]:
    """The frames as linear Rec.709 float32 (H, W, 3), read ahead in a thread while the caller
    encodes. Frames in other primaries (BT.2020, ACES) are converted, and colours outside
    Rec.709 clipped."""
    to_709 = _to_709(sequence)
    for frame in _video_frames(sequence) if sequence.video else _exr_frames(sequence, lookahead):
        yield frame if to_709 is None else np.maximum(frame @ to_709, 0.0)


def _to_709(sequence: HdrSource) -> np.ndarray | None:
    """The (3, 3) matrix (for ``frame @ m``) from the frames' primaries to Rec.709; None: none
    needed."""
    to_709 = primaries.conversion(tuple(sequence.chromaticities), REC709_CHROMATICITIES)
    return None if np.array_equal(to_709, np.eye(3)) else to_709.T.astype(np.float32)


def sample_frames(sequence: HdrSource, count: int = KEY_FRAMES) -> Iterator[np.ndarray]:
    """Up to ``count`` frames spread evenly over the sequence, for its tone-mapping key."""
    if sequence.video:  # decoded in order: every n-th frame
        step = max(1, math.ceil(len(sequence) / count))
        yield from itertools.islice(linear_frames(sequence), 0, None, step)
        return
    to_709 = _to_709(sequence)
    for i in key_sample(len(sequence.files), count):
        frame = _read_frame(sequence.files[i], sequence.scale_factor)
        yield frame if to_709 is None else np.maximum(frame @ to_709, 0.0)


def key_sample(length: int, count: int = KEY_FRAMES) -> np.ndarray:
    """Indices of the frames of an EXR sequence of ``length`` whose key stands for the whole
    sequence's (`sample_frames`): up to ``count``, spread evenly, first and last included."""
    return np.unique(np.linspace(0, length - 1, min(count, length)).round().astype(int))


def as_linear(pixels: np.ndarray, sequence: HdrSource) -> np.ndarray:
    """What `linear_frames` yields for a frame whose EXR of ``sequence`` would hold ``pixels``
    (`exr.stored_pixels`): so frames that never went to disk encode as if read back."""
    frame = _unscaled(pixels, sequence.scale_factor)
    to_709 = _to_709(sequence)
    return frame if to_709 is None else np.maximum(frame @ to_709, 0.0)


def _exr_frames(sequence: HdrSource, lookahead: int) -> Iterator[np.ndarray]:
    with ThreadPoolExecutor(1, thread_name_prefix="exr-read") as pool:
        pending = deque(pool.submit(_read_frame, p, sequence.scale_factor)
                        for p in sequence.files[:lookahead])
        for path in sequence.files[lookahead:] + [None] * len(pending):
            frame = pending.popleft().result()
            if path is not None:
                pending.append(pool.submit(_read_frame, path, sequence.scale_factor))
            yield frame


def _video_frames(sequence: HdrSource) -> Iterator[np.ndarray]:
    """An HDR video's frames as linear light on the hdrvid scale, in its own primaries."""
    for frame in read_frames(sequence.video, max_frames=len(sequence)):
        if sequence.transfer == TRC_PQ:
            yield tonemap.eotf_st2084(frame.rgb) * np.float32(1 / sequence.peak_nits)
        else:
            yield tonemap.oetf_inverse_hlg(frame.rgb)


def _read_frame(path: Path, scale_factor: float = 1.0) -> np.ndarray:
    try:
        pixels, _ = read_exr(path)
    except Exception as exc:  # OpenEXR raises bare RuntimeErrors
        raise InputError(f"{path}: cannot read this EXR ({exc}); re-run the conversion") from exc
    return _unscaled(pixels, scale_factor)


def _unscaled(pixels: np.ndarray, scale_factor: float) -> np.ndarray:
    """Stored EXR pixels as float32 on the native scale (NaN as 0, +inf as half's largest)."""
    frame = np.nan_to_num(pixels.astype(np.float32), nan=0.0, posinf=65504.0)
    if scale_factor != 1.0:
        frame *= np.float32(1.0 / scale_factor)
    return frame


def frame_size(sequence: HdrSource) -> tuple[int, int]:
    """(H, W) of the sequence's frames."""
    return sequence.size or read_exr(sequence.files[0])[0].shape[:2]

