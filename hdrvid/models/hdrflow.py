"""HDRFlow: real-time HDR video reconstruction with large motions (G. Xu, Y. Wang, J. Gu, T. Xue
and X. Yang, CVPR 2024; official code OpenImagingLab/HDRFlow, MIT licence, © 2024
OpenImagingLab). Written from docs/models/hdrflow.md.

Per output frame: a flow network reads exposure-matched LDR triplets (the reference re-exposed
to its neighbours' level between them) and predicts one flow per neighbour; the neighbours are
backward-warped onto the reference; a fusion network weighs the linear candidates (the reference,
the warped and the unwarped neighbours) and the output is their normalised weighted sum.

2 exposures: window (prev, cur, nxt), flows [prev, nxt]. 3 exposures: window (p2, p1, c, n1,
n2), flows [p2, n1, p1, n2] from the triplets (p2, c, n1) and (p1, c, n2).
"""

from __future__ import annotations

import torch
from torch import nn

from hdrvid.models.common import linearize, luma, reexpose, warp
from hdrvid.models.hdrflow_layers import FusionNet, HDRFlowNet
from hdrvid.models.losses import alignment_loss

# exposures per cycle -> (flow net c_in, head width, max flow at 1/4, fusion c_in, c_out, c_mid)
VARIANTS = {2: (9, 64, 100.0, 30, 5, 128), 3: (18, 128, 64.0, 54, 9, 256)}
# neighbour pairs sharing one exposure level, as window indices; their flattening is the flow order
PAIRS = {2: ((0, 2),), 3: ((0, 3), (1, 4))}


