"""Property-based tests (hypothesis) of the window and exposure logic."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hdrvid.exposure import ExposurePattern, pattern_from_cycle, read_exposure_file
from hdrvid.windows import sliding_windows, window_indices

periods = st.sampled_from([2, 3])
sizes = st.sampled_from([1, 3, 5, 7])


@st.composite
def clips(draw):
    period = draw(periods)
    n_total = draw(st.integers(min_value=period, max_value=40))
    return period, draw(sizes), n_total


@given(clips(), st.data())
def test_every_slot_keeps_its_level_and_stays_inside(clip, data):
    period, size, n_total = clip
    center = data.draw(st.integers(0, n_total - 1))
    indices = window_indices(center, size, n_total, period)
    radius = size // 2
    assert len(indices) == size and indices[radius] == center
    for k, index in enumerate(indices):
        wanted = center + k - radius
        assert 0 <= index < n_total
        if size <= n_total:  # shifted by whole cycles only, and by the fewest that fit
            assert (index - wanted) % period == 0
            assert abs(index - wanted) <= period * math.ceil(max(-wanted, wanted - n_total + 1, 0)
                                                             / period)


@given(clips())
def test_streaming_windows_equal_the_direct_rule(clip):
    period, size, n_total = clip
    streamed = [(w.center, w.indices, w.items) for w in sliding_windows(range(n_total), size, period)]
    assert streamed == [(c, window_indices(c, size, n_total, period),
                         window_indices(c, size, n_total, period)) for c in range(n_total)]


@st.composite
def cycles(draw):
    period = draw(periods)
    stops = draw(st.lists(st.floats(0.5, 4.0), min_size=period - 1, max_size=period - 1))
    times = [2.0 ** sum(stops[:k]) for k in range(period)]
    rotation = draw(st.integers(0, period - 1))
    scale = draw(st.floats(0.01, 100.0))
    return [t * scale for t in times[rotation:] + times[:rotation]], rotation


@given(cycles())
def test_a_cycle_given_from_any_frame_is_the_same_pattern(cycle):
    values, rotation = cycle
    pattern = pattern_from_cycle(values)
    assert isinstance(pattern, ExposurePattern) and pattern.times[0] == 1
    assert pattern.phase == rotation  # frame 0 sits at the level the cycle was started from
    assert all(b > a for a, b in zip(pattern.times, pattern.times[1:]))
    for i in range(3 * len(values)):  # frame i has the i-th value of the cycle, renormalised
        assert math.isclose(pattern.time(i), values[i % len(values)] / min(values), rel_tol=1e-9)


@given(cycles(), st.integers(4, 30))
def test_a_per_frame_sidecar_gives_the_same_pattern(tmp_path_factory, cycle, n_frames):
    values, _ = cycle
    path = tmp_path_factory.mktemp("sidecar") / "Exposures.txt"
    stops = [math.log2(values[i % len(values)]) for i in range(n_frames)]
    path.write_text("\n".join(f"{s:.12f}" for s in stops) + "\n")
    read, given = read_exposure_file(path), pattern_from_cycle(values)
    assert read.times == pytest.approx(given.times, rel=1e-9) and read.phase == given.phase
