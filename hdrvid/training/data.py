"""Training windows synthesised on the fly from a data folder (docs/conventions.md §9): the one
`hdrvid train --data` names, else ``$HDRVID_DATA`` (`data_folder`).

Two sources, both re-exposed with the §9.2 recipe (sensor-like noise, gamma 2.2, 8-bit), most
windows then passed through an H.264 4:2:0 encoder as a camera's file is:
  * DAVIS LDR video made pseudo-HDR by Chen21's inverse-CRF recipe: real motion;
  * real HDR photographs under a seeded camera path (pan, zoom, rotation, jitter) with a moving
    patch: real highlights and shadows, synthetic motion.
Radiance is scaled per window as HDRFlow's recipe does (docs/models/hdrflow.md §7.2), or, for
some photograph windows, as a camera exposes: the short exposure set just under the whole
photograph's highlights, so most of a high-contrast scene lies in the deep shadows, as it does in
real footage and in benchmarks/quality.py. Then it is clipped to [0, 1]: the ground truth of
every frame, 1.0 = the clipping point of the shortest exposure.

The sources of benchmarks/quality.py are never used for training, and `VALIDATION` ones only
for validation. Every window is a pure function of (seed, index).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import torch

from hdrvid.errors import HdrvidError
from hdrvid.synth import expose
from hdrvid.tonemap import luminance_bt709

DATA_ENV = "HDRVID_DATA"  # the data folder when --data is not given
# held aside for benchmarks/quality.py
BENCHMARK_STILLS = ("StillLife", "CandleGlass", "Desk", "GoldenGate", "Tree", "Bonita")
BENCHMARK_VIDEOS = ("blackswan", "car-roundabout", "dance-twirl", "soapbox")
TRAIN_STILLS = ("MtTamWest", "Adjuster", "Cannon", "Carrots", "StageEnvLatLong",
                "KernerEnvLatLong", "MtTamNorth", "CrissyField", "Flowers", "StarField")
TRAIN_VIDEOS = ("breakdance", "camel", "cows", "dog", "drift-chicane", "drift-straight",
                "libby", "motocross-jump", "paragliding-launch", "scooter-black")
VALIDATION = (("Rec709",), ("goat",))


def data_folder(option: str | Path | None = None) -> Path:
    """The training data folder: ``option`` (``--data``), else ``$HDRVID_DATA``; it must hold
    hdr/ (HDR photographs as EXR) and ldr-video/ (folders of JPEG frames)."""
    given = option or os.environ.get(DATA_ENV)
    if not given:
        raise HdrvidError(f"no training data folder: pass --data DIR or set {DATA_ENV} to a "
                          "folder holding hdr/ and ldr-video/")
    folder = Path(given)
    if not folder.is_dir():
        source = "--data" if option else DATA_ENV
        raise HdrvidError(f"{folder} ({source}): no such folder; pass --data DIR or set "
                          f"{DATA_ENV} to a folder holding hdr/ and ldr-video/")
    return folder


@dataclass(frozen=True)
class Recipe:
    """How windows are drawn: size, exposure count and the training range of the stops."""

    period: int = 2
    window: int = 3
    crop: int = 128
    stops_2e: tuple[float, float] = (2.0, 3.0)
    stops_3e: tuple[float, float] = (1.7, 2.3)
    still_fraction: float = 0.4
    # the share of photograph windows exposed for the photograph's highlights rather than by
    # HDRFlow's recipe, which lifts the crop's own top into range and so rarely shows the
    # noisy, quantised deep shadows that a high-contrast scene puts in every frame; a camera
    # holding a lamp or the sun sets its short exposure up to a few stops under the percentile
    highlight_fraction: float = 0.5
    highlight_percentile: tuple[float, float] = (99.0, 99.9)
    highlight_headroom: tuple[float, float] = (0.0, 4.0)  # stops
    # the share of windows encoded as 8-bit H.264 4:2:0, and its quality range: without it the
    # nets never see the chroma blur and blocking of the footage they run on
    codec_fraction: float = 0.75
    crf: tuple[int, int] = (8, 24)


@cache
def _load_still(path: Path) -> np.ndarray:
    from hdrvid.exr import read_exr

    return np.ascontiguousarray(read_exr(path)[0], dtype=np.float32)


HIGHLIGHT_PERCENTILES = np.linspace(90, 100, 101)  # the table `_highlights` interpolates


@cache
def _luminance_percentiles(path: Path) -> np.ndarray:
    """The photograph's luminance at each of `HIGHLIGHT_PERCENTILES`: computed once per
    photograph, where a percentile per window would sort the whole image each time."""
    return np.percentile(luminance_bt709(_load_still(path)), HIGHLIGHT_PERCENTILES)


def _highlights(path: Path, percentile: float) -> float:
    """The photograph's luminance at ``percentile`` (90 to 100), interpolated."""
    return max(float(np.interp(percentile, HIGHLIGHT_PERCENTILES, _luminance_percentiles(path))),
               1e-6)


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    if image is None:
        raise FileNotFoundError(f"{path}: cannot read the image")
    return image[..., ::-1].astype(np.float32) / 255


