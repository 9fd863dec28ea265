"""Helpers shared by the models: warping, padding, linearisation in torch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hdrvid.color import GAMMA, luma_weights


class DilatedConv2d(nn.Conv2d):
    """`nn.Conv2d` (same parameters and state dict) whose CPU training runs in the default
    memory format: oneDNN's bf16 backward of a dilated convolution in channels_last crashes
    the process or returns NaN weight gradients on CPUs with native bf16 (docs/performance.md,
    "Dilated convolutions in bf16 training"). Inference keeps channels_last."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and torch.is_grad_enabled() and self.dilation != (1, 1):
            return self._conv_forward(x.contiguous(), self.weight.contiguous(), self.bias)
        return super().forward(x)


def keep_fp32(layer: nn.Module) -> nn.Module:
    """Mark a layer that a model runs in fp32 outside autocast (flows, merge weights, FFT
    branches): `cast_convolutions` leaves its weights in fp32."""
    layer.keep_fp32 = True
    return layer


def cast_convolutions(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Store the convolutions' weights in ``dtype``, the autocast dtype, except in `keep_fp32`
    layers. Autocast would otherwise convert every weight on every call, with the same rounding;
    it matters most for LAN-HDR, whose merge head casts each frame's slice of a 320-channel
    weight (docs/performance.md, "Learned models on the CPU")."""
    kept = {id(m) for layer in model.modules() if getattr(layer, "keep_fp32", False)
            for m in layer.modules()}
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and id(module) not in kept:
            module.to(dtype)
    return model


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every inference BatchNorm into the convolution before it, for a model in eval():
    each (conv, BN) pair in an ``nn.Sequential``, and the ``batchnorm_pairs`` (conv name, BN
    name) a module lists. The BN becomes an identity: one pass less over every feature map
    (docs/performance.md, "Measurements behind choices in the code")."""
    def fold(conv: nn.Module, bn: nn.BatchNorm2d) -> None:
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        # a transposed conv stores (in, out, kh, kw): its output channels are dim 1
        shape = (1, -1, 1, 1) if isinstance(conv, nn.ConvTranspose2d) else (-1, 1, 1, 1)
        conv.weight.mul_(scale.reshape(shape))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)

    convs = (nn.Conv2d, nn.ConvTranspose2d)
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                if isinstance(module[i], convs) and isinstance(module[i + 1], nn.BatchNorm2d):
                    fold(module[i], module[i + 1])
                    module[i + 1] = nn.Identity()
        for conv_name, bn_name in getattr(module, "batchnorm_pairs", ()):
            fold(getattr(module, conv_name), getattr(module, bn_name))
            setattr(module, bn_name, nn.Identity())
    return model


