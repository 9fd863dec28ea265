"""F²HDR on DIS flow: shapes, parameter counts, the zero-initialised heads, windows at clip
edges, training stages and resumption, and its weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hdrvid.models.common import warp
from hdrvid.models.f2hdr import F2HDR
from hdrvid.models.hdrflow import HDRFlow, replace_reference
from hdrvid.registry import count_parameters, get_spec
from hdrvid.synth import expose
from hdrvid.weights import WEIGHTS_DIR

# the official modules' sizes (wei1895/F2HDR, 2 exposures)
OFFICIAL = {"flow_adapter": 490_820, "motion_mask": 10_052, "fusion_net": 690_693,
            "refine_net": 279_345}


def scene(size: int = 48, offset: float = 0.0) -> np.ndarray:
    """A smooth linear HDR scene (size, size, 3) float32, moved ``offset`` px to the left."""
    ys, xs = np.mgrid[:size, :size].astype(np.float32)
    x = xs + offset
    radiance = 0.02 + 0.4 * (1 + np.sin(x / 5.0) * np.cos(ys / 7.0)) * (x / size + 0.2)
    return np.clip(np.repeat(radiance[..., None], 3, axis=2) * [1.0, 0.8, 0.6], 0, 1
                   ).astype(np.float32)


def scene_window(exposures: int, shift: float = 2.0, size: int = 48, seed: int = 0):
    """`scene` moving ``shift`` px per frame, exposed as one window."""
    rng = np.random.default_rng(seed)
    n = 2 * exposures - 1
    cycle = [1.0, 8.0] if exposures == 2 else [1.0, 4.0, 16.0]
    times = [cycle[i % exposures] for i in range(n)]
    frames = []
    for i in range(n):
        hdr = scene(size, shift * (i - n // 2))
        frames.append(np.round(expose(hdr, times[i], rng, (1e-4, 1e-6)) * 255) / 255)
    ldr = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()[None]
    return ldr, torch.tensor([times])


def test_official_module_sizes_and_names():
    net = F2HDR(2)
    for name, count in OFFICIAL.items():
        assert count_parameters(getattr(net, name)) == count, name
    keys = net.state_dict()
    assert "refine_net.gate0.net.0.weight" in keys and "refine_net.gate2.net.0.weight" in keys
    assert "flow_adapter.tail.weight" in keys and "refine_net.head.1.weight" in keys


def test_registry_entry_builds_both_exposure_counts():
    spec = get_spec("f2hdr")
    assert spec.windows == {2: 3, 3: 5} and spec.trained
    for period in (2, 3):
        net = spec.build(period)
        # the fusion network has HDRFlow's shapes widened by the two merge means (6 input
        # channels and a weight each), so HDRFlow's weights initialise it
        hdrflow = HDRFlow(period)
        assert net.merge_candidate
        official = hdrflow.fusion_net.conv1[0].weight.shape
        assert net.fusion_net.conv1[0].weight.shape[1] == official[1] + 12
        assert net.fusion_net.conv12[0].weight.shape[0] == (5 if period == 2 else 9) + 2
        net.load_fusion(hdrflow.fusion_net.state_dict())
        assert count_parameters(net) > count_parameters(net.fusion_net)


def test_f2hdr_is_the_default_of_the_library_and_the_cli():
    """ConvertOptions keeps the name as a literal (importing hdrvid must not import torch):
    it must stay the registry's default, which runs on its shipped weights."""
    from hdrvid import ConvertOptions
    from hdrvid.predictor import HdrPredictor
    from hdrvid.registry import DEFAULT_MODEL

    assert ConvertOptions().model == DEFAULT_MODEL == "f2hdr"
    assert HdrPredictor(period=3, device="cpu").spec.name == DEFAULT_MODEL
    assert all(get_spec(DEFAULT_MODEL).runs_as_shipped(period) for period in (2, 3))