class HDRFlow(nn.Module):
    """HDRFlow for 2 (3-frame windows) or 3 exposures per cycle (5-frame windows).

    Attributes
    ----------
    official_warp : warp as the official code does (§3.1), which its weights need; set when
        official weights are loaded. Default: the exact warp, for weights trained by hdrvid.
    tone_perturb : training only: the reference the networks see is raised to 1/γ per sample
        and channel, γ = exp(U(-s, s)), s this strength (official 0.7, §1.2; `perturb_tone`).
        Also needs ``train()``; 0 (off) by default.
    reference_replacement : where the reference is well exposed, output it instead of the
        network (§5; `replace_reference`), as the official test scripts do. True (the official
        luma rule) by default and for official weights; weights that score better without it
        record False, or the name of the rule they were trained under.
    channels_last : run both networks in channels_last (default; the large kernels follow).
        On 2 CPU cores it was as fast as NCHW at 640×368 and faster at 1280×720, in fp32 and
        more so in bf16 (benchmarks/hdrflow_kernels.py); CUDA is not measured yet.
    """

    def __init__(self, exposures: int = 2):
        super().__init__()
        if exposures not in VARIANTS:
            raise ValueError(f"HDRFlow exists for 2 or 3 exposures per cycle, not {exposures}")
        flow_in, head, max_flow, fusion_in, fusion_out, fusion_mid = VARIANTS[exposures]
        self.exposures = exposures
        # window indices of the neighbours in the order of the flows (and of `forward`'s flows)
        self.flow_order = [k for pair in PAIRS[exposures] for k in pair]
        self.flow_net = HDRFlowNet(flow_in, head, 2 * len(PAIRS[exposures]), max_flow)
        self.fusion_net = FusionNet(fusion_in, fusion_out, fusion_mid)
        self.official_warp = False
        self.reference_replacement = True
        self.tone_perturb = 0.0
        self.channels_last = True

    def warp(self, image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """The model's warp (B, C, H, W), flow (B, 2, H, W) -> fp32 (B, C, H, W); training losses
        that warp with the predicted flows (HALoss) must use this one."""
        return warp(image, flow, align_corners=not self.official_warp)

    def stack(self, images: list[torch.Tensor], dtype: torch.dtype = torch.float32
              ) -> torch.Tensor:
        """`stack_channels` in the layout the networks run in."""
        return stack_channels(images, dtype, self.channels_last)

    def perturb(self, ref: torch.Tensor) -> torch.Tensor:
        """Tone perturbation of the reference (B, 3, H, W) in training, else the reference."""
        return perturb_tone(ref, self.tone_perturb if self.training else 0.0)

    def flows(self, ldr: torch.Tensor, times: torch.Tensor, reference: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, ...]:
        """The flow net on each neighbour pair with the reference (default the window's centre)
        re-exposed to their level between them: one flow (B, 2, H, W) per neighbour, in the
        order of ``flow_order``."""
        c = ldr.shape[1] // 2
        frames, t = ldr.unbind(1), times.unbind(1)
        ref = frames[c] if reference is None else reference
        triplets = [(frames[a], reexpose(ref, t[a] / t[c]), frames[b])
                    for a, b in PAIRS[self.exposures]]
        flows = self.flow_net(self.stack([x for triplet in triplets for x in triplet]))
        return flows.split(2, dim=1)

    def forward(self, ldr: torch.Tensor, times: torch.Tensor, return_flows: bool = False,
                flows: tuple[torch.Tensor, ...] | None = None
                ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """ldr (B, n, 3, H, W) gamma 2.2 in [0, 1], times (B, n) with min 1, H and W multiples
        of 16 -> linear HDR (B, 3, H, W) fp32 [, flows: (B, 2, H, W) px per neighbour].

        ``flows`` given (in the order of ``flow_order``) replace the flow net's: the fusion net
        alone, on flows from elsewhere (benchmarks/hdrflow_diagnosis.py)."""
        n, (h, w) = ldr.shape[1], ldr.shape[-2:]
        if n != 2 * self.exposures - 1 or h % 16 or w % 16:
            raise ValueError(f"HDRFlow-{self.exposures}E reads {2 * self.exposures - 1} frames "
                             f"of sizes divisible by 16, got {n} of {h}×{w}")
        c = n // 2
        frames, t = ldr.unbind(1), times.unbind(1)
        ref, pt = frames[c], self.perturb(frames[c])
        order = self.flow_order
        if flows is None:  # each neighbour pair with the reference re-exposed to their level
            flows = self.flows(ldr, times, pt)

        # warp each neighbour's LDR onto the reference; linearise with its own exposure
        warped = [self.warp(frames[k], f) for k, f in zip(order, flows)]
        ldrs = [pt, *warped, *(frames[k] for k in order)]
        hdrs = [linearize(x, t[k]) for x, k in zip(ldrs, [c, *order, *order])]

        reference = hdrs[0] if pt is ref else linearize(ref, t[c])  # merged unperturbed
        hdr = merge_candidates(self.fusion_net, self.exposures, ldrs, hdrs, reference, self.stack)
        return (hdr, flows) if return_flows else hdr


def stack_channels(images: list[torch.Tensor], dtype: torch.dtype, channels_last: bool
                   ) -> torch.Tensor:
    """(B, 3, H, W) images concatenated along channels, written once into the layout the
    networks run in and ``dtype``. For the fusion net that is the dtype of its first
    convolution (bf16 in CPU inference): concatenating, changing layout, then autocast's cast
    each made a pass over its full-resolution channels (docs/performance.md). The flow net
    reads fp32: it also average-pools its input, which must not be rounded first."""
    b, _, h, w = images[0].shape
    layout = torch.channels_last if channels_last else torch.contiguous_format
    stacked = torch.empty(b, 3 * len(images), h, w, dtype=dtype, device=images[0].device,
                          memory_format=layout)
    for i, image in enumerate(images):  # cast, then copy: a casting strided copy is slower
        stacked[:, 3 * i:3 * i + 3] = image.to(dtype)
    return stacked


def merge_candidates(fusion_net: FusionNet, exposures: int, ldrs: list[torch.Tensor],
                     hdrs: list[torch.Tensor], reference_hdr: torch.Tensor, stack,
                     prior: torch.Tensor | None = None,
                     extra: list[tuple[torch.Tensor, torch.Tensor]] = (),
                     return_weights: bool = False
                     ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The fusion net's weighted mean of the linear candidates (§4): ``ldrs`` and ``hdrs`` are
    the reference as the net sees it, then the warped, then the unwarped neighbours;
    ``reference_hdr`` replaces the first candidate in the mean (the unperturbed reference).
    2E reads the linear items then the LDR ones, 3E (LDR, linear) pairs. ``prior`` (B, n, H, W),
    one map per candidate, multiplies the net's weights. ``extra`` (LDR, linear) pairs: more
    candidates, read after all the others (F²HDR's `merge` means). -> (B, 3, H, W) fp32
    [, the normalised weights (B, n, H, W)]"""
    if exposures == 2:
        items = [*hdrs, *ldrs] + [x for ldr, hdr in extra for x in (hdr, ldr)]
    else:
        items = [x for pair in zip(ldrs, hdrs) for x in pair] + [x for pair in extra for x in pair]
    weights = fusion_net(stack(items, fusion_net.conv1[0].weight.dtype))
    if prior is not None:
        weights = weights.float() * prior
    candidates = [reference_hdr, *hdrs[1:], *(hdr for _, hdr in extra)]
    weights = weights / (weights.sum(dim=1, keepdim=True) + 1e-8)
    hdr = weights[:, :1] * candidates[0].float()
    for i, x in enumerate(candidates[1:], 1):
        hdr += weights[:, i:i + 1] * x.float()
    return (hdr, weights) if return_weights else hdr


def perturb_tone(ref: torch.Tensor, strength: float) -> torch.Tensor:
    """The reference (B, 3, H, W) raised to 1/γ per sample and channel, γ = exp(U(-s, s)): the
    networks learn not to trust its tone blindly. ``strength`` 0 returns it untouched."""
    if not strength:
        return ref
    gamma = torch.empty(ref.shape[0], 3, 1, 1, device=ref.device).uniform_(-strength, strength)
    return ref.clamp(0, 1).pow(1 / gamma.exp()).to(ref.dtype)


REPLACEMENT_RULES = ("luma", "channels")


def replace_reference(hdr: torch.Tensor, ldr: torch.Tensor, times: torch.Tensor,
                      rule: str = "luma", well_exposed: torch.Tensor | None = None
                      ) -> torch.Tensor:
    """The official test scripts' last step (§5), which the published metrics include: keep the
    network only where the reference is badly exposed for its level, else use the reference.

    hdr (B, 3, H, W) network output; ldr (B, n, 3, H, W), times (B, n) its window. The level is
    the reference's rank among the cycle's exposures (the window's first 2 or 3 frames): the
    lowest keeps the network where luma Y < 0.2, the highest where it is too bright, the middle
    both. Too bright is Y > 0.8 under the official ``"luma"`` rule; under ``"channels"`` it is
    any channel > 0.8, because a saturated colour (a blue sky) clips one channel while its luma
    is still mid-grey, and its clipped reference would replace the network there.
    ``well_exposed`` (B, 3, H, W), linear, replaces the network instead of the linearised
    reference (F²HDR uses `merge`'s result there: the reference averaged with its neighbours).
    """
    if rule not in REPLACEMENT_RULES:
        raise ValueError(f"unknown reference replacement rule {rule!r}: use one of "
                         f"{', '.join(REPLACEMENT_RULES)}")
    n = ldr.shape[1]
    period, c = (n + 1) // 2, n // 2
    ref, t_ref = ldr[:, c].float(), times[:, c]
    rank = (times[:, :period] < t_ref[:, None]).sum(dim=1)[:, None, None, None]
    y = luma(ref)
    bright = y if rule == "luma" else ref.amax(dim=1, keepdim=True)
    keep = ((y < 0.2) & (rank < period - 1)) | ((bright > 0.8) & (rank > 0))
    return torch.where(keep, hdr, linearize(ref, t_ref) if well_exposed is None else well_exposed)


def forward_hdrflow(net: nn.Module, ldr: torch.Tensor, times: torch.Tensor,
                    replace: bool | str | None = None) -> torch.Tensor:
    """The input adapter of HDRFlow (docs/models/hdrflow.md): a window ``ldr``
    (B, n, 3, H, W) of gamma-2.2 frames and ``times`` (B, n) -> linear HDR (B, 3, H, W).

    The network reads the window as it is (it re-exposes and linearises itself); then, as the
    official test scripts do and their published metrics include, the well-exposed pixels of the
    reference replace the network's (§5), under the rule the weights name
    (``net.reference_replacement``) unless ``replace`` is given. The output is already on the
    shortest-exposure scale, in [0, 1]."""
    return replace_as_net_says(net, net(ldr, times), ldr, times, replace)


def replace_as_net_says(net: nn.Module, hdr: torch.Tensor, ldr: torch.Tensor,
                        times: torch.Tensor, replace: bool | str | None = None,
                        well_exposed: torch.Tensor | None = None) -> torch.Tensor:
    """`replace_reference` under ``net.reference_replacement`` (or ``replace``): True is the
    official luma rule, False none, a string names the rule; ``well_exposed`` as there."""
    rule = getattr(net, "reference_replacement", True) if replace is None else replace
    if rule is False:
        return hdr
    return replace_reference(hdr, ldr, times, "luma" if rule is True else rule, well_exposed)


def hdrflow_step(net: HDRFlow, batch: dict[str, torch.Tensor], flow_weight: float | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """HDRFlow's training step (`ModelSpec.train_step`): the raw output and its extra losses
    (docs/models/hdrflow.md §6), `losses.alignment_loss` over the flows in ``flow_order``
    (3E flows come as [p2, n1, p1, n2]):

    * HALoss, weight 0.5 (2E) or 0.2 (3E), where the reference is clipped or dark;
    * flow supervision where the true flow is known: the official recipe has it on Sintel;
      here the still-photograph windows, whose camera path is exact, give it. ``flow_weight``
      replaces the official weight (0.001 2E, 0.0005 3E): exact dense flow on a share of the
      windows teaches sub-pixel flow in far fewer steps with a larger one.
    """
    hdr, flows = net(batch["ldr"], batch["times"], return_flows=True)
    weight, official_flow_weight = (0.5, 0.001) if net.exposures == 2 else (0.2, 0.0005)
    flow_weight = official_flow_weight if flow_weight is None else flow_weight
    return hdr, alignment_loss(batch, zip(net.flow_order, flows), net.warp, weight, flow_weight,
                               hdr)
