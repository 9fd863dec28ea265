"""HdrPredictor: precision, tiling and the early memory check, on small models."""

import ctypes
import ctypes.util
import itertools
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import render_clip, save_official

from hdrvid import ConvertOptions, convert
from hdrvid import predictor as predictor_module
from hdrvid.color import mu_law_torch
from hdrvid.errors import ModelError
from hdrvid.models.lan_hdr import LanHdr
from hdrvid.predictor import HdrPredictor, feather, resolve_precision, tiles
from hdrvid.process import keep_freed_memory


@pytest.mark.parametrize("size, tile, overlap", [(100, 40, 8), (1080, 512, 32), (64, 64, 32),
                                                 (513, 512, 32)])
def test_tiles_cover_the_frame_with_the_overlap(size, tile, overlap):
    spans = tiles(size, tile, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == size
    assert all(stop - start == min(tile, size) for start, stop in spans)
    assert all(a[1] - b[0] >= overlap for a, b in itertools.pairwise(spans))


def test_feather_ramps_only_inside_the_frame():
    assert torch.equal(feather(10, 0, 10, 10, 4), torch.ones(10))
    inner = feather(10, 5, 15, 30, 4)
    assert inner[0] > 0 and inner[3] < 1 and inner[4] == 1 and inner[-1] > 0


def test_tiled_prediction_of_a_pixelwise_model_equals_the_whole_frame():
    whole = HdrPredictor("reference", 2, "cpu")
    tiled = HdrPredictor("reference", 2, "cpu", tile=64)
    ldr, times = torch.rand(2, 1, 3, 150, 170), torch.tensor([[8.0], [1.0]])
    torch.testing.assert_close(tiled.predict_torch(ldr, times), whole.predict_torch(ldr, times))


def test_precision_auto_uses_bf16_where_the_cpu_has_it():
    warnings = []
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu, warnings) == (torch.bfloat16 if native else None)
    assert resolve_precision("fp32", cpu, warnings) is None
    assert resolve_precision("fp16", cpu, warnings) is None
    assert warnings == ["--precision fp16 is not supported on the CPU; running fp32 (bf16 is)"]


def test_bf16_stays_close_to_fp32_on_lan_hdr(tmp_path):
    torch.manual_seed(0)
    path = save_official(LanHdr(5).state_dict(), tmp_path / "ckpt.pt", key="g")
    ldr, times = torch.rand(1, 5, 3, 48, 64), torch.tensor([[1.0, 8.0, 1.0, 8.0, 1.0]])
    fp32 = HdrPredictor("lan-hdr", 2, "cpu", weights=path, precision="fp32")
    bf16 = HdrPredictor("lan-hdr", 2, "cpu", weights=path, precision="bf16")
    reference = fp32.predict_torch(ldr, times)
    assert (bf16.predict_torch(ldr, times) - reference).abs().max() < 0.02


@pytest.mark.parametrize("period, times", [(2, [1.0, 8.0, 1.0]), (3, [4.0, 16.0, 1.0, 4.0, 16.0])])
def test_bf16_runs_f2hdr_with_its_denoiser_close_to_fp32(period, times):
    """The shipped f2hdr weights (denoiser on) under bf16, auto's choice on CPUs with native bf16:
    the fp32 islands must keep fp32 weights, and the result stay close in the μ-law domain."""
    gradient = torch.linspace(0, 1, 96).expand(64, 96)
    ldr = torch.stack([(gradient * t / 4).clamp(0, 1) ** (1 / 2.2) for t in times])
    ldr = ldr[None, :, None].expand(-1, -1, 3, -1, -1).contiguous()
    times = torch.tensor([times])
    fp32 = HdrPredictor("f2hdr", period, "cpu", precision="fp32").predict_torch(ldr, times)
    bf16 = HdrPredictor("f2hdr", period, "cpu", precision="bf16").predict_torch(ldr, times)
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16).all()
    assert (mu_law_torch(bf16) - mu_law_torch(fp32)).abs().max() < 0.01


def test_a_frame_too_large_for_memory_fails_before_any_work(monkeypatch, tmp_path):
    monkeypatch.setattr(predictor_module, "free_memory", lambda device: 2 << 30)
    path = save_official(LanHdr(5).state_dict(), tmp_path / "ckpt.pt", key="g")
    predictor = HdrPredictor("lan-hdr", 2, "cpu", weights=path)
    with pytest.raises(ModelError, match=r"lan-hdr needs about 9.3 GiB for one 1920×1080 window "
                                         r"and cpu has 2.0 GiB free; use --tile 512"):
        predictor.check_memory(1080, 1920, 1)
    batch, warning = predictor.check_memory(360, 480, 4)
    assert batch == 2 and "using --batch-size 2" in warning
    tiled = HdrPredictor("lan-hdr", 2, "cpu", weights=path, tile=512)
    assert tiled.check_memory(1080, 1920, 1) == (1, None)


