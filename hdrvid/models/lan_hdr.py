"""LAN-HDR (Chung & Cho, ICCV 2023): luminance-based alignment network for HDR video.

Per frame i of the window, `Align` turns the frame, its keys and the reference's queries into a
64-channel feature at full resolution:
  1. alignment at 1/4 resolution: hard patch attention (TTSR-style) finds, for every position of
     the reference re-exposed to frame i's exposure, the most similar patch of frame i and swaps
     in frame i's features there (`HardAttention`, `Recon`);
  2. hallucination at full resolution: gated-conv encoders of the frame and of the reference,
     blended with the aligned feature by a learned gate (`Fuser`).
`Merge` fuses the features of all frames with FFT residual blocks into the HDR frame.

Parameter names and shapes are those of the official code (haesoochung/LAN-HDR, whose
checkpoints keep the state dict under ``"g"``); ``docs/models/lan-hdr.md`` documents them.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from hdrvid.models.common import GAMMA, keep_fp32, linearize, luma, reexpose


def conv(cin: int, cout: int, kernel: int = 3, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=bias)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ResBlock(nn.Module):
    """conv3×3 → ReLU → conv3×3 plus a shortcut (a 3×3 conv when the width changes)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1, self.conv2 = conv(cin, cout), conv(cout, cout)
        self.downsample = conv(cin, cout) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(x))) + self.downsample(x)


