"""Windows and the clip-edge rule (docs/conventions.md §4.2)."""

import itertools

import pytest

from hdrvid.exposure import ExposurePattern
from hdrvid.windows import sliding_windows, window_indices

# the table of docs/conventions.md §4.2: (P, n, N, centre, indices)
CONVENTIONS_TABLE = [
    (2, 5, 10, 0, [0, 1, 0, 1, 2]),
    (2, 5, 10, 1, [1, 0, 1, 2, 3]),
    (2, 5, 10, 9, [7, 8, 9, 8, 9]),
    (3, 7, 10, 0, [0, 1, 2, 0, 1, 2, 3]),
    (3, 7, 10, 9, [6, 7, 8, 9, 7, 8, 9]),
    (2, 3, 10, 0, [1, 0, 1]),
]


@pytest.mark.parametrize("period, size, n_total, center, expected", CONVENTIONS_TABLE)
def test_window_indices_conventions_table(period, size, n_total, center, expected):
    assert window_indices(center, size, n_total, period) == expected


def test_interior_window_is_consecutive():
    assert window_indices(5, 5, 10, 2) == [3, 4, 5, 6, 7]
    assert window_indices(4, 7, 12, 3) == [1, 2, 3, 4, 5, 6, 7]


WINDOW_CASES = [(2, 3), (2, 5), (3, 5), (3, 7)]


@pytest.mark.parametrize("period, size, phase", [
    (period, size, phase) for period, size in WINDOW_CASES for phase in range(period)])
def test_every_slot_keeps_its_exposure_level(period, size, phase):
    """pattern.level(indices[k]) == pattern.level(center + k - r) for every centre, both ends
    included, and every clip length from one cycle up."""
    pattern = ExposurePattern((1.0, 8.0) if period == 2 else (1.0, 4.0, 16.0), phase=phase)
    radius = size // 2
    for n_total in range(period, 16):
        for center in range(n_total):
            indices = window_indices(center, size, n_total, period)
            assert len(indices) == size
            assert indices[radius] == center
            for k, j in enumerate(indices):
                wanted = center + k - radius
                assert 0 <= j < n_total, (n_total, center, indices)
                assert pattern.level(j) == pattern.level(wanted), (n_total, center, indices)
                # moved by the fewest whole periods: one period less would be outside the clip
                if wanted < 0:
                    assert j - period < 0, (n_total, center, indices)
                elif wanted > n_total - 1:
                    assert j + period > n_total - 1, (n_total, center, indices)
                else:
                    assert j == wanted


def test_window_indices_rejects_bad_arguments():
    with pytest.raises(ValueError, match="shorter than one exposure cycle"):
        window_indices(0, 5, 2, 3)
    with pytest.raises(ValueError, match="odd"):
        window_indices(0, 4, 10, 2)
    with pytest.raises(ValueError):
        window_indices(10, 5, 10, 2)
    with pytest.raises(ValueError):
        window_indices(-1, 5, 10, 2)


@pytest.mark.parametrize("period, size", [(2, 1), (2, 3), (2, 5), (3, 1), (3, 5), (3, 7), (3, 9)])
def test_sliding_windows_equal_window_indices(period, size):
    for n_total in range(period, 40):
        windows = list(sliding_windows(range(n_total), size, period))
        assert [w.center for w in windows] == list(range(n_total))
        for w in windows:
            expected = window_indices(w.center, size, n_total, period)
            assert w.indices == expected, (n_total, w.center)
            assert w.items == expected, (n_total, w.center)


def test_sliding_windows_on_an_empty_or_too_short_input():
    assert list(sliding_windows([], 5, 2)) == []
    with pytest.raises(ValueError, match="shorter than one exposure cycle"):
        list(sliding_windows(range(2), 5, 3))


@pytest.mark.parametrize("period, size", WINDOW_CASES)
def test_sliding_windows_stream(period, size):
    """Windows come out while the input is still being read, with bounded look-ahead."""
    consumed = []

    def endless():
        for i in itertools.count():
            consumed.append(i)
            yield i

    stream = sliding_windows(endless(), size, period)
    for center in range(30):
        window = next(stream)
        assert window.center == center
        assert window.indices == window_indices(center, size, 10**6, period)
        # look-ahead: the start rule may need up to `period` extra frames past the radius
        assert len(consumed) <= center + size // 2 + period + 1