@pytest.mark.parametrize("exposures", [2, 3])
def test_zero_heads_reproduce_the_coarse_result(exposures):
    torch.manual_seed(0)
    net = F2HDR(exposures, adapter_width=16, refine_width=16, refine_blocks=1).eval()
    ldr, times = scene_window(exposures)
    with torch.no_grad():
        full, flows = net(ldr, times, return_flows=True)
        coarse_flows = net.coarse_flows(ldr, times)
        net.refined = False
        coarse = net(ldr, times)
    assert full.shape == (1, 3, 48, 48)
    for k, flow in flows.items():  # the adapter starts as the identity on DIS's flows
        assert torch.equal(flow, coarse_flows[k].clamp(-100, 100))
    assert torch.equal(full, coarse.clamp(0, 1))  # and the refinement on the coarse HDR
    # DIS found the motion: frame k shows the scene moved by -2 (k - c) px along x
    c = ldr.shape[1] // 2
    for k, flow in coarse_flows.items():
        assert abs(flow[0, 0, 12:36, 12:36].median().item() + 2.0 * (k - c)) < 0.5


def test_trained_heads_change_the_output():
    torch.manual_seed(0)
    net = F2HDR(2, adapter_width=16, refine_width=16, refine_blocks=1).eval()
    ldr, times = scene_window(2)
    with torch.no_grad():
        before = net(ldr, times)
        net.refine_net.head[1].bias.fill_(0.01)
        after = net(ldr, times)
    assert (after - before).abs().max() > 0.005


def test_refinement_after_the_replacement_reaches_every_pixel():
    """Refined before the replacement (official), the well-exposed pixels are the replacement's
    whatever the refinement does; refined after it (``refine_replaced``), every pixel is."""
    from hdrvid.color import inverse_mu_law_torch, mu_law_torch

    torch.manual_seed(0)
    net = F2HDR(2, adapter_width=16, refine_width=16, refine_blocks=1).eval()
    ldr, times = scene_window(2)
    ones = torch.ones(1, 3, 48, 48)
    well = replace_reference(torch.zeros_like(ones), ldr, times, "channels", ones) == 1
    assert well.any() and not well.all()
    outputs = {}
    with torch.no_grad():
        coarse = net(ldr, times)
        net.refine_net.head[1].bias.fill_(0.01)
        for after in (False, True):
            net.refine_replaced = after
            outputs[after] = net(ldr, times)
    assert torch.equal(outputs[False][well], coarse[well])
    assert not torch.equal(outputs[False][~well], coarse[~well])
    # in the μ-law domain: the residual is one step of the tone curve, dark or bright
    shifted = inverse_mu_law_torch((mu_law_torch(coarse) + 0.01).clamp(0, 1))
    assert torch.allclose(outputs[True], shifted, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("exposures", [2, 3])
def test_coarse_result_is_accurate_with_hdrflow_fusion(exposures):
    """At initialisation (HDRFlow's fusion weights on DIS flows) the output is close to the
    scene: the starting point training improves on."""
    from hdrvid.weights import load_weights

    hdrflow = HDRFlow(exposures)
    load_weights(hdrflow, WEIGHTS_DIR / get_spec("hdrflow").weights[exposures][0].filename,
                 None, f"hdrflow {exposures}-exposure")
    net = F2HDR(exposures).eval()
    net.fusion_net.load_state_dict(hdrflow.fusion_net.state_dict())
    net.refined = False
    ldr, times = scene_window(exposures, size=64)
    c = ldr.shape[1] // 2
    with torch.no_grad():
        hdr = net(ldr, times)
    truth = ldr[:, c].clamp(0, 1).pow(2.2) / times[:, c]  # the reference is well exposed here
    inner = (slice(None), slice(None), slice(8, 56), slice(8, 56))
    well = (ldr[:, c] > 0.1) & (ldr[:, c] < 0.9)
    assert (hdr - truth)[inner][well[inner]].abs().mean() < 0.01


@pytest.mark.parametrize("exposures", [2, 3])
def test_converts_every_frame_to_the_clip_edges(exposures, clip2, clip3, tmp_path, read_output):
    """Every frame, the first and last included (windows padded at the clip's edges), comes out
    close to the scene, in 2E and 3E."""
    from click.testing import CliRunner

    from hdrvid.cli import main
    from hdrvid.metrics import psnr_t

    clip = clip2 if exposures == 2 else clip3
    weights = tmp_path / "f2hdr.safetensors"
    _export_initial(weights, exposures)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["convert", str(clip.path), "-o", str(out), "-m", "f2hdr",
                                       "--weights", str(weights), "-q"])
    assert result.exit_code == 0, result.output
    frames = read_output(out, clip.n_frames)
    scores = [psnr_t(frame, truth) for frame, truth in zip(frames, clip.truth)]
    assert min(scores[0], scores[-1]) > 25 and np.mean(scores) > 28