def test_convert_lowers_the_batch_to_what_fits(monkeypatch, tmp_path):
    clip = render_clip(tmp_path / "clip.mp4", (1, 8), 6, width=96, height=64)
    path = save_official(LanHdr(5).state_dict(), tmp_path / "ckpt.pt", key="g")
    monkeypatch.setattr(predictor_module, "free_memory", lambda device: 96 * 64 * 4800 * 2.5)
    report = convert(clip.path, tmp_path / "out", ConvertOptions(
        model="lan-hdr", weights=str(path), batch_size=8, device="cpu", max_frames=3))
    assert report.frames == 3
    assert any("using --batch-size 2" in w for w in report.warnings)


def _seam_excess(image: torch.Tensor, whole: torch.Tensor, columns: list[int]) -> float:
    """Largest change of the horizontal step between neighbouring pixels at ``columns``, against
    the whole-frame result: a seam shows as a step the whole frame does not have."""
    step = lambda x: (x[..., columns] - x[..., [c - 1 for c in columns]]).abs()
    return (step(image) - step(whole)).abs().max().item()


def test_tiles_of_a_convolutional_model_leave_no_seams(tmp_path, monkeypatch):
    """hdrflow (random weights) in 128-pixel tiles: the feathered overlaps leave no step in the
    overlaps, where tiles cut at their borders (no halo) leave a clear one."""
    from hdrvid.models.hdrflow import HDRFlow
    from hdrvid.weights import save_safetensors

    torch.manual_seed(0)
    path = tmp_path / "hdrflow.safetensors"
    save_safetensors(HDRFlow(2), path, {"model": "hdrflow", "period": 2})
    scene = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 20), size=(192, 320),
                                            mode="bicubic").clamp(0.05, 1)
    times = torch.tensor([[1.0, 8.0, 1.0]])
    ldr = torch.stack([scene, (scene * 8 ** (1 / 2.2)).clamp(0, 1), scene.roll(2, dims=-1)], 1)
    run = lambda tile: HdrPredictor("hdrflow", 2, "cpu", weights=path, precision="fp32",
                                    tile=tile).predict_torch(ldr, times)
    whole, feathered = run(None), run(128)
    spans = tiles(320, 128, 32)
    overlaps = [c for a, b in itertools.pairwise(spans) for c in range(b[0], a[1] + 1)]

    def no_halo(length, start, stop, size, overlap):  # a tile gives way where the next begins
        keep = torch.ones(length)
        following = [s for s, _ in tiles(size, 128, overlap) if start < s < stop]
        if following:
            keep[following[0] - start:] = 0
        return keep

    monkeypatch.setattr(predictor_module, "feather", no_halo)
    cut = run(128)
    assert _seam_excess(cut, whole, overlaps) > 5e-3  # the test can see a seam
    assert _seam_excess(feathered, whole, overlaps) < 0.2 * _seam_excess(cut, whole, overlaps)


YUV_FORMATS = [("libx264", "yuv420p", ".mp4"), ("libx264", "yuvj420p", ".mp4"),
               ("libx264", "yuv444p", ".mp4"), ("libx265", "yuv420p10le", ".mp4"),
               ("prores_ks", "yuv422p10le", ".mov")]