class WindowSynth:
    """``synth[i]`` -> {"ldr": (n, 3, c, c) gamma 2.2, "times": (n,), "gt": (n, 3, c, c) linear}."""

    def __init__(self, recipe: Recipe, stills=TRAIN_STILLS, videos=TRAIN_VIDEOS, *, data: Path,
                 seed: int = 0):
        self.recipe, self.seed, self.data = recipe, seed, Path(data)
        self.stills = [self.data / "hdr" / f"{name}.exr" for name in stills]
        self.videos = [sorted((self.data / "ldr-video" / name).glob("*.jpg")) for name in videos]
        missing = [p for p in self.stills if not p.is_file()] + \
            [name for name, frames in zip(videos, self.videos) if not frames]
        if missing:
            raise FileNotFoundError(f"training data missing in {self.data}: {missing[:3]}")

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((self.seed, index))
        r = self.recipe
        highlights = None
        if self.stills and (not self.videos or rng.random() < r.still_fraction):
            frames, flows, highlights = self._still_window(rng)
        else:
            frames = self._video_window(rng)
            flows = [_consistent_flow(frames[r.window // 2], frame) for frame in frames]
        if rng.random() < 0.5:
            frames, flows = frames[::-1], flows[::-1]
        permutation = rng.permutation(3)
        frames = [np.ascontiguousarray(f[..., permutation]) for f in frames]
        times = self._times(rng)
        truth = self._scale(frames, times, rng, highlights)
        noise = (rng.uniform(1e-5, 1e-3), rng.uniform(1e-7, 1e-5))
        ldr = [np.round(expose(h, t, rng, noise) * 255) / 255 for h, t in zip(truth, times)]
        if rng.random() < r.codec_fraction:
            ldr = through_codec(ldr, int(rng.integers(r.crf[0], r.crf[1] + 1)))
        as_tensor = lambda xs: torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float()
        return {"ldr": as_tensor(ldr), "gt": as_tensor(truth),
                "times": torch.tensor(times, dtype=torch.float32),
                "flow": torch.from_numpy(np.stack(flows))}

    def _times(self, rng: np.random.Generator) -> list[float]:
        """Relative exposures of the window; the reference's level is drawn at random."""
        r = self.recipe
        stops = rng.uniform(*(r.stops_2e if r.period == 2 else r.stops_3e))
        cycle = [2.0 ** (stops * k) for k in range(r.period)]
        start = int(rng.integers(r.period))
        return [cycle[(start + i) % r.period] for i in range(r.window)]

    def _scale(self, frames: list[np.ndarray], times: list[float], rng: np.random.Generator,
               highlights: float | None = None) -> list[np.ndarray]:
        """Radiance scaling, then clipping to [0, 1]: the photograph's ``highlights`` (a high
        luminance percentile of the whole image) at 1.0 for `Recipe.highlight_fraction` of the
        windows that have them, else HDRFlow's scaling from the reference."""
        c = len(frames) // 2
        ref = frames[c]
        if highlights is not None and rng.random() < self.recipe.highlight_fraction:
            anchor, target = highlights, 2.0 ** -rng.uniform(*self.recipe.highlight_headroom)
        elif times[c] == min(times):
            anchor = float(ref.max())
            target = anchor * rng.uniform(0.1, 0.8)
        else:
            anchor = float(np.percentile(ref, rng.uniform(98, 100)))
            target = rng.uniform(anchor, 1.0) if anchor < 1 else anchor
        gain = target / (anchor + 1e-8)
        return [np.clip(f * gain, 0, 1).astype(np.float32) for f in frames]

    def _video_window(self, rng: np.random.Generator) -> list[np.ndarray]:
        """Consecutive DAVIS frames (stride 1 or 2), rescaled and cropped, made pseudo-HDR."""
        r = self.recipe
        files = self.videos[rng.integers(len(self.videos))]
        stride = int(rng.integers(1, 3))
        start = int(rng.integers(0, len(files) - stride * (r.window - 1)))
        images = [_read_rgb(files[start + stride * i]) for i in range(r.window)]
        h, w = images[0].shape[:2]
        scale = rng.uniform(max(r.crop / h, 0.5), 1.0)
        size = (max(r.crop, round(w * scale)), max(r.crop, round(h * scale)))
        y0, x0 = rng.integers(0, size[1] - r.crop + 1), rng.integers(0, size[0] - r.crop + 1)
        flip = rng.random() < 0.5
        n = float(np.clip(rng.normal(0.65, 0.1), 0.4, 0.9))
        sigma = float(np.clip(rng.normal(0.6, 0.1), 0.4, 0.8))
        out = []
        for image in images:
            y = cv2.resize(image, size, interpolation=cv2.INTER_AREA)[y0:y0 + r.crop,
                                                                     x0:x0 + r.crop]
            y = np.clip(y[:, ::-1] if flip else y, 0, 1)
            out.append(((sigma * y / (1 + sigma - y)) ** (1 / n)).astype(np.float32))
        return out

    def _still_window(self, rng: np.random.Generator
                      ) -> tuple[list[np.ndarray], list[np.ndarray], float]:
        """A seeded camera path over a real HDR photograph, plus a moving patch; with the exact
        flow (2, c, c) from the reference to each frame (NaN where unknown: the patch, and
        points that leave the crop), and the photograph's highlight luminance."""
        r = self.recipe
        path = self.stills[rng.integers(len(self.stills))]
        highlights = _highlights(path, float(rng.uniform(*r.highlight_percentile)))
        image = _load_still(path)
        scale = rng.uniform(0.35, 1.0)
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
        centre = np.array([rng.uniform(r.crop, max(r.crop + 1, w - r.crop)),
                           rng.uniform(r.crop, max(r.crop + 1, h - r.crop))])
        speed = rng.uniform(0, 30 if rng.random() < 0.2 else 8)
        direction = rng.uniform(0, 2 * np.pi)
        velocity = speed * np.array([np.cos(direction), np.sin(direction)])
        spin, zoom = rng.uniform(-0.3, 0.3), 1 + rng.uniform(-0.01, 0.01)
        patch = None
        if rng.random() < 0.5:
            ph, pw = rng.integers(r.crop // 6, r.crop // 2, size=2)
            py, px = rng.integers(0, h - ph), rng.integers(0, w - pw)
            patch = image[py:py + ph, px:px + pw]
            # its radiance 0.05-20× the background's (docs/conventions.md §9.3): some of it clips
            patch = patch * (rng.uniform(0.05, 20) * float(np.median(image)) /
                             max(float(np.median(patch)), 1e-6))
            patch_start = rng.uniform(0, r.crop - max(ph, pw), size=2)
            patch_velocity = rng.uniform(-6, 6, size=2)
        c = r.window // 2
        frames, cameras, boxes = [], [], []
        for i in range(r.window):
            k = i - c
            at = centre + velocity * k + rng.normal(0, 0.5, 2)
            m = cv2.getRotationMatrix2D((float(at[0]), float(at[1])), spin * k, zoom ** k)
            m[:, 2] += np.array([r.crop / 2, r.crop / 2]) - at
            frame = cv2.warpAffine(image, m, (r.crop, r.crop), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT)
            if patch is not None:
                x, y = np.clip(patch_start + patch_velocity * k, 0,
                               [r.crop - patch.shape[1], r.crop - patch.shape[0]]).astype(int)
                frame[y:y + patch.shape[0], x:x + patch.shape[1]] = patch
                boxes.append((x, y, x + patch.shape[1], y + patch.shape[0]))
            frames.append(frame)
            cameras.append(np.vstack([m, [0, 0, 1]]))
        boxes = boxes or [None] * r.window
        return frames, [_camera_flow(cameras[c], camera, boxes[c], box, r.crop)
                        for camera, box in zip(cameras, boxes)], highlights


def through_codec(frames: list[np.ndarray], crf: int) -> list[np.ndarray]:
    """The frames (R'G'B' in [0, 1]) encoded as one 8-bit H.264 4:2:0 clip and decoded back,
    through the same writer and reader as `hdrvid convert`'s input."""
    from hdrvid.encode import VideoWriter
    from hdrvid.video import read_frames

    h, w = frames[0].shape[:2]
    with tempfile.TemporaryDirectory(prefix="hdrvid-window-") as folder:
        path = Path(folder) / "window.mp4"
        with VideoWriter(path, w, h, crf=crf, preset="veryfast") as writer:
            for frame in frames:
                writer.write(frame)
        return [np.ascontiguousarray(frame.rgb[:h, :w]) for frame in read_frames(path)]


def _camera_flow(reference: np.ndarray, other: np.ndarray, reference_box, other_box,
                 size: int) -> np.ndarray:
    """Flow (2, size, size) from the reference crop to another, both affine views (3×3, image
    -> crop) of one photograph; NaN inside either frame's pasted patch and where the point
    leaves the crop."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    mapping = other @ np.linalg.inv(reference)
    tx = mapping[0, 0] * xs + mapping[0, 1] * ys + mapping[0, 2]
    ty = mapping[1, 0] * xs + mapping[1, 1] * ys + mapping[1, 2]
    flow = np.stack([tx - xs, ty - ys]).astype(np.float32)
    unknown = (tx < 0) | (tx > size - 1) | (ty < 0) | (ty > size - 1)
    for box, (px, py) in ((reference_box, (xs, ys)), (other_box, (tx, ty))):
        if box is not None:
            unknown |= (px >= box[0] - 1) & (px < box[2] + 1) & (py >= box[1] - 1) & \
                (py < box[3] + 1)
    flow[:, unknown] = np.nan
    return flow


def _consistent_flow(reference: np.ndarray, other: np.ndarray, tolerance: float = 0.5
                     ) -> np.ndarray:
    """DIS flow (2, h, w) from the clean reference to another clean frame, NaN where the forward
    and backward flows disagree by more than ``tolerance`` px (occlusions, flat areas, mistakes).

    DIS on the clean ground truth erred by 0.03-0.07 px on windows with exact flow, far below
    what the flow net learns in a CPU budget: a pseudo-label for the video windows, which have
    no exact flow.
    """
    if reference is other:
        return np.zeros((2, *reference.shape[:2]), np.float32)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    to_u8 = lambda x: (np.clip(x.mean(axis=2), 0, 1) ** (1 / 2.2) * 255 + 0.5).astype(np.uint8)
    a, b = to_u8(reference), to_u8(other)
    forward, backward = dis.calc(a, b, None), dis.calc(b, a, None)
    h, w = a.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    back = cv2.remap(backward, xs + forward[..., 0], ys + forward[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=(np.nan, np.nan))
    flow = forward.transpose(2, 0, 1).copy()
    flow[:, ~(np.linalg.norm(forward + back, axis=2) <= tolerance)] = np.nan
    return flow


def collate(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([s[key] for s in samples]) for key in samples[0]}