def _export_initial(path, period: int) -> None:
    """f2hdr weights at the start of training: HDRFlow's fusion network, the rest at its
    initialisation."""
    from hdrvid.weights import load_weights, save_safetensors

    hdrflow = load_weights(HDRFlow(period), WEIGHTS_DIR / get_spec("hdrflow").weights[period][0]
                           .filename, None, f"hdrflow {period}-exposure")
    net = get_spec("f2hdr").build(period)
    net.load_fusion(hdrflow.fusion_net.state_dict())
    net.half()
    save_safetensors(net, path, {"model": "f2hdr", "period": period,
                                 "attributes": {"refined": False}})


def test_fusion_stage_trains_and_resumes(tmp_path, training_data):
    from hdrvid.training.loop import TrainOptions, train

    init = WEIGHTS_DIR / get_spec("hdrflow").weights[2][0].filename
    options = TrainOptions(model="f2hdr", exposures=2, steps=2, batch_size=2, crop=64,
                           val_every=2, val_windows=2, workers=0, stage="fusion",
                           init=str(init))
    record = train(tmp_path / "run", options)
    assert record["step"] == 2 and np.isfinite(record["val_psnr_t"])
    meta = _metadata(tmp_path / "run" / "best.safetensors")
    # what the weights learned with travels with them
    default = get_spec("f2hdr").build(2)
    assert meta["attributes"] == {"refined": False, "adapted": False,
                                  "exposure_prior": default.exposure_prior,
                                  "reference_replacement": default.reference_replacement,
                                  "well_exposed_from": default.well_exposed_from,
                                  "refine_replaced": True, "denoised": False}
    # resuming continues from last.pt; the later stages start from the first's weights
    resumed = train(tmp_path / "run", TrainOptions(**{**options.__dict__, "steps": 3,
                                                      "resume": True, "init": None}))
    assert resumed["step"] == 3
    for stage, adapted, source in (("refine", False, None), ("all", True, "learned")):
        later = TrainOptions(**{**options.__dict__, "stage": stage, "steps": 1, "val_every": 1,
                                "init": str(tmp_path / "run" / "best.safetensors"),
                                "well_exposed": source})
        assert train(tmp_path / stage, later)["step"] == 1
        attributes = _metadata(tmp_path / stage / "best.safetensors")["attributes"]
        assert attributes["refined"] is True and attributes["adapted"] is adapted
        # --well-exposed overrides what the --init file recorded
        assert attributes["well_exposed_from"] == (source or default.well_exposed_from)


def test_refine_stage_trains_the_refinement_alone():
    """The refinement stage updates the refinement and the motion mask over a frozen fusion,
    on DIS's flows: the adapter does not run, and nothing else records a gradient."""
    from hdrvid.models.f2hdr import f2hdr_step

    torch.manual_seed(0)
    net = F2HDR(2, adapter_width=16, refine_width=16, refine_blocks=1)
    parts = net.learned_parts("refine")
    assert parts == [net.motion_mask, net.refine_net] and net.refined and not net.adapted
    torch.nn.init.normal_(net.refine_net.head[1].weight, std=0.01)  # a refinement that acts
    ldr, times = scene_window(2)
    batch = {"ldr": ldr, "times": times, "gt": torch.rand_like(ldr)}
    calls = []
    net.flow_adapter.register_forward_hook(lambda *_: calls.append(1))
    hdr, extra = f2hdr_step(net, batch)
    (hdr.mean() + extra).backward()
    assert not calls and extra.item() == 0  # DIS's flows: no adapter, no alignment loss
    assert net.refine_net.head[1].weight.grad.abs().sum() > 0
    frozen = [p for m in (net.fusion_net, net.flow_adapter) for p in m.parameters()]
    assert all(not p.requires_grad and p.grad is None for p in frozen)


def _metadata(path) -> dict:
    from hdrvid.weights import read_safetensors

    return read_safetensors(path)[1]


