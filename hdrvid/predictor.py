"""HdrPredictor: numpy frames in, linear HDR out. Owns device, padding and the model contract."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hdrvid import weights as weight_files
from hdrvid.color import GAMMA, eotf_srgb_torch, ycbcr_to_rgb_torch
from hdrvid.errors import ModelError, WeightsError
from hdrvid.models.common import InputPadder, cast_convolutions, fold_batchnorm
from hdrvid.registry import DEFAULT_MODEL, ModelSpec, get_spec
from hdrvid.response import Response
from hdrvid.video import YCbCr

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
YUV_ON = ("auto", "host", "device")
GIB = 1 << 30


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


def resolve_precision(precision: str, device: torch.device,
                      warnings: list[str]) -> torch.dtype | None:
    """The autocast dtype (None: fp32). ``auto``: bf16 on CPUs with native bf16 (AVX512-BF16 /
    AMX: several times faster), fp16 on CUDA, else fp32. fp16 on the CPU falls back to fp32."""
    if precision not in PRECISIONS:
        raise ModelError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
    cpu_bf16 = device.type == "cpu" and torch.backends.mkldnn.is_available() and \
        torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if precision == "auto":
        precision = "bf16" if cpu_bf16 else "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type == "cpu":
        warnings.append("--precision fp16 is not supported on the CPU; running fp32 (bf16 is)")
        precision = "fp32"
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def free_memory(device: torch.device) -> int:
    """Bytes the device can still allocate: free GPU memory, or the host's MemAvailable."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def tiles(size: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """(start, stop) of tiles of at most ``tile`` covering [0, size), neighbours overlapping by
    at least ``overlap``."""
    if size <= tile:
        return [(0, size)]
    count = math.ceil((size - overlap) / (tile - overlap))
    starts = [round(i * (size - tile) / (count - 1)) for i in range(count)]
    return [(start, start + tile) for start in starts]


def feather(length: int, start: int, stop: int, size: int, overlap: int) -> torch.Tensor:
    """Blending weights along one axis of a tile: linear ramps over the overlap, except at the
    frame's edges."""
    ramp = torch.ones(length)
    rise = torch.linspace(0, 1, overlap + 2)[1:-1]
    if start > 0:
        ramp[:overlap] = rise
    if stop < size:
        ramp[-overlap:] = torch.minimum(ramp[-overlap:], rise.flip(0))
    return ramp


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
    precision : ``auto`` (bf16 on CPUs that have it, fp16 on CUDA), ``fp32``, ``bf16``,
        ``fp16``: the autocast dtype of the network; the models keep their numerically
        sensitive parts (FFTs, warps, output layers) in fp32.
    tile : run frames larger than ``tile``×``tile`` pixels as overlapping tiles blended
        together (bounded memory; models with global operations give slightly different
        results); None: whole frames.
    yuv_on : where `prepare` turns Y'CbCr planes into the models' R'G'B' (matrix, chroma
        upsampling, camera response): ``device``, ``host`` (OpenCV, faster than torch on the
        CPU), or ``auto`` (default): the device when it is a GPU. The GPU then receives a
        fraction of the bytes (chroma subsampled, 8 or 16 bits per code) and the decode thread,
        which feeds it, is spared the conversion (docs/performance.md, "Feeding a GPU").
    """

    def __init__(self, model: str = DEFAULT_MODEL, period: int = 2, device: str = "auto",
                 response: Response | None = None, weights: str | Path | None = None,
                 precision: str = "auto", tile: int | None = None, yuv_on: str = "auto"):
        self.spec: ModelSpec = get_spec(model)
        self.period = period
        self.window = self.spec.window(period)
        self.device = resolve_device(device)
        self.response = response or Response()
        self.warnings: list[str] = []
        self.dtype = resolve_precision(precision, self.device, self.warnings) \
            if self.spec.trained else None  # the weight-free models have nothing to cast
        self.tile = tile
        if yuv_on not in YUV_ON:
            raise ModelError(f"--yuv-on {yuv_on}: choose one of {', '.join(YUV_ON)}")
        self.yuv_on_device = yuv_on == "device" or (yuv_on == "auto" and self.device.type != "cpu")
        self.cores = torch.get_num_threads()  # what torch may use (set_num_threads, OMP_NUM_THREADS)
        self._pools: dict[int, ThreadPoolExecutor] = {}  # window-parallel runs, by window count
        self.model = fold_batchnorm(self._load(self.spec.build(period), weights).eval())
        self.model.to(self.device)
        if self.dtype is not None and self.device.type == "cpu":
            self.model.to(memory_format=torch.channels_last)  # oneDNN's fast bf16 layout
            cast_convolutions(self.model, self.dtype)

    def _load(self, net: torch.nn.Module, weights: str | Path | None) -> torch.nn.Module:
        what = f"{self.spec.name} {self.period}-exposure"
        if weights is not None and not self.spec.trained:
            raise WeightsError(f"--weights {weights}: {self.spec.name} has no weights; drop "
                               "--weights or choose a trained --model")
        path = self._weights_path(weights, what)
        if path is not None:
            weight_files.load_weights(net, path, self.spec.checkpoint, what)
        return net

    def _weights_path(self, weights: str | Path | None, what: str) -> Path | None:
        """--weights PATH; ``official``: the authors' weights as `hdrvid weights pull` converted
        them; none: ours if we ship them, else the authors' (pulled)."""
        shipped = self.spec.weights.get(self.period, ())
        official = self.spec.official.get(self.period)
        if str(weights) == weight_files.OFFICIAL or (weights is None and not shipped
                                                     and official is not None):
            if official is None:
                raise WeightsError(f"--weights official: hdrvid cannot fetch {self.spec.name}'s "
                                   f"weights from its authors; pass --weights PATH "
                                   f"({self.spec.weights_hint})")
            path = official.cached(self.spec.name, self.period)
            if not path.is_file():
                raise WeightsError(f"{what}: the authors' weights are not pulled; run `hdrvid "
                                   f"weights pull {self.spec.name} --exposures {self.period}` "
                                   "(once, with internet), or pass --weights PATH")
            return path
        path = weight_files.resolve(weights, shipped, what)
        if path is None and self.spec.trained:
            raise WeightsError(f"{what} needs weights and none ship with hdrvid: pass --weights "
                               f"PATH ({self.spec.weights_hint})")
        return path

    def prepare(self, image: np.ndarray | YCbCr) -> torch.Tensor:
        """A decoded frame, R'G'B' float32 (H, W, 3) in [0, 1] or Y'CbCr planes, -> model input
        (3, H, W) on the device. Planes are converted on the device when ``yuv_on`` says so."""
        if isinstance(image, YCbCr):
            if self.yuv_on_device:
                return self._to_gamma22(ycbcr_to_rgb(image, self.device))
            image = image.to_rgb()
        ldr = self.response.to_gamma22(image)
        return torch.from_numpy(np.ascontiguousarray(ldr)).to(self.device).permute(2, 0, 1)

    def _to_gamma22(self, rgb: torch.Tensor) -> torch.Tensor:
        """`Response.to_gamma22` on the device, for R'G'B' in [0, 1]."""
        name = self.response.name
        if name == "gamma2.2":
            return rgb
        if name == "srgb":
            linear = eotf_srgb_torch(rgb)
        elif name == "linear":
            linear = rgb
        else:
            linear = interp(rgb, *self._response_table)
        return linear.clamp_(0, 1) ** (1 / GAMMA)

    @functools.cached_property
    def _response_table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A tabulated response's (codes, linear) on the device, copied there once."""
        return tuple(torch.from_numpy(v).to(self.device) for v in self.response.table)

    @property
    def parallel_windows(self) -> bool:
        """Whether a call's windows run at once on the CPU, each on its share of the cores."""
        return self.device.type == "cpu" and self.spec.parallel_windows and self.cores > 1

    def windows_at_once(self, batch: int) -> bool:
        """Whether the windows of a call of ``batch`` run at once, each in its own thread."""
        return batch > 1 and self.parallel_windows

    def threads_per_window(self, batch: int) -> int | None:
        """Torch threads each window of a ``batch`` runs on; None on a GPU."""
        if self.device.type != "cpu":
            return None
        return self.cores // min(batch, self.cores) if self.windows_at_once(batch) else self.cores

    @property
    def default_batch(self) -> int:
        """Windows per call unless told otherwise: one per core where they run in parallel,
        else the model's own default."""
        return max(self.spec.batch_size, self.cores if self.parallel_windows else 1)

    def check_memory(self, height: int, width: int, batch: int | None) -> tuple[int, str | None]:
        """The batch size that fits the device's free memory, and a warning when it is less
        than ``batch`` (default `default_batch`); ModelError, before any work, when not even one
        window fits."""
        batch = batch or self.default_batch
        per_window = self.spec.bytes_per_pixel * min(height, self.tile or height) * \
            min(width, self.tile or width)
        if not per_window:
            return batch, None
        free = free_memory(self.device)
        if per_window > free:
            raise ModelError(
                f"{self.spec.name} needs about {per_window / GIB:.1f} GiB for one {width}×{height} "
                f"window and {self.device} has {free / GIB:.1f} GiB free; use --tile 512, "
                "another --device, or a lighter --model (hdrflow, merge)")
        fits = int(free // per_window)
        if batch > fits:
            warning = (f"--batch-size {batch} needs about {batch * per_window / GIB:.1f} GiB at "
                       f"{width}×{height} but {self.device} has {free / GIB:.1f} GiB free; using "
                       f"--batch-size {fits}")
            return fits, warning
        return batch, None

    def use_tiles(self, size: int) -> None:
        """Run every later window in ``size``-pixel tiles (the out-of-memory fallback)."""
        self.tile = size

    @torch.inference_mode()
    def predict_torch(self, ldr: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """Windows (B, n, 3, H, W) gamma-2.2 in [0, 1] and exposures (B, n) -> HDR (B, 3, H, W).

        Output: float32 linear RGB (the input's primaries), 1.0 = the clipping point of the
        shortest exposure, never negative.
        """
        if ldr.shape[1] != self.window:
            raise ValueError(f"{self.spec.name} reads {self.window} frames, got {ldr.shape[1]}")
        times = times.to(self.device, torch.float32)
        if self.windows_at_once(len(ldr)):
            return self._run_parallel(ldr, times)
        return self._run_whole_or_tiled(ldr, times)

    def _run_whole_or_tiled(self, ldr: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        height, width = ldr.shape[-2:]
        if self.tile is None or (height <= self.tile and width <= self.tile):
            return self._run(ldr, times)
        return self._run_tiled(ldr, times)

    def _run_parallel(self, ldr: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """Each window in its own thread, on cores / windows torch threads. Alone, the networks run
        as fast either way (benchmarks/parallel_windows.py); in a conversion, the decode thread and
        the EXR writers take a core now and then, and a window spread over all cores then waits at
        every layer for the thread that lost its core, where one window per core just runs on
        (docs/performance.md, "Windows in parallel on the CPU"). Outputs differ from a whole-machine
        run at float rounding (oneDNN's sums depend on its thread count)."""
        workers = min(len(ldr), self.cores)
        if workers not in self._pools:
            self._pools[workers] = ThreadPoolExecutor(workers, "window")
        threads = self.threads_per_window(len(ldr))
        runs = [self._pools[workers].submit(self._run_in_thread, threads, ldr[i:i + 1],
                                            times[i:i + 1])
                for i in range(len(ldr))]
        try:
            return torch.cat([run.result() for run in runs])
        finally:  # torch's count for threads yet to start is global: give it back
            torch.set_num_threads(self.cores)

    @torch.inference_mode()  # thread-local, as autocast is
    def _run_in_thread(self, threads: int, ldr: torch.Tensor, times: torch.Tensor
                       ) -> torch.Tensor:
        torch.set_num_threads(threads)  # this thread's own count
        return self._run_whole_or_tiled(ldr, times)

    def _run(self, ldr: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        padder = InputPadder(ldr.shape[-2], ldr.shape[-1], self.spec.pad_multiple)
        ldr = padder.pad(ldr)
        with torch.autocast(self.device.type, self.dtype, enabled=self.dtype is not None):
            hdr = self.spec.forward(self.model, ldr, times)
        return padder.unpad(hdr).float().clamp_min(0)

    def _run_tiled(self, ldr: torch.Tensor, times: torch.Tensor, overlap: int = 32) -> torch.Tensor:
        height, width = ldr.shape[-2:]
        out = torch.zeros(ldr.shape[0], 3, height, width, device=ldr.device)
        total = torch.zeros(1, 1, height, width, device=ldr.device)
        for top, bottom in tiles(height, self.tile, overlap):
            for left, right in tiles(width, self.tile, overlap):
                weight = (feather(bottom - top, top, bottom, height, overlap)[:, None] *
                          feather(right - left, left, right, width, overlap)).to(ldr.device)
                hdr = self._run(ldr[..., top:bottom, left:right], times)
                out[..., top:bottom, left:right] += hdr * weight
                total[..., top:bottom, left:right] += weight
        return out / total

    def predict(self, frames: Sequence[np.ndarray], times: Sequence[float]) -> np.ndarray:
        """One window of R'G'B' float32 (H, W, 3) frames and their exposures -> HDR (H, W, 3)."""
        ldr = torch.stack([self.prepare(f) for f in frames])[None]
        hdr = self.predict_torch(ldr, torch.tensor([list(times)]))
        return hdr[0].permute(1, 2, 0).cpu().numpy()


def ycbcr_to_rgb(ycbcr: YCbCr, device: torch.device) -> torch.Tensor:
    """Y'CbCr planes -> R'G'B' float32 (3, H, W) in [0, 1] on ``device``, upright: only the
    planes' integers cross to it. Equals `YCbCr.to_rgb` (same matrix; bilinear centre-sited
    chroma upsampling, which ``align_corners=False`` computes) to float rounding."""
    y, cb, cr = (_codes(plane, device) for plane in ycbcr.planes)
    if cb.shape != y.shape:
        cb, cr = F.interpolate(torch.stack([cb, cr])[None], y.shape, mode="bilinear",
                               align_corners=False)[0]
    rgb = ycbcr_to_rgb_torch(torch.stack([y, cb, cr]), torch.from_numpy(ycbcr.matrix).to(device))
    return torch.rot90(rgb, -ycbcr.turns, dims=(1, 2)).contiguous() if ycbcr.turns else rgb


def _codes(plane: np.ndarray, device: torch.device) -> torch.Tensor:
    """A uint8 or uint16 plane's code values, float32 on ``device``. uint16 crosses as int16
    (torch < 2.3 has no uint16) and is wrapped back there."""
    if plane.dtype == np.uint16:
        return torch.from_numpy(plane.view(np.int16)).to(device).float().remainder_(65536)
    return torch.from_numpy(plane).to(device).float()


def interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """`numpy.interp` for ascending ``xp``: piecewise linear, constant beyond the ends."""
    right = torch.searchsorted(xp, x.contiguous()).clamp_(1, len(xp) - 1)
    x0, x1, f0, f1 = xp[right - 1], xp[right], fp[right - 1], fp[right]
    return torch.lerp(f0, f1, ((x - x0) / (x1 - x0)).clamp_(0, 1))
