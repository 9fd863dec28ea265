"""HDRFlow's two networks, `HDRFlowNet` and `FusionNet` (docs/models/hdrflow.md §2-4; the
warp is `common.warp`).

Module names, registration order and shapes are those of the official checkpoints
(OpenImagingLab/HDRFlow, MIT), so that their state dicts load strictly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hdrvid.models.common import keep_fp32


def in_float32(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run ``layer`` outside autocast, in its own weights' dtype (fp32 unless the model was cast):
    flows and merge weights must not be rounded to half precision."""
    with torch.autocast(x.device.type, enabled=False):
        return layer(x.to(next(layer.parameters()).dtype))


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, act: nn.Module | None = None,
            transposed: bool = False) -> list[nn.Module]:
    """conv (or 4×4 stride-2 transposed conv) with bias, BatchNorm, activation (default ReLU)."""
    if transposed:
        conv = nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)
    else:
        conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2)
    return [conv, nn.BatchNorm2d(c_out), act or nn.ReLU(inplace=True)]


def combine(c_in: int, c_out: int) -> nn.Sequential:
    """1×1 conv, BN, ReLU, 3×3 conv, BN, ReLU: merges a concatenation (indices 0, 1, 3, 4)."""
    return nn.Sequential(*conv_bn(c_in, c_out, 1), *conv_bn(c_out, c_out, 3))


class BottleneckBlock(nn.Module):
    """RAFT's bottleneck with BatchNorm. The strided block's shortcut BN is one module under two
    names, ``norm4`` and ``downsample.1``, as upstream: the state dict lists it twice (§9.2)."""

    batchnorm_pairs = (("conv1", "norm1"), ("conv2", "norm2"), ("conv3", "norm3"))  # folding

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        mid = c_out // 4
        self.conv1 = nn.Conv2d(c_in, mid, 1)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1)
        self.conv3 = nn.Conv2d(mid, c_out, 1)
        self.norm1, self.norm2 = nn.BatchNorm2d(mid), nn.BatchNorm2d(mid)
        self.norm3 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1:
            self.norm4 = nn.BatchNorm2d(c_out)
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride), self.norm4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, c_in, H, W) -> (B, c_out, H/stride, W/stride)"""
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.relu(self.norm2(self.conv2(y)))
        y = self.relu(self.norm3(self.conv3(y)))
        if self.downsample is not None:
            x = self.downsample(x)
        return self.relu(x + y)


def stage(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(BottleneckBlock(c_in, c_out, stride), BottleneckBlock(c_out, c_out))


class HDRFlowNet(nn.Module):
    """Encoder with image-pyramid injection and a multi-size large kernel at 1/16, a U-Net
    decoder to 1/4, a flow head; flows are clamped, then upsampled ×4 (§2).

    c_in: 3 per input image (9 in 2E, 18 in 3E); head: flow-head width; n_flows: flows out;
    max_flow: clamp at 1/4 resolution (±100 in 2E, ±64 in 3E).
    """

    # layout of the large kernels; None: that of the input. Switching layout for them alone
    # measured no faster on CPU (benchmarks/hdrflow_kernels.py), and a fused 11×11 conv slower.
    mlk_format: torch.memory_format | None = None

    def __init__(self, c_in: int, head: int, n_flows: int, max_flow: float):
        super().__init__()
        self.max_flow = max_flow
        self.conv1 = nn.Sequential(*conv_bn(c_in, 32, 7, stride=2))
        self.imconv4, self.combine4 = nn.Sequential(*conv_bn(c_in, 64, 3)), combine(128, 64)
        self.imconv8, self.combine8 = nn.Sequential(*conv_bn(c_in, 128, 3)), combine(256, 128)
        self.imconv16, self.combine16 = nn.Sequential(*conv_bn(c_in, 256, 3)), combine(512, 256)
        self.layer1, self.layer2 = stage(32, 32, 1), stage(32, 64, 2)
        self.layer3, self.layer4 = stage(64, 128, 2), stage(128, 256, 2)
        self.upconv4 = nn.Sequential(*conv_bn(256, 128, 4, transposed=True))
        self.iconv3 = combine(256, 128)
        self.upconv3 = nn.Sequential(*conv_bn(128, 64, 4, transposed=True))
        self.iconv2 = combine(128, 64)
        self.conv7x7 = nn.Conv2d(256, 256, 7, padding=3, groups=256)
        self.conv9x9 = nn.Conv2d(256, 256, 9, padding=4, groups=256)
        self.conv11x11 = nn.Conv2d(256, 256, 11, padding=5, groups=256)
        self.merge_features = nn.Conv2d(768, 256, 1)
        self.flow_head = nn.Sequential(
            nn.Conv2d(64, head, 5, padding=2), nn.ReLU(inplace=True),
            nn.Conv2d(head, head, 5, padding=2), nn.ReLU(inplace=True),
            keep_fp32(nn.Conv2d(head, 2 * n_flows, 5, padding=2)))

    def inject(self, feature: torch.Tensor, images: torch.Tensor, scale: int) -> torch.Tensor:
        """Input injection at 1/scale: combine(feature, imconv(avgpool(images)))."""
        imconv, merge = getattr(self, f"imconv{scale}"), getattr(self, f"combine{scale}")
        return merge(torch.cat([feature, imconv(F.avg_pool2d(images, scale))], dim=1))

    def large_kernel(self, x: torch.Tensor) -> torch.Tensor:
        """Multi-size large kernel (MLK): ReLU(x + merge([dw7(x), dw9(x), dw11(x)]))."""
        y = x if self.mlk_format is None else x.contiguous(memory_format=self.mlk_format)
        y = torch.cat([self.conv7x7(y), self.conv9x9(y), self.conv11x11(y)], dim=1)
        return F.relu(x + self.merge_features(y))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, c_in, H, W) exposure-matched LDR stack -> flows (B, 2·n_flows, H, W), fp32 px"""
        x2 = self.layer1(self.conv1(images))
        x4 = self.inject(self.layer2(x2), images, 4)
        x8 = self.inject(self.layer3(x4), images, 8)
        x16 = self.large_kernel(self.inject(self.layer4(x8), images, 16))
        y8 = self.iconv3(torch.cat([x8, self.upconv4(x16)], dim=1))  # skip first
        y4 = self.iconv2(torch.cat([x4, self.upconv3(y8)], dim=1))
        flow = in_float32(self.flow_head[4], self.flow_head[:4](y4))
        flow = flow.clamp(-self.max_flow, self.max_flow)
        return 4 * F.interpolate(flow, scale_factor=4, mode="bilinear", align_corners=True)


