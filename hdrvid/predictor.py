"""HdrPredictor: numpy frames in, linear HDR out. Owns device, padding and the model contract."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from hdrvid import weights as weight_files
from hdrvid.errors import ModelError, WeightsError
from hdrvid.models.common import InputPadder
from hdrvid.registry import ModelSpec, get_spec
from hdrvid.response import Response


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"--device {device}: CUDA is not available on this machine; use "
                         "--device cpu (or auto)")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ModelError(f"--device {device}: not a device; use auto, cpu or cuda[:N]") from exc


class HdrPredictor:
    """Run a registered model on windows of frames.

    Parameters
    ----------
    model : registry name (``hdrvid models``).
    period : exposures per cycle (2 or 3); picks the model variant and its window size.
    device : ``auto``, ``cpu`` or ``cuda[:N]``.
    response : the camera response of the input frames; frames are re-encoded to the models'
        gamma 2.2 once, in `prepare`.
    weights : a weight file (or folder, for models whose official weights are several files);
        default: the weights shipped for the model, if any.
    """

    def __init__(self, model: str = "merge", period: int = 2, device: str = "auto",
                 response: Response | None = None, weights: str | Path | None = None):
        self.spec: ModelSpec = get_spec(model)
        self.period = period
        self.window = self.spec.window(period)
        self.device = resolve_device(device)
        self.response = response or Response()
        self.model = self._load(self.spec.build(period), weights).to(self.device).eval()

    def _load(self, net: torch.nn.Module, weights: str | Path | None) -> torch.nn.Module:
        what = f"{self.spec.name} {self.period}-exposure"
        if weights is not None and not self.spec.trained:
            raise WeightsError(f"--weights {weights}: {self.spec.name} has no weights; drop "
                               "--weights or choose a trained --model")
        path = weight_files.resolve(weights, self.spec.weights.get(self.period, ()), what)
        if path is None and self.spec.trained:
            raise WeightsError(f"{what} needs weights and none ship with hdrvid: pass --weights "
                               f"PATH ({self.spec.weights_hint})")
        if path is not None:
            weight_files.load_weights(net, path, self.spec.checkpoint, what)
        return net

    def prepare(self, rgb: np.ndarray) -> torch.Tensor:
        """Decoded R'G'B' float32 (H, W, 3) in [0, 1] -> model input (3, H, W) on the device."""
        ldr = self.response.to_gamma22(rgb)
        return torch.from_numpy(np.ascontiguousarray(ldr)).to(self.device).permute(2, 0, 1)

    @torch.inference_mode()
    def predict_torch(self, ldr: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """Windows (B, n, 3, H, W) gamma-2.2 in [0, 1] and exposures (B, n) -> HDR (B, 3, H, W).

        Output: float32 linear RGB (the input's primaries), 1.0 = the clipping point of the
        shortest exposure, never negative.
        """
        if ldr.shape[1] != self.window:
            raise ValueError(f"{self.spec.name} reads {self.window} frames, got {ldr.shape[1]}")
        padder = InputPadder(ldr.shape[-2], ldr.shape[-1], self.spec.pad_multiple)
        hdr = self.spec.forward(self.model, padder.pad(ldr), times.to(self.device, torch.float32))
        return padder.unpad(hdr).float().clamp_min(0)

    def predict(self, frames: Sequence[np.ndarray], times: Sequence[float]) -> np.ndarray:
        """One window of R'G'B' float32 (H, W, 3) frames and their exposures -> HDR (H, W, 3)."""
        ldr = torch.stack([self.prepare(f) for f in frames])[None]
        hdr = self.predict_torch(ldr, torch.tensor([list(times)]))
        return hdr[0].permute(1, 2, 0).cpu().numpy()
