"""Kalantari19: "Deep HDR Video from Sequences with Alternating Exposures" (Kalantari and
Ramamoorthi, Eurographics 2019), as Chen21 re-implemented it (docs/models/flow-models.md §5).

The flow net of §2 and the EG19 merge network (``weight_EG19net``, width 512). No code or
weights were released: the interface is our reading of the paper, the same as Chen21's
CoarseNet (30 -> 15 for 2 exposures; 54 -> 27 in Chen21's interleaved 3-exposure order), and,
as the paper has no reference override, the merged HDR is the output everywhere.
"""

from __future__ import annotations

import torch
from torch import nn

from hdrvid.models.coarse import coarse_hdr, eg19_merge_net
from hdrvid.models.flownet import SpyFlowNet


class Kalantari19(nn.Module):
    """Flow alignment + EG19 merge: window 3 (2 exposures) or 5 (3 exposures)."""

    def __init__(self, period: int = 2, c_mid: int = 512):
        super().__init__()
        self.flow_net = SpyFlowNet(period)
        self.merge_net = eg19_merge_net(*((30, 15) if period == 2 else (54, 27)), c_mid=c_mid)

    def forward(self, ldr: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """[B, 3|5, 3, H, W] gamma LDR, [B, 3|5] exposures -> [B, 3, H, W] linear HDR"""
        return coarse_hdr(self.flow_net, self.merge_net, ldr, times, low_threshold=None)
