"""What each model family reads, built from a window of frames: the families' input contracts.

Every function here takes the network, a window ``ldr`` (B, n, 3, H, W) of gamma-2.2 frames in
[0, 1] with their relative exposures ``times`` (B, n) (shortest exposure of the cycle = 1), and
returns linear HDR (B, 3, H, W), 1.0 = the clipping point of the shortest exposure. The networks
themselves (`hdrvid.models`) take exactly the tensors of their papers' code.
"""

from __future__ import annotations

import torch
from torch import nn


def direct(net: nn.Module, ldr: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Models that read the window as it is (the weight-free baselines)."""
    return net(ldr, times)
