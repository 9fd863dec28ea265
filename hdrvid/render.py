"""Outputs people watch, made from linear HDR frames: SDR, HDR10 and HLG video, ProRes and DNxHR
mezzanines, PNGs. `OUTPUT_KINDS` lists every kind `--format` names. `render` reads the frames
from an EXR sequence or an HDR video (`source.py`); `encode_frames` takes them from any
iterable (the model's output, streamed), given what the kind must know of the whole sequence
first (`SequenceStats`).

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

Videos take the frames' timestamps (variable frame rates stay variable) and the audio of the
video the frames came from (`HdrSource`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hdrvid import tonemap
from hdrvid.encode import ENCODERS, VideoWriter, nvenc_error, pick_hevc_encoder
from hdrvid.errors import OutputError
from hdrvid.source import HdrSource, frame_size, linear_frames, read_source, sample_frames
from hdrvid.video import ColorInfo

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".mxf")
# names of media files hdrvid does not write: refused, rather than taken for a folder's name
OTHER_MEDIA_SUFFIXES = (".avi", ".webm", ".m4v", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg",
                        ".flv", ".wmv", ".3gp", ".ogv", ".y4m", ".gif", ".264", ".265", ".h264",
                        ".hevc", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".hdr", ".bmp",
                        ".webp", ".dpx", ".png")
HEVC_CODECS = ("hevc", "hevc_nvenc", "libx265")
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
    codec: str | None = None  # None: the kind's default (its first codec in OUTPUT_KINDS)
    crf: int = 18
    preset: str = "medium"
    peak_nits: float = 1000.0
    audio: bool = True
    transfer: str | None = None  # prores, dnxhr: pq (default) or hlg

    def tonemapper(self, key: tonemap.SequenceKey) -> tonemap.ToneMapper:
        """A tone mapper for a sequence with this ``key``: one exposure for every frame, unless
        ``time_constant`` asks for one that adapts over time (around the same key value)."""
        if self.operator not in tonemap.OPERATORS:
            raise OutputError(f"unknown tone-mapping operator {self.operator!r}; choose one of "
                              f"{', '.join(tonemap.OPERATORS)}")
        options = tonemap.ToneMapOptions(
            operator=self.operator, exposure=self.exposure, key=key.key,
            time_constant=1.0 if self.time_constant is None else self.time_constant,
            preserve=self.preserve)
        return tonemap.ToneMapper(options, key if self.time_constant is None else None)


@dataclass(frozen=True)
class SequenceStats:
    """What a kind must know of the whole sequence before it encodes the first frame.

    key : the tone-mapping key (sdr, png): `tonemap.sequence_key` of the frames `key_sample`
        picks (a sample: the frames before the first are not needed).
    light_levels : (MaxCLL, MaxFALL) in cd/m² (hdr10): `light_levels` of every frame, so a
        first pass over the whole sequence.
    """

    key: tonemap.SequenceKey | None = None
    light_levels: tuple[int, int] | None = None


def sequence_key(sequence: HdrSource) -> tonemap.SequenceKey:
    """The sequence's tone-mapping key, from frames sampled over it."""
    return tonemap.sequence_key(sample_frames(sequence), sequence.longest_exposure)


def light_levels(frames: Iterable[np.ndarray], peak_nits: float) -> tuple[int, int]:
    """(MaxCLL, MaxFALL) in cd/m² of linear Rec.709 frames as HDR10 shows them (hdrvid 1.0 =
    ``peak_nits``), as the HDR10 metadata states them."""
    max_cll = max_fall = 0.0
    for hdr in frames:
        cll, fall = tonemap.content_light_level(_bt2020_nits(hdr, peak_nits))
        max_cll, max_fall = max(max_cll, cll), max(max_fall, fall)
    return round(max_cll), round(max_fall)


def content_light_levels(sequence: HdrSource, peak_nits: float) -> tuple[int, int]:
    """(MaxCLL, MaxFALL) of the whole sequence in cd/m²: a pass over every frame."""
    return light_levels(linear_frames(sequence), peak_nits)


def measure(kind: str, sequence: HdrSource, options: RenderOptions) -> SequenceStats:
    """The `SequenceStats` ``kind`` needs, measured on a sequence that can be read twice."""
    spec = OUTPUT_KINDS[kind]
    return SequenceStats(
        key=sequence_key(sequence) if spec.tone_mapped else None,
        light_levels=content_light_levels(sequence, options.peak_nits)
        if spec.light_levels else None)


def _writer(sequence: HdrSource, out: Path, options: RenderOptions, **encoding) -> VideoWriter:
    height, width = frame_size(sequence)
    audio = sequence.source if options.audio else None
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")  # renamed by _atomic when done
    return VideoWriter(partial, width, height, fps=sequence.fps, time_base=sequence.time_base,
                       crf=options.crf, preset=options.preset, audio_from=audio,
                       audio_cut=sequence.audio_cut, **encoding)


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


