"""HDRFlow (docs/models/hdrflow.md): official layout and parameter counts, strict loading of the
official checkpoint format, both warps, the merge, the reference replacement, and `convert` end to
end with random weights."""

import dataclasses

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import assert_one_line_error, official_layout, randomized, save_official

from hdrvid.cli import main
from hdrvid.errors import WeightsError
from hdrvid.exr import frame_name, read_exr
from hdrvid.models.common import warp
from hdrvid.models.hdrflow import HDRFlow, replace_reference
from hdrvid.registry import MODELS, count_parameters
from hdrvid.weights import load_weights, save_safetensors

SPEC = MODELS["hdrflow"]

# docs/models/hdrflow.md §8: parameters() counts (the aliased BatchNorm once, buffers excluded)
TOTAL = {2: 3_269_865, 3: 5_331_153}
PER_MODULE = {
    2: {"flow_net": 2_579_172, "fusion_net": 690_693, "flow_net.conv1": 14_208,
        "flow_net.imconv4": 5_376, "flow_net.imconv8": 10_752, "flow_net.imconv16": 21_504,
        "flow_net.flow_head": 211_332, "fusion_net.conv1": 8_736, "fusion_net.conv10": 55_488,
        "fusion_net.conv12": 2_885},
    3: {"flow_net": 3_058_504, "fusion_net": 2_272_649, "flow_net.conv1": 28_320,
        "flow_net.imconv4": 10_560, "flow_net.imconv8": 21_120, "flow_net.imconv16": 42_240,
        "flow_net.flow_head": 640_264, "fusion_net.conv1": 31_296, "fusion_net.conv10": 73_920,
        "fusion_net.conv12": 5_193},
}
SHARED = {"flow_net.combine4": 45_440, "flow_net.combine8": 180_992,
          "flow_net.combine16": 722_432, "flow_net.layer1": 2_464, "flow_net.layer2": 11_008,
          "flow_net.layer3": 42_496, "flow_net.layer4": 166_912, "flow_net.upconv4": 524_672,
          "flow_net.iconv3": 180_992, "flow_net.upconv3": 131_264, "flow_net.iconv2": 45_440,
          "flow_net.conv7x7": 12_800, "flow_net.conv9x9": 20_992, "flow_net.conv11x11": 31_232,
          "flow_net.merge_features": 196_864}


@pytest.fixture(scope="module", params=[2, 3], ids=["2E", "3E"])
def net(request) -> HDRFlow:
    return randomized(HDRFlow(request.param), seed=request.param).eval()


