"""Stage 1 of the flow family: align the neighbours with the flow net, merge in linear light.

The weight networks (Chen21's ``weight_net``, the Kalantari19 ``weight_EG19net``) are the same
encoder-decoder without skips at different widths; they predict one sigmoid weight per pixel,
RGB channel and candidate HDR, and the merge normalises the weights by their sum (not a
softmax). docs/models/flow-models.md §4-§6.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

from hdrvid.models.common import linearize, pad_bottom_right, reexpose, warp

HIGH = 0.9            # a high (or mid) frame is over-exposed where some channel exceeds this
STAGE1_LOW = 0.4      # a low reference is trusted by stage 1 where some channel reaches this
STAGE2_LOW = 0.15     # ... and by stage 2 (and the RefineNet input mask)


def lrelu() -> nn.Module:
    return nn.LeakyReLU(0.1)


def conv_layer(c_in: int, c_out: int, stride: int, bn: bool) -> nn.Sequential:
    """conv3×3 (+ BatchNorm) + LeakyReLU(0.1): keys ``.0`` conv, ``.1`` BN."""
    layers = [nn.Conv2d(c_in, c_out, 3, stride, 1)]
    return nn.Sequential(*layers, *([nn.BatchNorm2d(c_out)] if bn else []), lrelu())


def deconv_layer(c_in: int, c_out: int, bn: bool) -> nn.Sequential:
    """ConvTranspose 4×4 stride 2 without bias (+ BatchNorm) + LeakyReLU(0.1)."""
    layers = [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False)]
    return nn.Sequential(*layers, *([nn.BatchNorm2d(c_out)] if bn else []), lrelu())


class Layers(nn.Module):
    """A stack of layers kept under ``.layers`` (the official key path)."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class WeightNet(nn.Module):
    """Encoder-decoder: (B, c_in, H, W) -> per-candidate RGB weights (B, c_out, H, W) in (0, 1).

    encoder: (width, stride) of each conv; decoder: widths of ConvT, conv, ConvT, conv, ConvT,
    then an output conv3×3 with bias and no BN or activation, then a sigmoid.
    """

    def __init__(self, c_in: int, c_out: int, encoder: Sequence[tuple[int, int]],
                 decoder: Sequence[int], bn: bool = False):
        super().__init__()
        widths = [c_in] + [width for width, _ in encoder]
        self.downsample = Layers(*(conv_layer(a, b, stride, bn) for a, b, (_, stride)
                                   in zip(widths, widths[1:], encoder)))
        widths = widths[-1:] + list(decoder)
        self.upsample = Layers(
            *(deconv_layer(a, b, bn) if i % 2 == 0 else conv_layer(a, b, 1, bn)
              for i, (a, b) in enumerate(pairwise(widths))),
            nn.Sequential(nn.Conv2d(widths[-1], c_out, 3, 1, 1)))
        downs = sum(stride == 2 for _, stride in encoder)
        self.multiple, self.scale = 2 ** downs, 2 ** ((len(decoder) + 1) // 2 - downs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, c_in, H, W] -> [B, c_out, H·s, W·s], s = 2^(ConvTs − stride-2 convs), usually 1"""
        h, w = x.shape[-2:]
        weights = torch.sigmoid(self.upsample(self.downsample(pad_bottom_right(x, self.multiple))))
        return weights[..., :h * self.scale, :w * self.scale]


def chen21_weight_net(period: int, c_mid: int = 256) -> WeightNet:
    """Chen21's weight net: 30 -> 15 with BatchNorm (2 exposures), 54 -> 27 without (3)."""
    c_in, c_out = (30, 15) if period == 2 else (54, 27)
    encoder = [(c_mid // 4, 2), (c_mid // 4, 1), (c_mid // 2, 2), (c_mid // 2, 1), (c_mid, 2),
               (c_mid, 1)]
    return WeightNet(c_in, c_out, encoder, [c_mid // 2] * 4 + [max(128, c_mid // 8)],
                     bn=period == 2)


def eg19_merge_net(c_in: int, c_out: int, c_mid: int = 512,
                   encoder: Sequence[tuple[int, int]] | None = None) -> WeightNet:
    """Kalantari19's merge net as Chen21 re-implemented it (``weight_EG19net``): no BatchNorm,
    the decoder narrowing to c/2, c/4, max(64, c/8)."""
    encoder = encoder or [(c_mid // 4, 2), (c_mid // 4, 1), (c_mid // 2, 2), (c_mid // 2, 1),
                          (c_mid, 2), (c_mid, 1)]
    decoder = [c_mid // 2, c_mid // 2, c_mid // 4, c_mid // 4, max(64, c_mid // 8)]
    return WeightNet(c_in, c_out, encoder, decoder)


def merge_hdr(weights: torch.Tensor, hdrs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Weights (B, 3k, H, W) and k HDRs (B, 3, H, W) -> sum-normalised blend (B, 3, H, W), fp32."""
    w = weights.float().unflatten(1, (len(hdrs), 3))
    return (w * torch.stack(hdrs, 1).float()).sum(1) / (w.sum(1) + 1e-8)


def reference_level(times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exposures (B, m) of a window -> (high, low) booleans (B,) for its centre frame; a frame
    that is neither is mid (docs/conventions.md §3.1)."""
    c = times.shape[1] // 2
    others = torch.cat([times[:, :c], times[:, c + 1:]], dim=1)
    centre = times[:, c:c + 1]
    return (centre > others).all(1), (centre < others).all(1)


def exposure_mask(ldr: torch.Tensor, high: torch.Tensor, low: torch.Tensor, low_threshold: float,
                  per_channel: bool = False) -> torch.Tensor:
    """Badly exposed pixels of gamma LDR (B, 3, H, W), hard and boolean: (B, 1|3, H, W).

    High frame: some channel > 0.9; low frame: all channels < ``low_threshold``; mid: either.
    ``per_channel`` tests each channel on its own (the RefineNet input mask).
    """
    over, under = ldr > HIGH, ldr < low_threshold
    if not per_channel:
        over, under = over.any(1, keepdim=True), under.all(1, keepdim=True)
    high, low = high[:, None, None, None], low[:, None, None, None]
    return torch.where(high, over, torch.where(low, under, over | under))


def align(flow_net: nn.Module, ldr: torch.Tensor, times: torch.Tensor
          ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """A window (B, 3|5, 3, H, W) with exposures (B, 3|5) -> the merge candidates.

    Returns LDRs, HDRs and exposures in the order [c, aligned neighbours, unaligned neighbours];
    neighbours in flow order: p, n (3 frames) or p2, n1, p1, n2 (5 frames). Each HDR is
    linearised with its own frame's exposure.
    """
    c = ldr.shape[1] // 2
    order = [0, 2] if ldr.shape[1] == 3 else [0, 3, 1, 4]    # pairs sharing an exposure
    flow_in = []
    for a, b in zip(order[::2], order[1::2]):
        flow_in += [ldr[:, a], reexpose(ldr[:, c], times[:, a] / times[:, c]), ldr[:, b]]
    flows = flow_net(torch.cat(flow_in, dim=1))
    warped = [warp(ldr[:, i], flows[:, 2 * k: 2 * k + 2]).to(ldr.dtype)
              for k, i in enumerate(order)]
    ldrs = [ldr[:, c], *warped, *(ldr[:, i] for i in order)]
    ts = [times[:, c], *(times[:, i] for i in order * 2)]
    return ldrs, [linearize(x, t) for x, t in zip(ldrs, ts)], ts


def forward_flow_family(net: nn.Module, ldr: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """The input adapter of Chen21, Kalantari19 and FSHDRV (docs/models/flow-models.md): the
    window ``ldr`` (B, n, 3, H, W) and its exposures ``times`` (B, n), in fp32 -> linear HDR.

    These networks build their own inputs (the reference re-exposed to its neighbours, every
    frame linearised with its own exposure) because Chen21 runs its coarse stage on three
    sub-windows of the window; warps and merges stay in fp32 inside them.
    """
    return net(ldr.float(), times.float())


def coarse_hdr(flow_net: nn.Module, weight_net: nn.Module, ldr: torch.Tensor,
               times: torch.Tensor, low_threshold: float | None = STAGE1_LOW) -> torch.Tensor:
    """CoarseNet: a window (B, 3|5, 3, H, W), exposures (B, 3|5) -> linear HDR (B, 3, H, W).

    Weight-net input: 2 exposures [H_c, H_pw, H_nw, H_p, H_n, L_c, L_pw, L_nw, L_p, L_n];
    3 exposures [L, H] per image, images c, p2w, n1w, p1w, n2w, p2, n1, p1, n2. Where the
    reference is well exposed (``low_threshold`` for a low reference; None: no override) the
    output is the reference's own HDR.
    """
    ldrs, hdrs, _ = align(flow_net, ldr, times)
    if ldr.shape[1] == 3:
        x = torch.cat(hdrs + ldrs, dim=1)
    else:
        x = torch.cat([t for pair in zip(ldrs, hdrs) for t in pair], dim=1)
    merged = merge_hdr(weight_net(x), hdrs)
    if low_threshold is None:
        return merged
    bad = exposure_mask(ldr[:, ldr.shape[1] // 2], *reference_level(times), low_threshold)
    return torch.where(bad, merged, hdrs[0].float())
