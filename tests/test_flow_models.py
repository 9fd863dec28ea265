"""The flow family (docs/models/flow-models.md): Chen21, its coarse stage, Kalantari19 and FSHDRV.

Official layouts and parameter counts, strict loading of the official three-file folders, the
warp and the flow net's bookkeeping, the plain-torch DCN against a naive reference, the
reference overrides, and `convert` end to end with random weights on tiny clips.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from conftest import assert_one_line_error, official_layout, randomized, render_clip, save_official

from hdrvid.cli import main
from hdrvid.errors import WeightsError
from hdrvid.exr import frame_name, read_exr
from hdrvid.models.chen21 import Chen21, Chen21Coarse
from hdrvid.models.coarse import STAGE2_LOW, exposure_mask
from hdrvid.models.common import InputPadder, linearize, pad_bottom_right, warp
from hdrvid.models.dcn import deform_conv2d
from hdrvid.models.flownet import SpyFlowNet
from hdrvid.models.fshdrv import Fshdrv
from hdrvid.models.kalantari19 import Kalantari19
from hdrvid.registry import MODELS, count_parameters
from hdrvid.weights import load_weights, save_safetensors

PARTS = ("flow_net", "weight_net", "refine_net")
# docs/models/flow-models.md §2, §4, §5, §7
COUNTS = {2: {"flow_net": 907_145, "weight_net": 2_525_071, "refine_net": 3_010_019},
          3: {"flow_net": 1_032_165, "weight_net": 2_549_659, "refine_net": 3_008_291}}
TOTAL = {2: 6_442_235, 3: 6_590_115}
FSHDRV_TOTAL = 8_661_496   # ours: flow net 907,145 + HDC 32,960 + attention 55,392 + merge net


def window(exposures: int, frames: int, h: int = 48, w: int = 64, seed: int = 0,
           centre_low: bool = True):
    """A random window (1, frames, 3, h, w) and its exposures (1, frames), centre low or high."""
    cycle = [1.0, 8.0] if exposures == 2 else [1.0, 4.0, 16.0]
    phase = 0 if centre_low else exposures - 1
    times = torch.tensor([[cycle[(k - frames // 2 + phase) % exposures] for k in range(frames)]])
    return torch.rand(1, frames, 3, h, w, generator=torch.Generator().manual_seed(seed)), times


def chen21_folder(path, exposures: int, seed: int = 0):
    """An official-format CoarseToFine folder with random weights; returns (folder, net)."""
    net = randomized(Chen21(exposures), seed=seed)
    path.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        save_official(getattr(net, part).state_dict(), path / f"{part}.pth", key="state_dict")
    return path, net


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("chen21")
    return {e: chen21_folder(root / f"CoarseToFine_{e}Exp", e, seed=e)[0] for e in (2, 3)}


# --- layout and size ---------------------------------------------------------------------------

@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("exposures", [2, 3])
def test_chen21_state_dicts_equal_the_official_layouts_in_order(exposures, part):
    state = getattr(Chen21(exposures), part).state_dict()
    expected = official_layout(f"chen21-{exposures}e-{part}")
    assert [(k, tuple(v.shape)) for k, v in state.items()] == list(expected.items())


def test_kalantari19_merge_net_equals_the_c512_layout():
    state = Kalantari19(2).merge_net.state_dict()
    expected = official_layout("kalantari19-2e-merge_net-c512")
    assert [(k, tuple(v.shape)) for k, v in state.items()] == list(expected.items())


@pytest.mark.parametrize("exposures", [2, 3])
def test_parameter_counts_match_the_docs(exposures):
    net = Chen21(exposures)
    assert {part: count_parameters(getattr(net, part)) for part in PARTS} == COUNTS[exposures]
    assert count_parameters(net) == TOTAL[exposures]
    assert count_parameters(MODELS["chen21"].build(exposures)) == TOTAL[exposures]
    assert count_parameters(Kalantari19(2).merge_net) == 8_106_319
    assert count_parameters(Kalantari19(exposures).flow_net) == COUNTS[exposures]["flow_net"]
    assert count_parameters(Fshdrv()) == FSHDRV_TOTAL


# --- weights -----------------------------------------------------------------------------------

@pytest.mark.parametrize("exposures", [2, 3])
def test_official_folder_loads_strictly(tmp_path, exposures):
    folder, source = chen21_folder(tmp_path, exposures, seed=7)
    net = load_weights(Chen21(exposures), folder, MODELS["chen21"].checkpoint, "chen21")
    for key, value in source.state_dict().items():
        assert torch.equal(net.state_dict()[key], value), key
    coarse = load_weights(Chen21Coarse(exposures), folder, MODELS["chen21-coarse"].checkpoint,
                          "chen21-coarse")
    assert torch.equal(coarse.weight_net.state_dict()["upsample.layers.5.0.bias"],
                       source.weight_net.upsample.layers[5][0].bias)


def test_the_other_variants_folder_is_refused(folders):
    with pytest.raises(WeightsError, match="of the wrong shape"):
        load_weights(Chen21(2), folders[3], MODELS["chen21"].checkpoint, "chen21 2-exposure")


def test_a_missing_file_is_a_one_line_error(tmp_path, tiny):
    folder, _ = chen21_folder(tmp_path / "w", 2)
    (folder / "refine_net.pth").unlink()
    result = CliRunner().invoke(main, ["convert", str(tiny[2].path), "-o", str(tmp_path / "o"),
                                       "--model", "chen21", "--weights", str(folder),
                                       "--exposures", "1,8"])
    assert_one_line_error(result, folder, "refine_net.pth is missing")


def test_kalantari19_and_fshdrv_weights_load_strictly(tmp_path):
    source = randomized(Kalantari19(2), seed=3)
    for part in ("flow_net", "merge_net"):
        save_official(getattr(source, part).state_dict(), tmp_path / f"{part}.pth",
                      key="state_dict")
    net = load_weights(Kalantari19(2), tmp_path, MODELS["kalantari19"].checkpoint, "kalantari19")
    assert all(torch.equal(net.state_dict()[k], v) for k, v in source.state_dict().items())
    fshdrv = randomized(Fshdrv(), seed=4)
    save_safetensors(fshdrv, tmp_path / "fshdrv.safetensors", {"model": "fshdrv", "period": 2})
    loaded = load_weights(Fshdrv(), tmp_path / "fshdrv.safetensors", None, "fshdrv 2-exposure")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in fshdrv.state_dict().items())


# --- warping and the flow net ------------------------------------------------------------------

def test_chen21_padding_keeps_its_quirk_and_unpads():
    x = torch.rand(2, 3, 16, 21)
    padded = pad_bottom_right(x, 8)
    # W needs 3; H, already a multiple, still grows by a full 8 (the official code's quirk)
    assert padded.shape[-2:] == (24, 24)
    assert torch.equal(padded[..., :16, :21], x)
    assert torch.equal(padded[..., 23, 23], x[..., 15, 20])  # replicated corner
    assert pad_bottom_right(x[..., :16], 8).shape == (2, 3, 16, 16)  # multiples: unchanged
    padder = InputPadder(16, 21, 8, bottom_right=True)
    assert torch.equal(padder.unpad(padder.pad(x)), x)
    centred = InputPadder(16, 21, 8)
    assert centred.pads == (1, 2, 0, 0)

def test_zero_flow_warps_to_the_identity():
    image = torch.rand(2, 3, 17, 23)
    assert (warp(image, torch.zeros(2, 2, 17, 23)) - image).abs().max() < 1e-6


def test_a_known_shift_is_recovered_with_the_true_flow():
    # integer shift: exact inside, zeros entering from outside the frame
    image = torch.rand(1, 3, 20, 30, generator=torch.Generator().manual_seed(0))
    nbr = torch.zeros_like(image)
    nbr[..., 2:, :27] = image[..., :-2, 3:]            # nbr(x, y) = image(x + 3, y - 2)
    flow = torch.tensor([-3.0, 2.0]).view(1, 2, 1, 1).expand(1, 2, 20, 30)
    warped = warp(nbr, flow)            # warped(x) = nbr(x + flow) = image(x)
    assert torch.allclose(warped[..., :18, 3:], image[..., :18, 3:], atol=1e-5)  # fp32 grid
    assert warped[..., :, :3].abs().max() == 0 and warped[..., 18:, :].abs().max() == 0
    # sub-pixel shift of a linear ramp: bilinear sampling is exact
    ys, xs = torch.meshgrid(torch.arange(20.0), torch.arange(30.0), indexing="ij")
    ramp = lambda dx, dy: (0.02 * (xs + dx) + 0.03 * (ys + dy))[None, None]
    flow = torch.tensor([1.25, -0.5]).view(1, 2, 1, 1).expand(1, 2, 20, 30)
    warped = warp(ramp(-1.25, 0.5), flow)
    assert torch.allclose(warped[..., 1:, :-2], ramp(0, 0)[..., 1:, :-2], atol=1e-5)


@pytest.mark.parametrize("size", [(48, 64), (40, 56)])
def test_flow_net_pyramid_and_resize_bookkeeping(size):
    # every level predicts a residual of (1, -1) px: 1·16 + 8 + 4 + 2 + 1 = 31 px at full size,
    # then rescaled by W/W' and H/H' when the input was resized up to a multiple of 16
    net = SpyFlowNet(period=2)
    with torch.no_grad():
        for level in net.moduleBasic:
            last = level.moduleBasic[6]
            last.weight.zero_()
            last.bias.copy_(torch.tensor([1.0, -1.0, 1.0, -1.0]))
        flows = net(torch.rand(1, 9, *size))
    h, w = size
    assert flows.shape == (1, 4, h, w)
    assert torch.allclose(flows[:, 0::2], torch.full_like(flows[:, 0::2], 31 * w / 64))
    assert torch.allclose(flows[:, 1::2], torch.full_like(flows[:, 1::2], -31 * h / 48))


# --- deformable convolution --------------------------------------------------------------------

def naive_deform_conv(x, offset, mask, weight, bias):
    """The DCNv2 definition, one output pixel and tap at a time."""
    b, c, h, w = x.shape
    o, groups = weight.shape[0], mask.shape[1] // 9
    out = torch.zeros(b, o, h, w, dtype=torch.float64)

    def sample(img, y, x_):
        value = 0.0
        y0, x0 = int(np.floor(y)), int(np.floor(x_))
        for yy, xx in ((y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)):
            if 0 <= yy < h and 0 <= xx < w:
                value = value + img[yy, xx] * (1 - abs(y - yy)) * (1 - abs(x_ - xx))
        return value

    for n in range(b):
        for i in range(h):
            for j in range(w):
                for k in range(9):
                    for ch in range(c):
                        g = ch // (c // groups)
                        dy, dx = offset[n, 2 * (g * 9 + k), i, j], offset[n, 2 * (g * 9 + k) + 1, i, j]
                        y, x_ = i + k // 3 - 1 + float(dy), j + k % 3 - 1 + float(dx)
                        v = sample(x[n, ch].double(), y, x_) * mask[n, g * 9 + k, i, j]
                        out[n, :, i, j] += weight[:, ch, k // 3, k % 3].double() * v
    return out + bias.double().view(1, o, 1, 1)


def test_deform_conv_matches_a_naive_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 4, 5, 6, generator=g)
    offset = 2 * torch.randn(1, 2 * 2 * 9, 5, 6, generator=g)   # 2 groups; some taps fall outside
    mask = torch.rand(1, 2 * 9, 5, 6, generator=g)
    weight, bias = torch.randn(3, 4, 3, 3, generator=g), torch.randn(3, generator=g)
    expected = naive_deform_conv(x, offset, mask, weight, bias)
    assert torch.allclose(deform_conv2d(x, offset, mask, weight, bias).double(), expected,
                          atol=1e-4)


def test_deform_conv_with_zero_offsets_is_a_plain_conv():
    x, weight, bias = torch.rand(2, 16, 7, 9), torch.randn(8, 16, 3, 3), torch.randn(8)
    out = deform_conv2d(x, torch.zeros(2, 2 * 8 * 9, 7, 9), torch.ones(2, 8 * 9, 7, 9), weight,
                        bias)
    assert torch.allclose(out, F.conv2d(x, weight, bias, padding=1), atol=1e-4)


# --- overrides ---------------------------------------------------------------------------------

def test_exposure_masks_follow_the_reference_level():
    ldr = torch.tensor([0.95, 0.5, 0.3, 0.1]).view(1, 1, 1, 4).expand(1, 3, 1, 4).clone()
    t, f = torch.tensor([True]), torch.tensor([False])
    assert exposure_mask(ldr, t, f, 0.4).flatten().tolist() == [True, False, False, False]
    assert exposure_mask(ldr, f, t, 0.4).flatten().tolist() == [False, False, True, True]
    assert exposure_mask(ldr, f, f, STAGE2_LOW).flatten().tolist() == [True, False, False, True]


def test_chen21_keeps_the_reference_then_the_coarse_result_then_refines():
    # a low reference: some channel ≥ 0.4 -> the reference; all in [0.15, 0.4) -> the weight
    # net's coarse HDR; all < 0.15 -> the RefineNet
    net = randomized(Chen21(2), seed=1).eval()
    ldr, times = window(2, 5, h=16, w=24)
    ldr[:, 2, :, :, :8], ldr[:, 2, :, :, 8:16], ldr[:, 2, :, :, 16:] = 0.5, 0.25, 0.05
    coarse = Chen21Coarse(2).eval()
    coarse.load_state_dict({k: v for k, v in net.state_dict().items()
                            if not k.startswith("refine_net.")})
    with torch.no_grad():
        out, stage1 = net(ldr, times), coarse(ldr[:, 1:4], times[:, 1:4])
    assert torch.equal(out[..., :8], linearize(ldr[:, 2], times[:, 2])[..., :8])
    assert torch.allclose(out[..., 8:16], stage1[..., 8:16])
    assert not torch.allclose(out[..., 16:], stage1[..., 16:])
    assert out.shape == (1, 3, 16, 24) and out.min() >= 0 and out.max() <= 1


def test_chen21_computes_each_coarse_hdr_once_per_frame_when_streaming():
    net = randomized(Chen21(2), seed=6).eval()
    clip, _ = window(2, 8, h=16, w=16)
    times = torch.tensor([[1.0, 8.0] * 4])
    runs = []
    net.flow_net.register_forward_hook(lambda module, args, out: runs.append(out.shape[0]))
    with torch.no_grad():
        streamed = [net(clip[:, c - 2:c + 3], times[:, c - 2:c + 3]) for c in (2, 3, 4, 5)]
        assert runs == [3, 1, 1, 1]
        net.cache.clear()
        batched = net(torch.cat([clip[:, c - 2:c + 3] for c in (2, 3, 4, 5)]),
                      torch.cat([times[:, c - 2:c + 3] for c in (2, 3, 4, 5)]))
        assert runs[-1] == 6                        # the 12 coarse windows of 4 frames: 6 differ
        net.cache.clear()
        fresh = net(clip[:, 3:8], times[:, 3:8])
    assert torch.allclose(streamed[-1], fresh, atol=1e-6)
    assert torch.allclose(batched[-1:], fresh, atol=1e-6)


@pytest.mark.parametrize("model", [Kalantari19(2), Fshdrv()], ids=["kalantari19", "fshdrv"])
def test_models_without_override_merge_everywhere(model):
    ldr, times = window(2, 3, h=20, w=28, centre_low=False)
    with torch.no_grad():
        out = randomized(model, seed=2).eval()(ldr, times)
    assert out.shape == (1, 3, 20, 28) and torch.isfinite(out).all()
    assert out.min() >= 0 and out.max() <= 1 + 1e-6                 # a blend of HDRs ≤ 1


def test_bf16_autocast_keeps_the_output_in_fp32():
    ldr, times = window(3, 7, h=16, w=16)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = randomized(Chen21(3), seed=5).eval()(ldr, times)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


# --- convert end to end ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {2: render_clip(root / "tiny2.mp4", (1, 8), 8, seed=11, width=64, height=48),
            3: render_clip(root / "tiny3.mp4", (1, 4, 16), 9, seed=12, width=64, height=48)}


@pytest.fixture(scope="module")
def other_weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    files = {}
    for name, period, build in [("kalantari19", 2, Kalantari19), ("kalantari19", 3, Kalantari19),
                                ("fshdrv", 2, lambda p: Fshdrv())]:
        path = root / f"{name}-{period}.safetensors"
        save_safetensors(randomized(build(period), seed=period), path,
                         {"model": name, "period": period})
        files[name, period] = path
    return files


@pytest.mark.parametrize("model, exposures, frames", [
    ("chen21", 2, 8), ("chen21", 3, 4), ("chen21-coarse", 2, 4), ("chen21-coarse", 3, 4),
    ("kalantari19", 2, 4), ("kalantari19", 3, 4), ("fshdrv", 2, 8)])
def test_convert_runs_end_to_end(tmp_path, tiny, folders, other_weights, model, exposures,
                                 frames):
    clip = tiny[exposures]
    weights = folders[exposures] if model.startswith("chen21") else other_weights[model, exposures]
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [
        "convert", str(clip.path), "-o", str(out), "--model", model, "--weights", str(weights),
        "--exposures", ",".join(str(int(t)) for t in clip.cycle), "--frames", str(frames),
        "--quiet"])
    assert result.exit_code == 0, result.output
    for i in range(frames):          # edge frames included (the official code drops them)
        image = read_exr(out / frame_name(i))[0]
        assert image.shape == (48, 64, 3) and np.isfinite(image).all() and image.min() >= 0


def test_convert_without_weights_says_where_they_come_from(tmp_path, tiny):
    result = CliRunner().invoke(main, ["convert", str(tiny[2].path), "-o", str(tmp_path / "o"),
                                       "--model", "chen21", "--exposures", "1,8"])
    assert_one_line_error(result, "--weights", "guanyingc/DeepHDRVideo")


def test_fshdrv_refuses_three_exposures(tmp_path, tiny, other_weights):
    result = CliRunner().invoke(main, ["convert", str(tiny[3].path), "-o", str(tmp_path / "o"),
                                       "--model", "fshdrv", "--exposures", "1,4,16",
                                       "--weights", str(other_weights["fshdrv", 2])])
    assert_one_line_error(result, "fshdrv", "2 exposures per cycle")