def encode_sdr(frames: Iterable[np.ndarray], sequence: HdrSource, out: Path,
               options: RenderOptions, stats: SequenceStats,
               progress: Callable[[int], None] | None = None) -> list[str]:
    """Tone-mapped BT.709 video. Returns warnings (e.g. about audio)."""
    mapper = options.tonemapper(_needed(stats.key, "sdr", "key"))
    notes: list[str] = []
    codec = _encoder(options.codec or "h264", frame_size(sequence), 8, notes)
    writer = _writer(sequence, out, options, codec=codec, bits=8, color=BT709_LIMITED,
                     primaries="bt709", transfer="bt709")
    _encode(frames, sequence, out, writer,
            lambda hdr, i: tonemap.eotf_inverse_bt1886(mapper(hdr, sequence.times[i])), progress)
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


def encode_hdr10(frames: Iterable[np.ndarray], sequence: HdrSource, out: Path,
                 options: RenderOptions, stats: SequenceStats,
                 progress: Callable[[int], None] | None = None) -> list[str]:
    """10-bit HEVC (or AV1), PQ, BT.2020, with mastering-display and MaxCLL/MaxFALL metadata."""
    notes: list[str] = []
    codec = _encoder(options.codec or "hevc", frame_size(sequence), 10, notes)
    max_cll, max_fall = _needed(stats.light_levels, "hdr10", "light_levels")
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
    _encode(frames, sequence, out, writer,
            lambda hdr, i: hdr10_signal(hdr, options.peak_nits), progress)
    return sequence.warnings + notes + writer.warnings


def encode_hlg(frames: Iterable[np.ndarray], sequence: HdrSource, out: Path,
               options: RenderOptions, stats: SequenceStats,
               progress: Callable[[int], None] | None = None) -> list[str]:
    """10-bit HEVC (or AV1), BT.2100 HLG, BT.2020: no static metadata (HLG needs none)."""
    notes: list[str] = []
    codec = _encoder(options.codec or "hevc", frame_size(sequence), 10, notes)
    params = ("repeat-headers=1:colorprim=bt2020:transfer=arib-std-b67:colormatrix=bt2020nc"
              if codec == "libx265" else "")
    writer = _writer(sequence, out, options, codec=codec, bits=10, color=BT2020_LIMITED,
                     primaries="bt2020", transfer="arib-std-b67", codec_params=params)
    _encode(frames, sequence, out, writer, lambda hdr, i: hlg_signal(hdr), progress)
    return sequence.warnings + notes + writer.warnings


