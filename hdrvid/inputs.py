"""What each model family reads, built from a window of frames: the families' input contracts.

Every function here takes the network, a window ``ldr`` (B, n, 3, H, W) of gamma-2.2 frames in
[0, 1] with their relative exposures ``times`` (B, n) (shortest exposure of the cycle = 1), and
returns linear HDR (B, 3, H, W), 1.0 = the clipping point of the shortest exposure. The networks
themselves (`hdrvid.models`) take exactly the tensors of their papers' code.
"""

from __future__ import annotations

import torch
from torch import nn

from hdrvid.models.common import GAMMA, linearize, luma, reexpose
from hdrvid.models.hdrflow import replace_reference


def direct(net: nn.Module, ldr: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Models that read the window as it is (the weight-free baselines)."""
    return net(ldr, times)


def lan_hdr(net: nn.Module, ldr: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """LAN-HDR (docs/models/lan-hdr.md §2). Per frame i: ``[L_i, H_i, Y(L_i)]``, keys
    ``[Y(L_i), H_i]`` and queries ``[Y(L̃_i), H̃_i]`` from the reference re-exposed to t_i; the
    output is already on the shortest-exposure scale, in (0, 1)."""
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


def hdrflow(net: nn.Module, ldr: torch.Tensor, times: torch.Tensor,
            replace: bool | None = None) -> torch.Tensor:
    """HDRFlow (docs/models/hdrflow.md): the network reads the window as it is (it re-exposes and
    linearises itself); then, as the official test scripts do and their published metrics include,
    the well-exposed pixels of the reference replace the network's (§5), unless the weights say
    otherwise (``net.reference_replacement``) or ``replace`` is given. The output is already on the
    shortest-exposure scale, in [0, 1]."""
    hdr = net(ldr, times)
    if replace is None:
        replace = getattr(net, "reference_replacement", True)
    return replace_reference(hdr, ldr, times) if replace else hdr


def flow_family(net: nn.Module, ldr: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Chen21, Kalantari19 and FSHDRV (docs/models/flow-models.md): the window and its
    exposures, in fp32.

    These networks build their own inputs (the reference re-exposed to its neighbours, every
    frame linearised with its own exposure) because Chen21 runs its coarse stage on three
    sub-windows of the window; warps and merges stay in fp32 inside them.
    """
    return net(ldr.float(), times.float())