def _yuv_clip(path, codec: str, pix_fmt: str, frames: int = 2, width: int = 104, height: int = 72):
    """Smooth random colour fields (with sharp chroma edges: the upsampling matters) encoded
    as ``pix_fmt``; 72 rows: not a multiple of 16."""
    import av

    rng = np.random.default_rng(3)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for _ in range(frames):
            rgb = np.repeat(np.repeat(rng.integers(0, 256, (height // 8, width // 8, 3)), 8, 0), 8, 1)
            frame = av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.mark.parametrize("codec, pix_fmt, suffix", YUV_FORMATS, ids=[f[1] for f in YUV_FORMATS])
@pytest.mark.parametrize("transfer", ["gamma2.2", "srgb", "linear", "table"])
def test_ycbcr_converts_on_the_device_as_on_the_host(tmp_path, codec, pix_fmt, suffix, transfer):
    """``yuv_on="device"`` (torch: what a GPU runs, here on the CPU) gives the host's model
    input (OpenCV matrix and chroma upsampling, numpy camera response) to float rounding, for
    each chroma subsampling, bit depth, range and camera response."""
    from hdrvid.response import load_response
    from hdrvid.video import read_frames

    if transfer == "table":  # a film-like S-curve, tabulated in code values
        codes = np.arange(0, 256, 5)
        linear = 1 / (1 + np.exp(-(codes - 140) / 30.0))
        np.savetxt(tmp_path / "curve.txt", np.stack([codes, linear], 1))
        transfer = str(tmp_path / "curve.txt")
    # x265 in PyAV's FFmpeg often fails to flush a 2-frame 10-bit clip this small; 4 flush
    path = _yuv_clip(tmp_path / f"clip{suffix}", codec, pix_fmt,
                     frames=4 if codec == "libx265" else 2)
    response = load_response(transfer)
    host = HdrPredictor("reference", 2, "cpu", response, yuv_on="host")
    device = HdrPredictor("reference", 2, "cpu", response, yuv_on="device")
    pairs = zip(read_frames(path), read_frames(path, keep_ycbcr=True), strict=True)
    for rgb_frame, ycbcr_frame in pairs:
        assert ycbcr_frame.rgb is None and ycbcr_frame.ycbcr is not None
        assert ycbcr_frame.ycbcr.planes[0].dtype == (np.uint16 if "10" in pix_fmt else np.uint8)
        expected = host.prepare(rgb_frame.pixels)
        assert expected.std() > 0.1  # a real picture, not a flat field
        on_device = device.prepare(ycbcr_frame.pixels)
        # in linear light: re-encoding a linear or film response with 1/2.2 magnifies float
        # rounding near black (a 2e-7 difference at 1e-6 becomes 2e-4)
        torch.testing.assert_close(on_device ** 2.2, expected ** 2.2, atol=1e-5, rtol=0)
        torch.testing.assert_close(on_device, expected, atol=2e-3, rtol=0)
        torch.testing.assert_close(host.prepare(ycbcr_frame.pixels), expected, atol=0, rtol=0)


def test_batch_size_defaults_to_the_models():
    """merge runs two windows per call unless told otherwise; models whose windows run in
    parallel on the CPU one per core (one on a single core); the others one."""
    merge, reference = HdrPredictor("merge", 2, "cpu"), HdrPredictor("reference", 2, "cpu")
    assert merge.check_memory(360, 640, None)[0] == 2
    assert reference.check_memory(360, 640, None)[0] == 1
    assert merge.check_memory(360, 640, 5)[0] == 5
    hdrflow = HdrPredictor("hdrflow", 2, "cpu")
    assert hdrflow.check_memory(360, 640, None)[0] == max(1, torch.get_num_threads())
    hdrflow.cores = 4
    assert (hdrflow.parallel_windows, hdrflow.check_memory(360, 640, None)[0]) == (True, 4)
    hdrflow.cores = 1
    assert (hdrflow.parallel_windows, hdrflow.check_memory(360, 640, None)[0]) == (False, 1)


def test_parallel_windows_equal_each_window_alone_on_its_cores():
    """On the CPU, hdrflow's windows of one call run at once, one per thread with
    cores / windows torch threads each: every output equals that window run alone on that many
    threads, and the caller's thread count is as it was."""
    threads = torch.get_num_threads()
    predictor = HdrPredictor("hdrflow", 2, "cpu")
    predictor.cores = 2
    torch.manual_seed(0)
    ldr, times = torch.rand(3, 3, 3, 40, 56), torch.tensor([[1.0, 8.0, 1.0]] * 3)
    try:
        together = predictor.predict_torch(ldr, times)
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        alone = [predictor.predict_torch(ldr[i:i + 1], times[i:i + 1]) for i in range(3)]
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(together, torch.cat(alone))
    assert sorted(predictor._pools) == [2]  # 3 windows on 2 threads


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def test_large_blocks_come_from_the_heap_once_freed_memory_is_kept():
    """After `keep_freed_memory` (what `hdrvid.tune_process` calls), a 64 MB activation is carved from malloc's heap, where freed blocks are reused, not mapped afresh
    (16,384 new pages for the kernel to zero, on every forward)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if not hasattr(libc, "mallinfo2") or not keep_freed_memory():
        pytest.skip("not glibc >= 2.33")
    libc.mallinfo2.restype = MallInfo2
    mapped = libc.mallinfo2().hblkhd
    activation = torch.ones(16 << 20)
    assert libc.mallinfo2().hblkhd == mapped
    assert activation.sum() == 16 << 20


ALLOCATOR_PROBE = """
import ctypes, ctypes.util
import torch
import hdrvid
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
libc.mallinfo2.restype = MallInfo2
def mapped_for_a_64_mb_block():
    before = libc.mallinfo2().hblkhd
    block = torch.ones(16 << 20)
    return libc.mallinfo2().hblkhd - before
hdrvid.HdrPredictor("reference", 2, "cpu")
print(mapped_for_a_64_mb_block())
hdrvid.tune_process()
print(mapped_for_a_64_mb_block())
"""


def test_a_cpu_predictor_leaves_the_allocator_alone_until_the_process_is_tuned():
    """Constructing a CPU predictor keeps malloc's defaults (a 64 MB block is a fresh mapping);
    only `hdrvid.tune_process` makes it carve such blocks from the heap. In a fresh process:
    once set, malloc's options stay for the process's life."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("not glibc >= 2.33")
    out = subprocess.run([sys.executable, "-c", ALLOCATOR_PROBE], check=True,
                         capture_output=True, text=True).stdout.split()
    untouched, tuned = (int(v) for v in out)
    assert untouched >= 64 << 20
    assert tuned == 0
