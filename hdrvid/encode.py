"""Video encoding with PyAV: `VideoWriter`, the encoders' options, and audio copied from the
source (whole, or the part of it a cut keeps). With `video.py`, the only module that imports av.

Frames are converted R'G'B' -> Y'CbCr here in float with the exact inverse of the decoder's
matrix (`video.ycbcr_to_rgb_matrix`), so clips written by tests and `hdrvid.synth` decode back
without bias.
"""

from __future__ import annotations

import fractions
import functools
import os
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

from hdrvid.errors import OutputError
from hdrvid.video import ColorInfo, error_reason, ycbcr_to_rgb_matrix

_MATRIX_TO_AV = {"bt601": Colorspace.ITU601, "bt709": Colorspace.ITU709, "bt2020": Colorspace.BT2020}


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


BT709_LIMITED = ColorInfo("bt709", False, True)  # what VideoWriter tags by default
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
        return log.strip() or error_reason(exc)  # the log names the cause: no driver, no GPU, ...
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
                 color: ColorInfo = BT709_LIMITED,
                 time_base: fractions.Fraction | None = None, preset: str = "medium",
                 primaries: str | None = None, transfer: str | None = None,
                 codec_params: str = "", audio_from: str | Path | None = None,
                 chroma: str = "420",
                 audio_cut: tuple[float | None, float | None, float] = (None, None, 0.0)):
        codec = resolve_encoder(codec)
        _check_size(path, codec, width, height)
        if codec == "libsvtav1":
            os.environ.setdefault("SVT_LOG", "1")  # errors only, not its banner for every stream
        self.path = Path(path)
        self.bits, self.color, self.chroma = bits, color, chroma
        self.width, self.height = width + width % 2, height + height % 2
        self.warnings: list[str] = []
        try:
            self._container = av.open(str(self.path), "w")
        except (av.error.FFmpegError, ValueError) as exc:
            raise OutputError(f"{self.path}: cannot create the video ({error_reason(exc)}); use "
                              "a .mp4, .mkv or .mov name in a writable folder") from exc
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
