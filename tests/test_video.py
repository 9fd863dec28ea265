"""Decoding and encoding with PyAV: colour matrices and ranges, bit depths, timestamps, and
linearisation of decoded frames (docs/conventions.md §1)."""

import numpy as np
import pytest

from hdrvid.encode import VideoWriter, rgb_to_ycbcr
from hdrvid.errors import InputError
from hdrvid.response import Response, linearize_gamma22
from hdrvid.video import ColorInfo, probe, read_frames, ycbcr_to_rgb

BLOCK = 16


def _patchwork(height, width, seed):
    """Flat 16×16 colour patches (so chroma is constant inside each patch), plus a BT.709
    (200, 40, 40) patch in the top-left corner."""
    rng = np.random.default_rng(seed)
    colours = rng.uniform(0.03, 0.97, (height // BLOCK, width // BLOCK, 3)).astype(np.float32)
    colours[0, 0] = np.array([200, 40, 40]) / 255
    return np.repeat(np.repeat(colours, BLOCK, 0), BLOCK, 1)


def _interior(height, width, margin=3):
    """Pixels at least `margin` pixels from a patch edge: away from chroma edges."""
    inside = np.zeros((height, width), bool)
    for y in range(0, height, BLOCK):
        for x in range(0, width, BLOCK):
            inside[y + margin:y + BLOCK - margin, x + margin:x + BLOCK - margin] = True
    return inside


def _round_trip(path, bits, color, crf, n=3, height=144, width=256):
    source = [_patchwork(height, width, seed) for seed in range(n)]
    codec = "libx264" if bits == 8 else "libx265"
    with VideoWriter(path, width, height, codec=codec, bits=bits, crf=crf, color=color) as writer:
        for frame in source:
            writer.write(frame)
    decoded = [f.rgb for f in read_frames(path)]
    assert len(decoded) == n
    assert decoded[0].dtype == np.float32 and decoded[0].shape == (height, width, 3)
    error = (np.stack(decoded) - np.stack(source))[:, _interior(height, width)] * 255
    return error  # in 8-bit code values


COLORS = [ColorInfo("bt709", False, True), ColorInfo("bt709", True, True),
          ColorInfo("bt601", False, True), ColorInfo("bt2020", False, True)]


def _color_id(color):
    return f"{color.matrix}-{'full' if color.full_range else 'limited'}"


@pytest.mark.parametrize("color", COLORS, ids=_color_id)
def test_round_trip_8bit(tmp_path, color):
    error = _round_trip(tmp_path / "rt8.mp4", 8, color, crf=0)
    # 8-bit Y'CbCr quantisation alone allows up to ~1.7 codes in R or B (a half code in Y plus a
    # half code in Cb/Cr times 2(1 - Kb)); measured: max 1.6, mean 0.47, bias < 0.05
    assert np.abs(error).mean() < 0.6
    assert np.abs(error).max() < 2.0
    assert abs(error.mean()) < 0.1  # no systematic bias (swscale's rgb24 path is ~1 code dark)
    assert probe(tmp_path / "rt8.mp4").color == color


@pytest.mark.parametrize("color", COLORS[:2], ids=["limited", "full"])
def test_round_trip_10bit_is_much_tighter(tmp_path, color):
    path = tmp_path / "rt10.mp4"
    error = _round_trip(path, 10, color, crf=1)
    # measured with libx265 crf 1: max 0.69, mean 0.12 (8-bit codes)
    assert np.abs(error).mean() < 0.2
    assert np.abs(error).max() < 1.0
    info = probe(path)
    assert (info.codec, info.bit_depth, info.pix_fmt) == ("hevc", 10, "yuv420p10le")
    assert info.color == color


@pytest.mark.parametrize("bits", [8, 10])
@pytest.mark.parametrize("color", COLORS, ids=_color_id)
def test_ycbcr_conversion_is_exactly_invertible(bits, color):
    rgb = _patchwork(32, 48, 0)
    back = ycbcr_to_rgb(*rgb_to_ycbcr(rgb, bits, color), bits, color)
    np.testing.assert_allclose(back, rgb, atol=1e-5)


def _write_two_colours(path, width, height, color):
    """Left half BT.709 (200, 40, 40), right half grey."""
    image = np.full((height, width, 3), 0.5, np.float32)
    image[:, : width // 2] = np.array([200, 40, 40]) / 255
    with VideoWriter(path, width, height, crf=4, color=color) as writer:
        for _ in range(2):
            writer.write(image)
    return image


def test_tagged_bt709(tmp_path):
    path = tmp_path / "tagged.mp4"
    image = _write_two_colours(path, 256, 144, ColorInfo("bt709", False, True))
    info = probe(path)
    assert info.color == ColorInfo("bt709", False, True)
    assert info.color_tags["colorspace"] == 1  # AVCOL_SPC_BT709 is in the stream
    rgb = next(read_frames(path)).rgb
    np.testing.assert_allclose(rgb[72, 64] * 255, [200, 40, 40], atol=1.5)
    np.testing.assert_allclose(rgb[72, 192], image[72, 192], atol=1.5 / 255)


def test_untagged_sd_assumes_bt601(tmp_path):
    path = tmp_path / "untagged_sd.mp4"
    _write_two_colours(path, 256, 144, ColorInfo("bt601", False, False))
    info = probe(path)
    assert info.color == ColorInfo("bt601", False, False)
    assert not info.color.tagged and "assumed" in info.color.describe()
    rgb = next(read_frames(path)).rgb
    np.testing.assert_allclose(rgb[72, 64] * 255, [200, 40, 40], atol=1.5)


def test_untagged_hd_assumes_bt709(tmp_path):
    """PyAV treats untagged YUV as BT.601: a BT.709 (200, 40, 40) comes back as (185, 23, 41)
    (docs/conventions.md §1). hdrvid assumes BT.709 for 720 rows and more."""
    path = tmp_path / "untagged_hd.mp4"
    _write_two_colours(path, 1280, 720, ColorInfo("bt709", False, False))
    info = probe(path)
    assert (info.width, info.height) == (1280, 720)
    assert info.color == ColorInfo("bt709", False, False)
    assert info.color_tags["colorspace"] == 2  # unspecified
    rgb = next(read_frames(path)).rgb
    np.testing.assert_allclose(rgb[360, 320] * 255, [200, 40, 40], atol=1.5)
    # forcing BT.601 shows what the wrong matrix would give
    wrong = next(read_frames(path, color=ColorInfo("bt601", False, False))).rgb
    np.testing.assert_allclose(wrong[360, 320] * 255, [185, 23, 41], atol=2.0)


def test_probe_of_a_clip(clip2):
    info = probe(clip2.path)
    assert (info.width, info.height) == (256, 144)
    assert (info.codec, info.bit_depth, info.pix_fmt) == ("h264", 8, "yuv420p")
    assert info.fps == 24
    assert info.frame_count == clip2.n_frames
    assert info.duration == pytest.approx(clip2.n_frames / 24, abs=1e-3)
    assert info.audio_streams == 0
    assert info.as_dict()["frame_count"] == clip2.n_frames


def test_read_frames_order_times_and_max_frames(clip2):
    frames = list(read_frames(clip2.path))
    assert [f.index for f in frames] == list(range(clip2.n_frames))
    assert [f.time for f in frames] == pytest.approx([i / 24 for i in range(clip2.n_frames)])
    assert len(list(read_frames(clip2.path, max_frames=5))) == 5


@pytest.mark.parametrize("kind", ["missing", "directory", "text"])
def test_unreadable_inputs_raise_input_error(tmp_path, kind):
    path = tmp_path / "x.mp4"
    if kind == "directory":
        path.mkdir()
    elif kind == "text":
        path.write_text("not a video\n")
    with pytest.raises(InputError, match=str(path)):
        probe(path)
    with pytest.raises(InputError, match=str(path)):
        next(read_frames(path))


# --- variable frame rate ----------------------------------------------------------------------

def test_vfr_timestamps_are_preserved(vfr_clip):
    frames = list(read_frames(vfr_clip.path))
    info = probe(vfr_clip.path)
    expected = [float(p * vfr_clip.time_base) for p in vfr_clip.pts]
    assert [f.time for f in frames] == pytest.approx(expected, abs=1e-6)
    assert [float(f.pts * info.time_base) for f in frames] == pytest.approx(expected, abs=1e-6)


def test_vfr_clip_keeps_irregular_spacing(vfr_clip):
    """Whatever the time base, decoded frames keep their order and the irregular spacing."""
    frames = list(read_frames(vfr_clip.path))
    assert len(frames) == len(vfr_clip.pts)
    steps = np.diff([f.time for f in frames])
    assert np.all(steps > 0)
    given = np.diff(vfr_clip.pts).astype(float)
    # steps are proportional to the given ones (exactly equal once the writer bug is fixed)
    np.testing.assert_allclose(steps / steps[0], given / given[0], rtol=2e-3)
    assert len(set(np.round(steps / steps[0], 2))) > 2  # really variable


# --- linearisation: ratio t_high / t_low through a real encode/decode ---------------------------

GREYS = (0.03, 0.06, 0.1)  # linear radiance of three grey patches


def _grey_scene(n, height=144, width=256, greys=GREYS):
    frame = np.zeros((height, width, 3), np.float32)
    for k, g in enumerate(greys):
        frame[:, k * width // len(greys):(k + 1) * width // len(greys)] = g
    return [frame.copy() for _ in range(n)]


def _patch_means(rgb, greys=GREYS):
    width = rgb.shape[1] // len(greys)
    return [rgb[20:-20, k * width + 16:(k + 1) * width - 16].mean(axis=(0, 1))
            for k in range(len(greys))]


@pytest.mark.parametrize("cycle", [(1, 8), (8, 1), (1, 4, 16)])
def test_linearised_grey_patch_ratio_equals_exposure_ratio(tmp_path, cycle):
    from hdrvid.exposure import pattern_from_cycle
    from hdrvid.synth import write_alternating_clip

    greys = (0.02, 0.04, 0.06) if len(cycle) == 3 else GREYS  # the t = 16 frame must not clip
    pattern = pattern_from_cycle(cycle)
    path = tmp_path / "grey.mp4"
    write_alternating_clip(path, _grey_scene(2 * len(cycle), greys=greys), pattern, noise=(0, 0))
    frames = [f.rgb for f in read_frames(path)]
    linear = [_patch_means(linearize_gamma22(f), greys) for f in frames]
    for i in range(1, len(frames)):
        expected = pattern.time(i) / pattern.time(i - 1)
        for k in range(len(greys)):
            ratio = linear[i][k] / linear[i - 1][k]
            # a double linearisation would give expected ** 2.2, a missing one expected ** (1/2.2)
            np.testing.assert_allclose(ratio, expected, rtol=0.05)
    # dividing by each frame's own exposure gives the scene radiance
    for i, frame_means in enumerate(linear):
        for k, g in enumerate(greys):
            np.testing.assert_allclose(frame_means[k] / pattern.time(i), g, rtol=0.05)
    assert Response().to_gamma22(frames[0]) is frames[0]  # gamma-2.2 input is not re-encoded


def test_a_size_change_mid_stream_is_a_clear_error(tmp_path):
    """Two MPEG-TS segments of different sizes, concatenated as a camera might: one line naming
    the file and the first frame of the new size."""
    from hdrvid.errors import InputError

    parts = []
    for name, (w, h) in [("a", (128, 96)), ("b", (160, 96))]:
        with VideoWriter(tmp_path / f"{name}.ts", w, h) as writer:
            for i in range(6):
                writer.write(np.full((h, w, 3), 0.2 + 0.1 * i, np.float32))
        parts.append((tmp_path / f"{name}.ts").read_bytes())
    mixed = tmp_path / "mixed.ts"
    mixed.write_bytes(b"".join(parts))
    with pytest.raises(InputError, match=r"mixed.ts: frame 6 is 160×96 but the video starts at "
                                         r"128×96"):
        list(read_frames(mixed))
