"""Chen21: "HDR Video Reconstruction: A Coarse-to-fine Network and A Real-world Benchmark
Dataset" (Chen et al., ICCV 2021), docs/models/flow-models.md §1-§8.

Stage 1 (CoarseNet): the flow net aligns the neighbours, the weight net merges them in linear
light; stage 2 (RefineNet) aligns the coarse HDRs of c−1, c, c+1 in feature space and refines
the badly exposed pixels. Submodule names and state dicts are those of the official
``flow_net.pth``, ``weight_net.pth`` and ``refine_net.pth``.
"""

from __future__ import annotations

import torch
from torch import nn

from hdrvid.models.coarse import (
    STAGE1_LOW,
    STAGE2_LOW,
    chen21_weight_net,
    coarse_hdr,
    exposure_mask,
    reference_level,
)
from hdrvid.models.flownet import SpyFlowNet
from hdrvid.models.refine import RefineNet


class Chen21Coarse(nn.Module):
    """Chen21's stage 1 alone (the loadable Kalantari19-style model): window 3 (2 exposures) or
    5 (3 exposures)."""

    def __init__(self, period: int = 2):
        super().__init__()
        self.flow_net = SpyFlowNet(period)
        self.weight_net = chen21_weight_net(period)

    def forward(self, ldr: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """[B, 3|5, 3, H, W] gamma LDR, [B, 3|5] exposures -> [B, 3, H, W] linear HDR"""
        return coarse_hdr(self.flow_net, self.weight_net, ldr, times, STAGE1_LOW)


class Chen21(nn.Module):
    """The coarse-to-fine network: window 5 (2 exposures) or 7 (3 exposures).

    Each coarse HDR comes from its own frame's window inside the given one. Consecutive output
    frames share two of their three coarse windows, so at inference the results of the last call
    are kept, keyed by the windows' content: each coarse HDR is computed once per frame, as in
    the official streaming code (a FIFO of three), without the caller passing frame indices.
    """

    def __init__(self, period: int = 2):
        super().__init__()
        self.period = period
        self.flow_net = SpyFlowNet(period)
        self.weight_net = chen21_weight_net(period)
        self.refine_net = RefineNet(c_in=6 if period == 2 else 3)
        self.cache: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []
        self._register_load_state_dict_pre_hook(lambda *args, **kwargs: self.cache.clear())

    def coarse(self, windows: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """[K, m, 3, H, W], [K, m] -> [K, 3, H, W], reusing the results of identical windows."""
        if self.training or torch.is_grad_enabled():
            return coarse_hdr(self.flow_net, self.weight_net, windows, times, STAGE1_LOW)
        known = list(self.cache)
        found: list[int] = []
        for window, t in zip(windows, times):
            match = next((i for i, (w, tt, _) in enumerate(known) if w.shape == window.shape
                          and torch.equal(tt, t) and torch.equal(w, window)), None)
            if match is None:
                known.append((window, t, None))
                match = len(known) - 1
            found.append(match)
        todo = [i for i, (_, _, hdr) in enumerate(known) if hdr is None]
        if todo:
            new = coarse_hdr(self.flow_net, self.weight_net,
                             torch.stack([known[i][0] for i in todo]),
                             torch.stack([known[i][1] for i in todo]), STAGE1_LOW)
            for i, hdr in zip(todo, new):
                known[i] = (*known[i][:2], hdr)
        self.cache = [known[i] for i in dict.fromkeys(found)]   # this call's windows, once each
        return torch.stack([known[i][2] for i in found])

    def forward(self, ldr: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """[B, 5|7, 3, H, W] gamma LDR, [B, 5|7] exposures -> [B, 3, H, W] linear HDR"""
        b, n = ldr.shape[:2]
        c, m = n // 2, n - 2                                  # centre, coarse window size
        # stage 1: coarse HDRs of frames c−1, c, c+1, each from the window centred on it
        windows = torch.cat([ldr[:, k:k + m] for k in range(3)])
        window_times = torch.cat([times[:, k:k + m] for k in range(3)])
        coarse = self.coarse(windows, window_times)
        coarse = coarse.unflatten(0, (3, b)).transpose(0, 1)  # (B, 3, 3, H, W)
        # stage 2: refine; 2 exposures also see each frame's badly exposed channels
        x = coarse
        if self.period == 2:
            levels = reference_level(window_times)
            masks = exposure_mask(windows[:, m // 2], *levels, STAGE2_LOW, per_channel=True)
            x = torch.cat([masks.to(coarse.dtype).unflatten(0, (3, b)).transpose(0, 1), x], 2)
        refined = self.refine_net(x)
        # keep the coarse result where the reference is trusted
        bad = exposure_mask(ldr[:, c], *reference_level(times[:, c - 1:c + 2]), STAGE2_LOW)
        return torch.where(bad, refined.float(), coarse[:, 1])
