"""Outputs people watch, rendered from an EXR sequence: tone-mapped SDR video, HDR10 video, PNGs.

SDR: `tonemap.ToneMapper` (exposure keyed on a smoothed log-average luminance) to display-linear
Rec.709, encoded with the inverse of the BT.1886 EOTF (gamma 2.4) and tagged BT.709 (8-bit
H.264, or HEVC with ``codec="hevc"``).

HDR10: scene-referred to display-referred with a fixed scale, ``peak_nits`` cd/m² per hdrvid unit
(1.0 = the clipping point of the shortest exposure, so that the brightest recoverable radiance
lands on the display's peak and a 3-stop long exposure's white on peak/8), Rec.709 -> BT.2020
primaries (ITU-R BT.2087), SMPTE ST 2084 (PQ), 10-bit HEVC tagged BT.2020 / PQ / BT.2020nc /
limited range, with mastering-display and content light level (MaxCLL, MaxFALL) metadata
computed from the sequence itself in a first pass (CTA-861.3).

Timestamps come from the sequence's ``hdrvid.json`` (the input video's own PTS, so variable frame
rate stays variable), and audio is copied from the video the sequence was made from.
"""

from __future__ import annotations

import fractions
import glob
import json
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hdrvid import tonemap
from hdrvid.errors import InputError, OutputError
from hdrvid.video import ColorInfo, VideoWriter
from hdrvid.writers import (
    BT2020_CHROMATICITIES,
    REC709_CHROMATICITIES,
    read_exr,
    read_exr_header,
)

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov")
BT2020_LIMITED = ColorInfo("bt2020", False, True)
BT709_LIMITED = ColorInfo("bt709", False, True)
# SMPTE ST 2086 mastering display: BT.2020 primaries and D65, in units of 0.00002
MASTER_DISPLAY_BT2020 = "G(8500,39850)B(6550,2300)R(35400,14600)WP(15635,16450)"


@dataclass(frozen=True)
class RenderOptions:
    """How to render: tone mapping (SDR, PNG), encoding, HDR10 scale, audio."""

    operator: str = "hable"
    exposure: float = 0.0
    time_constant: float = 1.0
    preserve: str = "luminance"
    codec: str = "h264"
    crf: int = 18
    preset: str = "medium"
    peak_nits: float = 1000.0
    audio: bool = True

    def tonemapper(self) -> tonemap.ToneMapper:
        if self.operator not in tonemap.OPERATORS:
            raise OutputError(f"unknown tone-mapping operator {self.operator!r}; choose one of "
                              f"{', '.join(tonemap.OPERATORS)}")
        return tonemap.ToneMapper(tonemap.ToneMapOptions(
            operator=self.operator, exposure=self.exposure, time_constant=self.time_constant,
            preserve=self.preserve))


@dataclass
class Sequence:
    """EXR frames in order, with their timing and the video they came from (for audio)."""

    files: list[Path]
    times: list[float]
    pts: list[int] | None = None
    time_base: fractions.Fraction | None = None
    fps: fractions.Fraction = fractions.Fraction(24)
    source: Path | None = None
    bt2020: bool = False  # the EXRs hold BT.2020 primaries (a BT.2020-tagged input)
    warnings: list[str] = field(default_factory=list)


def read_sequence(source: str | Path) -> Sequence:
    """An hdrvid output folder, a folder of EXRs, a glob (``'out/*.exr'``) or one EXR file."""
    text = str(source)
    path = Path(source)
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
    chromaticities = header.get("chromaticities", REC709_CHROMATICITIES)
    sequence = Sequence(files, [], bt2020=np.allclose(chromaticities, BT2020_CHROMATICITIES,
                                                       atol=1e-3))
    if sidecar.is_file():
        _apply_sidecar(sequence, json.loads(sidecar.read_text()))
    else:  # the EXRs' own frame rate, else 24 fps
        fps = header.get("framesPerSecond")
        sequence.fps = fractions.Fraction(fps) if fps else sequence.fps
        sequence.times = [i / float(sequence.fps) for i in range(len(files))]
    return sequence


