"""FSHDRV (few-shot HDR video) merging network, built from its authors' memo
(``Rhysess/Memo-about-FSHDRV``; docs/models/flow-models.md §9). 2 exposures only, like the memo.

The flow net of Kalantari19 aligns p and n to c; five candidates [L, H] (c, p̃, ñ, p, n; 6
channels each) go through a hybrid dilated conv per frame, an attention module per frame and
the EG19 encoder-decoder, which predicts merge weights.

The memo's gaps, resolved in the simplest way that works (none is confirmed):
1. Dilated branches: padding = dilation (not 1), so the three stride-2 branches agree in size.
2. "The second layer in the Downsampling part removed": the second *stride-2* conv of EG19's
   encoder goes (its following conv then takes 128 channels). With the stride-2 front end the
   network is then ×1/8 down, ×8 up: weights come out at full resolution, no resize needed.
3. Output: 15 channels, sigmoid, sum-normalised per-channel weights of the five HDR candidates
   (Chen21's merge, §4). No reference override (Kalantari19 has none).
4. Attention: conv3×3 64->64, LeakyReLU(0.1), conv3×3 64->32, sigmoid, multiplied into the
   frame's features (AHDRNet-style) from cat(reference, frame); all five frames pass through
   it, the reference too (160 = 5 × 32). The HDC ends in LeakyReLU(0.1) after its branches and
   after its fusion conv. HDC and attention weights are shared by the five frames.
Inputs are padded at the bottom and right to a multiple of 8 (replicate) and cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hdrvid.models.coarse import align, eg19_merge_net, merge_hdr
from hdrvid.models.common import DilatedConv2d, pad_bottom_right
from hdrvid.models.flownet import SpyFlowNet

FRAMES = 5
FEATURES = 32


class HybridDilatedConv(nn.Module):
    """Three parallel 3×3 stride-2 convs at dilations 1, 2, 3, concatenated and fused."""

    def __init__(self, c_in: int = 6, c_out: int = FEATURES):
        super().__init__()
        self.branches = nn.ModuleList(DilatedConv2d(c_in, c_out, 3, 2, padding=d, dilation=d)
                                      for d in (1, 2, 3))
        self.fuse = nn.Conv2d(3 * c_out, c_out, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 6, H, W] -> [B, 32, H/2, W/2]"""
        x = F.leaky_relu(torch.cat([branch(x) for branch in self.branches], 1), 0.1)
        return F.leaky_relu(self.fuse(x), 0.1)


class Attention(nn.Module):
    """A gate on a frame's features from (reference, frame) features."""

    def __init__(self, c: int = FEATURES):
        super().__init__()
        self.conv1 = nn.Conv2d(2 * c, 2 * c, 3, 1, 1)
        self.conv2 = nn.Conv2d(2 * c, c, 3, 1, 1)

    def forward(self, ref: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        """[B, 32, h, w] ×2 -> gated frame features [B, 32, h, w]"""
        gate = torch.sigmoid(self.conv2(F.leaky_relu(self.conv1(torch.cat([ref, frame], 1)), 0.1)))
        return frame * gate


class Fshdrv(nn.Module):
    """FSHDRV: window 3, 2 exposures."""

    def __init__(self, c_mid: int = 512):
        super().__init__()
        self.flow_net = SpyFlowNet(period=2)
        self.hdc = HybridDilatedConv()
        self.attention = Attention()
        encoder = [(c_mid // 4, 2), (c_mid // 4, 1), (c_mid // 2, 1), (c_mid, 2), (c_mid, 1)]
        self.merge_net = eg19_merge_net(FRAMES * FEATURES, 3 * FRAMES, c_mid, encoder)

    def forward(self, ldr: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """[B, 3, 3, H, W] gamma LDR, [B, 3] exposures -> [B, 3, H, W] linear HDR"""
        b, _, _, h, w = ldr.shape
        ldrs, hdrs, _ = align(self.flow_net, ldr, times)      # c, p̃, ñ, p, n
        x = pad_bottom_right(torch.stack([torch.cat(pair, 1) for pair in zip(ldrs, hdrs)], 1), 8)
        features = self.hdc(x.flatten(0, 1)).unflatten(0, (b, FRAMES))
        ref = features[:, :1].expand_as(features).flatten(0, 1)
        gated = self.attention(ref, features.flatten(0, 1)).unflatten(0, (b, FRAMES))
        weights = self.merge_net(gated.flatten(1, 2))[..., :h, :w]
        return merge_hdr(weights, hdrs)
