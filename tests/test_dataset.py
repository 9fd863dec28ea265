"""Training windows synthesised from ../shared/data: deterministic, in range, held-out sources
kept out, and exact flows on the still-photograph windows."""

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from hdrvid.models.common import backward_warp
from hdrvid.training.data import (
    BENCHMARK_STILLS,
    BENCHMARK_VIDEOS,
    TRAIN_STILLS,
    TRAIN_VIDEOS,
    VALIDATION,
    Recipe,
    WindowSynth,
)

pytestmark = pytest.mark.skipif(not (SHARED_DATA / "hdr").is_dir(),
                                reason="needs ../shared/data")


def test_held_out_sources_are_never_trained_on():
    train = set(TRAIN_STILLS) | set(TRAIN_VIDEOS)
    assert not train & (set(BENCHMARK_STILLS) | set(BENCHMARK_VIDEOS))
    assert not train & (set(VALIDATION[0]) | set(VALIDATION[1]))


@pytest.mark.parametrize("period, window", [(2, 3), (3, 5)])
def test_windows_are_deterministic_and_in_range(period, window):
    recipe = Recipe(period=period, window=window, crop=64, codec_fraction=0.0)
    synth = WindowSynth(recipe, data=SHARED_DATA, seed=7)
    for index in range(6):
        sample, again = synth[index], synth[index]
        assert all(torch.equal(sample[k], again[k]) for k in ("ldr", "gt", "times"))
        assert sample["ldr"].shape == sample["gt"].shape == (window, 3, 64, 64)
        assert sample["flow"].shape == (window, 2, 64, 64)
        assert 0 <= sample["gt"].min() and sample["gt"].max() <= 1
        codes = sample["ldr"] * 255
        assert torch.allclose(codes, codes.round(), atol=1e-3)  # 8-bit quantised
        times = sample["times"]
        assert times.min() == 1 and len(set(times.tolist())) == period
        stops = np.log2(times.max().item()) / (period - 1)
        low, high = recipe.stops_2e if period == 2 else recipe.stops_3e
        assert low - 1e-6 <= stops <= high + 1e-6