class RFFTBlock(nn.Module):
    """Residual block with a spatial branch and a 1×1-conv branch on the real FFT (DeepRFT)."""

    def __init__(self, channels: int):
        super().__init__()
        self.main = nn.Sequential(conv(channels, channels, bias=False), nn.ReLU(),
                                  conv(channels, channels, bias=False))
        self.main_fft = keep_fp32(nn.Sequential(conv(2 * channels, 2 * channels, 1, bias=False),
                                                nn.ReLU(inplace=True),
                                                conv(2 * channels, 2 * channels, 1, bias=False)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)"""
        return x + self.main(x) + self.spectral(x).to(x.dtype)

    def spectral(self, x: torch.Tensor) -> torch.Tensor:
        # fp32 always: the DC term sums the whole plane (beyond fp16 at HD sizes), and cuFFT has
        # no bf16 and fp16 only for powers of two
        with torch.autocast(x.device.type, enabled=False):
            spectrum = torch.fft.rfft2(x.float(), norm="backward")
            y = self.main_fft(torch.cat([spectrum.real, spectrum.imag], dim=1))
            real, imag = y.chunk(2, dim=1)
            return torch.fft.irfft2(torch.complex(real, imag), s=x.shape[-2:], norm="backward")


class GatedConv(nn.Module):
    """ELU(features) · sigmoid(gate), both halves of one 3×3 conv."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv2d = conv(cin, 2 * cout, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, gate = self.conv2d(x).chunk(2, dim=1)
        return F.elu(features) * torch.sigmoid(gate)


class PyramidEncoder(nn.Module):
    """Four levels (16, 32, 64, 128 channels at 1, 1/2, 1/4, 1/8), each ending in an RFFT block;
    ``gated`` replaces every conv by a gated conv. Returns [f8, f4, f2, f1]."""

    def __init__(self, cin: int, gated: bool = False, width: int = 16):
        super().__init__()
        layer = GatedConv if gated else (lambda i, o, stride=1: conv(i, o, stride=stride))
        self.conv11, self.conv12 = layer(cin, width), layer(width, width)
        self.block1 = RFFTBlock(width)
        self.conv21, self.block2 = layer(width, 2 * width, stride=2), RFFTBlock(2 * width)
        self.conv31, self.block3 = layer(2 * width, 4 * width, stride=2), RFFTBlock(4 * width)
        self.conv41, self.block4 = layer(4 * width, 8 * width, stride=2), RFFTBlock(8 * width)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f1 = self.block1(F.relu(self.conv12(F.relu(self.conv11(x)))))
        f2 = self.block2(F.relu(self.conv21(f1)))
        f4 = self.block3(F.relu(self.conv31(f2)))
        f8 = self.block4(F.relu(self.conv41(f4)))
        return [f8, f4, f2, f1]


def unfold_patches(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> 3×3 patches with zero padding, (B, 9C, H·W)."""
    return F.unfold(x, kernel_size=3, padding=1)


class HardAttention(nn.Module):
    """For each query patch, the best-matching key patch (cosine similarity of embedded 3×3
    patches over the whole frame) and its similarity. Queries are processed ``chunk`` at a
    time, so memory grows with N·chunk, not N² (N = positions)."""

    def __init__(self, channels: int = 128, dim: int = 64, chunk: int = 1024):
        super().__init__()
        self.embed = nn.Linear(9 * channels, dim, bias=False)
        self.chunk = chunk

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, h, w) twice -> similarity S (B, 1, h, w) and key index (B, h·w)"""
        q = F.normalize(self.embed(unfold_patches(query).transpose(1, 2)), dim=-1)  # (B, N, D)
        k = F.normalize(self.embed(unfold_patches(key).transpose(1, 2)), dim=-1)
        best = [torch.bmm(k, q_chunk.transpose(1, 2)).max(dim=1)  # over keys, (B, chunk) each
                for q_chunk in q.split(self.chunk, dim=1)]
        similarity = torch.cat([b.values for b in best], dim=1)
        index = torch.cat([b.indices for b in best], dim=1)
        return similarity.view(query.shape[0], 1, *query.shape[-2:]), index


def swap_patches(value: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rebuild ``value`` (B, C, h, w) from its 3×3 patches picked at ``index`` (B, h·w), with
    overlapping patches averaged."""
    patches = unfold_patches(value)
    picked = patches.gather(2, index[:, None].expand(-1, patches.shape[1], -1))
    size = value.shape[-2:]
    folded = F.fold(picked, size, kernel_size=3, padding=1)
    overlap = F.fold(torch.ones_like(picked[:1]), size, kernel_size=3, padding=1)
    return folded / overlap


class UpsampleBlock(nn.Module):
    """Recon's decoder step: conv(skip) + upsampled x, then a ResBlock."""

    def __init__(self, skip_c: int, up_c: int, out_c: int):
        super().__init__()
        self.skip_conv = conv(skip_c, skip_c)
        self.out_conv = ResBlock(up_c, out_c)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.out_conv(self.skip_conv(skip) + resize(x, skip.shape[-2:]))


class UpsampleBlockV2(nn.Module):
    """The Fuser's decoder step: conv(upsampled x) + skip, then a ResBlock."""

    def __init__(self, in_c: int, skip_c: int, out_c: int):
        super().__init__()
        self.skip_conv = conv(in_c, skip_c)
        self.rb = ResBlock(skip_c, out_c)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.rb(self.skip_conv(resize(x, skip.shape[-2:])) + skip)


class TransferHead(nn.Module):
    """Recon's bottleneck: the swapped and the frame's own deepest features, weighted by the
    attention's confidence, through 5 residual blocks."""

    def __init__(self, channels: int = 128, blocks: int = 5):
        super().__init__()
        self.conv_head = conv(2 * channels, channels)
        self.RBs = nn.Sequential(*[ResBlock(channels, channels) for _ in range(blocks)])
        self.conv_tail = conv(channels, channels // 2)

    def forward(self, swapped: torch.Tensor, own: torch.Tensor, similarity: torch.Tensor):
        return self.conv_tail(self.RBs(self.conv_head(torch.cat([swapped, own], 1)) * similarity))


class Recon(nn.Module):
    """Decode the swapped features to the aligned feature at 1/4 resolution (64 channels). The
    skips come from the moving frame as it is (unaligned), as in the official code."""

    def __init__(self):
        super().__init__()
        self.s3 = TransferHead()
        self.up_8_4, self.up_4_2 = UpsampleBlock(64, 64, 32), UpsampleBlock(32, 32, 16)
        self.up_2_1 = UpsampleBlock(16, 16, 64)
        self.conv_final1 = conv(64, 64)

    def forward(self, swapped, similarity, values: list[torch.Tensor]) -> torch.Tensor:
        v8, v4, v2, v1 = values
        x = self.s3(swapped, v8, similarity)
        x = self.up_2_1(self.up_4_2(self.up_8_4(x, v4), v2), v1)
        return F.relu(self.conv_final1(x))


class Fuser(nn.Module):
    """Hallucinate the frame's feature from its own and the reference's gated encodings, blend in
    the aligned feature where a learned gate trusts it, and decode to full resolution."""

    def __init__(self):
        super().__init__()
        self.RB_head = ResBlock(256, 128)
        self.RBs = nn.Sequential(ResBlock(128, 128), ResBlock(128, 128))
        self.conv_tail = conv(128, 64)
        self.up_8_4 = UpsampleBlockV2(64, 64, 32)
        self.conv_bn = conv(32, 64, 1)
        self.conv_gate = conv(128, 1, 5)
        self.fb = ResBlock(64, 32)
        self.up_4_2, self.up_2_1 = UpsampleBlockV2(32, 32, 16), UpsampleBlockV2(16, 16, 64)

    def forward(self, moving, reference, aligned) -> tuple[torch.Tensor, torch.Tensor]:
        """pyramids [f8, f4, f2, f1] twice, aligned (B, 64, h, w) -> (B, 64, H, W), gate"""
        (m8, m4, m2, m1), (r8, r4, r2, r1) = moving, reference
        x = self.conv_tail(self.RBs(self.RB_head(torch.cat([m8, r8], 1))))
        x = self.conv_bn(self.up_8_4(x, m4 + r4))
        gate = torch.sigmoid(self.conv_gate(torch.cat([x, aligned], 1)))
        x = gate * (x + aligned) + (1 - gate) * x  # the official form of x + gate·aligned
        x = self.up_2_1(self.up_4_2(self.fb(x), m2 + r2), m1 + r1)
        return x, gate


class Encoding(NamedTuple):
    moving: list[torch.Tensor]
    values: list[torch.Tensor]
    keys: torch.Tensor


class Align(nn.Module):
    """Luminance-based alignment of one frame to the reference (`Align_sup_00`), shared by all
    frames of the window, the reference included."""

    def __init__(self):
        super().__init__()
        self.FE_KQ = PyramidEncoder(4)  # keys and queries: [Y, R, G, B] (luma, linear RGB)
        self.FE_V = PyramidEncoder(6)  # values: [L, H] of the moving frame
        self.Transformer = HardAttention()
        self.Recon = Recon()
        self.mov_extractor = PyramidEncoder(7, gated=True)
        self.ref_extractor = PyramidEncoder(7, gated=True)
        self.Fuser = Fuser()

    def encode(self, frame: torch.Tensor, key: torch.Tensor) -> Encoding:
        """What depends on the moving frame alone: its gated pyramid, its value pyramid and its
        key features, at 1/4 resolution where the alignment runs."""
        moving = self.mov_extractor(frame)
        size = moving[1].shape[-2:]
        return Encoding(moving, self.FE_V(resize(frame[:, :6], size)),
                        self.FE_KQ(resize(key, size))[0])

    def forward(self, frame: torch.Tensor, key: torch.Tensor, query: torch.Tensor,
                reference: list[torch.Tensor], encoded: Encoding | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """frame (B, 7, H, W) [L, H, Y], key and query (B, 4, H, W) [Y, H], the reference's
        gated pyramid [, the frame's `encode` if known] -> feature (B, 64, H, W), blend gate
        (B, 1, H/4, W/4)"""
        moving, values, keys = encoded or self.encode(frame, key)
        size = moving[1].shape[-2:]
        similarity, index = self.Transformer(self.FE_KQ(resize(query, size))[0], keys)
        aligned = self.Recon(swap_patches(values[0], index), similarity, values)
        return self.Fuser(moving, reference, aligned)


class Merge(nn.Module):
    """Frame features in temporal order -> HDR in (0, 1) (`Merge_test_res_fft`)."""

    def __init__(self, frames: int, channels: int = 64, blocks: int = 5):
        super().__init__()
        self.conv1_head = conv(frames * channels, channels)
        self.RB1s = nn.Sequential(*[RFFTBlock(channels) for _ in range(blocks)])
        self.conv1_tail = keep_fp32(conv(channels, 3))

    def head(self, features: Iterable[torch.Tensor]) -> torch.Tensor:
        """conv1_head of the concatenated features, summed frame by frame: the convolution is
        linear, so each feature can be freed as soon as it is used (no 64·n-channel buffer)."""
        channels = self.conv1_head.out_channels
        total = None
        for i, feature in enumerate(features):
            weight = self.conv1_head.weight[:, i * channels:(i + 1) * channels]
            part = F.conv2d(feature, weight, padding=1)
            total = part if total is None else total + part
        return total + self.conv1_head.bias[:, None, None]

    def forward(self, features: Iterable[torch.Tensor]) -> torch.Tensor:
        x = self.RB1s(F.relu(self.head(features)))
        with torch.autocast(x.device.type, enabled=False):  # the output layer stays fp32
            return torch.sigmoid(F.conv2d(x.float(), self.conv1_tail.weight.float(),
                                          self.conv1_tail.bias.float(), padding=1))


class LanHdr(nn.Module):
    """LAN-HDR for windows of ``frames`` frames (5 for 2 exposures, 7 for 3).

    In eval mode, on one window at a time, each frame's `Align.encode` is kept for the next
    windows: sliding windows share all frames but one, so a video encodes each frame once
    instead of ``frames`` times (docs/performance.md). Entries are keyed by the
    frame's content (its exposure is part of it) and the autocast state; ``cache = None``
    turns this off.
    """

    def __init__(self, frames: int = 5):
        super().__init__()
        self.align = Align()
        self.merge = Merge(frames)
        self.cache: OrderedDict | None = OrderedDict()
        self.frames = frames

    def forward(self, frames: torch.Tensor, keys: torch.Tensor, queries: torch.Tensor,
                reference: int) -> torch.Tensor:
        """frames (B, n, 7, H, W), keys and queries (B, n, 4, H, W) -> HDR (B, 3, H, W) in (0, 1)"""
        ref_pyramid = self.align.ref_extractor(frames[:, reference])
        features = (self.align(frames[:, i], keys[:, i], queries[:, i], ref_pyramid,
                               self.encoded(frames[:, i], keys[:, i]))[0]
                    for i in range(frames.shape[1]))
        return self.merge(features)

    def encoded(self, frame: torch.Tensor, key: torch.Tensor) -> Encoding:
        """`Align.encode` of one frame, from the cache when an earlier window computed it."""
        if self.cache is None or self.training or torch.is_grad_enabled() or frame.shape[0] != 1:
            return self.align.encode(frame, key)
        digest = hashlib.blake2b(frame.detach().float().cpu().numpy().tobytes(), digest_size=16)
        entry = (digest.digest(), torch.is_autocast_enabled(frame.device.type),
                 torch.get_autocast_dtype(frame.device.type))
        if entry in self.cache:
            self.cache.move_to_end(entry)
        else:
            self.cache[entry] = self.align.encode(frame, key)
            while len(self.cache) > self.frames:  # the frames the next window can still use
                self.cache.popitem(last=False)
        return self.cache[entry]


def forward_lan_hdr(net: LanHdr, ldr: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """LAN-HDR's input adapter (docs/models/lan-hdr.md §2): a window ``ldr`` (B, n, 3, H, W) of
    gamma-2.2 frames and ``times`` (B, n) -> linear HDR (B, 3, H, W). Per frame i:
    ``[L_i, H_i, Y(L_i)]``, keys ``[Y(L_i), H_i]`` and queries ``[Y(L̃_i), H̃_i]`` from the
    reference re-exposed to t_i; the output is already on the shortest-exposure scale, in (0, 1)."""
    b, n = times.shape
    c = n // 2
    ldr = ldr.clamp(0, 1)
    flat_ldr, flat_times = ldr.flatten(0, 1), times.flatten()
    hdr = linearize(flat_ldr, flat_times)
    y = luma(flat_ldr)
    # the reference at every frame's exposure (itself for i = c)
    ratio = (times / times[:, c:c + 1]).flatten()
    moved = reexpose(ldr[:, c].repeat_interleave(n, dim=0), ratio)
    moved_hdr = moved.pow(GAMMA) / flat_times[:, None, None, None]
    frames = torch.cat([flat_ldr, hdr, y], dim=1).unflatten(0, (b, n))
    keys = torch.cat([y, hdr], dim=1).unflatten(0, (b, n))
    queries = torch.cat([luma(moved), moved_hdr], dim=1).unflatten(0, (b, n))
    return net(frames, keys, queries, reference=c)