def encode_mezzanine(kind: str, frames: Iterable[np.ndarray], sequence: HdrSource, out: Path,
                     options: RenderOptions, stats: SequenceStats,
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
    _encode(frames, sequence, out, writer, (lambda hdr, i: hlg_signal(hdr)) if hlg else
            (lambda hdr, i: hdr10_signal(hdr, options.peak_nits)), progress)
    return sequence.warnings + writer.warnings


def _constant_rate(sequence: HdrSource) -> bool:
    steps = set(np.diff(sequence.pts)) if sequence.pts and len(sequence.pts) > 1 else set()
    return len(steps) <= 1


def _needed(value, kind: str, name: str):
    if value is None:
        raise ValueError(f"encoding {kind} needs SequenceStats.{name}; see `measure`")
    return value


def _encode(frames: Iterable[np.ndarray], sequence: HdrSource, out: Path, writer: VideoWriter,
            signal: Callable[[np.ndarray, int], np.ndarray],
            progress: Callable[[int], None] | None) -> None:
    """Encode ``signal(frame, index)`` of each frame, at the frame's timestamp."""
    with _atomic(out, writer):
        for i, hdr in enumerate(frames):
            writer.write(signal(hdr, i), _pts(sequence, i))
            if progress:
                progress(i + 1)


def render_png(sequence: HdrSource, out_dir: Path, options: RenderOptions = RenderOptions(),
               progress: Callable[[int], None] | None = None) -> list[str]:
    """Tone-mapped 8-bit sRGB PNGs, one per frame, named after the EXRs; or, for an
    ``out_dir`` named .png, that one file (the sequence's only frame)."""
    mapper = options.tonemapper(sequence_key(sequence))
    single = out_dir.suffix.lower() == ".png"
    (out_dir.parent if single else out_dir).mkdir(parents=True, exist_ok=True)
    for i, hdr in enumerate(linear_frames(sequence)):
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


Encoder = Callable[..., list[str]]  # (frames, sequence, out, options, stats, progress)


@dataclass(frozen=True)
class OutputKind:
    """One kind of output `--format` names.

    help : what it is, for --help. parts : the kinds `convert --format` writes for it (all:
    three). suffixes : the names it is written to (the first is `convert`'s); for a video, its
    containers. codecs, transfers : the --codec and --transfer values a video takes (the first
    is the default; no transfers: --transfer is refused). encoder : a video's encoder of
    linear frames (`encode_frames`). renderer : what renders any other kind from an
    `HdrSource`; None with no encoder: written by the conversion itself (exr). tone_mapped,
    light_levels : the `SequenceStats` it needs. convert : offered by `convert --format`.
    """

    help: str
    parts: tuple[str, ...]
    suffixes: tuple[str, ...] = ()
    codecs: tuple[str, ...] = ()
    transfers: tuple[str, ...] = ()
    encoder: Encoder | None = None
    renderer: Callable[..., list[str]] | None = None
    tone_mapped: bool = False
    light_levels: bool = False
    convert: bool = True

    @property
    def containers(self) -> tuple[str, ...]:
        return self.suffixes


_VIDEO = (".mp4", ".mkv", ".mov")
# Every output kind, in the order --help lists them: a new kind is one entry here (and, for a
# video, its encoder above; see docs/architecture.md)
OUTPUT_KINDS: dict[str, OutputKind] = {
    "exr": OutputKind("the EXR sequence", ("exr",), (".exr",)),
    "sdr": OutputKind("a tone-mapped BT.709 video", ("sdr",), _VIDEO,
                      ("h264", *HEVC_CODECS, "av1"), encoder=encode_sdr, tone_mapped=True),
    "hdr10": OutputKind("10-bit PQ/BT.2020 video", ("hdr10",), _VIDEO, (*HEVC_CODECS, "av1"),
                        ("pq",), encoder=encode_hdr10, light_levels=True),
    "hlg": OutputKind("10-bit HLG/BT.2020 video", ("hlg",), _VIDEO, (*HEVC_CODECS, "av1"),
                      ("hlg",), encoder=encode_hlg),
    "prores": OutputKind("ProRes 4444 (PQ or HLG, see --transfer)", ("prores",), (".mov",),
                         ("prores",), ("pq", "hlg"),
                         encoder=functools.partial(encode_mezzanine, "prores")),
    "dnxhr": OutputKind("DNxHR 444 (PQ or HLG, see --transfer)", ("dnxhr",), (".mov", ".mxf"),
                        ("dnxhr",), ("pq", "hlg"),
                        encoder=functools.partial(encode_mezzanine, "dnxhr")),
    "png": OutputKind("tone-mapped 8-bit sRGB PNGs", ("png",), (".png",), renderer=render_png,
                      tone_mapped=True, convert=False),
    "all": OutputKind("exr, sdr and hdr10", ("exr", "sdr", "hdr10")),
}
VIDEO_FORMATS = {name: kind for name, kind in OUTPUT_KINDS.items() if kind.encoder}
CONVERT_FORMATS = {name: kind.parts for name, kind in OUTPUT_KINDS.items() if kind.convert}
RENDER_KINDS = tuple(name for name, kind in OUTPUT_KINDS.items() if kind.encoder or kind.renderer)


def kinds_help(names: Iterable[str]) -> str:
    """``name: what it is`` for each kind, for --help."""
    return "; ".join(f"{name}: {OUTPUT_KINDS[name].help}" for name in names)


def encode_frames(kind: str, frames: Iterable[np.ndarray], sequence: HdrSource,
                  out: str | Path, options: RenderOptions = RenderOptions(),
                  stats: SequenceStats = SequenceStats(),
                  progress: Callable[[int], None] | None = None) -> list[str]:
    """Encode linear HDR frames as a ``kind`` video (sdr, hdr10, hlg, prores, dnxhr) at
    ``out``, written under a temporary name and renamed when complete. Returns warnings.

    frames : linear Rec.709 float32 (H, W, 3) on the native hdrvid scale, in order, as
        `source.linear_frames` yields them: any iterable, read once (model output streams
        here without EXRs).
    sequence : their timestamps, size (``size`` when there are no files), scale and audio.
    stats : what the kind needs of the whole sequence before the first frame (`measure`
        finds it on a sequence that can be read twice): sdr a key, hdr10 light levels.
    """
    out = Path(out)
    check_format(kind, out, options)
    return VIDEO_FORMATS[kind].encoder(frames, sequence, out, options, stats, progress)


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
    """Render ``source`` (see `source.read_source`) to ``output``: ``kind`` is one of
    `RENDER_KINDS`; by default png for a folder and sdr for a video name. A video's
    `SequenceStats` are measured on the source first (HDR10: a first pass over every frame)."""
    output = Path(output)
    kind = output_kind(output, kind)
    renderer = OUTPUT_KINDS[kind].renderer if kind in OUTPUT_KINDS else None
    if renderer is None:
        check_format(kind, output, options)  # refuses, too, a kind that is not rendered
    sequence = read_source(source, options.peak_nits)
    if kind == "png" and output.suffix.lower() == ".png" and len(sequence) != 1:
        raise OutputError(f"{output}: names one PNG but {source} holds {len(sequence)} frames; "
                          "name a folder for the PNGs, or pass one EXR file")
    if renderer:
        return renderer(sequence, output, options, progress)
    stats = measure(kind, sequence, options)
    return VIDEO_FORMATS[kind].encoder(linear_frames(sequence), sequence, output, options, stats,
                                       progress)


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
