"""The display's judgement of a roller's live feed (roller.display.freshness), on made-up
arrival times: silence, lateness, a rebooted roller and drifting clocks."""

from __future__ import annotations

from roller.display.freshness import LiveFreshness


def feed(fresh: LiveFreshness, arrivals) -> list[float | None]:
    return [fresh.saw(t_s, now) for t_s, now in arrivals]


def test_a_steady_feed_is_current_and_silence_makes_it_stale():
    fresh = LiveFreshness(stale_after_s=3.0)
    assert fresh.stale(0.0)  # nothing yet
    lags = feed(fresh, [(50.0 + i * 0.1, 1000.0 + i * 0.1 + 0.02 * (i % 3)) for i in range(50)])
    assert max(lags) <= 0.041 and not fresh.stale(1005.0)
    state = fresh.state(1007.0)  # the last arrived at 1004.92
    assert state["age_s"] == 2.08 and state["lag_s"] <= 0.041 and state["stale"] is False
    assert fresh.stale(1008.0)  # 3.1 s of silence


def test_late_readings_are_stale_however_fast_they_arrive():
    fresh = LiveFreshness(stale_after_s=1.0)
    feed(fresh, [(i * 0.1, 500.0 + i * 0.1) for i in range(10)])
    burst = feed(fresh, [(1.0 + i * 0.1, 505.0) for i in range(10)])  # 4 s late, at once
    assert min(burst) > 3.0 and fresh.stale(505.0)
    assert fresh.saw(5.0, 505.0) < 0.01 and not fresh.stale(505.0)  # a current one again


def test_a_rebooted_roller_starts_a_new_baseline():
    fresh = LiveFreshness()
    feed(fresh, [(10_000.0 + i * 0.1, 100.0 + i * 0.1) for i in range(10)])
    assert fresh.saw(3.0, 200.0) == 0.0  # t_s went back: its clock restarted
    assert fresh.saw(3.1, 200.1) < 1e-9


def test_clocks_drifting_apart_never_build_up_a_lag():
    fresh = LiveFreshness(stale_after_s=3.0)
    # the roller's clock runs 200 ppm slow: over a day its readings seem to arrive 17 s later
    lags = feed(fresh, [(i * (1 - 200e-6), 1000.0 + i) for i in range(0, 86_400, 10)])
    assert max(lags) < 0.01 and not fresh.stale(1000.0 + 86_390)


def test_a_reading_without_a_usable_time_is_judged_by_silence_only():
    fresh = LiveFreshness(stale_after_s=3.0)
    for t_s in (None, "soon", float("nan"), True, [1]):
        assert fresh.saw(t_s, 10.0) is None
        assert not fresh.stale(12.0) and fresh.stale(13.5)
