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

HLG: the same BT.2020 linear values, hdrvid 1.0 = HLG scene-linear E = 1 (the nominal peak
signal; brighter values clip), through the BT.2100 HLG OETF: scene-referred, no OOTF and no
static metadata, 10-bit HEVC tagged BT.2020 / ARIB STD-B67 / BT.2020nc / limited range.
HDR10 and HLG may be AV1 (SVT-AV1, 10-bit; HDR10 with its mastering and light-level metadata),
and HEVC is encoded with NVENC when CUDA is present and the encoder opens.

Mezzanine (ProRes 4444 and DNxHR 444, 4:4:4 10-bit): the PQ or HLG signal above, tagged in the
bitstream (ProRes) and the container (MOV ``colr``, MXF descriptor), for grading suites.

Timestamps come from the sequence's ``hdrvid.json`` (the input video's own PTS, so variable frame
rate stays variable), and audio is copied from the video the sequence was made from.

The source may also be an HDR10 (PQ) or HLG video, decoded back to linear light on the hdrvid
scale: PQ with 1.0 = ``peak_nits`` cd/m², HLG with 1.0 = E = 1; its own timestamps and audio
are kept.
"""

from __future__ import annotations

import fractions
import glob
import itertools
import json
import math
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hdrvid import primaries, tonemap
from hdrvid.encode import ENCODERS, VideoWriter, nvenc_error, pick_hevc_encoder
from hdrvid.errors import InputError, OutputError
from hdrvid.exr import (
    BT2020_CHROMATICITIES,
    REC709_CHROMATICITIES,
    read_exr,
    read_exr_header,
)
from hdrvid.video import ColorInfo, frame_timestamps, probe, read_frames

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".mxf")
# names of media files hdrvid does not write: refused, rather than taken for a folder's name
OTHER_MEDIA_SUFFIXES = (".avi", ".webm", ".m4v", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg",
                        ".flv", ".wmv", ".3gp", ".ogv", ".y4m", ".gif", ".264", ".265", ".h264",
                        ".hevc", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".hdr", ".bmp",
                        ".webp", ".dpx", ".png")
HEVC_CODECS = ("hevc", "hevc_nvenc", "libx265")
# FFmpeg colour tag values (ISO/IEC 23091-2) of HDR video inputs
TRC_PQ, TRC_HLG, PRIMARIES_BT709 = 16, 18, 1


@dataclass(frozen=True)
class VideoFormat:
    """What a video output kind accepts: containers (the first is `hdrvid convert`'s), --codec
    and --transfer values (the first is the default; no transfers: --transfer is refused)."""

    containers: tuple[str, ...]
    codecs: tuple[str, ...]
    transfers: tuple[str, ...]


VIDEO_FORMATS = {
    "sdr": VideoFormat((".mp4", ".mkv", ".mov"), ("h264", *HEVC_CODECS, "av1"), ()),
    "hdr10": VideoFormat((".mp4", ".mkv", ".mov"), (*HEVC_CODECS, "av1"), ("pq",)),
    "hlg": VideoFormat((".mp4", ".mkv", ".mov"), (*HEVC_CODECS, "av1"), ("hlg",)),
    "prores": VideoFormat((".mov",), ("prores",), ("pq", "hlg")),
    "dnxhr": VideoFormat((".mov", ".mxf"), ("dnxhr",), ("pq", "hlg")),
}
BT2020_LIMITED = ColorInfo("bt2020", False, True)
BT709_LIMITED = ColorInfo("bt709", False, True)
# SMPTE ST 2086 mastering display: BT.2020 primaries and D65, in units of 0.00002 (x265) and
# as CIE xy (SVT-AV1)
MASTER_DISPLAY_BT2020 = "G(8500,39850)B(6550,2300)R(35400,14600)WP(15635,16450)"
MASTER_DISPLAY_BT2020_AV1 = "G(0.170,0.797)B(0.131,0.046)R(0.708,0.292)WP(0.3127,0.3290)"


@dataclass(frozen=True)
class RenderOptions:
    """How to render: tone mapping (SDR, PNG), encoding, HDR10 scale, audio."""

    operator: str = tonemap.DEFAULT_OPERATOR
    exposure: float = 0.0
    time_constant: float | None = None  # None: one exposure for the whole sequence
    preserve: str = "luminance"
    codec: str | None = None  # None: the format's default (VIDEO_FORMATS)
    crf: int = 18
    preset: str = "medium"
    peak_nits: float = 1000.0
    audio: bool = True
    transfer: str | None = None  # prores, dnxhr: pq (default) or hlg

    def tonemapper(self, sequence: HdrSource) -> tonemap.ToneMapper:
        """The sequence's tone mapper: one exposure for every frame, from the sequence's key
        (`tonemap.sequence_key`), unless ``time_constant`` asks for one that adapts over time
        (around the same key value)."""
        if self.operator not in tonemap.OPERATORS:
            raise OutputError(f"unknown tone-mapping operator {self.operator!r}; choose one of "
                              f"{', '.join(tonemap.OPERATORS)}")
        key = tonemap.sequence_key(_sample_frames(sequence), sequence.longest_exposure)
        options = tonemap.ToneMapOptions(
            operator=self.operator, exposure=self.exposure, key=key.key,
            time_constant=1.0 if self.time_constant is None else self.time_constant,
            preserve=self.preserve)
        return tonemap.ToneMapper(options, key if self.time_constant is None else None)


@dataclass
class HdrSource:
    """Linear HDR frames in order, with what a video made of them needs: their timing,
    primaries and scale, and the video they came from (for its audio). The frames are EXR
    files (``files``), an HDR video (``video``), or, given to `encode`, any iterable (then
    ``size`` is set)."""

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


def read_sequence(source: str | Path, peak_nits: float = 1000.0) -> HdrSource:
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
        sequence.fps = fractions.Fraction(sidecar["fps"]).limit_denominator(1001)
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


def _apply_cut(sequence: HdrSource, cut: dict) -> None:
    """A part of the source starts at time 0 in the videos made from it, as in ffmpeg; the
    EXRs and hdrvid.json keep the source's timestamps."""
    offset = float(cut.get("offset") or 0.0)
    sequence.audio_cut = (cut.get("start"), cut.get("end"), offset)
    if not offset:
        return
    sequence.times = [t - offset for t in sequence.times]
    if sequence.pts:
        shift = round(offset / sequence.time_base)
        sequence.pts = [p - shift for p in sequence.pts]


def _frames(sequence: HdrSource, lookahead: int = 3) -> Iterator[np.ndarray]:
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


def _sample_frames(sequence: HdrSource, count: int = 24) -> Iterator[np.ndarray]:
    """Up to ``count`` frames spread evenly over the sequence, for its tone-mapping key."""
    if sequence.video:  # decoded in order: every n-th frame
        step = max(1, math.ceil(len(sequence) / count))
        yield from itertools.islice(_frames(sequence), 0, None, step)
        return
    picks = np.unique(np.linspace(0, len(sequence.files) - 1, min(count, len(sequence.files))
                                  ).round().astype(int))
    to_709 = _to_709(sequence)
    for i in picks:
        frame = _read_frame(sequence.files[i], sequence.scale_factor)
        yield frame if to_709 is None else np.maximum(frame @ to_709, 0.0)


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
    frame = np.nan_to_num(pixels.astype(np.float32), nan=0.0, posinf=65504.0)
    if scale_factor != 1.0:
        frame *= np.float32(1.0 / scale_factor)
    return frame


def _writer(sequence: HdrSource, out: Path, options: RenderOptions, **encoding) -> VideoWriter:
    height, width = frame_size(sequence)
    audio = sequence.source if options.audio else None
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")  # renamed by _atomic when done
    return VideoWriter(partial, width, height, fps=sequence.fps, time_base=sequence.time_base,
                       crf=options.crf, preset=options.preset, audio_from=audio,
                       audio_cut=sequence.audio_cut, **encoding)


def frame_size(sequence: HdrSource) -> tuple[int, int]:
    """(H, W) of the sequence's frames."""
    return sequence.size or read_exr(sequence.files[0])[0].shape[:2]


def _encoder(codec: str, size: tuple[int, int], bits: int, warnings: list[str]) -> str:
    """The FFmpeg encoder for a --codec value: ``hevc`` is NVENC where CUDA is present and the
    encoder opens, else x265 (with a note when NVENC failed)."""
    if codec == "hevc":
        name, note = pick_hevc_encoder(size[1], size[0], bits)
        warnings += [note] if note else []
        return name
    if codec == "hevc_nvenc" and (reason := nvenc_error(size[1], size[0], bits)):
        raise OutputError(f"--codec hevc_nvenc: the encoder did not open ({reason}); use "
                          "--codec hevc, which falls back to libx265")
    return ENCODERS.get(codec, codec)


def _pts(sequence: HdrSource, i: int) -> int | None:
    return sequence.pts[i] if sequence.pts else None


def render_sdr(sequence: HdrSource, out: Path, options: RenderOptions = RenderOptions(),
               progress: Callable[[int], None] | None = None) -> list[str]:
    """Tone-mapped BT.709 video. Returns warnings (e.g. about audio)."""
    mapper = options.tonemapper(sequence)
    notes: list[str] = []
    codec = _encoder(options.codec or "h264", frame_size(sequence), 8, notes)
    writer = _writer(sequence, out, options, codec=codec, bits=8, color=BT709_LIMITED,
                     primaries="bt709", transfer="bt709")
    with _atomic(out, writer):
        for i, hdr in enumerate(_frames(sequence)):
            writer.write(tonemap.eotf_inverse_bt1886(mapper(hdr, sequence.times[i])),
                         _pts(sequence, i))
            if progress:
                progress(i + 1)
    return sequence.warnings + notes + writer.warnings


def hdr10_signal(hdr: np.ndarray, peak_nits: float) -> np.ndarray:
    """Linear Rec.709 (hdrvid scale) -> PQ-encoded BT.2020 R'G'B' in [0, 1], (H, W, 3)."""
    return tonemap.eotf_inverse_st2084(_bt2020_nits(hdr, peak_nits))


def hlg_signal(hdr: np.ndarray) -> np.ndarray:
    """Linear Rec.709 (hdrvid scale) -> HLG-encoded BT.2020 R'G'B' in [0, 1], (H, W, 3):
    hdrvid 1.0 is HLG's scene-linear 1 (signal 1.0); brighter values and colours outside
    BT.2020 clip."""
    return tonemap.oetf_hlg(hdr @ tonemap.BT709_TO_BT2020.T.astype(np.float32))


def _bt2020_nits(hdr: np.ndarray, peak_nits: float) -> np.ndarray:
    nits = hdr @ (tonemap.BT709_TO_BT2020.T.astype(np.float32) * np.float32(peak_nits))
    return np.clip(nits, 0.0, peak_nits)


def content_light_levels(sequence: HdrSource, peak_nits: float) -> tuple[int, int]:
    """(MaxCLL, MaxFALL) of the whole sequence in cd/m², as HDR10 metadata states them."""
    max_cll = max_fall = 0.0
    for hdr in _frames(sequence):
        cll, fall = tonemap.content_light_level(_bt2020_nits(hdr, peak_nits))
        max_cll, max_fall = max(max_cll, cll), max(max_fall, fall)
    return round(max_cll), round(max_fall)


def render_hdr10(sequence: HdrSource, out: Path, options: RenderOptions = RenderOptions(),
                 progress: Callable[[int], None] | None = None) -> list[str]:
    """10-bit HEVC (or AV1), PQ, BT.2020, with mastering-display and MaxCLL/MaxFALL metadata."""
    notes: list[str] = []
    codec = _encoder(options.codec or "hevc", frame_size(sequence), 10, notes)
    max_cll, max_fall = content_light_levels(sequence, options.peak_nits)
    if codec == "libsvtav1":  # chromaticities and cd/m² as decimals
        params = (f"mastering-display={MASTER_DISPLAY_BT2020_AV1}"
                  f"L({options.peak_nits:g},0.0001):content-light={max_cll},{max_fall}")
    elif codec == "hevc_nvenc":
        params = ""
        notes.append("hevc_nvenc: the HDR10 mastering-display and light-level metadata are not "
                     "written (PyAV cannot hand them to NVENC); use --codec libx265 for them")
    else:
        params = (f"hdr10=1:repeat-headers=1:colorprim=bt2020:transfer=smpte2084:"
                  f"colormatrix=bt2020nc:master-display={MASTER_DISPLAY_BT2020}"
                  f"L({round(options.peak_nits * 10000)},1):max-cll={max_cll},{max_fall}")
    writer = _writer(sequence, out, options, codec=codec, bits=10, color=BT2020_LIMITED,
                     primaries="bt2020", transfer="smpte2084", codec_params=params)
    _encode(sequence, out, writer, lambda hdr: hdr10_signal(hdr, options.peak_nits), progress)
    return sequence.warnings + notes + writer.warnings


def render_hlg(sequence: HdrSource, out: Path, options: RenderOptions = RenderOptions(),
               progress: Callable[[int], None] | None = None) -> list[str]:
    """10-bit HEVC (or AV1), BT.2100 HLG, BT.2020: no static metadata (HLG needs none)."""
    notes: list[str] = []
    codec = _encoder(options.codec or "hevc", frame_size(sequence), 10, notes)
    params = ("repeat-headers=1:colorprim=bt2020:transfer=arib-std-b67:colormatrix=bt2020nc"
              if codec == "libx265" else "")
    writer = _writer(sequence, out, options, codec=codec, bits=10, color=BT2020_LIMITED,
                     primaries="bt2020", transfer="arib-std-b67", codec_params=params)
    _encode(sequence, out, writer, hlg_signal, progress)
    return sequence.warnings + notes + writer.warnings


def render_mezzanine(kind: str, sequence: HdrSource, out: Path,
                     options: RenderOptions = RenderOptions(),
                     progress: Callable[[int], None] | None = None) -> list[str]:
    """ProRes 4444 (``kind`` prores) or DNxHR 444 (dnxhr), 4:4:4 10-bit, carrying the PQ
    (default) or HLG signal in BT.2020, tagged so grading suites read it as HDR."""
    hlg = (options.transfer or "pq") == "hlg"
    if out.suffix.lower() == ".mxf" and not _constant_rate(sequence):
        raise OutputError(f"{out}: MXF holds constant frame rates only and this sequence's "
                          "timestamps vary; name the output .mov")
    writer = _writer(sequence, out, options, codec=kind, bits=10, color=BT2020_LIMITED,
                     primaries="bt2020", transfer="arib-std-b67" if hlg else "smpte2084",
                     chroma="444")
    signal = hlg_signal if hlg else (lambda hdr: hdr10_signal(hdr, options.peak_nits))
    _encode(sequence, out, writer, signal, progress)
    return sequence.warnings + writer.warnings


def _constant_rate(sequence: HdrSource) -> bool:
    steps = set(np.diff(sequence.pts)) if sequence.pts and len(sequence.pts) > 1 else set()
    return len(steps) <= 1


def _encode(sequence: HdrSource, out: Path, writer: VideoWriter,
            signal: Callable[[np.ndarray], np.ndarray],
            progress: Callable[[int], None] | None) -> None:
    with _atomic(out, writer):
        for i, hdr in enumerate(_frames(sequence)):
            writer.write(signal(hdr), _pts(sequence, i))
            if progress:
                progress(i + 1)


def render_png(sequence: HdrSource, out_dir: Path, options: RenderOptions = RenderOptions(),
               progress: Callable[[int], None] | None = None) -> list[str]:
    """Tone-mapped 8-bit sRGB PNGs, one per frame, named after the EXRs; or, for an
    ``out_dir`` named .png, that one file (the sequence's only frame)."""
    mapper = options.tonemapper(sequence)
    single = out_dir.suffix.lower() == ".png"
    (out_dir.parent if single else out_dir).mkdir(parents=True, exist_ok=True)
    for i, hdr in enumerate(_frames(sequence)):
        srgb = tonemap.oetf_srgb(mapper(hdr, sequence.times[i]))
        name = sequence.files[i].with_suffix(".png").name if sequence.files else f"frame_{i:06d}.png"
        png = out_dir if single else out_dir / name
        tmp = png.with_name(f".{png.name}.tmp.png")
        if not cv2.imwrite(str(tmp), np.rint(srgb[..., ::-1] * 255).astype(np.uint8)):
            raise OutputError(f"{png}: cannot write; check free space and permissions")
        os.replace(tmp, png)
        if progress:
            progress(i + 1)
    return sequence.warnings


def check_format(kind: str, output: Path, options: RenderOptions) -> None:
    """Refuse, with one line, a video kind with a container, codec or transfer it cannot take
    (before any work is done)."""
    spec = VIDEO_FORMATS.get(kind)
    if spec is None:
        raise OutputError(f"unknown output kind {kind!r}; choose {', '.join(VIDEO_FORMATS)} or png")
    if output.suffix.lower() not in spec.containers:
        names = ", ".join(spec.containers[:-1]) + " or " * (len(spec.containers) > 1)
        raise OutputError(f"{output}: a video needs a {names}{spec.containers[-1]} name "
                          f"(--format {kind})")
    if options.codec is not None and options.codec not in spec.codecs:
        raise OutputError(f"--format {kind} cannot be encoded with --codec {options.codec}; "
                          f"choose {', '.join(spec.codecs)}")
    if options.transfer is not None and options.transfer not in spec.transfers:
        which = ("prores and dnxhr take --transfer pq or hlg; --format hdr10 is PQ and "
                 "--format hlg is HLG")
        raise OutputError(f"--format {kind} with --transfer {options.transfer}: {which}")


def render(source: str | Path, output: str | Path, kind: str | None = None,
           options: RenderOptions = RenderOptions(),
           progress: Callable[[int], None] | None = None) -> list[str]:
    """Render ``source`` (see `read_sequence`) to ``output``: ``kind`` is sdr, hdr10, hlg,
    prores, dnxhr or png; by default png for a folder and sdr for a video name."""
    output = Path(output)
    kind = output_kind(output, kind)
    if kind != "png":
        check_format(kind, output, options)
    sequence = read_sequence(source, options.peak_nits)
    if kind == "png" and output.suffix.lower() == ".png" and len(sequence) != 1:
        raise OutputError(f"{output}: names one PNG but {source} holds {len(sequence)} frames; "
                          "name a folder for the PNGs, or pass one EXR file")
    if kind in ("prores", "dnxhr"):
        return render_mezzanine(kind, sequence, output, options, progress)
    renderers = {"sdr": render_sdr, "hdr10": render_hdr10, "hlg": render_hlg, "png": render_png}
    return renderers[kind](sequence, output, options, progress)


def output_kind(output: Path, kind: str | None) -> str:
    """What ``output`` is to be, as ffmpeg users expect: a video for a .mp4/.mkv/.mov/.mxf
    name (sdr unless ``kind`` says otherwise), one PNG file for a .png name, else a folder of
    PNGs; another media name (.avi, .jpg, ...) is refused rather than made a folder."""
    suffix = output.suffix.lower()
    if kind not in (None, "png"):
        return kind  # check_format names the containers a video kind takes
    if suffix in VIDEO_SUFFIXES and kind == "png":
        raise OutputError(f"{output}: --format png writes PNGs; name a folder, or a .png for "
                          "one frame")
    if suffix in VIDEO_SUFFIXES:
        return "sdr"
    if suffix in OTHER_MEDIA_SUFFIXES and suffix != ".png":
        raise OutputError(f"{output}: hdrvid does not write {suffix} files; name a "
                          f"{', '.join(VIDEO_SUFFIXES)} video, a .png (one frame) or a folder "
                          "for PNGs")
    return "png"


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
