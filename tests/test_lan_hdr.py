"""LAN-HDR: the official layout, checkpoint loading, its inputs, and runs through the engine."""

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from conftest import assert_one_line_error, official_layout, randomized, render_clip, save_official

from hdrvid.cli import main
from hdrvid.errors import WeightsError
from hdrvid.exr import frame_name, read_exr
from hdrvid.models.lan_hdr import HardAttention, LanHdr, Merge, forward_lan_hdr, swap_patches
from hdrvid.predictor import HdrPredictor
from hdrvid.registry import count_parameters
from hdrvid.weights import CheckpointFormat, load_weights, save_safetensors

OFFICIAL = CheckpointFormat(key="g")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict:
    """Official-format checkpoints ({"g": state dict, optimiser state, counters}) of random
    2- and 3-exposure generators."""
    folder = tmp_path_factory.mktemp("lan-hdr")
    return {period: save_official(randomized(LanHdr(2 * period + 1), seed=period).state_dict(),
                                  folder / f"ckpt_{period}e.pt", key="g", optim_g={}, iter=1000,
                                  epoch=3)
            for period in (2, 3)}


@pytest.fixture(scope="module")
def small_clips(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("lan-hdr-clips")
    return {2: render_clip(folder / "2exp.mp4", (1, 8), 6, width=96, height=64),
            3: render_clip(folder / "3exp.mp4", (1, 4, 16), 7, width=96, height=64)}


# --- layout -----------------------------------------------------------------------------------

@pytest.mark.parametrize("frames, name, count", [(5, "lan-hdr-2e", 7_315_140),
                                                 (7, "lan-hdr-3e", 7_388_868)])
def test_parameters_and_layout_are_the_official_ones(frames, name, count):
    model = LanHdr(frames)
    assert count_parameters(model) == count
    layout = {key: tuple(t.shape) for key, t in model.state_dict().items()}
    assert layout == official_layout(name)  # every key and shape; no extra buffers


@pytest.mark.parametrize("period", [2, 3])
def test_official_checkpoint_loads_strictly(checkpoints, period):
    model = load_weights(LanHdr(2 * period + 1), checkpoints[period], OFFICIAL, "lan-hdr")
    saved = torch.load(checkpoints[period], weights_only=True)["g"]
    assert all(torch.equal(model.state_dict()[k], saved[k]) for k in saved)


def test_checkpoint_for_the_other_exposure_count_is_refused(checkpoints):
    with pytest.raises(WeightsError, match=r"ckpt_3e.pt: not lan-hdr 2-exposure weights: 1 of "
                                           r"the wrong shape \(first merge.conv1_head.weight"):
        load_weights(LanHdr(5), checkpoints[3], OFFICIAL, "lan-hdr 2-exposure")


def test_checkpoint_without_the_generator_entry_is_refused(tmp_path):
    path = save_official(LanHdr(5).state_dict(), tmp_path / "bare.pt")
    with pytest.raises(WeightsError, match=r"bare.pt: no 'g' entry"):
        load_weights(LanHdr(5), path, OFFICIAL, "lan-hdr 2-exposure")


def test_checkpoint_with_python_objects_is_not_unpickled(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"g": LanHdr(5).state_dict(), "config": np.dtype("float32")}, path)
    with pytest.raises(WeightsError, match="refused for safety"):
        load_weights(LanHdr(5), path, OFFICIAL, "lan-hdr 2-exposure")


def test_safetensors_round_trip_records_what_it_is_for(tmp_path):
    model = randomized(LanHdr(5), seed=7)
    path = tmp_path / "lan-hdr-2e.safetensors"
    save_safetensors(model, path, {"model": "lan-hdr", "period": 2})
    loaded = load_weights(LanHdr(5), path, OFFICIAL, "lan-hdr 2-exposure")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                  loaded.state_dict().values()))
    with pytest.raises(WeightsError, match="weights for lan-hdr 2-exposure, not lan-hdr 3-exp"):
        load_weights(LanHdr(7), path, OFFICIAL, "lan-hdr 3-exposure")


# --- layers ------------------------------------------------------------------------------------

def test_chunked_attention_equals_the_direct_computation():
    torch.manual_seed(0)
    attention = HardAttention(channels=8, dim=16, chunk=7)
    query, key = torch.randn(2, 8, 9, 13), torch.randn(2, 8, 9, 13)
    similarity, index = attention(query, key)
    # direct: the whole N×N relevance matrix at once
    q = F.normalize(attention.embed(F.unfold(query, 3, padding=1).transpose(1, 2)), dim=-1)
    k = F.normalize(attention.embed(F.unfold(key, 3, padding=1).transpose(1, 2)), dim=-1)
    best = torch.bmm(k, q.transpose(1, 2)).max(dim=1)
    assert torch.equal(index, best.indices)
    torch.testing.assert_close(similarity.flatten(1), best.values, rtol=0, atol=1e-6)
    assert similarity.shape == (2, 1, 9, 13)


def test_attention_finds_a_shifted_copy_and_swapping_moves_it_back():
    torch.manual_seed(1)
    key = torch.randn(1, 8, 12, 16)
    query = torch.roll(key, shifts=(2, 3), dims=(2, 3))  # query(y, x) = key(y - 2, x - 3)
    similarity, index = HardAttention(channels=8, dim=64)(query, key)
    swapped = swap_patches(key, index)
    inner = (slice(None), slice(None), slice(3, -3), slice(4, -4))  # away from the wrap-around
    torch.testing.assert_close(swapped[inner], query[inner], rtol=0, atol=1e-5)
    assert similarity[inner].min() > 0.999


