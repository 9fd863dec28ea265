"""F²HDR over classical flow (Wei et al., CVPR 2026; official code wei1895/F2HDR, MIT). Written
from docs/models/f2hdr.md.

F²HDR freezes a pretrained flow estimator and learns only what sits on top of it. Here the
frozen flow is DIS, exactly as `merge` computes it (the same exposure-matched luma), and the
learned parts are F²HDR's:

  1. coarse flow, frozen: DIS from the reference to each neighbour (no gradient);
  2. flow adapter: a dilated residual net predicts a correction of the coarse flows from the
     warped neighbours; its last layer starts at zero, so it starts as the identity;
  3. physical motion mask per flow: translation, divergence, curl and shear of the flow field,
     weighted by a small net, sharpened by multi-scale contrast, soft-thresholded at Otsu;
  4. fusion network (HDRFlow's, same shapes): weights over the linear candidates (reference,
     warped and unwarped neighbours); their weighted mean is the coarse HDR;
  5. refinement network: per-frame HDR/LDR features, neighbours' features warped by the
     refined flows and gated by |flow| and the motion mask, multi-scale residual blocks,
     conditioned on the coarse HDR; its residual head starts at zero, so it starts as the
     identity on the coarse HDR.

hdrvid adds (docs/models/f2hdr.md): `merge`'s means as two more fusion candidates, the fusion
net's choice between them where the reference is well exposed (what replaces the network
there), the refinement after that replacement, in μ-law, and a `Denoiser` last.

3 exposures are not in the official release. They extend 2E the way HDRFlow's 3E extends its
2E: a 5-frame window (p2, p1, c, n1, n2), a flow per neighbour, HDRFlow's 3E fusion network
over 9 candidates, and the adapter and refinement reading every frame of the window (one gate
per neighbour). Module and parameter names are the official ones (2E at the official widths
loads an official checkpoint's learned parts).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hdrvid.color import inverse_mu_law_torch, mu_law_torch
from hdrvid.models.common import (
    GAMMA,
    DilatedConv2d,
    delinearize,
    flow_coords,
    inside,
    keep_fp32,
    linearize,
    luma,
    reexpose,
    warp,
)
from hdrvid.models.hdrflow import (
    PAIRS,
    VARIANTS,
    merge_candidates,
    perturb_tone,
    replace_as_net_says,
    stack_channels,
)
from hdrvid.models.hdrflow_layers import FusionNet
from hdrvid.models.losses import alignment_loss
from hdrvid.models.merge import ExposureMerge, box_blur, ramp

DIV_FLOW = 20.0  # flows are given to the networks in units of 20 px
MAX_FLOW = 100.0  # refined flows are clamped to ±100 px, as the official adapter does


STRICT = (0.005, 0.015)  # blurred |difference| (gamma 2.2) of full agreement, of none
DARK = (0.08, 0.16)  # reference luma below which the signed difference decides, above which not


def strict_agreement(frame: torch.Tensor, t: torch.Tensor, ref: torch.Tensor,
                     t_ref: torch.Tensor) -> torch.Tensor:
    """How far a neighbour may join the well-exposed reference's replacement (B, 1, H, W) in
    [0, 1]: `merge`'s deghosting, stricter. Averaging a neighbour a fraction of a pixel off
    blurs real motion, so it must match the reference closely; in the reference's darks,
    where its noise alone exceeds that, the blurred signed difference decides too: noise
    averages out in it, a misplaced edge does not."""
    ratio = t_ref / t
    difference = reexpose(frame, ratio).sub_(ref)
    # re-exposing a shorter neighbour by r scales its gamma-2.2 errors by r^(1/2.2)
    noise_gain = ratio.clamp_min(1).pow(1 / GAMMA)[:, None, None, None]
    size = box_blur(difference.abs().mean(dim=1, keepdim=True), 5).div_(noise_gain)
    offset = box_blur(difference.mean(dim=1, keepdim=True), 5).abs_()
    darks = ramp(luma(ref), *DARK)
    return torch.maximum(ramp(size, *STRICT), ramp(offset, *STRICT).mul_(darks))


# the `merge` means F²HDR offers its fusion net, by the deghosting they use (None: merge's own)
MEANS = {"strict": strict_agreement, "merge": None}


def conv_prelu(c_in: int, c_out: int, kernel: int = 3, dilation: int = 1,
               groups: int = 1) -> nn.Sequential:
    return nn.Sequential(DilatedConv2d(c_in, c_out, kernel, padding=dilation * (kernel // 2),
                                       dilation=dilation, groups=groups), nn.PReLU(c_out))


class ResDilatedBlock(nn.Module):
    """x -> PReLU(x + conv(PReLU(conv(x)))), both convs 3×3 at one dilation."""

    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.body = nn.Sequential(
            DilatedConv2d(width, width, 3, padding=dilation, dilation=dilation), nn.PReLU(width),
            DilatedConv2d(width, width, 3, padding=dilation, dilation=dilation))
        self.act = nn.PReLU(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class FlowAdapter(nn.Module):
    """Residual correction of the coarse flows: flow_k + 20 · Δ_k, clamped to ±100 px."""

    def __init__(self, frames: int, width: int = 64, dilations: tuple[int, ...] = (1, 2, 4, 8, 4, 2)):
        super().__init__()
        flows = frames - 1
        self.head = conv_prelu(3 * frames + 2 * flows, width)
        self.body = nn.Sequential(*(ResDilatedBlock(width, d) for d in dilations))
        self.fuse = conv_prelu(width, width)
        self.tail = nn.Conv2d(width, 2 * flows, 3, padding=1)
        nn.init.zeros_(self.tail.weight)  # the identity on the coarse flows at initialisation
        nn.init.zeros_(self.tail.bias)

    def forward(self, images: list[torch.Tensor], flows: list[torch.Tensor]) -> list[torch.Tensor]:
        """images: the warped neighbours and the reference in window order (B, 3, H, W) each;
        flows: the neighbours' coarse flows (B, 2, H, W) in window order -> refined flows"""
        x = torch.cat([*images, *(f / DIV_FLOW for f in flows)], dim=1)
        residual = self.tail(self.fuse(self.body(self.head(x)))).float()
        return [(f + DIV_FLOW * r).clamp(-MAX_FLOW, MAX_FLOW)
                for f, r in zip(flows, residual.split(2, dim=1))]


