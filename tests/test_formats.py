"""Output formats of issue 28: HLG, AV1, ProRes 4444 and DNxHR 444 (PQ or HLG), EXR primaries
(ACEScg, ACES2065-1 containers), HDR10 / HLG videos as `tonemap` input, NVENC fallback.

Every video is rendered from one small conversion (256×144, 8 frames, with audio), reopened
with PyAV and checked for codec, profile, pixel format, colour tags, frame count, timestamps,
audio, and decoded back to linear light against the EXRs.
"""

import av
import numpy as np
import OpenEXR
import pytest
from click.testing import CliRunner
from conftest import assert_one_line_error
from test_outputs import _audio_file

from hdrvid import ConvertOptions, convert, encode, primaries
from hdrvid.cli import main
from hdrvid.encode import VideoWriter
from hdrvid.errors import HdrvidError, OutputError
from hdrvid.exposure import pattern_from_cycle
from hdrvid.exr import frame_name, read_exr, stored_pixels, write_exr
from hdrvid.render import (
    CONVERT_FORMATS,
    OUTPUT_KINDS,
    RENDER_KINDS,
    RenderOptions,
    SequenceStats,
    encode_frames,
    light_levels,
    measure,
    render,
)
from hdrvid.source import HdrSource, as_linear, key_sample, linear_frames, read_source
from hdrvid.synth import expose, procedural_scene
from hdrvid.tonemap import luminance_bt709, sequence_key

FRAMES = 8
PQ, HLG = 16, 18
# kind, file name, options, (decoder, profile, decoded pix_fmt, transfer tag, audio codec)
CASES = {
    "hlg-hevc": ("hlg", "hlg.mp4", {}, ("hevc", "Main 10", "yuv420p10le", HLG, "aac")),
    "hlg-av1": ("hlg", "hlg-av1.mp4", {"codec": "av1"},
                ("libdav1d", "Main", "yuv420p10le", HLG, "aac")),
    "hdr10-av1": ("hdr10", "hdr10-av1.mp4", {"codec": "av1"},
                  ("libdav1d", "Main", "yuv420p10le", PQ, "aac")),
    # ProRes 4444 is decoded to 12 bits whatever the encoder was given (10 here)
    "prores-pq": ("prores", "prores.mov", {}, ("prores", "4444", "yuv444p12le", PQ, "aac")),
    "prores-hlg": ("prores", "prores-hlg.mov", {"transfer": "hlg"},
                   ("prores", "4444", "yuv444p12le", HLG, "aac")),
    "dnxhr-pq": ("dnxhr", "dnxhr.mov", {}, ("dnxhd", "DNXHR 444", "yuv444p10le", PQ, "aac")),
    "dnxhr-hlg-mxf": ("dnxhr", "dnxhr-hlg.mxf", {"transfer": "hlg"},
                      ("dnxhd", "DNXHR 444", "yuv444p10le", HLG, "pcm_s24le")),
}
# Decoded back to linear light, relative luminance error against the EXRs over pixels between
# 0.002 and 0.9 (below: noise; above: PQ's and HLG's clip at 1.0): median and 95th percentile.
# 4:2:0 delivery codecs lose luminance at colour edges (non-constant-luminance Y'CbCr); the
# 4:4:4 mezzanine codecs keep it. The README states these bounds.
TOLERANCE_420 = (0.03, 0.10)
TOLERANCE_444 = (0.008, 0.025)


@pytest.fixture(scope="module")
def exrs(tmp_path_factory):
    """A conversion of a 2-exposure clip with a 1 s AAC track: EXRs and hdrvid.json."""
    folder = tmp_path_factory.mktemp("formats")
    clip = folder / "clip.mp4"
    pattern = pattern_from_cycle([1, 8])
    with VideoWriter(clip, 256, 144, fps=24, audio_from=_audio_file(folder / "tone.m4a")) as w:
        for i, hdr in enumerate(procedural_scene(FRAMES, 256, 144, seed=5)):
            w.write(expose(hdr, pattern.time(i)))
    convert(clip, folder / "exr", ConvertOptions())
    return clip, folder / "exr"


@pytest.fixture(scope="module")
def rendered(exrs, tmp_path_factory):
    """{case: (path, warnings)} for every case, plus HDR10 and HLG HEVC."""
    folder = tmp_path_factory.mktemp("videos")
    out = {}
    for case, (kind, name, options, _) in CASES.items():
        out[case] = folder / name, render(exrs[1], folder / name, kind,
                                          RenderOptions(**options))
    out["hdr10-hevc"] = folder / "hdr10.mp4", render(exrs[1], folder / "hdr10.mp4", "hdr10")
    return out


