"""The flow network of Kalantari19, shared by Chen21 and FSHDRV (docs/models/flow-models.md §2).

A SpyNet-style pyramid of 5 levels (1/16 … 1), each with its own 4-layer CNN. Unlike SpyNet the
level CNN never sees the flow: it sees the neighbours warped by the upsampled flow next to the
reference re-exposed to their exposure, and predicts a residual flow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hdrvid.models.common import warp

LEVELS = 5


def resize_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Bilinearly resize (B, C, H, W) up to the next multiple (a resize, not padding)."""
    h, w = x.shape[-2:]
    size = (-(-h // multiple) * multiple, -(-w // multiple) * multiple)
    if size == (h, w):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def resize_flow(flow: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Flow (B, 2k, H', W') in pixels -> (B, 2k, H, W), x scaled by W/W' and y by H/H'."""
    h, w = flow.shape[-2:]
    if (h, w) == (height, width):
        return flow
    flow = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
    scale = torch.tensor([width / w, height / h], device=flow.device, dtype=flow.dtype)
    return flow * scale.repeat(flow.shape[1] // 2)[None, :, None, None]


class LevelNet(nn.Module):
    """One pyramid level: four 5×5 convs, c_in -> 100 -> 50 -> 25 -> c_out, residual flow."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.moduleBasic = nn.Sequential(
            nn.Conv2d(c_in, 100, 5, 1, 2), nn.ReLU(),
            nn.Conv2d(100, 50, 5, 1, 2), nn.ReLU(),
            nn.Conv2d(50, 25, 5, 1, 2), nn.ReLU(),
            nn.Conv2d(25, c_out, 5, 1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, c_in, h, w] -> [B, c_out, h, w]"""
        return self.moduleBasic(x).clamp(-320, 320)


class SpyFlowNet(nn.Module):
    """Flows from the reference to its neighbours (Chen21's ``spynet_triple`` / ``spynet_2triple``).

    Input, gamma-2.2 LDR, ``c→x`` the reference re-exposed to x's exposure:
      period 2: [p, c→p, n] (9 channels) -> flows for p, n (4 channels);
      period 3: [p2, c→p2, n1, p1, c→p1, n2] (18) -> flows for p2, n1, p1, n2 (8).
    Flows are (x, y) in pixels for backward warping, ``warped(x) = nbr(x + flow(x))``.
    """

    def __init__(self, period: int = 2):
        super().__init__()
        self.n_flows = 2 * (period - 1)
        self.neighbour_slots = (0, 2) if period == 2 else (0, 2, 3, 5)
        self.moduleBasic = nn.ModuleList(
            LevelNet(9 * (period - 1), 2 * self.n_flows) for _ in range(LEVELS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 9|18, H, W] -> [B, 4|8, H, W]"""
        height, width = x.shape[-2:]
        pyramid = [resize_to_multiple(x, 2 ** (LEVELS - 1))]
        for _ in range(LEVELS - 1):
            pyramid.insert(0, F.avg_pool2d(pyramid[0], 2))
        flows = self.moduleBasic[0](pyramid[0]).float()       # coarsest: the images as they are
        for level_net, images in zip(self.moduleBasic[1:], pyramid[1:]):
            flows = 2 * F.interpolate(flows, size=images.shape[-2:], mode="bilinear",
                                      align_corners=True)     # upsample, in pixels of this level
            flows = flows + level_net(self.warp_neighbours(images, flows)).float()
        return resize_flow(flows, height, width).clamp(-200, 200)

    def warp_neighbours(self, images: torch.Tensor, flows: torch.Tensor) -> torch.Tensor:
        """Warp each neighbour slot of the stacked input by its flow; references stay."""
        slots = list(images.split(3, dim=1))
        for k, slot in enumerate(self.neighbour_slots):
            slots[slot] = warp(slots[slot], flows[:, 2 * k: 2 * k + 2]).to(images.dtype)
        return torch.cat(slots, dim=1)