class PhysicalMotionMask(nn.Module):
    """Soft motion mask (B, 1, H, W) in [0, 1] from a flow (B, 2, H, W)."""

    def __init__(self, scales: tuple[int, ...] = (1, 2, 4), bins: int = 64, eps: float = 1e-6):
        super().__init__()
        self.scales, self.bins, self.eps = scales, bins, eps
        # how much each cue (translation, divergence, curl, shear) counts, per pixel
        self.weight_net = nn.Sequential(
            nn.Conv2d(2, 32, 3, padding=1), nn.PReLU(32),
            nn.Conv2d(32, 32, 3, padding=1), nn.PReLU(32), nn.Conv2d(32, 4, 1))
        sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8
        self.register_buffer("sobel_x", sobel.view(1, 1, 3, 3))
        self.register_buffer("sobel_y", sobel.t().reshape(1, 1, 3, 3).contiguous())

    def gradients(self, component: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (F.conv2d(component, self.sobel_x, padding=1),
                F.conv2d(component, self.sobel_y, padding=1))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Min-max to [0, 1] per image."""
        low = x.amin(dim=(1, 2, 3), keepdim=True)
        high = x.amax(dim=(1, 2, 3), keepdim=True)
        return ((x - low) / (high - low + self.eps)).clamp(0, 1)

    def contrast(self, energy: torch.Tensor) -> torch.Tensor:
        """Mean centre-surround contrast over the scales, normalised."""
        terms = [(F.avg_pool2d(energy, 2 * s + 1, 1, s) - F.avg_pool2d(energy, 4 * s + 1, 1, 2 * s))
                 .abs() for s in self.scales]
        return self.normalise(torch.stack(terms).mean(dim=0))

    @torch.no_grad()
    def otsu(self, x: torch.Tensor) -> torch.Tensor:
        """Otsu's threshold (B, 1, 1, 1) of each [0, 1] map: no gradient flows through it."""
        flat = x.flatten(1)
        index = (flat * self.bins).long().clamp(0, self.bins - 1)
        histogram = torch.zeros(flat.shape[0], self.bins, device=x.device)
        histogram.scatter_add_(1, index, torch.ones_like(flat))
        histogram /= histogram.sum(dim=1, keepdim=True).clamp_min(1)
        centres = (torch.arange(self.bins, device=x.device) + 0.5) / self.bins
        omega, mu = histogram.cumsum(1), (histogram * centres).cumsum(1)
        between = (mu[:, -1:] * omega - mu).pow(2) / (omega * (1 - omega)).clamp_min(1e-6)
        return centres[between.argmax(dim=1)].view(-1, 1, 1, 1)

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        with torch.autocast(flow.device.type, enabled=False):
            flow = flow.float()
            u, v = flow[:, :1], flow[:, 1:]
            (u_x, u_y), (v_x, v_y) = self.gradients(u), self.gradients(v)
            cues = torch.cat([(u * u + v * v + self.eps).sqrt(), (u_x + v_y).abs(),
                              (v_x - u_y).abs(), (0.5 * (u_y + v_x)).abs()], dim=1)
            weights = F.softplus(self.weight_net(flow / DIV_FLOW)) + 1e-3
            energy = (weights * cues).sum(1, keepdim=True) / (weights.sum(1, keepdim=True) + self.eps)
            energy = self.normalise(energy * (1 + 2 * self.contrast(energy)))
            return 0.5 * (1 + torch.tanh(8 * (energy - self.otsu(energy))))


class SEGate(nn.Module):
    """Squeeze-and-excitation: x scaled per channel by a gate from its global mean."""

    def __init__(self, width: int, reduction: int = 8):
        super().__init__()
        mid = max(1, width // reduction)
        self.fc = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(width, mid, 1), nn.PReLU(mid),
                                nn.Conv2d(mid, width, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x)


class MSRFBlock(nn.Module):
    """Multi-scale residual fusion: dilated 3×3 at 1, 2, 4 and a depthwise 5×5 branch in
    parallel, a 1×1 merge, an SE gate, a 3×3 out, plus the input."""

    def __init__(self, width: int):
        super().__init__()
        inner = width // 2
        self.b1, self.b2, self.b3 = (conv_prelu(width, inner, dilation=d) for d in (1, 2, 4))
        self.dw = nn.Sequential(nn.Conv2d(width, width, 5, padding=2, groups=width),
                                nn.PReLU(width), nn.Conv2d(width, inner, 1), nn.PReLU(inner))
        self.merge = nn.Conv2d(4 * inner, width, 1)
        self.se = SEGate(width)
        self.out = conv_prelu(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.b1(x), self.b2(x), self.b3(x), self.dw(x)], dim=1)
        return x + self.out(self.se(self.merge(y)))


class ModalityEncoder(nn.Module):
    """A frame's HDR and LDR (B, 6, H, W) encoded apart, then fused: (B, width, H, W)."""

    def __init__(self, width: int = 48):
        super().__init__()
        self.hdr_enc = nn.Sequential(conv_prelu(3, width), conv_prelu(width, width))
        self.ldr_enc = nn.Sequential(conv_prelu(3, width), conv_prelu(width, width))
        self.fuse = conv_prelu(2 * width, width, 1)

    def forward(self, hdr_ldr: torch.Tensor) -> torch.Tensor:
        hdr, ldr = hdr_ldr.split(3, dim=1)
        return self.fuse(torch.cat([self.hdr_enc(hdr), self.ldr_enc(ldr)], dim=1))


class FlowMaskGate(nn.Module):
    """How much a warped neighbour's features count, per pixel, from |flow| and its motion
    mask: (B, 1, H, W) in (0, 1)."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.PReLU(width),
                                 nn.Conv2d(width, width, 3, padding=1), nn.PReLU(width),
                                 nn.Conv2d(width, 1, 1), nn.Sigmoid())

    def forward(self, flow: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        magnitude = flow.float().pow(2).sum(1, keepdim=True).clamp_min(1e-12).sqrt() / DIV_FLOW
        return self.net(torch.cat([magnitude, mask, torch.ones_like(mask)], dim=1))


class RefineNet(nn.Module):
    """coarse HDR + a residual from the window's features, clamped to [0, 1]. Neighbours are
    window indices; each has a gate named ``gate{index}`` (2E: gate0, gate2)."""

    def __init__(self, neighbours: list[int], width: int = 48, blocks: int = 3):
        super().__init__()
        self.neighbours = neighbours
        self.enc = ModalityEncoder(width)
        for k in neighbours:
            setattr(self, f"gate{k}", FlowMaskGate())
        self.adapt_in = nn.Conv2d(3 * width, width, 1)
        self.msrf = nn.Sequential(*(MSRFBlock(width) for _ in range(blocks)))
        self.cond = nn.Sequential(conv_prelu(3, width // 2),
                                  nn.Conv2d(width // 2, width, 3, padding=1), nn.PReLU(width))
        self.fuse_cond = conv_prelu(2 * width, width, 1)
        self.head = nn.Sequential(conv_prelu(width, width), nn.Conv2d(width, 3, 3, padding=1))
        nn.init.zeros_(self.head[1].weight)  # the identity on the coarse HDR at initialisation
        nn.init.zeros_(self.head[1].bias)

    def forward(self, reference: torch.Tensor, neighbours: dict[int, torch.Tensor],
                flows: dict[int, torch.Tensor], masks: dict[int, torch.Tensor],
                coarse_hdr: torch.Tensor, tone_mapped: bool = False) -> torch.Tensor:
        """reference and each neighbour: HDR and LDR (B, 6, H, W); flows, masks by window
        index; coarse_hdr (B, 3, H, W) -> HDR (B, 3, H, W) fp32. ``tone_mapped``: the coarse
        HDR is read, and the residual added, in the μ-law domain the loss measures (in linear
        light a shadow's noise is a thousandth of a highlight's, too small for the convs)."""
        f_ref = self.enc(reference)
        f_nei = sum(getattr(self, f"gate{k}")(flows[k], masks[k]) *
                    warp(self.enc(neighbours[k]), flows[k]) for k in self.neighbours)
        f_nei = f_nei.to(f_ref.dtype)
        x = self.msrf(self.adapt_in(torch.cat([f_nei, f_ref, f_nei - f_ref], dim=1)))
        base = mu_law_torch(coarse_hdr) if tone_mapped else coarse_hdr
        x = self.fuse_cond(torch.cat([x, self.cond(base.to(x.dtype))], dim=1))
        refined = (base + self.head(x).float()).clamp(0, 1)
        return inverse_mu_law_torch(refined) if tone_mapped else refined


class Denoiser(nn.Module):
    """A per-pixel choice among an HDR image and two blurs of it, in the μ-law domain, by a
    small gate net reading the image, its local contrast and the reference's brightness
    (hdrvid's addition, docs/models/f2hdr.md): smooths where noise is left, not detail."""

    def __init__(self, width: int = 16, sigmas: tuple[float, ...] = (0.8, 1.6),
                 context: bool = False):
        super().__init__()
        for i, sigma in enumerate(sigmas):
            self.register_buffer(f"blur{i}", gaussian_kernel(sigma), persistent=False)
        self.blurs = len(sigmas)
        self.gate = nn.Sequential(conv_prelu(5, width), conv_prelu(width, width),
                                  nn.Conv2d(width, 1 + len(sigmas), 1))
        nn.init.zeros_(self.gate[2].weight)  # starts nearly the identity: the image itself
        with torch.no_grad():
            self.gate[2].bias.copy_(torch.tensor([6.0] + [0.0] * len(sigmas)))
        # the gate's 5×5 view widened to 29×29 by a residual of two dilated convs: flat noise
        # and fine texture look alike up close (docs/models/f2hdr.md); zero-initialised, so
        # training from a file without it starts where that file was
        self.context = None
        if context:
            self.context = nn.Sequential(
                DilatedConv2d(width, width, 3, padding=4, dilation=4), nn.PReLU(width),
                DilatedConv2d(width, width, 3, padding=8, dilation=8))
            nn.init.zeros_(self.context[2].weight)
            nn.init.zeros_(self.context[2].bias)

    def blur(self, image: torch.Tensor, i: int) -> torch.Tensor:
        kernel = getattr(self, f"blur{i}")
        pad = kernel.shape[-1] // 2
        padded = F.pad(image, (pad, pad, pad, pad), mode="replicate")
        return F.conv2d(padded, kernel.expand(image.shape[1], 1, -1, -1), groups=image.shape[1])

    def forward(self, hdr: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """hdr (B, 3, H, W) linear, reference its window's reference frame (B, 3, H, W)
        gamma -> the smoothed HDR (B, 3, H, W) fp32"""
        with torch.autocast(hdr.device.type, enabled=False):
            tone = mu_law_torch(hdr.float())
            candidates = [tone, *(self.blur(tone, i) for i in range(self.blurs))]
            contrast = (tone - candidates[-1]).abs().mean(dim=1, keepdim=True)
            features = self.gate[:2](torch.cat([tone, contrast, luma(reference.float())], dim=1))
            if self.context is not None:
                features = features + self.context(features)
            weights = self.gate[2](features).softmax(dim=1)
            smoothed = sum(w * x for w, x in zip(weights.split(1, dim=1), candidates))
            return inverse_mu_law_torch(smoothed)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalised (1, 1, k, k) Gaussian, k = 2⌈2σ⌉ + 1."""
    radius = max(1, math.ceil(2 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-x * x / (2 * sigma * sigma))
    kernel = g[:, None] * g[None, :]
    return (kernel / kernel.sum())[None, None]


class F2HDR(nn.Module):
    """F²HDR on DIS flows for 2 (3-frame windows) or 3 exposures per cycle (5-frame windows).

    adapter_width / refine_width / refine_blocks: the learned parts' sizes (official: 64, 48,
    3). ``refined`` False runs the coarse flow and the fusion network only: the first training
    stage, and weights whose adapter and refinement are still at their zero initialisation.
    ``adapted`` False skips the adapter (still the identity) when ``refined``: the refinement
    stage, trained on DIS's flows over a frozen fusion network.
    ``tone_perturb``: training only, the strength of the reference's tone perturbation
    (`hdrflow.perturb_tone`; official 0.7).
    ``reference_replacement``: the rule of the well-exposed reference's replacement
    (`hdrflow.replace_reference`), in training and inference: ``"channels"``, because the
    official luma rule hands a clipped blue sky back to the reference (docs/models/f2hdr.md);
    True is the luma rule, False outputs the network everywhere.
    ``well_exposed_from``: what replaces the network there: ``"merge"``, `merge`'s weighted
    mean over the same flows with `strict_agreement` (the reference averaged with neighbours
    that match it: less noise than the reference alone); ``"learned"``, the fusion net's
    choice between that mean and `merge`'s own (needs ``merge_candidate``); or
    ``"reference"`` (official) the linearised reference.
    ``merge_candidate`` (structural: it widens the fusion net): `merge`'s means under
    `strict_agreement` and under its own deghosting are two more fusion candidates, so the
    net learns where averaging the aligned frames beats choosing among them, and how strictly
    (docs/models/f2hdr.md); off in the official model.
    ``refine_replaced``: the refinement runs after the reference replacement, on every pixel
    (the replaced ones are most of a frame, and only a spatial filter can take noise out of
    `merge`'s mean there), in the μ-law domain; False, as officially, refines the fusion's
    output in linear light, which the replacement then overwrites where the reference is well
    exposed.
    ``exposure_prior``: the fusion weights are multiplied by `merge`'s exposedness of each
    candidate (`exposure_prior_of`); recorded in the weights; official checkpoints need it off.
    ``denoiser`` (structural): a `Denoiser` after everything else, used once ``denoised``;
    ``denoiser_context`` widens its gate's view (`Denoiser`'s ``context``).
    """

    def __init__(self, exposures: int = 2, adapter_width: int = 64, refine_width: int = 48,
                 refine_blocks: int = 3, merge_candidate: bool = False,
                 refine_replaced: bool = False, denoiser: bool = False,
                 denoiser_context: bool = False):
        super().__init__()
        if exposures not in PAIRS:
            raise ValueError(f"F²HDR exists for 2 or 3 exposures per cycle, not {exposures}")
        frames = 2 * exposures - 1
        c = frames // 2
        self.exposures = exposures
        self.flow_order = [k for pair in PAIRS[exposures] for k in pair]  # fusion's order
        self.neighbours = [k for k in range(frames) if k != c]  # window order
        self.coarse_flow_net = ExposureMerge()  # DIS, frozen, no parameters
        self.flow_adapter = FlowAdapter(frames, adapter_width)
        self.motion_mask = keep_fp32(PhysicalMotionMask())  # runs outside autocast
        c_in, c_out, c_mid = VARIANTS[exposures][3:]
        self.merge_candidate = merge_candidate
        means = len(MEANS) * merge_candidate
        self.fusion_net = FusionNet(c_in + 6 * means, c_out + means, c_mid)
        if merge_candidate:  # the official net's initialisation, the candidates' channels off
            self.load_fusion(FusionNet(c_in, c_out, c_mid).state_dict())
        self.refine_net = RefineNet(self.neighbours, refine_width, refine_blocks)
        # runs outside autocast
        self.denoiser = keep_fp32(Denoiser(context=denoiser_context)) if denoiser else None
        self.denoised = False
        self.refined = True
        self.adapted = True
        self.refine_replaced = refine_replaced
        self.reference_replacement = "channels"
        self.well_exposed_from = "merge"
        self.exposure_prior = True
        self.tone_perturb = 0.0
        self.channels_last = True

    @torch.no_grad()
    def load_fusion(self, state: dict[str, torch.Tensor]) -> None:
        """Load a fusion net of HDRFlow's shapes (HDRFlow's, or F²HDR's without the `merge`
        means, or with fewer) into this one: where the means widen it, their input channels
        start at zero and their weights near zero, so the model starts as the one loaded."""
        own = self.fusion_net.state_dict()
        for name, value in state.items():
            if name not in own:
                raise KeyError(f"no fusion net parameter {name}")
            target = own[name]
            if value.shape == target.shape:
                target.copy_(value)
                continue
            if name == "conv1.0.weight":  # the means' channels come last: they read nothing
                target.zero_()[:, :value.shape[1]].copy_(value)
            elif name.startswith("conv12.0."):  # their weights start at sigmoid(-4)
                target.zero_()[:value.shape[0]].copy_(value)
                if name.endswith("bias"):
                    target[value.shape[0]:] = -4.0
            else:
                raise ValueError(f"fusion net parameter {name}: {tuple(value.shape)} does not "
                                 f"fit {tuple(target.shape)}")

    def exposure_prior_of(self, ldrs: list[torch.Tensor], indices: list[int],
                          t: tuple[torch.Tensor, ...]) -> torch.Tensor | None:
        """`merge`'s exposedness of each candidate (B, n, H, W), or None when off: the fusion
        net's weights cannot tell a long frame from a short one where every frame is dark, and
        `merge`'s weights (exposure time, zero where clipped) can."""
        if not self.exposure_prior:
            return None
        # a fixed weighting, as in `merge`: no gradient flows through it into the refined flows
        return torch.cat([self.coarse_flow_net.exposedness(x.detach().float(), t[k].float())
                          for x, k in zip(ldrs, indices)], dim=1)

    def perturb(self, ref: torch.Tensor) -> torch.Tensor:
        return perturb_tone(ref, self.tone_perturb if self.training else 0.0)

    @torch.no_grad()
    def coarse_flows(self, ldr: torch.Tensor, times: torch.Tensor) -> dict[int, torch.Tensor]:
        """DIS flow (B, 2, H, W) from the reference to each neighbour, by window index."""
        c = ldr.shape[1] // 2
        ref, t_ref = ldr[:, c].float(), times[:, c].float()
        others = [(ldr[:, k].float(), times[:, k].float()) for k in self.neighbours]
        flows = self.coarse_flow_net.flows(ref, t_ref, others)
        return dict(zip(self.neighbours, flows))

    def forward(self, ldr: torch.Tensor, times: torch.Tensor, return_flows: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """ldr (B, n, 3, H, W) gamma 2.2 in [0, 1], times (B, n) with min 1 -> linear HDR
        (B, 3, H, W) fp32, the reference replacement done [, the refined flows by window
        index]."""
        n = ldr.shape[1]
        if n != 2 * self.exposures - 1:
            raise ValueError(f"F²HDR-{self.exposures}E reads {2 * self.exposures - 1} frames, "
                             f"got {n}")
        c = n // 2
        frames, t = ldr.unbind(1), times.unbind(1)
        ref, seen = frames[c], self.perturb(frames[c])
        flows = self.coarse_flows(ldr, times)
        if self.refined and self.adapted:  # the adapter corrects the frozen flows
            warped = {k: warp(frames[k], flows[k]).to(ref.dtype) for k in self.neighbours}
            images = [warped[k] if k != c else seen for k in range(n)]
            flows = dict(zip(self.neighbours, self.flow_adapter(
                images, [flows[k] for k in self.neighbours])))

        # fusion: weights over the reference, the warped and the unwarped neighbours
        order = self.flow_order
        warped = {k: warp(frames[k], flows[k]) for k in order}
        means = self.merge_means(ref, times, warped, flows)
        ldrs = [seen, *(warped[k] for k in order), *(frames[k] for k in order)]
        indices = [c, *order, *order]  # the window frame of each candidate
        hdrs = [linearize(x, t[k]) for x, k in zip(ldrs, indices)]
        stack = lambda images, dtype: stack_channels(images, dtype, self.channels_last)
        prior = self.exposure_prior_of([ref, *ldrs[1:]], indices, t)
        extra = []
        if self.merge_candidate:  # as the net sees the others: at its exposure, and linear
            extra = [(delinearize(mean, t[c].float()).to(ref.dtype), mean) for mean in means]
            if prior is not None:  # as much as the best of what they average
                best = prior.amax(dim=1, keepdim=True)
                prior = torch.cat([prior, *(best for _ in extra)], dim=1)
        hdr, weights = merge_candidates(self.fusion_net, self.exposures, ldrs, hdrs,
                                        hdrs[0] if seen is ref else linearize(ref, t[c]), stack,
                                        prior, extra, return_weights=True)
        refine = lambda hdr: self.refine(hdr, frames, t, torch.cat([hdrs[0], seen], dim=1), flows)
        if self.refined and not self.refine_replaced:
            hdr = refine(hdr)
        if self.reference_replacement:
            hdr = replace_as_net_says(self, hdr, ldr, times,
                                      well_exposed=self.well_exposed(means, weights))
        if self.refined and self.refine_replaced:
            hdr = refine(hdr)
        if self.denoised:
            hdr = self.denoiser(hdr, ref)
        return (hdr, flows) if return_flows else hdr

    def refine(self, hdr: torch.Tensor, frames: tuple[torch.Tensor, ...],
               t: tuple[torch.Tensor, ...], reference: torch.Tensor,
               flows: dict[int, torch.Tensor]) -> torch.Tensor:
        """The refinement network's output for the coarse ``hdr`` (B, 3, H, W): ``reference``
        is the reference's HDR and LDR as the net sees it (B, 6, H, W), ``flows`` by window
        index."""
        masks = {k: self.motion_mask(flows[k]) for k in self.neighbours}
        pair = lambda k: torch.cat([linearize(frames[k], t[k]), frames[k]], dim=1)
        return self.refine_net(reference, {k: pair(k) for k in self.neighbours}, flows, masks,
                               hdr, tone_mapped=self.refine_replaced)

    def well_exposed(self, means: list[torch.Tensor], weights: torch.Tensor
                     ) -> torch.Tensor | None:
        """What replaces the network where the reference is well exposed, from `merge_means`
        and the fusion weights (B, n, H, W): the strict mean ("merge"), the two means weighted
        by the net's weights for them ("learned"), or None: the linearised reference."""
        if self.well_exposed_from == "merge":
            return means[0]
        if self.well_exposed_from == "learned":
            chosen = weights[:, -len(MEANS):]
            mixed = sum(w * mean for w, mean in zip(chosen.split(1, dim=1), means))
            return mixed / (chosen.sum(dim=1, keepdim=True) + 1e-8)
        return None

    @torch.no_grad()
    def merge_means(self, ref: torch.Tensor, times: torch.Tensor,
                    warped: dict[int, torch.Tensor], flows: dict[int, torch.Tensor]
                    ) -> list[torch.Tensor]:
        """`merge`'s weighted means (B, 3, H, W) of ``ref`` and the neighbours ``warped`` by
        ``flows``, as far as they are used: under `strict_agreement` (what replaces the network
        where the reference is well exposed, ``well_exposed_from`` "merge"), then under
        `merge`'s own deghosting (with the strict one, the `merge` candidates)."""
        if self.well_exposed_from == "learned" and not self.merge_candidate:
            raise ValueError("well_exposed_from 'learned' needs the merge candidates: build "
                             "F2HDR with merge_candidate=True")
        replaces = self.reference_replacement and self.well_exposed_from == "merge"
        wanted = list(MEANS) if self.merge_candidate else ["strict"] if replaces else []
        if not wanted:
            return []
        # samples inside the image read no padding: the warp is merge's own there
        aligned = {k: (warped[k], inside(flow_coords(flows[k])).float()) for k in self.neighbours}
        c = times.shape[1] // 2
        return [self.coarse_flow_net.blend(ref.float(), aligned, times, c, MEANS[name])
                for name in wanted]

    def learned_parts(self, stage: str) -> list[nn.Module]:
        """The modules a training stage updates: ``fusion`` (the first stage: the adapter and
        refinement stay at their zero initialisation and are skipped), ``refine`` (the
        refinement over the frozen fusion, on DIS's flows: the adapter is skipped), or
        ``all``; ``denoise`` trains the `Denoiser` alone over the rest as loaded. Sets the
        behaviour the stage trains and freezes the other parts."""
        parts = {"fusion": [self.fusion_net],
                 "refine": [self.motion_mask, self.refine_net],
                 "all": [self.flow_adapter, self.motion_mask, self.fusion_net, self.refine_net],
                 "denoise": [self.denoiser]}
        if stage not in parts:
            raise ValueError(f"F²HDR trains in the stages {', '.join(parts)}, not {stage!r}")
        if stage == "denoise":
            if self.denoiser is None:
                raise ValueError("this F²HDR has no denoiser: build it with denoiser=True")
            self.denoised = True
        else:
            self.refined, self.adapted = stage != "fusion", stage == "all"
        # frozen parts record no graph: the refinement stage costs little more than inference
        self.requires_grad_(False)
        for part in parts[stage]:
            part.requires_grad_(True)
        return parts[stage]


def f2hdr_step(net: F2HDR, batch: dict[str, torch.Tensor], flow_weight: float | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """F²HDR's training step (`ModelSpec.train_step`, docs/models/f2hdr.md): the output after
    the reference replacement, as inference outputs it, and `losses.alignment_loss` over the
    refined flows (0.5 × the alignment L1, 0.001 × the flow L1 unless ``flow_weight``), only
    where the adapter runs: in the fusion and refinement stages the flows are DIS's, fixed."""
    ldr, times = batch["ldr"], batch["times"]
    hdr, flows = net(ldr, times, return_flows=True)
    if not (net.refined and net.adapted):
        return hdr, hdr.new_zeros(())
    flow_weight = 0.001 if flow_weight is None else flow_weight
    return hdr, alignment_loss(batch, flows.items(), warp, 0.5, flow_weight, hdr)