def test_codec_windows_carry_the_encoders_loss_and_stay_deterministic():
    """Windows through H.264 4:2:0 leave the 8-bit grid (the decoder's matrix), lose chroma
    detail (4:2:0), stay close to the frames exposed without the codec, and repeat exactly."""
    plain = WindowSynth(Recipe(crop=64, codec_fraction=0.0), data=SHARED_DATA, seed=7)
    coded = WindowSynth(Recipe(crop=64, codec_fraction=1.0, crf=(18, 18)), data=SHARED_DATA,
                        seed=7)
    for index in range(3):
        before, after = plain[index]["ldr"], coded[index]["ldr"]
        assert torch.equal(after, coded[index]["ldr"])
        assert torch.equal(plain[index]["gt"], coded[index]["gt"])
        codes = after * 255
        assert not torch.allclose(codes, codes.round(), atol=1e-3)
        assert 0 < (after - before).abs().mean() < 0.03
        chroma = lambda x: x - x.mean(dim=1, keepdim=True)  # colour without brightness
        detail = lambda x: (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
        assert detail(chroma(after)) < detail(chroma(before))


@pytest.mark.parametrize("window", [3, 5])
def test_still_windows_carry_their_exact_flow(window):
    """Warping each neighbour's ground truth with the known flow gives the reference's, where
    the flow is known (the moving patch and points leaving the crop are NaN)."""
    recipe = Recipe(period=2 if window == 3 else 3, window=window, crop=96, still_fraction=1.0)
    synth = WindowSynth(recipe, videos=(), data=SHARED_DATA, seed=3)
    c = window // 2
    for index in range(4):
        sample = synth[index]
        assert torch.nan_to_num(sample["flow"][c]).abs().max() < 1e-4  # to itself: zero
        for k in range(window):
            flow = sample["flow"][k]
            known = ~flow.isnan().any(0)
            assert known.float().mean() > 0.3
            warped, _ = backward_warp(sample["gt"][k][None], torch.nan_to_num(flow)[None])
            error = (warped[0] - sample["gt"][c]).abs().mean(0)[known].mean()
            unwarped = (sample["gt"][k] - sample["gt"][c]).abs().mean(0)[known].mean()
            # measured: at most 0.15× the unwarped error, bilinear sampling of fine detail
            assert k == c or error < 0.25 * unwarped + 1e-3


@pytest.mark.parametrize("window", [3, 5])
def test_video_windows_carry_consistent_dis_flow(window):
    """The video windows' pseudo-label: DIS flow on the clean frames, NaN where forward and
    backward disagree; where kept, it aligns the neighbour's ground truth to the reference."""
    recipe = Recipe(period=2 if window == 3 else 3, window=window, crop=96, still_fraction=0.0)
    synth = WindowSynth(recipe, stills=(), data=SHARED_DATA, seed=1)
    c, kept, gains = window // 2, [], []
    for index in range(4):
        sample = synth[index]
        assert torch.equal(sample["flow"][c], torch.zeros(2, 96, 96))
        for k in set(range(window)) - {c}:
            flow = sample["flow"][k]
            known = ~flow.isnan().any(0)
            assert torch.equal(known, ~flow.isnan().all(0))  # both components or neither
            kept.append(known.float().mean().item())
            if known.float().mean() > 0.2:
                warped, _ = backward_warp(sample["gt"][k][None], torch.nan_to_num(flow)[None])
                error = (warped[0] - sample["gt"][c]).abs().mean(0)[known].mean()
                unwarped = (sample["gt"][k] - sample["gt"][c]).abs().mean(0)[known].mean()
                gains.append((error / (unwarped + 1e-4)).item())
    # measured: 0.07-0.10 of the unwarped error where the frames move, about 1 where they hardly do
    assert max(kept) > 0.5 and gains and min(gains) < 0.15 and max(gains) < 1.1


def test_highlight_exposed_windows_put_the_photographs_highlights_at_the_clip_point():
    """A window exposed for the photograph's highlights scales by headroom / the photograph's
    luminance percentile, whatever the crop holds; it shows more deep shadow than HDRFlow's
    scaling, which lifts the crop's own top into range."""
    still = dict(still_fraction=1.0, crop=64, codec_fraction=0.0)
    exact = Recipe(highlight_fraction=1.0, highlight_percentile=(99.5, 99.5),
                   highlight_headroom=(2.0, 2.0), **still)
    synth = WindowSynth(exact, stills=("Cannon",), videos=(), data=SHARED_DATA, seed=5)
    frames = [np.full((4, 4, 3), 0.5, np.float32)]
    rng = np.random.default_rng(0)
    assert np.allclose(synth._scale(frames, [1.0], rng, highlights=2.0)[0], 0.5 * 0.25 / 2.0)
    from hdrvid.training.data import _highlights, _load_still
    luminance = _load_still(synth.stills[0]) @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    assert np.isclose(_highlights(synth.stills[0], 99.5), np.percentile(luminance, 99.5),
                      rtol=1e-3)

    def deep_shadow(fraction: float) -> float:
        """The share of pixels below 1e-3 in the references that are not the shortest exposure."""
        recipe = Recipe(period=3, window=5, highlight_fraction=fraction, **still)
        windows = WindowSynth(recipe, videos=(), data=SHARED_DATA, seed=11)
        samples = [windows[i] for i in range(40)]
        gt = torch.stack([s["gt"][2] for s in samples if s["times"][2] > s["times"].min()])
        luminance = (gt * torch.tensor([0.2126, 0.7152, 0.0722]).view(1, 3, 1, 1)).sum(1)
        return (luminance < 1e-3).float().mean().item()

    # measured: none with HDRFlow's scaling, a tenth of the pixels exposed for the highlights
    assert deep_shadow(0.0) < 0.01 and deep_shadow(1.0) > 0.05