DILATED_BF16_BACKWARD = """
import torch
from hdrvid.models.common import DilatedConv2d
torch.manual_seed(0)
conv = DilatedConv2d(24, 12, 3, padding=2, dilation=2).to(memory_format=torch.channels_last)
x = torch.randn(2, 24, 64, 64).to(memory_format=torch.channels_last)
with torch.autocast("cpu", dtype=torch.bfloat16):
    conv(x).float().square().sum().backward()
bf16 = conv.weight.grad.clone()
conv.weight.grad = None
conv(x).float().square().sum().backward()
print(torch.isfinite(bf16).all().item(), ((bf16 - conv.weight.grad).norm() / conv.weight.grad.norm()).item())
"""


def test_dilated_convolutions_train_in_bf16_channels_last():
    """oneDNN's bf16 backward of a dilated conv in channels_last crashes or gives NaN where
    bf16 is native; `DilatedConv2d` trains in the default layout (in a child: a crash must fail
    this test, not the suite)."""
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-c", DILATED_BF16_BACKWARD], capture_output=True,
                           text=True, check=False, timeout=120)
    assert child.returncode == 0, child.stderr
    finite, relative_error = child.stdout.split()
    assert finite == "True" and float(relative_error) < 0.02


def test_wrong_init_is_refused(tmp_path, training_data):
    from hdrvid.errors import HdrvidError
    from hdrvid.training.loop import TrainOptions, train

    init = WEIGHTS_DIR / get_spec("hdrflow").weights[3][0].filename  # 3 exposures, for a 2E run
    options = TrainOptions(model="f2hdr", exposures=2, steps=1, batch_size=1, crop=64,
                           val_windows=1, workers=0, init=str(init))
    with pytest.raises(HdrvidError, match="3 exposures"):
        train(tmp_path / "run", options)


def test_weights_load_strictly(tmp_path):
    from hdrvid.errors import WeightsError
    from hdrvid.predictor import HdrPredictor
    from hdrvid.weights import save_safetensors

    good = tmp_path / "good.safetensors"
    _export_initial(good, 2)
    predictor = HdrPredictor("f2hdr", 2, "cpu", weights=good, precision="fp32")
    assert predictor.model.refined is False
    bad = tmp_path / "bad.safetensors"
    net = F2HDR(2)  # the official widths: not the registry's
    save_safetensors(net, bad, {"model": "f2hdr", "period": 2})
    with pytest.raises(WeightsError):
        HdrPredictor("f2hdr", 2, "cpu", weights=bad, precision="fp32")


def test_training_loss_sees_the_replaced_output():
    """The f2hdr step returns what inference outputs: the linearised reference wherever the
    reference is well exposed for its level, under the channels rule: no channel clipped."""
    from hdrvid.models.common import linearize
    from hdrvid.models.f2hdr import f2hdr_step

    torch.manual_seed(0)
    net = F2HDR(2, adapter_width=16, refine_width=16, refine_blocks=1).eval()
    net.refined, net.well_exposed_from = False, "reference"
    ldr, times = scene_window(2)
    assert times[0, 1] == times.max()  # the long frame is the reference
    batch = {"ldr": ldr, "times": times, "gt": torch.zeros_like(ldr)}
    with torch.no_grad():
        hdr, _ = f2hdr_step(net, batch)
        net.reference_replacement = False
        raw = net(ldr, times)
    well = (ldr[:, 1].amax(dim=1) <= 0.8)[:, None].expand(-1, 3, -1, -1)
    assert torch.equal(hdr[well], linearize(ldr[:, 1], times[:, 1])[well])
    assert torch.equal(hdr[~well], raw[~well])
    assert not torch.equal(hdr[well], raw[well])


def test_well_exposed_pixels_average_the_neighbours_that_agree():
    """Where the reference is well exposed F²HDR outputs `merge`'s mean of it and the
    neighbours that match it (less noise than the reference alone), and the reference alone
    where a neighbour disagrees (a ghost must not be averaged in)."""
    from hdrvid.color import mu_law_torch
    from hdrvid.models.common import linearize

    ldr, times = scene_window(2, shift=0.0, seed=5)  # still: every neighbour agrees
    truth = torch.from_numpy(scene()).permute(2, 0, 1)[None]
    well = (ldr[:, 1].amax(dim=1, keepdim=True) <= 0.8).expand(-1, 3, -1, -1)
    net = F2HDR(2, adapter_width=16, refine_width=16, refine_blocks=1).eval()
    net.refined = False
    errors = {}
    with torch.no_grad():
        for source in ("reference", "merge"):
            net.well_exposed_from = source
            error = mu_law_torch(net(ldr, times)) - mu_law_torch(truth)
            errors[source] = error[well].pow(2).mean().item()
        assert errors["merge"] < 0.95 * errors["reference"]  # PSNR-T's error
        ghosted = ldr.clone()
        ghosted[:, [0, 2], :, 10:30, 10:30] = 0.6  # an object the reference does not show
        out = net(ghosted, times)
    patch = (slice(None), slice(None), slice(14, 26), slice(14, 26))
    reference = linearize(ldr[:, 1], times[:, 1])
    assert torch.allclose(out[patch][well[patch]], reference[patch][well[patch]], atol=1e-6)


