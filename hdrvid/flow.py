"""Classical optical flow: DIS (Kroeger et al. 2016) as OpenCV implements it, the frozen flow
under `merge` and `f2hdr` and the alignment of `hdrvid calibrate`.

An OpenCV DIS instance is not safe to share between threads, and it is not stateless either:
a flow between frames of one size depends on what size the instance saw before. Each thread
therefore keeps its own instances, one per settings *and frame size*, so that a flow is a pure
function of its two frames, whatever ran before in the process (docs/architecture.md).
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
               "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
_INSTANCES_PER_THREAD = 8  # frame sizes seen by one thread are few: video, tiles, crops

_THREAD = threading.local()


def dis_flow(source: np.ndarray, target: np.ndarray, preset: str = "medium",
             descent_iterations: int | None = None) -> np.ndarray:
    """DIS flow (H, W, 2) float32 from ``source`` to ``target`` (uint8 (H, W)): where each
    source pixel's content lies in ``target``."""
    instances: dict = vars(_THREAD).setdefault("dis", {})
    key = (preset, descent_iterations, source.shape)
    dis = instances.pop(key, None)
    if dis is None:
        dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
        if descent_iterations is not None:
            dis.setGradientDescentIterations(descent_iterations)
        if len(instances) >= _INSTANCES_PER_THREAD:
            del instances[next(iter(instances))]  # the least recently used
    instances[key] = dis  # last: most recently used
    return dis.calc(source, target, None)
