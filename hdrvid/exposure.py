"""Exposure patterns: which relative exposure each frame has (numpy only).

A clip is described by `ExposurePattern(times, phase)`: ascending relative times with the
shortest equal to 1, and the level of frame 0. Frame i has level ``(i + phase) % period``
(docs/conventions.md §3.1). Patterns come from the user (``--exposures``, ``--stops``, a sidecar
file) or from `detect_exposure_pattern`, which fits a cycle to the steps between neighbouring
frames (`steps.py` measures them).
"""

from __future__ import annotations

import itertools
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hdrvid.errors import ExposureError
from hdrvid.response import Response
from hdrvid.steps import (
    WEAK_FRACTION,
    brightness_quantiles,
    log2_ratio,
    measure_steps,
    pair_steps,
    trusted_fraction,
)
from hdrvid.video import VideoInfo, read_frames

LEVEL_NAMES = {2: ("low", "high"), 3: ("low", "mid", "high")}
DETECTION_FRAMES = 24
MIN_CONFIDENCE = 0.5
MIN_STEP_STOPS = 0.5


@dataclass(frozen=True)
class ExposurePattern:
    """Relative exposure times of an alternating clip.

    times: ascending, ``times[0] == 1`` (the shortest exposure). phase: level of frame 0.
    source: where the pattern came from; confidence: of a detection, in [0, 1].
    """

    times: tuple[float, ...]
    phase: int = 0
    source: str = "given"
    confidence: float | None = None
    # what detection could not measure and assumed instead (said in a warning and hdrvid.json)
    assumed: str | None = None

    def __post_init__(self) -> None:
        if len(self.times) not in (2, 3):
            raise ExposureError(f"{len(self.times)} exposures per cycle: hdrvid supports 2 or 3")
        if any(b <= a for a, b in zip(self.times, self.times[1:])) or self.times[0] != 1:
            raise ExposureError(f"exposure times {self.times} must increase from 1")

    @property
    def period(self) -> int:
        return len(self.times)

    @property
    def stops(self) -> tuple[float, ...]:
        """Stops of each level above the shortest exposure."""
        return tuple(math.log2(t) for t in self.times)

    def level(self, index: int) -> int:
        return (index + self.phase) % self.period

    def time(self, index: int) -> float:
        """Relative exposure time of frame ``index``."""
        return self.times[self.level(index)]

    def describe(self) -> str:
        times = ", ".join(f"{t:g}" for t in self.times)
        steps = ", ".join(f"{b - a:.2g}" for a, b in zip(self.stops, self.stops[1:]))
        first = LEVEL_NAMES[self.period][self.phase]
        text = f"{self.period} exposures {times} ({steps} stops apart), frame 0 is {first}"
        return text + (f", confidence {self.confidence:.2f}" if self.confidence is not None else "")

    def as_dict(self) -> dict:
        return {"period": self.period, "times": list(self.times), "stops": list(self.stops),
                "phase": self.phase, "source": self.source, "confidence": self.confidence,
                "assumed": self.assumed}


def pattern_from_cycle(cycle: Sequence[float], source: str = "given") -> ExposurePattern:
    """Relative times of frames 0, 1[, 2] (any scale) to a pattern; rejects descending 3-cycles."""
    values = [float(v) for v in cycle]
    if len(values) not in (2, 3) or min(values) <= 0:
        raise ExposureError(f"exposures {values}: give 2 or 3 positive relative exposure times, "
                            "e.g. --exposures 1,8 or --exposures 1,4,16")
    low = int(np.argmin(values))
    ordered = values[low:] + values[:low]
    if len(set(values)) != len(values) or ordered != sorted(ordered):
        raise ExposureError(f"exposures {values}: a cycle must go low, mid, high (in some "
                            "rotation) with distinct values; hdrvid models expect ascending cycles")
    times = tuple(t / ordered[0] for t in ordered)
    return ExposurePattern(times, phase=(-low) % len(values), source=source)