def test_exposure_prior_leans_on_the_long_frames_where_every_frame_is_dark():
    """Where every frame is dark the fusion net cannot tell the exposures apart; `merge`'s
    exposedness (exposure time, zero where clipped) can: with it the middle reference's darks
    come from its long neighbours, far less noisy than its short ones."""
    rng = np.random.default_rng(3)
    times = [16.0, 1.0, 4.0, 16.0, 1.0]  # the middle exposure is the reference
    radiance = np.full((48, 48, 3), 0.002, dtype=np.float32)  # codes ~15 short, ~53 long
    frames = [np.round(expose(radiance, t, rng, (1e-4, 1e-6)) * 255) / 255 for t in times]
    ldr = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()[None]
    torch.manual_seed(0)
    net = F2HDR(3, adapter_width=16, refine_width=16, refine_blocks=1).eval()
    net.refined = False
    errors = {}
    for prior in (False, True):
        net.exposure_prior = prior
        with torch.no_grad():
            hdr = net(ldr, torch.tensor([times]))
        errors[prior] = (hdr - 0.002).square().mean().sqrt().item()
    assert errors[True] < 0.75 * errors[False]


@pytest.mark.parametrize("exposures", [2, 3])
def test_merge_candidates_start_as_the_model_loaded_and_can_take_over(exposures):
    """Widened by the `merge` means, a fusion net of HDRFlow's shapes gives nearly the output
    it gave without them; a net that weighs one mean alone outputs it everywhere, and under
    ``well_exposed_from = "learned"`` the well-exposed pixels are the mean it chose."""
    from hdrvid.color import mu_law_torch
    from hdrvid.weights import load_weights

    hdrflow = load_weights(HDRFlow(exposures), WEIGHTS_DIR / get_spec("hdrflow")
                           .weights[exposures][0].filename, None, f"hdrflow {exposures}-exposure")
    small = dict(adapter_width=16, refine_width=16, refine_blocks=1)
    plain, widened = F2HDR(exposures, **small).eval(), F2HDR(exposures, **small,
                                                            merge_candidate=True).eval()
    for net in (plain, widened):
        net.load_fusion(hdrflow.fusion_net.state_dict())
        net.refined, net.reference_replacement = False, False
    ldr, times = scene_window(exposures, size=64)
    frames, c = ldr.unbind(1), ldr.shape[1] // 2
    with torch.no_grad():
        before, after = plain(ldr, times), widened(ldr, times)
        assert (mu_law_torch(before) - mu_law_torch(after)).abs().mean() < 2e-3
        assert not torch.equal(before, after)  # but they do weigh in
        flows = widened.coarse_flows(ldr, times)
        warped = {k: warp(frames[k], flows[k]) for k in widened.neighbours}
        strict, lenient = widened.merge_means(frames[c], times, warped, flows)
        bias = widened.fusion_net.conv12[0].bias
        bias.fill_(-30.0)[-2] = 30.0
        assert torch.allclose(widened(ldr, times), strict, rtol=1e-4, atol=1e-6)
        widened.reference_replacement, widened.well_exposed_from = "channels", "learned"
        bias[-2:] = torch.tensor([-30.0, 30.0])  # merge's own deghosting where well exposed
        chosen = widened(ldr, times)
    assert not torch.allclose(strict, lenient, rtol=1e-4, atol=1e-6)
    ones = torch.ones_like(strict)  # where the replacement puts ones: well exposed
    well = replace_reference(torch.zeros_like(ones), ldr, times, "channels", ones) == 1
    assert well.float().mean() > 0.01  # the scene is mostly too bright or too dark
    assert torch.allclose(chosen[well], lenient[well], rtol=1e-4, atol=1e-6)


