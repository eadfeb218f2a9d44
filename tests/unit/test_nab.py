"""NAB scoring as SKAB's leaderboard does it, on cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from bench.nab import (
    PROFILES,
    confusion,
    detection_windows,
    nab_scores,
    scaled_score,
    to_ns,
)

S = 1_000_000_000  # one second in ns
WIDTH = 60 * S


def seconds(*values: float) -> list[int]:
    return [int(v * S) for v in values]


def test_windows_lie_right_of_each_changepoint_and_overlaps_cut_the_right_one() -> None:
    assert detection_windows(seconds(100, 200), WIDTH) == [(100 * S, 160 * S), (200 * S, 260 * S)]
    # The second window would start inside the first: it starts where the first ends.
    assert detection_windows(seconds(0, 30, 50), WIDTH) == [
        (0, 60 * S),
        (60 * S, 90 * S),
        (90 * S, 110 * S),
    ]


def test_the_scale_runs_from_a_tp_at_the_changepoint_to_a_fp_at_the_window_end() -> None:
    standard = PROFILES[0]
    start, end = 0, 60 * S
    assert scaled_score(start, start, end, standard.a_tp, standard.a_fp) == pytest.approx(1.0)
    assert scaled_score(start, end, end, standard.a_tp, standard.a_fp) == pytest.approx(-0.11)
    # Half way: step int(0.5 * 1000) = 500 of 1000 on linspace(-pi/2, pi/2): x = pi/2 / 999,
    # y = 0.555 * (1 - tanh(x) / tanh(pi/2)) - 0.11 = 0.44405 (by hand).
    assert scaled_score(start, 30 * S, end, 1.0, -0.11) == pytest.approx(0.44405, abs=1e-5)
    # Steps are truncated, not rounded: 0.9999 of the window is step 999, the last one.
    assert scaled_score(0, 9999, 10000, 1.0, -0.11) == pytest.approx(-0.11)


def test_first_alarm_in_a_window_counts_later_ones_are_ignored_outside_ones_are_false() -> None:
    windows = detection_windows(seconds(100, 200), WIDTH)
    # 50: before all windows (FP); 100: at cp 1 (TP, full score); 130: second in window 1
    # (ignored); 170: between windows (FP); 260: last instant of window 2 (TP, scored a_fp);
    # 300: after all windows (FP).
    c = confusion(windows, seconds(300, 50, 100, 130, 170, 260))  # any order
    assert c.false_positives == 3
    assert c.missed == 0
    assert c.detections == {0: 100 * S, 1: 260 * S}
    assert c.delays_ns() == [0, 60 * S]
    # Standard: 1 - 0.11 + 3 * -0.11 = 0.56; null -2, perfect 2 -> 100 * 2.56 / 4 = 64.
    # LowFP: 1 - 0.22 + 3 * -0.22 = 0.12 -> 100 * 2.12 / 4 = 53.
    # LowFN: 0.56; null -4, perfect 2 -> 100 * 4.56 / 6 = 76.
    assert nab_scores([c]) == {"Standard": 64.0, "LowFP": 53.0, "LowFN": 76.0}


def test_an_alarm_on_a_shared_boundary_is_in_both_windows() -> None:
    # Changepoints at 0 s and 30 s: windows [0, 60] and [60, 90]; both are closed intervals.
    windows = detection_windows(seconds(0, 30), WIDTH)
    c = confusion(windows, seconds(60))
    assert c.detections == {0: 60 * S, 1: 60 * S}
    assert c.false_positives == 0
    # Standard: -0.11 (end of window 1) + 1 (start of window 2) = 0.89 -> 100 * 2.89 / 4.
    assert nab_scores([c])["Standard"] == 72.25


def test_null_and_perfect_detectors() -> None:
    windows = detection_windows(seconds(100, 400), WIDTH)
    assert nab_scores([confusion(windows, [])]) == {"Standard": 0.0, "LowFP": 0.0, "LowFN": 0.0}
    perfect = confusion(windows, seconds(100, 400))
    assert nab_scores([perfect]) == {"Standard": 100.0, "LowFP": 100.0, "LowFN": 100.0}
    missed = confusion(windows, seconds(161))  # one second too late: a miss and an FP
    assert (missed.missed, missed.false_positives) == (2, 1)
    # Standard: -2 - 0.11 -> 100 * -0.11 / 4 = -2.75.
    assert nab_scores([missed])["Standard"] == -2.75


def test_files_are_summed_before_normalising() -> None:
    # File A: one changepoint found at once (1, null -1, perfect 1). File B: no changepoint,
    # two alarms (Standard -0.22, null 0, perfect 0). Together: 100 * (0.78 + 1) / 2 = 89.
    a = confusion(detection_windows(seconds(10), WIDTH), seconds(10))
    b = confusion(detection_windows([], WIDTH), seconds(5, 6))
    assert b.false_positives == 2
    assert nab_scores([a, b])["Standard"] == 89.0
    # LowFP: 100 * (1 - 0.44 + 1) / 2 = 78.
    assert nab_scores([a, b])["LowFP"] == 78.0


def test_timestamps_become_sorted_nanoseconds() -> None:
    ns = to_ns(["2020-03-09 10:14:35", np.datetime64("2020-03-09T10:14:33")])
    assert ns.tolist() == [1583748873 * S, 1583748875 * S]
    assert to_ns([]).size == 0