def _apply_sidecar(sequence: Sequence, sidecar: dict) -> None:
    by_file = {f["file"]: f for f in sidecar.get("frames", [])}
    frames = [by_file.get(p.name) for p in sequence.files]
    if sidecar.get("fps"):
        sequence.fps = fractions.Fraction(sidecar["fps"]).limit_denominator(1001)
    if all(frames):
        sequence.times = [f["time"] for f in frames]
        if all(f["pts"] is not None for f in frames) and sidecar.get("time_base"):
            sequence.pts = [f["pts"] for f in frames]
            sequence.time_base = fractions.Fraction(sidecar["time_base"])
    else:
        sequence.times = [i / float(sequence.fps) for i in range(len(sequence.files))]
    video = Path(sidecar.get("input", {}).get("path", ""))
    if video.is_file():
        sequence.source = video
    elif video != Path(""):
        sequence.warnings.append(f"{video}: the source video is gone; the output has no audio")


def _frames(sequence: Sequence, lookahead: int = 3) -> Iterator[np.ndarray]:
    """The frames as linear Rec.709 float32 (H, W, 3), read ahead in a thread while the caller
    encodes. BT.2020 frames are converted, and colours outside Rec.709 clipped."""
    to_709 = np.linalg.inv(tonemap.BT709_TO_BT2020).T.astype(np.float32) if sequence.bt2020 else None
    with ThreadPoolExecutor(1, thread_name_prefix="exr-read") as pool:
        pending = deque(pool.submit(_read_frame, p) for p in sequence.files[:lookahead])
        for path in sequence.files[lookahead:] + [None] * len(pending):
            frame = pending.popleft().result()
            if path is not None:
                pending.append(pool.submit(_read_frame, path))
            yield frame if to_709 is None else np.maximum(frame @ to_709, 0.0)


def _read_frame(path: Path) -> np.ndarray:
    try:
        pixels, _ = read_exr(path)
    except Exception as exc:  # OpenEXR raises bare RuntimeErrors
        raise InputError(f"{path}: cannot read this EXR ({exc}); re-run the conversion") from exc
    return np.nan_to_num(pixels.astype(np.float32), nan=0.0, posinf=65504.0)


def _writer(sequence: Sequence, out: Path, options: RenderOptions, **encoding) -> VideoWriter:
    height, width = read_exr(sequence.files[0])[0].shape[:2]
    audio = sequence.source if options.audio else None
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")  # renamed by _atomic when done
    return VideoWriter(partial, width, height, fps=sequence.fps, time_base=sequence.time_base,
                       crf=options.crf, preset=options.preset, audio_from=audio, **encoding)


def _pts(sequence: Sequence, i: int) -> int | None:
    return sequence.pts[i] if sequence.pts else None


def render_sdr(sequence: Sequence, out: Path, options: RenderOptions = RenderOptions(),
               progress: Callable[[int], None] | None = None) -> list[str]:
    """Tone-mapped BT.709 video. Returns warnings (e.g. about audio)."""
    mapper = options.tonemapper()
    writer = _writer(sequence, out, options, codec=options.codec, bits=8, color=BT709_LIMITED,
                     primaries="bt709", transfer="bt709")
    with _atomic(out, writer):
        for i, hdr in enumerate(_frames(sequence)):
            writer.write(tonemap.eotf_inverse_bt1886(mapper(hdr, sequence.times[i])),
                         _pts(sequence, i))
            if progress:
                progress(i + 1)
    return sequence.warnings + writer.warnings


def hdr10_signal(hdr: np.ndarray, peak_nits: float) -> np.ndarray:
    """Linear Rec.709 (hdrvid scale) -> PQ-encoded BT.2020 R'G'B' in [0, 1], (H, W, 3)."""
    return tonemap.eotf_inverse_st2084(_bt2020_nits(hdr, peak_nits))


