"""Chen21's RefineNet (``DAHDRnet``): deformable feature alignment of three coarse HDRs and
temporal-attention fusion (docs/models/flow-models.md §7). EDVR's PCD alignment without its TSA
fusion.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hdrvid.models.common import pad_bottom_right
from hdrvid.models.dcn import DCNPack


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.1)


def up2(x: torch.Tensor) -> torch.Tensor:
    """Bilinear ×2, ``align_corners=False`` (every interpolation inside the RefineNet)."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def conv3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride, 1)


class ResBlock(nn.Module):
    """x + conv(relu(conv(x))), no BatchNorm."""

    def __init__(self, nf: int = 64):
        super().__init__()
        self.conv1, self.conv2 = conv3(nf, nf), conv3(nf, nf)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class PCDAlign(nn.Module):
    """Pyramid, cascading deformable alignment of a frame's features to the reference's."""

    def __init__(self, nf: int = 64, groups: int = 8):
        super().__init__()
        # registered in the official order: L3, L2, L1, cascade
        self.L3_offset_conv1, self.L3_offset_conv2 = conv3(2 * nf, nf), conv3(nf, nf)
        self.L3_dcnpack = DCNPack(nf, groups)
        for level in ("L2", "L1"):
            setattr(self, f"{level}_offset_conv1", conv3(2 * nf, nf))
            setattr(self, f"{level}_offset_conv2", conv3(2 * nf, nf))
            setattr(self, f"{level}_offset_conv3", conv3(nf, nf))
            setattr(self, f"{level}_dcnpack", DCNPack(nf, groups))
            setattr(self, f"{level}_fea_conv", conv3(2 * nf, nf))
        self.cas_offset_conv1, self.cas_offset_conv2 = conv3(2 * nf, nf), conv3(nf, nf)
        self.cas_dcnpack = DCNPack(nf, groups)

    def level(self, name: str, nbr: torch.Tensor, ref: torch.Tensor, coarse_offset: torch.Tensor,
              coarse_feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One finer level (L2 or L1): offsets refined from the coarser level's, then DCN."""
        offset = lrelu(getattr(self, f"{name}_offset_conv1")(torch.cat([nbr, ref], 1)))
        offset = lrelu(getattr(self, f"{name}_offset_conv2")(
            torch.cat([offset, 2 * up2(coarse_offset)], 1)))
        offset = lrelu(getattr(self, f"{name}_offset_conv3")(offset))
        feature = getattr(self, f"{name}_dcnpack")(nbr, offset)
        feature = getattr(self, f"{name}_fea_conv")(torch.cat([feature, up2(coarse_feature)], 1))
        return offset, feature

    def forward(self, nbr: list[torch.Tensor], ref: list[torch.Tensor]) -> torch.Tensor:
        """features at [1, 1/2, 1/4] of L1, each [B, nf, h, w] -> aligned [B, nf, h1, w1]"""
        offset3 = lrelu(self.L3_offset_conv2(lrelu(self.L3_offset_conv1(
            torch.cat([nbr[2], ref[2]], 1)))))
        feature3 = lrelu(self.L3_dcnpack(nbr[2], offset3))
        offset2, feature2 = self.level("L2", nbr[1], ref[1], offset3, feature3)
        feature2 = lrelu(feature2)                # L2's fusion conv is activated, L1's is not
        _, feature1 = self.level("L1", nbr[0], ref[0], offset2, feature2)
        offset = lrelu(self.cas_offset_conv2(lrelu(self.cas_offset_conv1(
            torch.cat([feature1, ref[0]], 1)))))
        return lrelu(self.cas_dcnpack(feature1, offset))


class TemporalAttention(nn.Module):
    """Chen21's "TA2" fusion: each aligned feature times an attention map (no sigmoid) computed
    from it and the reference's, then a 1×1 fusion conv."""

    def __init__(self, nf: int = 64, nframes: int = 3):
        super().__init__()
        self.tAtt_1, self.tAtt_2 = conv3(2 * nf, nf), conv3(nf, nf)
        self.fea_fusion = nn.Conv2d(nframes * nf, nf, 1)

    def forward(self, aligned: torch.Tensor) -> torch.Tensor:
        """[B, N, nf, h, w] -> [B, nf, h, w]"""
        b, n = aligned.shape[:2]
        ref = aligned[:, n // 2 : n // 2 + 1].expand_as(aligned)
        att = self.tAtt_2(lrelu(self.tAtt_1(torch.cat([ref, aligned], 2).flatten(0, 1))))
        return lrelu(self.fea_fusion((aligned * att.unflatten(0, (b, n))).flatten(1, 2)))


class RefineNet(nn.Module):
    """Three coarse results (c−1, c, c+1) -> the refined HDR of c, in [0, 1].

    c_in = 6 ([input mask, coarse HDR], 2 exposures) or 3 (coarse HDR, 3 exposures).
    """

    def __init__(self, c_in: int = 6, nf: int = 64, groups: int = 8, front_blocks: int = 5,
                 back_blocks: int = 10, nframes: int = 3):
        super().__init__()
        self.conv_first_1, self.conv_first_2 = conv3(c_in, nf), conv3(nf, nf, 2)
        self.feature_extraction = nn.Sequential(*(ResBlock(nf) for _ in range(front_blocks)))
        self.fea_L2_conv1, self.fea_L2_conv2 = conv3(nf, nf, 2), conv3(nf, nf)
        self.fea_L3_conv1, self.fea_L3_conv2 = conv3(nf, nf, 2), conv3(nf, nf)
        self.pcd_align = PCDAlign(nf, groups)
        self.ta_fusion = TemporalAttention(nf, nframes)
        self.recon_trunk = nn.Sequential(*(ResBlock(nf) for _ in range(back_blocks)))
        self.deconv1 = nn.ConvTranspose2d(2 * nf, nf, 4, 2, 1)
        self.HRconv = conv3(2 * nf, 64)
        self.conv_last = conv3(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, N, c_in, H, W] -> [B, 3, H, W]"""
        b, n, _, height, width = x.shape
        x = pad_bottom_right(x, 8)
        # per-frame features at full, 1/2 (L1), 1/4 (L2) and 1/8 (L3) resolution
        s1 = lrelu(self.conv_first_1(x.flatten(0, 1)))
        s2 = lrelu(self.conv_first_2(s1))
        L1 = self.feature_extraction(s2)
        L2 = lrelu(self.fea_L2_conv2(lrelu(self.fea_L2_conv1(L1))))
        L3 = lrelu(self.fea_L3_conv2(lrelu(self.fea_L3_conv1(L2))))
        # align every frame, the centre included, to the centre frame (frames batched)
        levels = [f.unflatten(0, (b, n)) for f in (L1, L2, L3)]
        refs = [f[:, n // 2 : n // 2 + 1].expand_as(f).flatten(0, 1) for f in levels]
        aligned = self.pcd_align([L1, L2, L3], refs).unflatten(0, (b, n))
        # fuse, reconstruct, upsample with the centre frame's skips
        out = self.recon_trunk(self.ta_fusion(aligned))
        out = self.deconv1(torch.cat([s2.unflatten(0, (b, n))[:, n // 2], out], 1))
        out = lrelu(self.HRconv(torch.cat([s1.unflatten(0, (b, n))[:, n // 2], out], 1)))
        return torch.sigmoid(self.conv_last(out))[..., :height, :width]