class FusionNet(nn.Module):
    """U-Net predicting one sigmoid weight map per merge candidate (§4.2); (2E) c_in 30, c_out 5,
    c_mid 128; (3E) 54, 9, 256."""

    def __init__(self, c_in: int, c_out: int, c_mid: int):
        super().__init__()
        m = c_mid

        def layer(a: int, b: int, stride: int = 1, transposed: bool = False) -> nn.Sequential:
            return nn.Sequential(*conv_bn(a, b, 3, stride, nn.LeakyReLU(0.1, inplace=True),
                                          transposed))

        self.conv1, self.conv2 = layer(c_in, m // 4, 2), layer(m // 4, m // 4)
        self.conv3, self.conv4 = layer(m // 4, m // 2, 2), layer(m // 2, m // 2)
        self.conv5, self.conv6 = layer(m // 2, m, 2), layer(m, m)
        self.conv7, self.conv8 = layer(m, m // 2, transposed=True), layer(m, m // 2)
        self.conv9 = layer(m // 2, 64, transposed=True)
        self.conv10 = layer(64 + m // 4, 64)
        self.conv11 = layer(64, 64, transposed=True)
        self.conv12 = nn.Sequential(nn.Conv2d(64, c_out, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, c_in, H, W) -> weights (B, c_out, H, W) in (0, 1), fp32"""
        x2 = self.conv2(self.conv1(x))
        x4 = self.conv4(self.conv3(x2))
        x8 = self.conv6(self.conv5(x4))
        y4 = self.conv8(torch.cat([self.conv7(x8), x4], dim=1))  # upsampled first
        y2 = self.conv10(torch.cat([self.conv9(y4), x2], dim=1))
        # the sigmoid in fp32 (§4.3); the 3×3 conv before it stays in the autocast dtype: in
        # fp32 its full-resolution input would be cast on every frame, a large share of the
        # frame's time, and bf16 keeps PSNR-T within the precision gate (docs/performance.md)
        return torch.sigmoid(self.conv12(self.conv11(y2)).float())
