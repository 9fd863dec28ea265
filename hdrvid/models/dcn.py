"""Modulated deformable convolution (DCNv2) in plain torch, for Chen21's RefineNet.

Same semantics and offset layout as ``torchvision.ops.deform_conv2d`` and the mmdet/EDVR CUDA
extension the official code compiled (docs/models/flow-models.md §7.1), written here so that
torchvision is not needed: bilinear sampling with ``grid_sample`` (align_corners=True, zeros
outside, the DCN rule), then the convolution as one matrix product.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def deform_conv2d(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor,
                  weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Deformable conv, stride 1, dilation 1, 'same' padding (kernel k×k, k odd).

    x (B, C, H, W); offset (B, 2·G·k², H, W) laid out per group, per tap, as (Δy, Δx);
    mask (B, G·k², H, W); weight (O, C, k, k) -> (B, O, H, W). Sampling runs in fp32.
    """
    b, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    taps = kh * kw
    groups = mask.shape[1] // taps
    offset = offset.float().view(b, groups, taps, 2, h, w)
    dy, dx = torch.meshgrid(torch.arange(kh, device=x.device) - kh // 2,
                            torch.arange(kw, device=x.device) - kw // 2, indexing="ij")
    ys = (torch.arange(h, device=x.device).view(h, 1) + dy.reshape(taps, 1, 1)) + offset[:, :, :, 0]
    xs = (torch.arange(w, device=x.device).view(1, w) + dx.reshape(taps, 1, 1)) + offset[:, :, :, 1]
    grid = torch.stack([2 * xs / max(w - 1, 1) - 1, 2 * ys / max(h - 1, 1) - 1], dim=-1)
    columns = F.grid_sample(x.float().reshape(b * groups, c // groups, h, w),
                            grid.view(b * groups, taps * h, w, 2), mode="bilinear",
                            padding_mode="zeros", align_corners=True)   # (B·G, C/G, k²·H, W)
    columns = columns.view(b, groups, c // groups, taps, h, w) * mask.float().view(
        b, groups, 1, taps, h, w)
    out = weight.reshape(o, c * taps) @ columns.view(b, c * taps, h * w).to(weight.dtype)
    if bias is not None:
        out = out + bias.view(o, 1)
    return out.view(b, o, h, w)


class DCNPack(nn.Module):
    """EDVR's DCN with ``extra_offset_mask``: offsets and modulation predicted from a feature.

    ``conv_offset_mask`` gives 3·G·9 channels: thirds o1, o2, m; offset = cat(o1, o2), mask =
    sigmoid(m).
    """

    def __init__(self, channels: int = 64, groups: int = 8, kernel: int = 3):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels, channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.conv_offset_mask = nn.Conv2d(channels, 3 * groups * kernel * kernel, kernel, 1,
                                          kernel // 2)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.zeros_(self.conv_offset_mask.weight)      # start as a plain convolution
        nn.init.zeros_(self.conv_offset_mask.bias)

    def forward(self, x: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W], offset feature [B, C, H, W] -> [B, C, H, W]"""
        o1, o2, m = self.conv_offset_mask(feature).chunk(3, dim=1)
        return deform_conv2d(x, torch.cat([o1, o2], dim=1), torch.sigmoid(m), self.weight,
                             self.bias)