def window(exposures: int, h: int = 32, w: int = 48, seed: int = 0):
    """A random window (1, n, 3, h, w) with the reference low, and its exposures (1, n)."""
    cycle = [1.0, 8.0] if exposures == 2 else [1.0, 4.0, 16.0]
    n = 2 * exposures - 1
    times = torch.tensor([[cycle[(k - n // 2) % exposures] for k in range(n)]])
    return torch.rand(1, n, 3, h, w, generator=torch.Generator().manual_seed(seed)), times


# --- layout and size ---------------------------------------------------------------------------

@pytest.mark.parametrize("exposures", [2, 3])
def test_state_dict_equals_the_official_layout_in_order(exposures):
    layout = official_layout(f"hdrflow-{exposures}e")
    state = HDRFlow(exposures).state_dict()
    assert len(layout) == len(state) == 409
    assert ["module." + k for k in state] == list(layout)
    assert {"module." + k: tuple(v.shape) for k, v in state.items()} == layout


@pytest.mark.parametrize("exposures", [2, 3])
def test_parameter_counts_match_the_docs(exposures):
    model = HDRFlow(exposures)
    assert count_parameters(model) == TOTAL[exposures]
    for name, count in {**PER_MODULE[exposures], **SHARED}.items():
        assert count_parameters(model.get_submodule(name)) == count, name
    buffers = sum(b.numel() for b in model.state_dict().values()) - TOTAL[exposures]
    assert exposures == 3 or TOTAL[2] + buffers == 3_280_930  # the tsv's element count


def test_strided_blocks_register_one_batchnorm_twice():
    model = HDRFlow(2)
    for layer in ("layer2", "layer3", "layer4"):
        block = model.flow_net.get_submodule(f"{layer}.0")
        assert block.norm4 is block.downsample[1]
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 54  # 43 in flow_net, 11 in fusion_net
    assert sum(k.endswith("num_batches_tracked") for k in model.state_dict()) == 57


# --- weights -----------------------------------------------------------------------------------

@pytest.mark.parametrize("exposures", [2, 3])
def test_official_checkpoint_loads_strictly_with_the_official_warp(tmp_path, exposures):
    source = randomized(HDRFlow(exposures), seed=7)
    path = save_official(source.state_dict(), tmp_path / "checkpoint.pth", key="state_dict",
                         prefix="module.", epoch=39, optimizer={"state": {}, "param_groups": []})
    model = HDRFlow(exposures)
    assert model.official_warp is False
    load_weights(model, path, SPEC.checkpoint, f"hdrflow {exposures}-exposure")
    assert model.official_warp is True
    loaded = model.state_dict()
    for key, tensor in source.state_dict().items():
        assert torch.equal(loaded[key], tensor), key
    assert model.flow_net.layer3[0].norm4.running_var is model.flow_net.layer3[0].downsample[
        1].running_var


def test_checkpoint_of_the_other_variant_is_refused(tmp_path):
    path = save_official(HDRFlow(3).state_dict(), tmp_path / "3e.pth", key="state_dict",
                         prefix="module.")
    with pytest.raises(WeightsError) as info:
        load_weights(HDRFlow(2), path, SPEC.checkpoint, "hdrflow 2-exposure")
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "wrong shape" in message


def test_our_safetensors_round_trip_with_the_aliased_batchnorm(tmp_path):
    source = randomized(HDRFlow(2), seed=5)
    path = tmp_path / "hdrflow-2e.safetensors"
    save_safetensors(source, path, {"model": "hdrflow", "period": 2,
                                    "attributes": {"official_warp": False}})
    model = load_weights(HDRFlow(2), path, SPEC.checkpoint, "hdrflow 2-exposure")
    assert model.official_warp is False
    for key, tensor in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], tensor), key


# --- warps -------------------------------------------------------------------------------------

def test_official_warp_of_zero_flow_is_the_documented_zoom_out():
    ramp = torch.arange(1.0, 9.0).expand(1, 1, 4, 8)
    row = warp(ramp, torch.zeros(1, 2, 4, 8), align_corners=False)[0, 0, 1]
    expected = [0.5, 1.643, 2.786, 3.929, 5.071, 6.214, 7.357, 4.0]
    assert row.tolist() == pytest.approx(expected, abs=1e-3)

    ones = warp(torch.ones(1, 1, 6, 8), torch.zeros(1, 2, 6, 8), align_corners=False)[0, 0]
    assert (ones[1:-1, 1:-1] - 1).abs().max() < 1e-6
    for edge in (ones[0, 1:-1], ones[-1, 1:-1], ones[1:-1, 0], ones[1:-1, -1]):
        assert edge.tolist() == pytest.approx([0.5] * len(edge), abs=1e-6)
    assert ones[[0, 0, -1, -1], [0, -1, 0, -1]].tolist() == pytest.approx([0.25] * 4, abs=1e-6)


def test_exact_warp_of_zero_flow_is_the_identity():
    image = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    assert (warp(image, torch.zeros(2, 2, 64, 96)) - image).abs().max() < 1e-5


def test_exact_warp_of_an_integer_flow_shifts_with_zeros_entering():
    image = torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(2)) + 0.5
    flow = torch.zeros(1, 2, 16, 24)
    flow[:, 0], flow[:, 1] = 3, -2  # sample 3 px to the right and 2 px up
    out = warp(image, flow)
    assert torch.allclose(out[..., 2:, :-3], image[..., :-2, 3:], atol=1e-5)
    assert out[..., :2, :].abs().max() < 1e-6 and out[..., -3:].abs().max() < 1e-6


def test_model_warp_follows_the_loaded_weights():
    model = HDRFlow(2)
    image, zero = torch.rand(1, 3, 16, 16), torch.zeros(1, 2, 16, 16)
    assert torch.allclose(model.warp(image, zero), image, atol=1e-5)
    model.official_warp = True
    assert torch.equal(model.warp(image, zero), warp(image, zero, align_corners=False))


# --- forward -----------------------------------------------------------------------------------

def test_output_is_on_the_shortest_exposure_scale_and_flows_are_exposed(net):
    ldr, times = window(net.exposures)
    hdr, flows = net(ldr, times, return_flows=True)
    assert hdr.shape == (1, 3, 32, 48) and hdr.dtype == torch.float32
    assert 0 <= hdr.min() and hdr.max() <= 1  # a convex mix of candidates in [0, 1 / t]
    assert len(flows) == 2 * (net.exposures - 1)
    assert all(f.shape == (1, 2, 32, 48) and f.dtype == torch.float32 for f in flows)
    white = net(torch.ones_like(ldr), times)
    assert white.min() >= 1 / max(times[0]) - 1e-6 and white.max() <= 1 + 1e-6


def test_the_alignment_loss_pairs_each_flow_with_its_neighbour(net, monkeypatch):
    """HALoss warps neighbour k's ground truth with the flow the model used for neighbour k
    (3E flows come as [p2, n1, p1, n2], not in window order)."""
    from hdrvid.color import mu_law_torch as mu_law
    from hdrvid.models.hdrflow import hdrflow_step

    ldr, times = window(net.exposures)
    ldr[:, ldr.shape[1] // 2] = 0.95  # a clipped reference: the loss covers every pixel
    n, (h, w) = ldr.shape[1], ldr.shape[-2:]
    ramp = torch.linspace(0, 1, w).expand(1, 3, h, w)
    gt = torch.stack([ramp * (k + 1) / n for k in range(n)], 1)  # a different ramp per frame
    shifts = [float(2 * i + 1) for i in range(n - 1)]  # a different x-shift per flow
    flows = torch.cat([torch.tensor([s, 0.0]).view(1, 2, 1, 1).expand(1, 2, h, w)
                       for s in shifts], 1)
    monkeypatch.setattr(net.flow_net, "forward", lambda images: flows)
    _, alignment = hdrflow_step(net, {"ldr": ldr, "times": times, "gt": gt})
    weight = 0.5 if net.exposures == 2 else 0.2
    target = mu_law(gt[:, n // 2])
    expected = sum(weight * (mu_law(net.warp(gt[:, k], flows[:, 2 * i:2 * i + 2])) - target)
                   .abs().mean() for i, k in enumerate(net.flow_order))
    torch.testing.assert_close(alignment, expected)
    assert net.flow_order == ([0, 2] if net.exposures == 2 else [0, 3, 1, 4])


def test_given_flows_replace_the_flow_nets(net):
    """`forward(flows=...)` runs the fusion net on those flows: its own give its own output,
    others (here none at all: zero motion) a different one, returned as given."""
    ldr, times = window(net.exposures, seed=5)
    with torch.no_grad():
        own = net.flows(ldr, times)
        torch.testing.assert_close(net(ldr, times, flows=own), net(ldr, times))
        still = tuple(torch.zeros_like(f) for f in own)
        hdr, returned = net(ldr, times, return_flows=True, flows=still)
    assert returned is still and not torch.allclose(hdr, net(ldr, times))


def test_flows_are_clamped_before_the_x4_upsampling(net):
    head = net.flow_net.flow_head[4]
    bias = head.bias.detach().clone()
    with torch.no_grad():
        head.bias.fill_(1e4)
    try:
        _, flows = net(*window(net.exposures), return_flows=True)
    finally:
        with torch.no_grad():
            head.bias.copy_(bias)
    limit = 4 * net.flow_net.max_flow  # 400 px in 2E, 256 px in 3E
    assert limit == (400 if net.exposures == 2 else 256)
    assert all(torch.allclose(f, torch.full_like(f, limit)) for f in flows)


def test_bf16_autocast_keeps_flows_and_output_in_fp32(net):
    ldr, times = window(net.exposures)
    reference = net(ldr, times)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hdr, flows = net(ldr, times, return_flows=True)
    assert hdr.dtype == torch.float32 and all(f.dtype == torch.float32 for f in flows)
    assert (hdr - reference).abs().max() < 0.05


def test_memory_layout_does_not_change_the_output(net):
    ldr, times = window(net.exposures)
    assert net.channels_last
    fast = net(ldr, times)
    net.channels_last = False
    try:
        assert torch.allclose(net(ldr, times), fast, atol=1e-5)
    finally:
        net.channels_last = True


def test_tone_perturbation_needs_the_flag_and_training():
    model = randomized(HDRFlow(2), seed=3)
    model.train()
    ref = window(2)[0][:, 1]
    assert model.perturb(ref) is ref
    model.tone_perturb = 0.7
    assert not torch.equal(model.perturb(ref), ref)
    model.eval()
    assert model.perturb(ref) is ref


def test_sizes_not_divisible_by_16_are_refused():
    with pytest.raises(ValueError, match="divisible by 16"):
        HDRFlow(2)(torch.rand(1, 3, 3, 20, 32), torch.tensor([[8.0, 1, 8]]))


@pytest.mark.parametrize("exposures, t_ref, keep", [
    (2, 1.0, "dark"), (2, 8.0, "bright"),
    (3, 1.0, "dark"), (3, 4.0, "both"), (3, 16.0, "bright"),
])
def test_reference_replacement_keeps_the_network_where_the_reference_is_bad(exposures, t_ref,
                                                                              keep):
    cycle = [1.0, 8.0] if exposures == 2 else [1.0, 4.0, 16.0]
    n, level = 2 * exposures - 1, cycle.index(t_ref)
    times = torch.tensor([[cycle[(level + k - n // 2) % exposures] for k in range(n)]])
    ldr = torch.zeros(1, n, 3, 1, 3)
    ldr[:, n // 2, :, 0] = torch.tensor([0.1, 0.5, 0.9])  # grey pixels: dark, mid, bright
    out = replace_reference(torch.full((1, 3, 1, 3), -1.0), ldr, times)[0, 0, 0]
    net_kept = (out == -1).tolist()
    assert net_kept == {"dark": [True, False, False], "bright": [False, False, True],
                        "both": [True, False, True]}[keep]
    assert out[1].item() == pytest.approx(0.5 ** 2.2 / t_ref)


@pytest.mark.parametrize("rule, net_kept", [("luma", False), ("channels", True)])
def test_channels_rule_keeps_the_network_where_a_saturated_colour_clips(rule, net_kept):
    """A blue sky clipped in its blue channel has a mid-grey luma: the official rule hands it to
    the clipped reference, the channels rule keeps the network (§5)."""
    ldr = torch.zeros(1, 3, 3, 1, 1)
    ldr[0, 1, :, 0, 0] = torch.tensor([0.55, 0.7, 1.0])  # luma 0.68, blue clipped
    network = torch.full((1, 3, 1, 1), -1.0)
    long_ref, short_ref = torch.tensor([[1.0, 8.0, 1.0]]), torch.tensor([[8.0, 1.0, 8.0]])
    assert (replace_reference(network, ldr, long_ref, rule) == -1).all().item() is net_kept
    # the lowest exposure never keeps the network on its bright side, whatever the rule
    assert (replace_reference(network, ldr, short_ref, rule) != -1).all()


# --- end to end --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def official_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hdrflow")
    return {e: save_official(randomized(HDRFlow(e), seed=e).state_dict(),
                             folder / f"{e}E.pth", key="state_dict", prefix="module.")
            for e in (2, 3)}


@pytest.mark.parametrize("exposures", [2, 3])
def test_convert_runs_end_to_end_with_official_format_weights(tmp_path, clip2, clip3,
                                                              official_files, exposures):
    clip = clip2 if exposures == 2 else clip3
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["convert", str(clip.path), "-o", str(out), "--model",
                                       "hdrflow", "--weights", str(official_files[exposures]),
                                       "--frames", "4", "--quiet"])
    assert result.exit_code == 0, result.output
    for i in range(4):
        image = read_exr(out / frame_name(i))[0]
        assert image.shape == (144, 256, 3) and np.isfinite(image).all() and image.min() >= 0


def test_convert_without_weights_says_where_they_come_from(tmp_path, clip3, monkeypatch):
    """An exposure count no file ships for (whatever weights/ holds) names the pull command."""
    monkeypatch.setitem(MODELS, "hdrflow", dataclasses.replace(MODELS["hdrflow"], weights={}))
    result = CliRunner().invoke(main, ["convert", str(clip3.path), "-o", str(tmp_path / "o"),
                                       "--model", "hdrflow"])
    assert_one_line_error(result, "hdrflow 3-exposure: the authors' weights are not pulled",
                          "`hdrvid weights pull hdrflow --exposures 3`", "--weights PATH")


def test_convert_with_the_other_variants_weights_is_one_line_error(tmp_path, clip2,
                                                                   official_files):
    result = CliRunner().invoke(main, ["convert", str(clip2.path), "-o", str(tmp_path / "o"),
                                       "--model", "hdrflow", "--weights", str(official_files[3])])
    assert_one_line_error(result, official_files[3], "hdrflow 2-exposure")


@pytest.mark.parametrize("exposures", [2, 3])
def test_folding_batchnorm_keeps_the_output(exposures):
    """Inference folds every BatchNorm into its convolution (the bottlenecks' named pairs and
    the Sequential ones, transposed convolutions included): same output, no BatchNorm left."""
    from hdrvid.models.common import fold_batchnorm

    net = randomized(HDRFlow(exposures), seed=5).eval()
    n = 2 * exposures - 1
    ldr, times = torch.rand(1, n, 3, 32, 48), torch.tensor([[1.0, 4.0, 16.0, 1.0, 4.0][:n]])
    times[0, n // 2 + 1:] = times[0, : n // 2]  # the cycle repeats
    with torch.no_grad():
        before = net(ldr, times)
        folded = fold_batchnorm(net)
        used = [m for name, m in folded.named_modules()
                if isinstance(m, torch.nn.BatchNorm2d) and not name.endswith("norm4")]
        assert not used  # norm4 is downsample.1's second name, no longer called
        torch.testing.assert_close(folded(ldr, times), before, rtol=1e-4, atol=1e-6)


def test_weights_can_turn_the_reference_replacement_off(tmp_path):
    """Our weights record whether they score better without the official reference replacement
    (§5); the predictor follows the file, official checkpoints keep it on."""
    from hdrvid.models.hdrflow import replace_reference
    from hdrvid.predictor import HdrPredictor

    net = randomized(HDRFlow(2), seed=4).eval()
    ldr = torch.rand(1, 3, 3, 32, 48)
    ldr[:, 1, :, :16] = 0.5  # a well-exposed band in the reference, replaced when it is on
    times = torch.tensor([[1.0, 8.0, 1.0]])
    with torch.no_grad():
        raw = net(ldr, times)
        replaced = replace_reference(raw, ldr, times)
    assert not torch.allclose(raw, replaced)
    for replace, expected in ((True, replaced), (False, raw)):
        path = tmp_path / f"replace-{replace}.safetensors"
        save_safetensors(net, path, {"model": "hdrflow", "period": 2,
                                     "attributes": {"reference_replacement": replace}})
        predictor = HdrPredictor("hdrflow", 2, "cpu", weights=path, precision="fp32")
        with torch.no_grad():
            torch.testing.assert_close(predictor.predict_torch(ldr, times), expected,
                                       rtol=1e-4, atol=1e-6)