def test_init_widens_weights_from_before_the_merge_candidate(tmp_path):
    """``--init`` with f2hdr weights whose fusion net lacks the `merge` means loads every
    part, widening the fusion net, and keeps the behaviour the file records."""
    from hdrvid.training.loop import initialise
    from hdrvid.weights import save_safetensors

    spec = get_spec("f2hdr")
    torch.manual_seed(1)
    old = F2HDR(2, adapter_width=24, refine_width=24, refine_blocks=1)
    path = tmp_path / "old.safetensors"
    save_safetensors(old, path, {"model": "f2hdr", "period": 2,
                                 "attributes": {"refined": False, "exposure_prior": False}})
    net = spec.build(2)
    initialise(net, str(path), spec, 2)
    assert net.refined is False and net.exposure_prior is False
    assert torch.equal(net.refine_net.head[0][0].weight, old.refine_net.head[0][0].weight)
    wide, narrow = net.fusion_net.conv1[0].weight, old.fusion_net.conv1[0].weight
    assert torch.equal(wide[:, :narrow.shape[1]], narrow) and not wide[:, narrow.shape[1]:].any()
    assert torch.equal(net.fusion_net.conv12[0].bias[:-2], old.fusion_net.conv12[0].bias)


def test_denoiser_context_starts_as_the_gate_without_it_and_widens_its_view():
    """The context residual is zero at first, so a gate trained without it gives the same
    outputs with it; once trained, what the gate decides at a pixel depends on pixels 8 away, beyond
    the 5×5 view of the gate alone."""
    from hdrvid.models.f2hdr import Denoiser

    torch.manual_seed(0)
    plain, wide = Denoiser(), Denoiser(context=True)
    for layer in plain.gate.modules():  # a trained-looking gate
        if isinstance(layer, torch.nn.Conv2d):
            torch.nn.init.normal_(layer.weight, std=0.3)
    wide.load_state_dict(plain.state_dict(), strict=False)
    image, reference = torch.rand(1, 3, 40, 40) * 0.05, torch.rand(1, 3, 40, 40)
    far = image.clone()
    far[..., 20, 28] += 0.05  # 8 pixels right of the pixel watched
    with torch.no_grad():
        torch.testing.assert_close(wide(image, reference), plain(image, reference))
        watched = lambda net, x: net(x, reference)[..., 20, 20]
        assert torch.equal(watched(plain, image), watched(plain, far))
        torch.nn.init.normal_(wide.context[2].weight, std=0.3)
        assert not torch.equal(watched(wide, image), watched(wide, far))


def test_denoiser_starts_near_the_identity_and_smooths_where_its_gate_says():
    """The denoiser starts as (nearly) the image itself; a gate that picks the widest blur
    takes most of the noise out of a flat noisy patch; its stage trains it alone."""
    from hdrvid.color import mu_law_torch
    from hdrvid.models.f2hdr import Denoiser, f2hdr_step

    torch.manual_seed(0)
    denoiser = Denoiser()
    flat = torch.full((1, 3, 32, 32), 0.01)
    noisy = (flat * (1 + 0.3 * torch.randn_like(flat))).clamp_min(0)
    reference = torch.full_like(flat, 0.2)
    with torch.no_grad():
        start = denoiser(noisy, reference)
        assert (mu_law_torch(start) - mu_law_torch(noisy)).abs().max() < 0.01
        denoiser.gate[2].bias.copy_(torch.tensor([-10.0, -10.0, 10.0]))
        smoothed = denoiser(noisy, reference)
    error = lambda x: (mu_law_torch(x) - mu_law_torch(flat)).pow(2).mean()
    assert error(smoothed) < 0.2 * error(noisy)

    net = get_spec("f2hdr").build(2)
    assert net.learned_parts("denoise") == [net.denoiser] and net.denoised
    ldr, times = scene_window(2)
    hdr, _ = f2hdr_step(net, {"ldr": ldr, "times": times, "gt": torch.rand_like(ldr)})
    hdr.mean().backward()
    assert all(p.grad is not None for p in net.denoiser.parameters())
    assert all(p.grad is None for name, p in net.named_parameters()
               if not name.startswith("denoiser."))
