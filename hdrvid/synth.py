"""Synthetic alternating-exposure clips from known linear HDR scenes (docs/conventions.md §9).

Scenes are float32 (H, W, 3) linear Rec.709 frames on the output scale (1.0 = the clipping point
of the shortest exposure). `expose` turns one into the LDR frame a camera would record at
relative exposure t: sensor-like noise on the linear exposure, clipping, gamma 1/2.2; the
encoder then quantises it to 8 or 10 bits. Everything is deterministic for a seed.
"""

from __future__ import annotations

import fractions
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from hdrvid.encode import VideoWriter
from hdrvid.exposure import ExposurePattern
from hdrvid.response import oetf_gamma22
from hdrvid.video import ColorInfo


def expose(hdr: np.ndarray, t: float, rng: np.random.Generator | None = None,
           noise: tuple[float, float] = (2e-4, 2e-6)) -> np.ndarray:
    """Linear HDR (H, W, 3) -> gamma-2.2 LDR at relative exposure ``t``.

    noise: (a, b) of the Gaussian sensor noise with variance a·x + b on the linear exposure x.
    """
    x = np.clip(hdr * t, 0.0, 1.0)
    if rng is not None and any(noise):
        a, b = noise
        x = x + rng.standard_normal(x.shape, dtype=np.float32) * np.sqrt(a * x + b)
    return oetf_gamma22(x).astype(np.float32)


def write_alternating_clip(path: str | Path, scene: Iterable[np.ndarray], pattern: ExposurePattern,
                           fps: int = 24, seed: int = 0, crf: int = 12, bits: int = 8,
                           noise: tuple[float, float] = (2e-4, 2e-6),
                           tagged: bool = True, pts: list[int] | None = None,
                           time_base: fractions.Fraction | None = None) -> list[np.ndarray]:
    """Expose each scene frame with ``pattern`` and encode H.264 (8-bit) or HEVC (10-bit).

    Returns the scene frames (the ground truth), in order.
    """
    rng = np.random.default_rng(seed)
    truth: list[np.ndarray] = []
    writer = None
    for i, hdr in enumerate(scene):
        if writer is None:
            h, w = hdr.shape[:2]
            color = ColorInfo("bt709" if h >= 720 or tagged else "bt601", False, tagged)
            writer = VideoWriter(path, w, h, fps=fps, codec="libx264" if bits == 8 else "libx265",
                                 bits=bits, crf=crf, color=color, time_base=time_base)
        writer.write(expose(hdr, pattern.time(i), rng, noise), None if pts is None else pts[i])
        truth.append(hdr)
    if writer is not None:
        writer.close()
    return truth


# --- a procedural scene -----------------------------------------------------------------------