def test_merge_head_summed_per_frame_equals_the_concatenation():
    torch.manual_seed(2)
    merge = randomized(Merge(frames=3, channels=8, blocks=1), seed=2)
    features = [torch.randn(1, 8, 11, 7) for _ in range(3)]
    direct = merge.conv1_head(torch.cat(features, 1))
    torch.testing.assert_close(merge.head(iter(features)), direct, rtol=1e-5, atol=1e-5)




def test_sliding_windows_encode_each_frame_once_with_the_same_result():
    """The frame cache: 8 frames in 5-frame sliding windows are encoded 8 times, not 20, and
    every output equals the uncached network's exactly; gradients and batches bypass it."""
    net = randomized(LanHdr(5), seed=5).eval()
    plain = copy.deepcopy(net)
    plain.cache = None
    frames = torch.rand(1, 8, 3, 32, 48, generator=torch.Generator().manual_seed(1))
    exposures = torch.tensor([[1.0, 8.0] * 4])
    calls = []
    encode = net.align.encode
    net.align.encode = lambda *a: calls.append(1) or encode(*a)
    with torch.no_grad():
        for start in range(4):
            window = (slice(None), slice(start, start + 5))
            assert torch.equal(forward_lan_hdr(net, frames[window], exposures[window]),
                               forward_lan_hdr(plain, frames[window], exposures[window]))
    assert len(calls) == 8
    calls.clear()
    with torch.no_grad():  # a batch of two windows
        forward_lan_hdr(net, frames[:, :5].repeat(2, 1, 1, 1, 1), exposures[:, :5].repeat(2, 1))
    forward_lan_hdr(net, frames[:, :5], exposures[:, :5])  # gradients on
    assert len(calls) == 10


@pytest.mark.parametrize("period", [2, 3])
def test_odd_frame_sizes_give_the_input_size_in_range(checkpoints, period):
    predictor = HdrPredictor("lan-hdr", period, "cpu", weights=checkpoints[period])
    n = predictor.window
    ldr = torch.rand(1, n, 3, 170, 250)
    times = torch.tensor([[(4.0 ** (period - 1) if period == 3 else 8.0) ** ((i + 1) % 2)
                           for i in range(n)]])
    hdr = predictor.predict_torch(ldr, times)
    assert hdr.shape == (1, 3, 170, 250)
    assert torch.isfinite(hdr).all() and hdr.min() >= 0 and hdr.max() <= 1


def test_inputs_follow_the_official_channel_order():
    seen = {}

    def spy(frames, keys, queries, reference):
        seen.update(frames=frames, keys=keys, queries=queries, reference=reference)
        return frames[:, reference, 3:6]

    ldr = torch.rand(1, 5, 3, 4, 6)
    times = torch.tensor([[8.0, 1.0, 8.0, 1.0, 8.0]])
    forward_lan_hdr(spy, ldr, times)
    frames, keys, queries = seen["frames"], seen["keys"], seen["queries"]
    y = 0.299 * ldr[:, :, 0] + 0.587 * ldr[:, :, 1] + 0.114 * ldr[:, :, 2]
    linear = ldr.pow(2.2) / times[..., None, None, None]
    assert seen["reference"] == 2
    torch.testing.assert_close(frames, torch.cat([ldr, linear, y[:, :, None]], 2))
    torch.testing.assert_close(keys, torch.cat([y[:, :, None], linear], 2))
    # frame 1 (t = 1) is queried with the reference (t = 8) re-exposed 3 stops down
    moved = (ldr[:, 2] * (1 / 8) ** (1 / 2.2)).clamp(0, 1)
    torch.testing.assert_close(queries[:, 1, 1:], moved.pow(2.2) / 1.0)
    torch.testing.assert_close(queries[:, 2], keys[:, 2])  # the reference queries itself


# --- through the CLI ---------------------------------------------------------------------------

@pytest.mark.parametrize("period", [2, 3])
def test_convert_runs_lan_hdr_end_to_end(small_clips, checkpoints, tmp_path, period):
    clip = small_clips[period]
    out = tmp_path / "out"
    result = run("convert", clip.path, "-o", out, "--model", "lan-hdr", "--weights",
                 checkpoints[period], "--device", "cpu", "-q")
    assert result.exit_code == 0, result.output
    frames = [read_exr(out / frame_name(i))[0] for i in range(clip.n_frames)]  # edges too
    assert all(f.shape == (64, 96, 3) and np.isfinite(f).all() for f in frames)
    assert json.loads((out / "hdrvid.json").read_text())["options"]["weights"] == str(
        checkpoints[period])


def test_lan_hdr_without_weights_says_where_to_get_them(small_clips, tmp_path):
    result = run("convert", small_clips[2].path, "-o", tmp_path / "o", "--model", "lan-hdr")
    assert_one_line_error(result, "lan-hdr 2-exposure: the authors' weights are not pulled",
                          "run `hdrvid weights pull lan-hdr --exposures 2`", "--weights PATH")


def test_wrong_checkpoint_is_a_one_line_error(small_clips, checkpoints, tmp_path):
    result = run("convert", small_clips[2].path, "-o", tmp_path / "o", "--model", "lan-hdr",
                 "--weights", checkpoints[3])
    assert_one_line_error(result, "ckpt_3e.pt: not lan-hdr 2-exposure weights",
                          "merge.conv1_head.weight")
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.exr"))


def test_weights_for_a_weight_free_model_are_refused(small_clips, checkpoints, tmp_path):
    result = run("convert", small_clips[2].path, "-o", tmp_path / "o", "-m", "merge",
                 "--weights", checkpoints[2])
    assert_one_line_error(result, "merge has no weights")
