"""Loss terms that the learned models' training steps share (each model's step sits beside its
network and is named by its `ModelSpec.train_step`).

A training step is ``step(net, batch, flow_weight) -> (hdr, extra)``: the output the μ-law L1
is taken on, and the model's own loss terms (a scalar tensor, or None). ``batch`` holds ``ldr``
(B, n, 3, H, W) gamma 2.2, ``times`` (B, n), ``gt`` (B, n, 3, H, W) linear and, where known, the
true ``flow`` (B, n, 2, H, W) from the reference to each frame (NaN where unknown).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from hdrvid.color import mu_law_torch as mu_law
from hdrvid.models.common import luma


def badly_exposed(reference: torch.Tensor) -> torch.Tensor:
    """Where the gamma-2.2 reference (B, 3, H, W) is clipped or dark (luma > 0.8 or < 0.2), the
    pixels its neighbours must fill, as a (B, 3, H, W) mask."""
    y = luma(reference.float())
    return ((y > 0.8) | (y < 0.2)).expand(-1, 3, -1, -1)


def alignment_loss(batch: dict[str, torch.Tensor], flows: Iterable[tuple[int, torch.Tensor]],
                   warp: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], weight: float,
                   flow_weight: float, like: torch.Tensor) -> torch.Tensor:
    """HDRFlow's HDR-domain alignment loss and the flow supervision, summed over the flows
    (``(window index, flow (B, 2, H, W))`` pairs, in the model's order):

    * ``weight`` × the μ-law L1 between neighbour k's ground truth warped by its flow and the
      reference's, on the reference's badly exposed pixels: the flow must align what the
      reference cannot show;
    * ``flow_weight`` × the L1 to the true flow where it is known.

    Returns a scalar of ``like``'s dtype and device (zero when neither term applies).
    """
    gt = batch["gt"]
    c = gt.shape[1] // 2
    mask = badly_exposed(batch["ldr"][:, c])
    extra = like.new_zeros(())
    target = mu_law(gt[:, c])[mask] if mask.any() else None
    for k, flow in flows:
        if target is not None:
            extra = extra + weight * (mu_law(warp(gt[:, k], flow))[mask] - target).abs().mean()
        if "flow" in batch and (known := ~batch["flow"][:, k].isnan()).any():
            extra = extra + flow_weight * (flow - batch["flow"][:, k])[known].abs().mean()
    return extra