def _bt2020_nits(hdr: np.ndarray, peak_nits: float) -> np.ndarray:
    nits = hdr @ (tonemap.BT709_TO_BT2020.T.astype(np.float32) * np.float32(peak_nits))
    return np.clip(nits, 0.0, peak_nits)


def content_light_levels(sequence: Sequence, peak_nits: float) -> tuple[int, int]:
    """(MaxCLL, MaxFALL) of the whole sequence in cd/m², as HDR10 metadata states them."""
    max_cll = max_fall = 0.0
    for hdr in _frames(sequence):
        cll, fall = tonemap.content_light_level(_bt2020_nits(hdr, peak_nits))
        max_cll, max_fall = max(max_cll, cll), max(max_fall, fall)
    return round(max_cll), round(max_fall)


def render_hdr10(sequence: Sequence, out: Path, options: RenderOptions = RenderOptions(),
                 progress: Callable[[int], None] | None = None) -> list[str]:
    """10-bit HEVC, PQ, BT.2020, with mastering-display and MaxCLL/MaxFALL metadata."""
    max_cll, max_fall = content_light_levels(sequence, options.peak_nits)
    params = (f"hdr10=1:repeat-headers=1:colorprim=bt2020:transfer=smpte2084:"
              f"colormatrix=bt2020nc:master-display={MASTER_DISPLAY_BT2020}"
              f"L({round(options.peak_nits * 10000)},1):max-cll={max_cll},{max_fall}")
    writer = _writer(sequence, out, options, codec="hevc", bits=10, color=BT2020_LIMITED,
                     primaries="bt2020", transfer="smpte2084", codec_params=params)
    with _atomic(out, writer):
        for i, hdr in enumerate(_frames(sequence)):
            writer.write(hdr10_signal(hdr, options.peak_nits), _pts(sequence, i))
            if progress:
                progress(i + 1)
    return sequence.warnings + writer.warnings


def render_png(sequence: Sequence, out_dir: Path, options: RenderOptions = RenderOptions(),
               progress: Callable[[int], None] | None = None) -> list[str]:
    """Tone-mapped 8-bit sRGB PNGs, one per frame, named after the EXRs."""
    mapper = options.tonemapper()
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, hdr in enumerate(_frames(sequence)):
        srgb = tonemap.oetf_srgb(mapper(hdr, sequence.times[i]))
        png = out_dir / sequence.files[i].with_suffix(".png").name
        tmp = png.with_name(f".{png.name}.tmp.png")
        if not cv2.imwrite(str(tmp), np.rint(srgb[..., ::-1] * 255).astype(np.uint8)):
            raise OutputError(f"{png}: cannot write; check free space and permissions")
        os.replace(tmp, png)
        if progress:
            progress(i + 1)
    return sequence.warnings


def render(source: str | Path, output: str | Path, kind: str | None = None,
           options: RenderOptions = RenderOptions(),
           progress: Callable[[int], None] | None = None) -> list[str]:
    """Render ``source`` (see `read_sequence`) to ``output``: ``kind`` is sdr, hdr10 or png;
    by default png for a folder and sdr for a .mp4/.mkv/.mov name."""
    output = Path(output)
    kind = kind or ("sdr" if output.suffix.lower() in VIDEO_SUFFIXES else "png")
    renderers = {"sdr": render_sdr, "hdr10": render_hdr10, "png": render_png}
    if kind not in renderers:
        raise OutputError(f"unknown output kind {kind!r}; choose sdr, hdr10 or png")
    if kind != "png" and output.suffix.lower() not in VIDEO_SUFFIXES:
        raise OutputError(f"{output}: a video needs a .mp4, .mkv or .mov name")
    return renderers[kind](read_sequence(source), output, options, progress)


class _atomic:
    """Encode to a temporary name and rename when complete; remove it on failure."""

    def __init__(self, out: Path, writer: VideoWriter):
        self.out, self.writer = out, writer

    def __enter__(self) -> None:
        pass

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.writer.close()
        except Exception:
            if exc_type is None:
                raise
        if exc_type is None:
            os.replace(self.writer.path, self.out)
        else:
            self.writer.path.unlink(missing_ok=True)