def forward_direct(net: nn.Module, ldr: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """The input adapter of models that read the window as it is (the weight-free baselines;
    F²HDR, which does its reference replacement itself): ``ldr`` (B, n, 3, H, W) gamma 2.2 in
    [0, 1], ``times`` (B, n) -> linear HDR (B, 3, H, W)."""
    return net(ldr, times)


def linearize(ldr: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Gamma-2.2 LDR (..., 3, H, W) to linear HDR on the shortest-exposure scale: L^2.2 / t."""
    return ldr.clamp(0, 1).pow(GAMMA) / times[..., None, None, None]


def delinearize(hdr: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """The inverse of `linearize`: linear HDR (B, 3, H, W) as a frame of exposure ``times``
    (B,) shows it, gamma 2.2, clipped."""
    return (hdr * times[:, None, None, None]).clamp(0, 1).pow(1 / GAMMA)


def reexpose(ldr: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """Move gamma-2.2 LDR (B, C, H, W) to an exposure ``ratio`` (B,) times longer; clips at 1."""
    return (ldr.clamp(0, 1) * ratio.pow(1 / GAMMA)[:, None, None, None]).clamp(0, 1)


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of gamma-encoded (B, 3, H, W) -> (B, 1, H, W), as the models use it."""
    r, g, b = luma_weights("bt601")
    return r * rgb[:, 0:1] + g * rgb[:, 1:2] + b * rgb[:, 2:3]


def pixel_grid(batch: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """Pixel coordinates (B, 2, H, W): channel 0 is x, channel 1 is y."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32),
                            torch.arange(width, device=device, dtype=torch.float32), indexing="ij")
    return torch.stack([xs, ys])[None].expand(batch, -1, -1, -1)


def flow_coords(flow: torch.Tensor) -> torch.Tensor:
    """Where a backward warp by ``flow`` (B, 2, H, W) samples: x + flow(x), fp32 pixels."""
    b, _, h, w = flow.shape
    return pixel_grid(b, h, w, flow.device) + flow.float()


def sample_at(image: torch.Tensor, coords: torch.Tensor, padding_mode: str = "zeros",
              align_corners: bool = True) -> torch.Tensor:
    """Bilinear samples of ``image`` (B, C, H, W) at pixel ``coords`` (B, 2, H, W) -> fp32.

    The grid is normalised by (W − 1, H − 1), so with ``align_corners=True`` zero offsets are the
    exact identity (``False`` reproduces HDRFlow's official warp). Always fp32, outside
    autocast: a half-precision grid is off by up to 0.5 px at HD.
    """
    h, w = image.shape[-2:]
    with torch.autocast(image.device.type, enabled=False):
        grid = torch.stack([2 * coords[:, 0] / max(w - 1, 1) - 1,
                            2 * coords[:, 1] / max(h - 1, 1) - 1], dim=-1)
        return F.grid_sample(image.float(), grid, mode="bilinear", padding_mode=padding_mode,
                             align_corners=align_corners)


def warp(image: torch.Tensor, flow: torch.Tensor, padding_mode: str = "zeros",
         align_corners: bool = True) -> torch.Tensor:
    """Backward-warp ``image`` (B, C, H, W) by ``flow`` (B, 2, H, W) px -> fp32 (B, C, H, W):
    bilinear samples at x + flow(x), the one warp of every model.

    ``padding_mode``: what samples outside the image read, ``"zeros"`` (the flow family's and
    HDRFlow's networks were trained so: samples straddling the border blend with black) or
    ``"border"``. ``align_corners=True`` makes a zero flow the exact identity; ``False`` is
    HDRFlow's official warp, which normalises by (W - 1) yet samples with ``align_corners=False``
    (docs/models/hdrflow.md §3.1): a zero flow then zooms out by (W - 1)/W about the centre and
    halves the border rows and columns. The official weights were trained with it.
    """
    return sample_at(image, flow_coords(flow), padding_mode, align_corners)


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`warp` with border values outside, and a (B, 1, H, W) mask of the samples that fell
    inside the image; both in the image's dtype (merge's warp on a GPU)."""
    coords = flow_coords(flow)
    warped = sample_at(image, coords, padding_mode="border")
    return warped.to(image.dtype), inside(coords).to(image.dtype)


def inside(coords: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) bool: where pixel ``coords`` (B, 2, H, W) sample inside the image, so that
    a bilinear sample reads no padding, whatever the padding mode."""
    h, w = coords.shape[-2:]
    x, y = coords[:, :1], coords[:, 1:]
    return (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)


class InputPadder:
    """Replicate-pad (..., C, H, W) tensors to a multiple of ``multiple``; `unpad` undoes `pad`.

    ``bottom_right=False``: the padding is split evenly between the sides, as HDRFlow's
    InputPadder does. ``True``: all of it at the bottom and right, as Chen21 does, with its
    quirk kept (its weights saw it): when H or W is not a multiple, *both* get
    ``multiple - size % multiple`` extra pixels, so a side that was already a multiple grows by
    a full ``multiple``.
    """

    def __init__(self, height: int, width: int, multiple: int, bottom_right: bool = False):
        pad_h = (-height) % multiple
        pad_w = (-width) % multiple
        if bottom_right:
            if pad_h or pad_w:
                pad_h, pad_w = multiple - height % multiple, multiple - width % multiple
            self.pads = (0, pad_w, 0, pad_h)
        else:  # left, right, top, bottom
            self.pads = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        if not any(self.pads):
            return x
        shape = x.shape
        x = F.pad(x.reshape(-1, *shape[-3:]), self.pads, mode="replicate")
        return x.reshape(*shape[:-2], *x.shape[-2:])

    def unpad(self, x: torch.Tensor) -> torch.Tensor:
        left, right, top, bottom = self.pads
        return x[..., top: x.shape[-2] - bottom, left: x.shape[-1] - right]


def pad_bottom_right(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Chen21's padding of (..., C, H, W) (`InputPadder` with ``bottom_right``)."""
    return InputPadder(x.shape[-2], x.shape[-1], multiple, bottom_right=True).pad(x)

