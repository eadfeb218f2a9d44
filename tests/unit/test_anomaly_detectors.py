"""The label-free detectors against what their published descriptions promise."""

from __future__ import annotations

import numpy as np

from driftline.anomaly.detectors import Mset, PcaT2Q, score_many


def correlated(n: int, seed: int) -> np.ndarray:
    """Five features driven by two latent factors plus a little noise."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 2))
    mixing = np.array([[1.0, 0.5, 0.0, 0.8, 0.3], [0.0, 0.7, 1.0, -0.4, 0.9]])
    return latent @ mixing + 0.1 * rng.normal(size=(n, 5))


def test_t2q_textbook_limits_hold_their_significance_on_fresh_normal_data() -> None:
    model = PcaT2Q.fit(correlated(2000, 1), variance=0.9, limits="theory", alpha=0.01)
    assert len(model.eigenvalues) == 2  # the two latent factors
    fresh = correlated(20000, 2)
    t2, q = model.statistics(fresh)
    # Each limit at 1 %: the alarm rate of either is about 1 %, of both together at most ~2 %.
    assert 0.005 < np.mean(t2 > model.t2_limit) < 0.02
    assert 0.005 < np.mean(q > model.q_limit) < 0.02
    assert np.mean(model.score(fresh) >= 1.0) < 0.03


def test_t2q_flags_a_broken_correlation_that_no_single_feature_shows() -> None:
    model = PcaT2Q.fit(correlated(2000, 3), variance=0.9, limits="theory")
    broken = correlated(500, 4)
    broken[:, 0] = -broken[:, 0]  # same spread, wrong sign of its relation to the others
    assert np.mean(model.score(broken) >= 1.0) > 0.5


def test_mset_reproduces_its_memory_and_not_what_it_never_saw() -> None:
    normal = correlated(800, 5)
    model = Mset.fit(normal, memory_size=100, bandwidth=1.0)
    assert np.allclose(model.residuals(model.memory), 0.0, atol=1e-2)
    fresh = correlated(500, 6)
    assert np.median(model.score(fresh)) < 1.0
    # One feature off by about three of its stds: most states are far from every memory
    # state (some land near another normal state, which MSET then takes them for).
    shifted = fresh + np.array([0.0, 0.0, 3.0, 0.0, 0.0])
    assert np.mean(model.score(shifted) > 1.0) > 0.75
    assert np.median(model.score(shifted)) > 3 * np.median(model.score(fresh))


def test_score_many_gives_each_detectors_own_scores_in_chunks() -> None:
    baseline = correlated(400, 7)
    rows = correlated(5000, 8) + np.array([0.0, 0.0, 1.5, 0.0, 0.0])
    for detector in (Mset.fit(baseline, memory_size=100, bandwidth=1.0), PcaT2Q.fit(baseline)):
        one_by_one = detector.score(rows)
        # Chunks that do not divide the rows, one chunk, and no rows at all.
        for chunk in (1000, 4096, 10_000):
            np.testing.assert_allclose(
                score_many(detector, rows, chunk=chunk), one_by_one, rtol=1e-9, atol=1e-12
            )
        assert score_many(detector, rows[:0]).shape == (0,)