def _times(path):
    """Presentation times (s) of the video's packets, sorted."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sorted(float(p.pts * stream.time_base) for p in container.demux(stream)
                      if p.size and p.pts is not None)


def _linear(source):
    return np.stack(list(linear_frames(read_source(source))))


@pytest.mark.parametrize("case", list(CASES))
def test_each_format_is_tagged_and_keeps_timing_and_audio(case, exrs, rendered):
    decoder, profile, pix_fmt, transfer, audio = CASES[case][3]
    path, warnings = rendered[case]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        cc = stream.codec_context
        tags = (int(cc.color_primaries), int(cc.color_trc), int(cc.colorspace), int(cc.color_range))
        frames = list(container.decode(stream))
        audio_codecs = [a.codec_context.name for a in container.streams.audio]
    assert (cc.name, cc.profile) == (decoder, profile)
    assert {f.format.name for f in frames} == {pix_fmt}
    # BT.2020 primaries and matrix, limited range; FFmpeg's MXF reader leaves the range unset
    assert tags == (9, transfer, 9, 0 if path.suffix == ".mxf" else 1)
    assert len(frames) == FRAMES
    np.testing.assert_allclose(_times(path), _times(exrs[0]), atol=1e-3)
    assert audio_codecs == [audio]
    assert all(("MXF" in w) for w in warnings)  # MXF's PCM note is the only warning
    if case == "hdr10-av1":  # SVT-AV1 takes the mastering display and light levels
        kinds = {sd.type.name for sd in frames[0].side_data}
        assert {"MASTERING_DISPLAY_METADATA", "CONTENT_LIGHT_LEVEL"} <= kinds


@pytest.mark.parametrize("case", ["hdr10-hevc", *CASES])
def test_pq_and_hlg_decode_back_to_the_exrs(case, exrs, rendered):
    truth, back = _linear(exrs[1]), _linear(rendered[case][0])
    y, y_back = luminance_bt709(truth), luminance_bt709(back)
    measured = (y > 0.002) & (y < 0.9)
    error = np.abs(y_back - y)[measured] / y[measured]
    median_bound, p95_bound = TOLERANCE_444 if "hlg-" not in case and (
        "prores" in case or "dnxhr" in case) else TOLERANCE_420
    assert np.median(error) < median_bound
    assert np.percentile(error, 95) < p95_bound


@pytest.mark.parametrize("case", ["hdr10-hevc", "hlg-hevc"])
def test_tonemap_of_an_hdr_video_matches_tonemap_of_the_exrs(case, exrs, rendered, tmp_path):
    source = rendered[case][0]
    for name, src in (("from-exr.mp4", exrs[1]), ("from-video.mp4", source)):
        result = CliRunner().invoke(main, ["tonemap", str(src), "-o", str(tmp_path / name),
                                           "--crf", "12", "-q"])
        assert result.exit_code == 0, result.output

    def sdr(path):
        with av.open(str(path)) as container:
            assert [a.codec_context.name for a in container.streams.audio] == ["aac"]
            return np.stack([f.to_ndarray(format="rgb24").astype(np.float32)
                             for f in container.decode(video=0)])

    reference, from_video = sdr(tmp_path / "from-exr.mp4"), sdr(tmp_path / "from-video.mp4")
    assert from_video.shape == reference.shape == (FRAMES, 144, 256, 3)
    difference = np.abs(from_video - reference)  # 8-bit codes; README states these bounds
    assert difference.mean() < 2.5
    assert np.percentile(difference, 99) < 12
    np.testing.assert_allclose(_times(tmp_path / "from-video.mp4"), _times(exrs[0]), atol=1e-3)


def test_tonemap_refuses_sdr_videos(exrs, tmp_path):
    result = CliRunner().invoke(main, ["tonemap", str(exrs[0]), "-o", str(tmp_path / "x.mp4")])
    assert_one_line_error(result, "clip.mp4: not an HDR video", "HDR10 or HLG")


def test_hlg_curve_and_scale():
    from hdrvid.render import hlg_signal
    from hdrvid.tonemap import oetf_hlg, oetf_inverse_hlg

    # BT.2100: E = 1/12 is the joint of the square root and the log (signal 0.5), E = 1 is 1.0,
    # and BT.2408's reference white (75 % signal) is scene light 0.2650
    assert oetf_hlg(1 / 12) == pytest.approx(0.5, abs=1e-12)
    assert oetf_hlg(1.0) == pytest.approx(1.0, abs=1e-7)
    assert oetf_inverse_hlg(0.75) == pytest.approx(0.2650, abs=1e-4)
    e = np.linspace(0, 1, 10001)
    np.testing.assert_allclose(oetf_inverse_hlg(oetf_hlg(e)), e, atol=1e-12)
    grey = np.array([[[1.0, 1.0, 1.0], [0.265, 0.265, 0.265], [4.0, 4.0, 4.0]]], np.float32)
    np.testing.assert_allclose(hlg_signal(grey)[0], [[1, 1, 1], [0.75, 0.75, 0.75], [1, 1, 1]],
                               atol=1e-3)  # hdrvid 1.0 = E 1; brighter clips


# --- EXR primaries ---------------------------------------------------------------------------

# SMPTE ST 2065-1 (AP0) and Academy S-2014-004 (AP1): RGB -> XYZ as published
AP0_TO_XYZ = [[0.9525523959, 0.0, 0.0000936786],
              [0.3439664498, 0.7281660966, -0.0721325464],
              [0.0, 0.0, 1.0088251844]]
AP1_TO_XYZ = [[0.6624541811, 0.1340042065, 0.1561876870],
              [0.2722287168, 0.6740817658, 0.0536895174],
              [-0.0055746495, 0.0040607335, 1.0103391003]]
# AP0 -> AP1 (same white: no adaptation), as aces-dev publishes it (ACESlib.Transform_Common)
AP0_TO_AP1 = [[1.4514393161, -0.2365107469, -0.2149285693],
              [-0.0765537734, 1.1762296998, -0.0996759264],
              [0.0083161484, -0.0060324498, 0.9977163014]]
# linear Rec.709 (D65) -> ACES2065-1 and -> ACEScg with Bradford adaptation, as aces-dev's
# README-MATRIX and the OCIO configurations publish them (to 7 and 4 decimals)
REC709_TO_AP0 = [[0.4397010, 0.3829780, 0.1773350],
                 [0.0897923, 0.8134230, 0.0967616],
                 [0.0175440, 0.1115440, 0.8707040]]
REC709_TO_AP1 = [[0.6131, 0.3395, 0.0474],
                 [0.0702, 0.9164, 0.0134],
                 [0.0206, 0.1096, 0.8698]]


def test_primaries_matrices_match_the_published_ones():
    c = primaries.CHROMATICITIES
    np.testing.assert_allclose(primaries.rgb_to_xyz(c["aces2065-1"]), AP0_TO_XYZ, atol=1e-8)
    np.testing.assert_allclose(primaries.rgb_to_xyz(c["acescg"]), AP1_TO_XYZ, atol=1e-8)
    np.testing.assert_allclose(primaries.conversion(c["aces2065-1"], c["acescg"]), AP0_TO_AP1,
                               atol=1e-8)
    from hdrvid.tonemap import BT709_TO_BT2020  # the HDR videos' matrix agrees (BT.2087)

    np.testing.assert_allclose(primaries.conversion(c["rec709"], c["bt2020"]), BT709_TO_BT2020,
                               atol=1e-12)
    # the published Rec.709 -> AP0 matrix maps white to (1.00001, 0.99998, 0.99979): it was
    # rounded from slightly different whites; ours maps it to (1, 1, 1)
    np.testing.assert_allclose(primaries.conversion(c["rec709"], c["aces2065-1"]),
                               REC709_TO_AP0, atol=3e-4)
    np.testing.assert_allclose(primaries.conversion(c["rec709"], c["aces2065-1"]).sum(1), 1,
                               atol=1e-12)
    np.testing.assert_allclose(primaries.conversion(c["rec709"], c["acescg"]),
                               REC709_TO_AP1, atol=1e-4)
    patches = np.array([[0.18, 0.18, 0.18], [1.0, 0.0, 0.0], [0.2, 0.5, 0.1]], np.float32)
    aces = primaries.convert(patches, c["rec709"], c["aces2065-1"])
    np.testing.assert_allclose(aces[0], 0.18, rtol=1e-5)  # Bradford keeps neutrals neutral
    np.testing.assert_allclose(aces[1], np.array(REC709_TO_AP0)[:, 0], atol=2e-4)
    back = primaries.convert(aces, c["aces2065-1"], c["rec709"])
    np.testing.assert_allclose(back, patches, atol=1e-6)


@pytest.fixture(scope="module")
def by_primaries(exrs, tmp_path_factory):
    """The clip converted (model reference, 4 frames) with each --primaries."""
    folder = tmp_path_factory.mktemp("primaries")
    out = {}
    for name in ("rec709", "acescg", "aces2065-1"):
        out[name] = folder / name
        convert(exrs[0], out[name], ConvertOptions(model="reference", primaries=name,
                                                   max_frames=4))
    return out


@pytest.mark.parametrize("name", ["acescg", "aces2065-1"])
def test_aces_exrs_hold_converted_values_and_their_chromaticities(name, by_primaries):
    expected_chromaticities = primaries.CHROMATICITIES[name]
    matrix = np.array(REC709_TO_AP0 if name == "aces2065-1" else REC709_TO_AP1)
    for i in range(4):
        rec709 = read_exr(by_primaries["rec709"] / frame_name(i))[0].astype(np.float32)
        pixels = read_exr(by_primaries[name] / frame_name(i))[0].astype(np.float32)
        # half precision (3 decimal digits) and the published matrices' rounding
        np.testing.assert_allclose(pixels, rec709 @ matrix.T, rtol=2e-3, atol=2e-4)
    with OpenEXR.File(str(by_primaries[name] / frame_name(0)), header_only=True) as f:
        header = dict(f.header())
    np.testing.assert_allclose(header["chromaticities"], expected_chromaticities, atol=1e-6)
    if name == "aces2065-1":  # an ACES container: SMPTE ST 2065-4
        assert header["acesImageContainerFlag"] == 1
        assert header["compression"] == OpenEXR.NO_COMPRESSION
        np.testing.assert_allclose(header["adoptedNeutral"], (0.32168, 0.33767), atol=1e-6)
    else:
        assert "acesImageContainerFlag" not in header
        assert header["compression"] == OpenEXR.PIZ_COMPRESSION


def test_aces_sequences_render_like_rec709_ones(by_primaries):
    rec709 = _linear(by_primaries["rec709"])
    for name in ("acescg", "aces2065-1"):
        np.testing.assert_allclose(_linear(by_primaries[name]), rec709, rtol=3e-3, atol=3e-4)


def test_resume_refuses_other_primaries(by_primaries, exrs, tmp_path):
    import shutil

    shutil.copytree(by_primaries["acescg"], tmp_path / "out")
    with pytest.raises(OutputError, match="holds frames in primaries acescg"):
        convert(exrs[0], tmp_path / "out", ConvertOptions(model="reference", max_frames=4,
                                                         resume=True))


def test_compressed_aces2065_files_are_not_flagged_as_containers(tmp_path, exrs):
    report = convert(exrs[0], tmp_path, ConvertOptions(model="reference", max_frames=2,
                                                      primaries="aces2065-1", compression="piz"))
    with OpenEXR.File(str(tmp_path / frame_name(0)), header_only=True) as f:
        header = dict(f.header())
    assert "acesImageContainerFlag" not in header
    assert any("not SMPTE ST 2065-4 containers" in w for w in report.warnings)


# --- convert, refusals, NVENC ------------------------------------------------------------------

def test_convert_writes_a_prores_mov(exrs, tmp_path):
    report = convert(exrs[0], tmp_path, ConvertOptions(model="reference", format="prores",
                                                      transfer="hlg", max_frames=4))
    assert [p.name for p in report.videos] == ["clip-prores.mov"]
    assert not list(tmp_path.glob("*.exr")) and not list(tmp_path.glob(".*"))
    with av.open(str(tmp_path / "clip-prores.mov")) as container:
        cc = container.streams.video[0].codec_context
        assert (cc.name, int(cc.color_trc)) == ("prores", HLG)


@pytest.mark.parametrize("args, message", [
    (["--format", "hdr10", "--codec", "h264"], "--format hdr10 cannot be encoded with --codec h264"),
    (["--format", "sdr", "--transfer", "hlg"], "--format sdr with --transfer hlg"),
    (["--format", "hdr10", "--transfer", "hlg"], "--format hlg is HLG"),
    (["--format", "prores", "--codec", "av1"], "--format prores cannot be encoded with --codec av1"),
    (["--primaries", "aces2065-1", "--float32"], "half float"),
    (["--primaries", "aces2065-1", "--compression", "zip"], "take none"),
])
def test_unknown_combinations_are_refused_in_one_line(args, message, exrs, tmp_path):
    result = CliRunner().invoke(main, ["convert", str(exrs[0]), "-o", str(tmp_path / "o"),
                                       "-m", "reference", *args])
    assert_one_line_error(result, message)
    assert not list((tmp_path / "o").glob("*.exr"))


@pytest.mark.parametrize("args, message", [
    (["-o", "{tmp}/x.mp4", "--format", "prores"], "a video needs a .mov name"),
    (["-o", "{tmp}/x.mp4", "--format", "dnxhr"], "a video needs a .mov or .mxf name"),
])
def test_tonemap_refuses_wrong_containers(args, message, exrs, tmp_path):
    args = [a.format(tmp=tmp_path) for a in args]
    assert_one_line_error(CliRunner().invoke(main, ["tonemap", str(exrs[1]), *args]), message)


def test_dnxhr_refuses_frames_smaller_than_its_minimum(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    write_exr(folder / frame_name(0), np.full((64, 96, 3), 0.2, np.float16), {})
    with pytest.raises(OutputError, match="DNxHR needs frames of at least 256×120"):
        render(folder, tmp_path / "x.mov", "dnxhr")
    assert not list(tmp_path.glob("*.mov")) and not list(tmp_path.glob(".*"))


def test_mxf_refuses_variable_frame_rates(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in range(3):
        write_exr(folder / frame_name(i), np.full((128, 256, 3), 0.2, np.float16), {})
    (folder / "hdrvid.json").write_text(
        '{"time_base": "1/1000", "frames": [{"file": "frame_000000.exr", "time": 0, "pts": 0}, '
        '{"file": "frame_000001.exr", "time": 0.04, "pts": 40}, '
        '{"file": "frame_000002.exr", "time": 0.1, "pts": 100}]}')
    with pytest.raises(OutputError, match="MXF holds constant frame rates only"):
        render(folder, tmp_path / "x.mxf", "dnxhr")
    render(folder, tmp_path / "x.mov", "dnxhr")  # MOV keeps them
    assert _times(tmp_path / "x.mov") == pytest.approx([0, 0.04, 0.1])


def test_hevc_falls_back_to_x265_when_nvenc_does_not_open(exrs, tmp_path, monkeypatch):
    monkeypatch.setattr(encode, "cuda_present", lambda: True)  # NVENC is tried: no GPU here
    if encode.nvenc_error(256, 144, 10) is None:
        pytest.skip("NVENC opens on this machine")
    warnings = render(exrs[1], tmp_path / "hdr10.mp4", "hdr10")
    assert any(w.startswith("hevc_nvenc did not open") and "libx265" in w for w in warnings)
    with av.open(str(tmp_path / "hdr10.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "hevc"
    with pytest.raises(HdrvidError, match="--codec hevc_nvenc: the encoder did not open"):
        render(exrs[1], tmp_path / "forced.mp4", "hdr10", RenderOptions(codec="hevc_nvenc"))


# --- the output kinds and streamed frames ------------------------------------------------------

@pytest.mark.parametrize("kind, suffix", [("sdr", ".mp4"), ("hdr10", ".mp4"), ("hlg", ".mp4"),
                                          ("prores", ".mov")])
def test_frames_streamed_to_the_encoder_give_the_video_rendered_from_exrs(tmp_path, kind, suffix):
    """Model output streamed to `encode_frames` (a one-shot generator, a source without files,
    stats from the frames themselves: the key of `key_sample`'s frames, light levels of all)
    gives byte for byte the video `render` makes from the EXRs of the same frames."""
    scene = list(procedural_scene(5, 128, 72, seed=11))  # linear float32, as the model gives
    folder = tmp_path / "exr"
    folder.mkdir()
    for i, hdr in enumerate(scene):
        write_exr(folder / frame_name(i), stored_pixels(hdr), {})
    from_exrs = tmp_path / f"from-exrs{suffix}"
    render(folder, from_exrs, kind)

    stream = HdrSource([], [i / 24 for i in range(len(scene))], size=scene[0].shape[:2])
    linear = [as_linear(stored_pixels(hdr), stream) for hdr in scene]
    stats = SequenceStats(key=sequence_key([linear[i] for i in key_sample(len(linear))]),
                          light_levels=light_levels(linear, 1000.0))
    measured = measure(kind, read_source(folder), RenderOptions())
    assert stats.key == measured.key or measured.key is None
    assert stats.light_levels == measured.light_levels or measured.light_levels is None
    streamed = tmp_path / f"streamed{suffix}"
    frames = (as_linear(stored_pixels(hdr), stream) for hdr in scene)
    encode_frames(kind, frames, stream, streamed, stats=stats)
    assert streamed.read_bytes() == from_exrs.read_bytes()
    assert stats.light_levels[0] > stats.light_levels[1] > 0


def test_encoding_a_stream_needs_what_the_kind_must_know_first(tmp_path):
    stream = HdrSource([], [0.0], size=(72, 128))
    frames = [np.full((72, 128, 3), 0.5, np.float32)]
    with pytest.raises(ValueError, match="encoding sdr needs SequenceStats.key"):
        encode_frames("sdr", frames, stream, tmp_path / "a.mp4")
    with pytest.raises(ValueError, match="encoding hdr10 needs SequenceStats.light_levels"):
        encode_frames("hdr10", frames, stream, tmp_path / "a.mp4")
    assert not list(tmp_path.iterdir())  # nothing half-written
    with pytest.raises(OutputError, match="a video needs a .mov name"):
        encode_frames("prores", frames, stream, tmp_path / "a.mp4")


def test_the_cli_formats_are_the_output_kinds():
    """`convert --format` and `tonemap --format` offer the kinds of `OUTPUT_KINDS`, with their
    help; what each `convert --format` writes is the kind's parts."""
    for command, kinds in (("convert", CONVERT_FORMATS), ("tonemap", RENDER_KINDS)):
        text = " ".join(CliRunner().invoke(main, [command, "--help"]).output.split())
        assert f"--format [{'|'.join(kinds)}]" in text
        assert all(f"{name}: {OUTPUT_KINDS[name].help}" in text for name in kinds)
    assert CONVERT_FORMATS["all"] == ("exr", "sdr", "hdr10") and "png" not in CONVERT_FORMATS
    assert set(RENDER_KINDS) == {"sdr", "hdr10", "hlg", "prores", "dnxhr", "png"}


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """A clip long enough for sdr to stream (`stream.STREAM_SDR_FRAMES`), with audio, cut at
    --start so that timestamps and audio are shifted as in a part of a video."""
    from test_outputs import _clip_with_audio

    from hdrvid.stream import STREAM_SDR_FRAMES

    return _clip_with_audio(tmp_path_factory.mktemp("long"), STREAM_SDR_FRAMES + 12, 128, 72,
                            seed=4, seconds=5.0)


@pytest.mark.parametrize("kind, extra", [("sdr", {}), ("hlg", {}),
                                         ("sdr", {"scale": "mid-grey", "primaries": "acescg"})])
def test_a_conversion_streams_its_video_as_rendered_from_its_exrs(long_clip, tmp_path, kind,
                                                                  extra):
    """Without EXRs asked for, the video is encoded as the model's frames come (the hidden
    frames folder never holds a frame) and is byte for byte the video `render` makes from
    the EXRs of the same conversion, timestamps and audio included; also where the EXRs
    would hold scaled values in other primaries."""
    options = dict(start="0.5s", **extra)
    exrs = tmp_path / "exrs"
    convert(long_clip, exrs, ConvertOptions(format="exr", **options))
    from_exrs = tmp_path / f"from-exrs-{kind}.mp4"
    render(exrs, from_exrs, kind)

    hidden = tmp_path / "streamed" / ".hdrvid-frames"
    held = []
    report = convert(long_clip, tmp_path / "streamed", ConvertOptions(format=kind, **options),
                     progress=lambda event: held.append(len(list(hidden.glob("*.exr")))))
    streamed = tmp_path / "streamed" / f"clip-{kind}.mp4"
    assert report.videos == [streamed] and f"encode_{kind}" in report.stages
    assert held and not any(held) and not hidden.exists()
    assert streamed.read_bytes() == from_exrs.read_bytes()


def test_an_interrupted_streamed_conversion_leaves_nothing_half_written(long_clip, tmp_path):
    """Ctrl-C while streaming: no video, no partial file, no hidden folder; a second run into
    the same folder is not refused."""
    out = tmp_path / "out"

    def interrupt(event):
        if event.done >= 40:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert(long_clip, out, ConvertOptions(format="sdr"), progress=interrupt)
    assert list(out.iterdir()) == []
    convert(long_clip, out, ConvertOptions(format="hlg", max_frames=12))
    assert sorted(p.name for p in out.iterdir()) == ["clip-hlg.mp4", "hdrvid.json"]