def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int,
                  channels: int = 1) -> np.ndarray:
    coarse = rng.random((height // cell + 2, width // cell + 2, channels), dtype=np.float32)
    fine = cv2.resize(coarse, ((width // cell + 2) * cell, (height // cell + 2) * cell),
                      interpolation=cv2.INTER_CUBIC)
    return fine.reshape(fine.shape[0], fine.shape[1], channels)[:height, :width]


def _disc(height: int, width: int, cx: float, cy: float, radius: float) -> np.ndarray:
    """Anti-aliased disc mask (H, W, 1) in [0, 1]."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    distance = np.hypot(xs - cx, ys - cy)
    return np.clip(radius + 0.5 - distance, 0.0, 1.0)[..., None]


def procedural_scene(n_frames: int, width: int = 640, height: int = 360, seed: int = 0,
                     pan: float = 1.5) -> Iterator[np.ndarray]:
    """A textured room lit by lamps many stops brighter than its walls, with a window, two
    moving objects and a slow camera pan. Yields linear HDR float32 (H, W, 3) frames.

    Walls lie around 0.003-0.1 (well exposed only in long exposures), the window around 0.2-0.8
    (clipped in long exposures), lamps reach 4-30 with glows (clipped even in the shortest).
    """
    rng = np.random.default_rng(seed)
    margin = int(abs(pan) * n_frames) + 8
    ch, cw = height, width + margin
    texture = 0.5 * _smooth_noise(rng, ch, cw, 24) + 0.35 * _smooth_noise(rng, ch, cw, 6)
    tint = 0.6 + 0.4 * _smooth_noise(rng, ch, cw, 96, 3)
    stripes = 0.75 + 0.25 * np.sign(np.sin(np.arange(cw, dtype=np.float32) / 9.0))[None, :, None]
    canvas = (0.003 + 0.09 * texture ** 2) * tint * stripes
    # a window: bright sky gradient with mullions
    x0, y0, ww, wh = cw // 3, height // 8, cw // 5, height // 3
    sky = np.linspace(0.8, 0.2, wh, dtype=np.float32)[:, None, None] * np.array([0.8, 0.9, 1.0])
    canvas[y0:y0 + wh, x0:x0 + ww] = sky
    canvas[y0:y0 + wh, x0 + ww // 2 - 2:x0 + ww // 2 + 2] = 0.01
    # lamps: cores far above clipping, glows that fall off over tens of pixels
    ys, xs = np.mgrid[0:ch, 0:cw].astype(np.float32)
    for _ in range(4):
        cx, cy = rng.uniform(0.05, 0.95) * cw, rng.uniform(0.1, 0.9) * height
        peak = rng.uniform(4.0, 30.0)
        colour = np.array([1.0, rng.uniform(0.7, 0.9), rng.uniform(0.4, 0.7)], dtype=np.float32)
        r2 = (xs - cx) ** 2 + (ys - cy) ** 2
        canvas += (peak * np.exp(-r2 / (2 * 3.0**2)) + 0.4 * np.exp(-r2 / (2 * 25.0**2)))[..., None] * colour
    canvas = canvas.astype(np.float32)
    bright_ball = (0.3 + 0.3 * _smooth_noise(rng, height, width, 8, 3)).astype(np.float32)
    dark_box = (0.01 + 0.03 * _smooth_noise(rng, height, width, 5, 3)).astype(np.float32)
    for i in range(n_frames):
        shift = np.float32([[1, 0, -pan * i - 4], [0, 1, 0]])
        frame = cv2.warpAffine(canvas, shift, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        ball = _disc(height, width, width * 0.2 + 5.0 * i, height * 0.7 - 2.0 * i, height * 0.12)
        frame = frame * (1 - ball) + bright_ball * ball
        box = np.zeros((height, width, 1), np.float32)
        bx = int(width * 0.75 - 3 * i) % width
        box[height // 2: height // 2 + height // 5, max(bx - 30, 0):bx + 30] = 1.0
        frame = frame * (1 - box) + dark_box * box
        yield frame.astype(np.float32)


# --- clips from real HDR stills and LDR video (../shared/data) --------------------------------

def camera_motion(image: np.ndarray, n_frames: int, width: int, height: int, seed: int = 0,
                  max_speed: float = 6.0) -> Iterator[np.ndarray]:
    """Frames of a seeded camera path over a linear HDR still: pan, slight zoom and rotation,
    with jitter (docs/conventions.md §9.3), plus one moving patch cut from the same image."""
    rng = np.random.default_rng(seed)
    ih, iw = image.shape[:2]
    scale = max(1.0, 1.6 * max(width / iw, height / ih))
    if scale > 1:
        image = cv2.resize(image, (round(iw * scale), round(ih * scale)), interpolation=cv2.INTER_CUBIC)
        ih, iw = image.shape[:2]
    speed = rng.uniform(0.3, 1.0) * max_speed
    angle = rng.uniform(0, 2 * np.pi)
    velocity = speed * np.array([np.cos(angle), np.sin(angle)])
    zoom_rate = 1 + rng.uniform(-0.005, 0.005)
    spin = np.deg2rad(rng.uniform(-0.2, 0.2))
    travel = velocity * n_frames
    centre = np.array([iw / 2, ih / 2]) - travel / 2
    jitter = cv2.GaussianBlur(rng.normal(0, 1.0, (n_frames, 2)).astype(np.float32), (1, 5), 1.5)
    patch_size = (height // 4, width // 5)
    py, px = rng.integers(0, ih - patch_size[0]), rng.integers(0, iw - patch_size[1])
    patch = image[py:py + patch_size[0], px:px + patch_size[1]] * rng.uniform(0.5, 3.0)
    patch_velocity = rng.uniform(-4, 4, 2)
    patch_start = np.array([rng.uniform(0.2, 0.6) * width, rng.uniform(0.2, 0.6) * height])
    for i in range(n_frames):
        c = centre + velocity * i + jitter[i]
        zoom = zoom_rate**i
        rotation = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), np.rad2deg(spin * i), zoom)
        rotation[:, 2] += np.array([width / 2, height / 2]) - c
        frame = cv2.warpAffine(image, rotation, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        x, y = (patch_start + patch_velocity * i).astype(int)
        x, y = np.clip(x, 0, width - patch_size[1]), np.clip(y, 0, height - patch_size[0])
        frame[y:y + patch_size[0], x:x + patch_size[1]] = patch
        yield frame.astype(np.float32)


def normalise_to_shortest(frames: list[np.ndarray], percentile: float = 99.5) -> list[np.ndarray]:
    """Scale a clip so that the given luminance percentile of its first frame sits at 1.0."""
    luminance = frames[0] @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    scale = 1.0 / max(float(np.percentile(luminance, percentile)), 1e-6)
    return [f * scale for f in frames]


def pseudo_hdr(ldr_frames: Iterable[np.ndarray], seed: int = 0) -> Iterator[np.ndarray]:
    """LDR video (R'G'B' in [0, 1]) to pseudo-HDR in [0, 1] by Chen21's recipe: a random
    sigmoid inverse camera curve ``x = (σy / (1 + σ − y))^(1/n)`` and a random scale."""
    rng = np.random.default_rng(seed)
    n = float(np.clip(rng.normal(0.65, 0.1), 0.4, 0.9))
    sigma = float(np.clip(rng.normal(0.6, 0.1), 0.4, 0.8))
    gain = rng.uniform(0.8, 1.2)
    for y in ldr_frames:
        y = np.clip(y, 0.0, 1.0)
        x = (sigma * y / (1 + sigma - y)) ** (1 / n)
        yield np.clip(x * gain, 0.0, 1.0).astype(np.float32)


def still_clip(path: str | Path, n_frames: int, width: int, height: int,
               seed: int = 0) -> list[np.ndarray]:
    """A camera-motion clip over the linear HDR still at ``path`` (EXR), normalised so that the
    99.5th luminance percentile of its first frame sits at 1.0."""
    from hdrvid.exr import read_exr

    image, _ = read_exr(path)
    frames = list(camera_motion(image.astype(np.float32), n_frames, width, height, seed=seed))
    return normalise_to_shortest(frames)


def ldr_video_clip(folder: str | Path, n_frames: int, width: int, height: int,
                   seed: int = 0) -> list[np.ndarray]:
    """Pseudo-HDR frames from the first ``n_frames`` images (sorted by name) of ``folder``."""
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".png"))
    ldr = (cv2.resize(cv2.imread(str(f))[..., ::-1], (width, height),
                      interpolation=cv2.INTER_AREA).astype(np.float32) / 255
           for f in files[:n_frames])
    return list(pseudo_hdr(ldr, seed=seed))


# --- hdrvid simulate ---------------------------------------------------------------------------

def source_frames(source: str | Path, n_frames: int, width: int, height: int,
                  seed: int = 0) -> list[np.ndarray]:
    """Linear HDR frames from ``source``: a folder of EXRs (a sequence, used as it is after
    resizing), one EXR (a still under a seeded camera path), or an LDR video file or folder of
    images (made pseudo-HDR by Chen21's recipe). Scaled so that the 99.5th luminance percentile of
    the first frame sits at 1.0 (the shortest exposure's clipping point)."""
    from hdrvid.errors import InputError
    from hdrvid.exr import read_exr

    source = Path(source)
    if not source.exists():
        raise InputError(f"{source}: no such file or folder; pass an EXR, a folder of EXRs, a "
                         "video or a folder of images")
    resize = lambda f: cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA)
    if source.is_dir() and (exrs := sorted(source.glob("*.exr"))):
        frames = [resize(read_exr(p)[0].astype(np.float32)) for p in exrs[:n_frames]]
    elif source.suffix.lower() == ".exr":
        image, _ = read_exr(source)
        frames = list(camera_motion(image.astype(np.float32), n_frames, width, height, seed=seed))
    elif source.is_dir():
        frames = ldr_video_clip(source, n_frames, width, height, seed=seed)
    else:
        from hdrvid.video import read_frames

        ldr = (resize(frame.rgb) for frame in read_frames(source, max_frames=n_frames))
        frames = list(pseudo_hdr(ldr, seed=seed))
    if not frames:
        raise InputError(f"{source}: no frames found")
    return normalise_to_shortest(frames)


def simulate(source: str | Path, output: str | Path, pattern: ExposurePattern,
             n_frames: int = 48, width: int = 640, height: int = 360, seed: int = 0,
             noise: tuple[float, float] = (2e-4, 2e-6), crf: int = 12, bits: int = 8,
             fps: int = 24) -> Path:
    """Render an alternating-exposure clip with its ground truth into ``output``:
    ``input.mp4`` (H.264 8-bit, or HEVC 10-bit), ``exposures.txt`` (stops per frame, as
    `hdrvid convert --exposure-file` reads it) and ``gt/frame_NNNNNN.exr`` (linear, half float,
    1.0 = the clipping point of the shortest exposure). Deterministic for a seed."""
    from hdrvid.exr import ExrSequenceWriter

    output = Path(output)
    truth = source_frames(source, n_frames, width, height, seed)
    (output / "gt").mkdir(parents=True, exist_ok=True)
    write_alternating_clip(output / "input.mp4", truth, pattern, fps=fps, seed=seed, crf=crf,
                           bits=bits, noise=noise)
    lines = [f"frame_{i:06d} {np.log2(pattern.time(i)):.4f}" for i in range(len(truth))]
    (output / "exposures.txt").write_text("# stops relative to the shortest exposure\n" +
                                          "\n".join(lines) + "\n")
    writer = ExrSequenceWriter(output / "gt", fps=fractions.Fraction(fps),
                               attributes={"hdrvid:scale": 1.0})
    for i, frame in enumerate(truth):
        writer.write(i, frame)
    writer.close()
    return output
