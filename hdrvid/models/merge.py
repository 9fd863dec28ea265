"""Weight-free baselines: `ExposureMerge` (flow-aligned merge) and `ReferenceFrame` (the floor).

ExposureMerge, per neighbour j of the reference c:
  1. bring both frames to the longer of their two exposures and clip them alike, so that the
     same scene points are clipped in both (matching a short frame to a long one, or the other
     way round, leaves one side clipped and fools the flow);
  2. DIS optical flow (OpenCV) from the reference to the neighbour on their luma (all the
     neighbours of a batch at once, a thread per core);
  3. warp the neighbour onto the reference, linearise it with its own exposure;
  4. weight it by exposure time (longer = less noise and quantisation in linear light), by how
     far it is from clipping, and by how well it agrees with the reference where the reference
     can tell (deghosting: a disagreeing neighbour falls back to the reference).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hdrvid.flow import dis_flow
from hdrvid.models.common import GAMMA, backward_warp, linearize, luma, reexpose


def saturation_weight(ldr: torch.Tensor, knee: float = 0.85, clip: float = 0.97) -> torch.Tensor:
    """1 where max(R', G', B') is below ``knee``, falling linearly to 0 at ``clip``: (B, 1, H, W)."""
    return ramp(ldr.amax(dim=1, keepdim=True), knee, clip)


def ramp(x: torch.Tensor, full: float, zero: float) -> torch.Tensor:
    """1 where ``x`` <= ``full``, falling linearly to 0 at ``zero``; in place on ``x`` (a
    fresh tensor at every call: on the hot path a new one costs as much as the arithmetic)."""
    return x.sub_(zero).div_(full - zero).clamp_(0, 1)


def box_blur(image: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over a size×size neighbourhood of (B, 1, H, W); borders average what is inside."""
    if image.device.type == "cpu":  # OpenCV's box filter: far faster than avg_pool2d on CPU
        blurred = [cv2.blur(plane, (size, size), borderType=cv2.BORDER_REFLECT)
                   for plane in image[:, 0].contiguous().numpy()]
        return torch.from_numpy(np.stack(blurred))[:, None]
    return F.avg_pool2d(image, size, stride=1, padding=size // 2, count_include_pad=False)


def _to_u8(gray: torch.Tensor) -> np.ndarray:
    """(B, 1, H, W) in [0, 1] -> (B, H, W) uint8 on the host, as DIS reads it."""
    return (gray[:, 0] * 255 + 0.5).clamp(0, 255).to(torch.uint8).cpu().numpy()


@functools.cache
def _pixel_grid(height: int, width: int) -> np.ndarray:
    """(H, W, 2) float32 pixel coordinates x, y: where a zero flow samples."""
    ys, xs = np.mgrid[:height, :width].astype(np.float32)
    return np.stack([xs, ys], axis=-1)


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="hdrvid-dis")


class ReferenceFrame(nn.Module):
    """The reference frame alone, linearised: ``L_c^2.2 / t_c``. The floor every model must beat."""

    def forward(self, ldr: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """(B, n, 3, H, W), (B, n) -> (B, 3, H, W)"""
        c = ldr.shape[1] // 2
        return linearize(ldr[:, c], times[:, c])


class ExposureMerge(nn.Module):
    """Align every neighbour to the reference with DIS flow and merge in linear light.

    ghost_low / ghost_high: gamma-domain disagreement (mean over a 5×5 neighbourhood) at which a
    neighbour's weight starts to fall and reaches zero.
    descent_iterations: DIS's gradient-descent iterations per patch, at every pyramid level
    (its medium preset has 25). Fewer fit less of the noise and quantisation in which the
    exposure-matched frames still differ, so they score a little higher on small motion, but
    they stop short on large motion and lose badly on single windows. 16 keeps nearly all of
    the large-motion quality for less time than 25 (docs/performance.md, "Measurements
    behind choices in the code").
    """

    def __init__(self, preset: str = "medium", ghost_low: float = 0.02, ghost_high: float = 0.06,
                 floor: float = 1e-4, descent_iterations: int | None = 16):
        super().__init__()
        self.preset, self.descent_iterations = preset, descent_iterations
        self.ghost_low, self.ghost_high, self.floor = ghost_low, ghost_high, floor

    def forward(self, ldr: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """(B, n, 3, H, W), (B, n) -> (B, 3, H, W)"""
        c = ldr.shape[1] // 2
        ref, t_ref = ldr[:, c].float(), times[:, c].float()
        neighbours = [j for j in range(ldr.shape[1]) if j != c]
        aligned = dict(zip(neighbours, self.align(
            ref, t_ref, [(ldr[:, j].float(), times[:, j].float()) for j in neighbours])))
        return self.blend(ref, aligned, times, c)

    def blend(self, ref: torch.Tensor, aligned: dict[int, tuple[torch.Tensor, torch.Tensor]],
              times: torch.Tensor, c: int, agreement: Callable | None = None) -> torch.Tensor:
        """The weighted mean in linear light of the reference ``ref`` (B, 3, H, W), frame ``c``
        of the window, and its neighbours aligned onto it, by window index: (frame (B, 3, H, W),
        mask (B, 1, H, W) of where it was sampled inside the image). ``times`` (B, n).
        ``agreement``: the deghosting weight, `agreement`'s arguments (default merge's own)."""
        agreement = agreement or self.agreement
        t_ref = times[:, c].float()
        numerator = torch.zeros_like(ref)
        denominator = torch.zeros_like(ref[:, :1])
        # in place where it is safe (merge never trains): at 640×360 each fresh tensor cost as
        # much as the arithmetic on it
        for j in range(times.shape[1]):
            t = times[:, j].float()
            if j == c:
                frame, weight = ref, self.exposedness(ref, t)
            else:
                frame, inside = aligned[j]
                weight = self.exposedness(frame, t).mul_(agreement(frame, t, ref, t_ref))
                weight.mul_(inside)
            numerator.addcmul_(weight / t[:, None, None, None], frame.clamp(0, 1).pow_(GAMMA))
            denominator += weight
        return numerator.div_(denominator)

    def align(self, ref: torch.Tensor, t_ref: torch.Tensor,
              others: list[tuple[torch.Tensor, torch.Tensor]]
              ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each (frame, exposure) of ``others`` warped onto ``ref`` by DIS flow: the warped
        frame (B, 3, H, W), border values outside, and a (B, 1, H, W) mask of where it was
        sampled inside the frame.

        On the CPU each frame is warped in the thread that found its flow, with OpenCV's
        remap, several times faster than torch's grid_sample there (docs/performance.md, Speed;
        its bilinear weights are exact to 1/32 px, a far finer step than DIS's flow).
        """
        if ref.device.type != "cpu":
            return [backward_warp(other, flow)
                    for (other, _), flow in zip(others, self.flows(ref, t_ref, others))]
        # contiguous, whatever the inputs' strides: OpenCV writes into whole planes
        aligned = [(other.new_empty(other.shape), other.new_empty(other.shape[0], 1, *other.shape[2:]))
                   for other, _ in others]
        # each thread writes its frame straight into the batch's tensors
        jobs = [(image.numpy(), out.numpy(), mask[0].numpy())
                for (other, _), (warped, inside) in zip(others, aligned)
                for image, out, mask in zip(other.contiguous(), warped, inside)]
        list(_pool().map(self._warp, self._luma_pairs(ref, t_ref, others), jobs))  # raises theirs
        return aligned

    def flows(self, ref: torch.Tensor, t_ref: torch.Tensor,
              others: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
        """DIS flow (B, 2, H, W) from ``ref`` to each (frame, exposure) of ``others``."""
        flows = list(_pool().map(self._dis_flow, self._luma_pairs(ref, t_ref, others)))
        batch = ref.shape[0]
        return [torch.from_numpy(np.stack(flows[i:i + batch])).permute(0, 3, 1, 2).to(ref.device)
                for i in range(0, len(flows), batch)]

    @staticmethod
    def _luma_pairs(ref: torch.Tensor, t_ref: torch.Tensor,
                    others: list[tuple[torch.Tensor, torch.Tensor]]
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(reference, other) uint8 luma for each flow, B per other frame.

        Each pair is first brought to the longer of its two exposures and clipped alike, so
        that the same scene points are clipped in both. The B × len(others) flows then run at
        once on a thread per core (OpenCV releases the GIL): DIS is most of merge's time, and
        one flow at a time left a core idle.
        """
        pairs = []
        for other, t_other in others:
            t_common = torch.maximum(t_ref, t_other)
            # clip per channel, then take luma: both frames then clip exactly alike
            source = _to_u8(luma(reexpose(ref, t_common / t_ref)))
            target = _to_u8(luma(reexpose(other, t_common / t_other)))
            pairs += zip(source, target)
        return pairs

    def _warp(self, pair: tuple[np.ndarray, np.ndarray],
              job: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Warp an image (3, H, W) float32 by the DIS flow of ``pair`` into ``out`` (3, H, W),
        and set ``inside`` (H, W) to 1 where it was sampled inside the frame, else 0."""
        image, out, inside = job
        h, w = image.shape[1:]
        coords = self._dis_flow(pair) + _pixel_grid(h, w)
        for plane, out_plane in zip(image, out):
            cv2.remap(plane, coords, None, cv2.INTER_LINEAR, dst=out_plane,
                      borderMode=cv2.BORDER_REPLICATE)
        mask = cv2.inRange(coords, (0, 0), (w - 1, h - 1))  # 255 inside; faster than numpy
        np.divide(mask, np.float32(255), out=inside)

    def _dis_flow(self, pair: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        return dis_flow(*pair, self.preset, self.descent_iterations)

    def exposedness(self, frame: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Merge weight (B, 1, H, W) of a frame with exposure ``t`` (B,), before deghosting."""
        t = t[:, None, None, None]
        # clipped everywhere: prefer the shortest exposure, whose clipped value is the largest
        return saturation_weight(frame).mul_(t).add_(self.floor / t)

    def agreement(self, frame: torch.Tensor, t: torch.Tensor, ref: torch.Tensor,
                  t_ref: torch.Tensor) -> torch.Tensor:
        """1 where the frame, re-exposed to the reference's exposure, matches it; 0 on ghosts.

        Both sides clip alike, so a saturated reference agrees with any neighbour that is bright
        enough to saturate at the reference's exposure.
        """
        moved = reexpose(frame, t_ref / t)
        difference = box_blur(moved.sub_(ref).abs_().mean(dim=1, keepdim=True), 5)
        return ramp(difference, self.ghost_low, self.ghost_high)