def parse_exposures(text: str) -> ExposurePattern:
    """``"1,8"`` -> exposures of frames 0 and 1 (relative times). ``"8,1"`` starts high."""
    try:
        values = [float(v) for v in re.split(r"[,\s]+", text.strip()) if v]
    except ValueError as exc:
        raise ExposureError(f"--exposures {text!r}: expected numbers such as 1,8 or 1,4,16") from exc
    return pattern_from_cycle(values, source="--exposures")


def pattern_from_stops(stops: float, cycle: int, phase: int = 0) -> ExposurePattern:
    """``stops`` between neighbouring levels and a cycle of 2 or 3 exposures."""
    if cycle not in (2, 3):
        raise ExposureError(f"--cycle {cycle}: must be 2 or 3")
    if not 0 < stops <= 8:
        raise ExposureError(f"--stops {stops}: must be between 0 and 8")
    times = tuple(2.0 ** (stops * k) for k in range(cycle))
    return ExposurePattern(times, phase=phase % cycle, source="--stops")


def read_exposure_file(path: str | Path) -> ExposurePattern:
    """A sidecar file of exposures in stops, one per line (as the datasets' Exposures.txt).

    Either one value per level (a cycle starting at frame 0) or one value per frame, which must
    repeat with a period of 2 or 3. Blank lines and ``#`` comments are ignored; a line may hold a
    file name before the value.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ExposureError(f"{path}: cannot read the exposure file ({exc.strerror})") from exc
    values, line_numbers = [], []
    for number, line in enumerate(lines, 1):
        fields = line.split("#")[0].split()
        if not fields:
            continue
        try:
            values.append(float(fields[-1]))
        except ValueError as exc:
            raise ExposureError(f"{path}:{number}: {fields[-1]!r} is not a number of stops") from exc
        line_numbers.append(number)
    if len(values) < 2:
        raise ExposureError(f"{path}: needs at least 2 exposures (in stops), one per line")
    if len(values) <= 3:
        try:
            return replace(pattern_from_cycle([2.0**v for v in values]), source=str(path))
        except ExposureError as exc:
            raise ExposureError(f"{path}: {exc}") from exc
    for period in (2, 3):
        cycle = values[:period]
        bad = [i for i, v in enumerate(values) if abs(v - cycle[i % period]) > 1e-3]
        if not bad and len(set(cycle)) == period:
            return replace(pattern_from_cycle([2.0**v for v in cycle]), source=str(path))
    if len(set(values)) == 1:
        raise ExposureError(f"{path}: every frame has the same exposure; hdrvid needs "
                            "alternating exposures")
    first_bad = _first_break(values)
    raise ExposureError(f"{path}:{line_numbers[first_bad]}: exposure {values[first_bad]:g} breaks "
                        "the 2- or 3-frame cycle of the lines above; the cycle must not change")


def _first_break(values: list[float]) -> int:
    """Index of the first value that neither a period-2 nor a period-3 cycle explains."""
    best = 0
    for period in (2, 3):
        i = next((i for i, v in enumerate(values) if abs(v - values[i % period]) > 1e-3),
                 len(values))
        best = max(best, i)
    return min(best, len(values) - 1)


# --- detection ---------------------------------------------------------------------------------

def detect_exposure_pattern(frames: Sequence[np.ndarray]) -> ExposurePattern:
    """Detect the cycle length, phase and exposure ratios from gamma-2.2 R'G'B' frames.

    frames: the first ~24 frames of a clip, float (H, W, 3) in [0, 1]. The log ratio between each
    pair of neighbouring frames is fitted with a cycle of 2 and of 3; the better fit wins if its
    steps are larger than half a stop and it explains the pairs consistently. When a long
    exposure is so clipped that some pairs cannot be measured, the cycle and its order come
    from the frames' brightness, which repeats with the cycle, and the unmeasured steps from
    the others: the steps of a cycle add up to 0, and a step nothing can tell is assumed equal
    to its neighbour (``assumed`` says so). Stops are rounded to the nearest third of a stop
    (the cameras' exposure step), a step into almost all clipped frames to the whole stop
    (`_snap_weak_steps`); pass --exposures for others. Static pairs are also measured pixel by
    pixel (`pair_steps`).
    """
    if len(frames) < 4:
        raise ExposureError(f"only {len(frames)} frames: exposure detection needs at least 4; pass "
                            "--exposures (e.g. --exposures 1,8)")
    quantiles = [brightness_quantiles(f) for f in frames]
    steps = pair_steps(frames, quantiles)
    if np.isnan(steps).all():
        raise ExposureError("could not measure any exposure ratio between neighbouring frames "
                            "(frames almost all black or clipped); pass --exposures (e.g. "
                            "--exposures 1,8) or --stops N --cycle 2|3")
    fits = [_fit_cycle(steps, period) for period in (2, 3)]
    deltas, confidence = max(fits, key=lambda fit: fit[1])
    assumed = None
    if min(abs(d) for d in deltas) < MIN_STEP_STOPS or confidence < MIN_CONFIDENCE:
        if np.isnan(steps).sum() <= len(steps) // 4:  # measured, and no cycle in it
            measured = ", ".join(f"{s:+.1f}" for s in steps[:8] if not math.isnan(s))
            raise ExposureError(
                f"the video does not alternate exposures in a 2- or 3-frame cycle (stops between "
                f"neighbouring frames: {measured}); pass --exposures 1,8 (or --stops N --cycle "
                "2|3, or --exposure-file) if it does")
        brightness = np.array([float(q.mean()) for q in quantiles])
        deltas, confidence, assumed = _fit_with_gaps(steps, brightness)
    # exposure (stops) of frame classes i % P, from the per-pair steps
    class_stops = np.concatenate([[0.0], np.cumsum(deltas[:-1])])
    class_stops = class_stops - class_stops.min()
    period = len(deltas)
    weak = [float(np.median([trusted_fraction(q) for q in quantiles[k::period]])) < WEAK_FRACTION
            for k in range(period)]
    if assumed is None and any(weak):
        class_stops, assumed = _snap_weak_steps(class_stops, weak)
    else:
        class_stops = _snap_thirds(class_stops)
    pattern = pattern_from_cycle([2.0**s for s in class_stops], source="detected")
    return replace(pattern, confidence=round(confidence, 3), assumed=assumed)


def _fit_with_gaps(steps: np.ndarray, brightness: np.ndarray
                   ) -> tuple[np.ndarray, float, str | None]:
    """The cycle of a clip whose steps are partly unmeasurable: (steps per class of pair,
    confidence, what was assumed). The period and which frame is which level come from the
    frames' mean brightness, which repeats with the cycle; each step measured in its class is
    kept, one missing step follows from the others (they add up to 0), and with two missing
    (3 exposures, one step measured) the cycle is taken to have equal steps in stops."""
    candidates = []
    for period in (2, 3):
        classes = np.arange(len(brightness)) % period
        levels = np.array([np.median(brightness[classes == c]) for c in range(period)])
        gap = float(np.min(np.diff(np.sort(levels))))
        spread = float(np.median(np.abs(brightness - levels[classes])))
        periodicity = max(0.0, 1.0 - 2.0 * spread / gap) if gap > 0.01 else 0.0
        candidates.append((periodicity, period, levels))
    periodicity, period, levels = max(candidates, key=lambda c: c[0])
    classes = np.arange(len(steps)) % period
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # unmeasured classes stay NaN
        deltas = np.array([np.nanmedian(steps[classes == c]) for c in range(period)])
    expected_sign = np.sign(np.roll(levels, -1) - levels)  # brighter next frame: a step up
    measured = ~np.isnan(deltas)
    consistent = np.all(np.sign(deltas[measured]) == expected_sign[measured])
    if periodicity < MIN_CONFIDENCE or not consistent or not measured.any():
        unmeasured = int(np.isnan(steps).sum())
        raise ExposureError(
            f"could not measure the exposure ratio of {unmeasured} of {len(steps)} pairs of "
            "neighbouring frames, and the rest show no steady 2- or 3-frame cycle; pass "
            "--exposures (e.g. --exposures 1,4,16) or --stops N --cycle 2|3")
    assumed = None
    if (~measured).sum() == 1:
        deltas[~measured] = -deltas[measured].sum()
    elif (~measured).sum() == 2:  # 3 exposures: low -> mid -> high -> low, one step known
        known = int(np.flatnonzero(measured)[0])
        span = -deltas[known] if expected_sign[known] < 0 else 2 * deltas[known]
        deltas = np.where(expected_sign > 0, span / 2, -span)
        assumed = ("2 of the 3 exposure steps could not be measured (the long frames are almost "
                   f"all clipped): equal steps of {span / 2:.2g} stops are assumed; pass "
                   "--exposures if they differ")
    residual = float(np.nanmedian(np.abs(steps - deltas[classes])))
    smallest = float(np.min(np.abs(deltas)))
    if smallest < MIN_STEP_STOPS:
        raise ExposureError(
            f"the video does not alternate exposures in a 2- or 3-frame cycle (the steps it shows "
            f"are under {MIN_STEP_STOPS} stop); pass --exposures 1,8 (or --stops N --cycle 2|3, "
            "or --exposure-file) if it does")
    confidence = min(periodicity, max(0.0, 1.0 - 2.0 * residual / smallest))
    return deltas, confidence * (0.5 if assumed else 1.0), assumed


def _fit_cycle(steps: np.ndarray, period: int) -> tuple[np.ndarray, float]:
    """Fit per-pair steps with a cycle: (steps per class of pair, summing to 0; confidence).

    The confidence falls from 1 as the median residual grows to half the smallest step."""
    classes = np.arange(len(steps)) % period
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN classes are handled below
        deltas = np.array([np.nanmedian(steps[classes == c]) for c in range(period)])
    missing = np.isnan(deltas)
    if missing.sum() == 1:  # e.g. the 4-stop high -> low step of a clip with little overlap
        deltas[missing] = -np.nansum(deltas)
    elif missing.any():
        return np.zeros(period), 0.0
    # a cycle returns to where it started; subtracting the mean also removes a brightness
    # drift of the scene, which adds the same amount to every step
    deltas -= deltas.mean()
    residual = float(np.nanmedian(np.abs(steps - deltas[classes])))
    smallest = float(np.min(np.abs(deltas)))
    confidence = max(0.0, 1.0 - 2.0 * residual / smallest) if smallest > 0 else 0.0
    return deltas, confidence


def _snap_thirds(stops: np.ndarray) -> np.ndarray:
    """Round to the nearest third of a stop, the exposure step of cameras: detection under
    motion is good to about ±0.15 stop, and a wrong ratio makes merged frames flicker."""
    return np.round(stops * 3) / 3


def _snap_weak_steps(stops: np.ndarray, weak: Sequence[bool]) -> tuple[np.ndarray, str | None]:
    """Stops per frame class, each step between levels rounded to thirds, or to a whole stop
    where one of its levels is ``weak``: almost all clipped (or black), so the step rests on the
    scene's few extreme pixels, whose noise and compression bias it by a fraction of a stop.
    Cameras' alternating exposures step in whole stops; the note says what was rounded."""
    order = np.argsort(stops)
    names = LEVEL_NAMES[len(stops)]
    snapped, notes = np.zeros_like(stops), []
    for j, (low, high) in enumerate(itertools.pairwise(order)):
        step = float(stops[high] - stops[low])
        if weak[low] or weak[high]:
            rounded = max(1.0, float(np.round(step)))
            if abs(rounded - _snap_thirds(np.array([step]))[0]) > 1e-6:
                notes.append(f"the {names[j]} -> {names[j + 1]} step measures {step:.2g} stops "
                             f"on the few pixels of the {names[j + 1 if weak[high] else j]} "
                             f"frames that are not clipped; taken as {rounded:g}, the nearest "
                             "whole stop")
        else:
            rounded = float(_snap_thirds(np.array([step]))[0])
        snapped[high] = snapped[low] + rounded
    note = "; ".join(notes) + "; pass --exposures if the exposures differ" if notes else None
    return snapped, note


def trained_range_warning(pattern: ExposurePattern) -> str | None:
    """A warning when the stops lie outside what the published models were trained on."""
    steps = np.diff(pattern.stops)
    if pattern.period == 2 and not 2 - 1e-6 <= steps[0] <= 3 + 1e-6:
        return (f"{steps[0]:.2g} stops between exposures: 2-exposure models were trained on 2-3 "
                "stops; expect artefacts")
    if pattern.period == 3 and np.any(np.abs(steps - 2) > 1e-6):
        return (f"{', '.join(f'{s:.2g}' for s in steps)} stops between exposures: 3-exposure models "
                "were trained on exactly 2 stops; expect artefacts")
    return None


def fit_phase(steps: np.ndarray, times: Sequence[float]) -> tuple[int, float]:
    """The phase whose cycle best explains measured ``steps``, and its median error in stops."""
    period = len(times)
    stops = np.log2(np.asarray(times, dtype=float))
    index = np.arange(len(steps))
    errors = []
    for phase in range(period):
        expected = stops[(index + 1 + phase) % period] - stops[(index + phase) % period]
        errors.append(float(np.nanmedian(np.abs(steps - expected))) if np.isfinite(steps).any()
                      else math.inf)
    best = int(np.argmin(errors))
    return best, errors[best]


def contradicted(steps: np.ndarray, pattern: ExposurePattern) -> str | None:
    """What the measured ``steps`` between neighbouring frames say against a given pattern, or
    None when they agree or cannot tell. Given ratios may be off by up to half the smallest step
    (a camera response other than gamma 2.2 changes the measured steps, but not that much); a
    wrong order or a video that does not alternate is off by whole steps."""
    if not np.isfinite(steps).any():
        return None
    index = np.arange(len(steps))
    stops = np.asarray(pattern.stops)
    expected = stops[pattern.level(index + 1)] - stops[pattern.level(index)]
    error = float(np.nanmedian(np.abs(steps - expected)))
    if error <= max(MIN_STEP_STOPS, 0.5 * float(np.min(np.diff(stops)))):
        return None
    phase, phase_error = fit_phase(steps, pattern.times)
    if phase != pattern.phase and phase_error <= MIN_STEP_STOPS:
        return (f"the video's frame 0 is {LEVEL_NAMES[pattern.period][phase]}, not what "
                f"{pattern.source} says (frame 0 {LEVEL_NAMES[pattern.period][pattern.phase]})")
    measured = ", ".join(f"{s:+.1f}" for s in steps[:6] if not math.isnan(s))
    wanted = ", ".join(f"{s:+.1f}" for s in expected[:len(pattern.times)])
    return (f"the video's neighbouring frames differ by {measured} stops, where "
            f"{pattern.source} means {wanted}, ...")


def flicker_stops(pattern: ExposurePattern, brightness: dict[int, float]) -> float:
    """How much converted frames alternate in brightness with the exposure cycle, in stops:
    the largest per-position median of log2 ratios between neighbouring output frames.
    ``brightness``: log2 mean luminance per frame index. Right exposures merge every frame to
    the same scale, so the steps of the cycle vanish; wrong ones leave them in."""
    steps: list[list[float]] = [[] for _ in range(pattern.period)]
    for index, value in brightness.items():
        if index + 1 in brightness:
            steps[pattern.level(index)].append(brightness[index + 1] - value)
    if any(len(s) < 2 for s in steps):
        return 0.0
    return max(abs(float(np.median(s))) for s in steps)


class CycleMonitor:
    """Checks, frame by frame, that a clip keeps the exposure cycle it started with.

    A dropped or duplicated frame flips a 2-exposure cycle's phase; a camera can also switch
    cycles mid-recording. Either makes every later window wrong. The monitor learns the step
    between neighbouring frames for each position in the cycle over the first ``learn`` cycles
    (measured, not the nominal ratios: a camera response other than gamma 2.2 changes the
    measured steps, but consistently), then raises ExposureError after ``persist`` consecutive
    measurable steps that are off by more than half the smallest learned step, naming the frame
    where the mismatch began. Unmeasurable steps (frames mostly black or clipped) neither count
    nor reset.
    """

    def __init__(self, pattern: ExposurePattern, learn: int = 4, persist: int = 4,
                 signature: np.ndarray | None = None):
        self.pattern, self.persist = pattern, persist
        self._learning: list[list[float]] = [[] for _ in range(pattern.period)]
        self._learn = learn
        # given: the steps learned at the start of the clip, for a part that starts later
        self._signature: np.ndarray | None = signature
        self._previous: np.ndarray | None = None
        self._first_bad: int | None = None
        self._bad = 0

    def check(self, index: int, frame: np.ndarray) -> None:
        """frame: gamma-2.2 R'G'B' (H, W, 3), any size (a subsampled frame is enough)."""
        quantiles = brightness_quantiles(frame)
        previous, self._previous = self._previous, quantiles
        step = math.nan if previous is None else log2_ratio(previous, quantiles)
        if math.isnan(step):
            return
        position = self.pattern.level(index)
        if self._signature is None:
            self._learn_step(position, step)
            return
        tolerance = max(0.3, 0.5 * float(np.min(np.abs(self._signature))))
        if abs(step - self._signature[position]) <= tolerance:
            self._bad, self._first_bad = 0, None
            return
        self._bad += 1
        self._first_bad = index if self._first_bad is None else self._first_bad
        if self._bad >= self.persist:
            raise ExposureError(
                f"the exposure cycle changes at frame {self._first_bad}: the step from the frame "
                f"before is {step:+.1f} stops where the clip began with "
                f"{self._signature[position]:+.1f} (a dropped frame or a new cycle); cut the clip "
                "there, or convert the two parts separately")

    @property
    def signature(self) -> np.ndarray | None:
        """The learned step per cycle position (None while learning, or if it barely alternates)."""
        return self._signature

    def _learn_step(self, position: int, step: float) -> None:
        self._learning[position].append(step)
        if all(len(steps) >= self._learn for steps in self._learning):
            signature = np.array([np.median(steps) for steps in self._learning])
            # a clip that barely alternates has nothing to check against
            self._signature = signature if np.min(np.abs(signature)) >= 0.25 else None
            self._learning = [[] for _ in self._learning] if self._signature is None else []


# --- resolution: from what the user gave, or from the video ------------------------------------

@dataclass(frozen=True)
class ExposureHints:
    """What the user said about the exposures (the CLI's option names); all None: detect."""

    exposures: str | None = None  # --exposures "1,8"
    stops: float | None = None  # --stops 3 with --cycle 2
    cycle: int | None = None
    exposure_file: str | None = None
    force: bool = False  # convert with exposures the video's frames contradict


def resolve_exposures(info: VideoInfo, hints: ExposureHints, response: Response
                      ) -> tuple[ExposurePattern, list[str]]:
    """The clip's exposure pattern and warnings, from (in order) --exposures, --stops/--cycle,
    --exposure-file, or detection on the first frames (read through ``response``). Given
    exposures the frames contradict are refused unless ``hints.force``."""
    if hints.stops is not None and hints.cycle is None:
        raise ExposureError("--stops needs --cycle 2 or 3 (the number of exposures per cycle)")
    frames = [response.to_gamma22(f.rgb) for f in
              read_frames(info.path, info.color, max_frames=DETECTION_FRAMES)]
    if hints.exposures is not None:
        pattern = parse_exposures(hints.exposures)
    elif hints.stops is not None:
        pattern = pattern_from_stops(hints.stops, hints.cycle)
        # the cycle's phase is read from the video: which frame is the short one
        phase, _ = fit_phase(measure_steps(frames), pattern.times)
        pattern = replace(pattern, phase=phase)
    elif hints.exposure_file is not None:
        pattern = read_exposure_file(hints.exposure_file)
    else:
        try:
            pattern = detect_exposure_pattern(frames)
        except ExposureError as exc:
            raise ExposureError(f"{info.path}: {exc}") from exc
        return pattern, [pattern.assumed] if pattern.assumed else []
    if contradiction := contradicted(measure_steps(frames), pattern):
        if not hints.force:
            raise ExposureError(f"{info.path}: {contradiction}; correct them (hdrvid info shows "
                                "what the video says), or pass --force-exposures to insist")
        return pattern, [f"{contradiction}; converting anyway (--force-exposures)"]
    return pattern, []
