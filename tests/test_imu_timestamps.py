"""FifoTimestamper: timestamps from counts and read times, for any oscillator error and pace."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.imu.timestamps import FifoTimestamper


@settings(max_examples=40, deadline=None)
@given(rate_error=st.floats(-0.04, 0.04), phase=st.floats(0.01, 1.0),
       latency_s=st.floats(0.0, 0.002), seed=st.integers(0, 2**16),
       max_interval_s=st.floats(0.004, 0.08))
def test_timestamps_track_true_sample_times(rate_error, phase, latency_s, seed, max_interval_s):
    nominal_hz = 1000.0
    period = 1.0 / (nominal_hz * (1 + rate_error))
    t0 = 100.0
    stamper = FifoTimestamper(nominal_hz)
    stamper.restart(t0)
    rng = np.random.default_rng(seed)
    now = t0
    produced = 0
    out, truth = [], []
    while now < t0 + 20.0:
        now += float(rng.uniform(0.002, max_interval_s))
        t_before = now
        t_after = now + latency_s * float(rng.random())
        # samples taken by the time the count is latched (somewhere in [t_before, t_after])
        latch = t_before + (t_after - t_before) * float(rng.random())
        total = int(np.floor((latch - t0) / period - phase)) + 1
        n = max(0, total - produced)
        times = stamper.stamp(n, t_before, t_after)
        out.append(times)
        truth.append(t0 + (phase + np.arange(produced, produced + n)) * period)
        produced += n
        now = t_after
    t = np.concatenate(out)
    true_t = np.concatenate(truth)
    assert np.all(np.diff(t) > 0)
    error = np.abs(t - true_t)
    assert error.max() < 2.5 * period + latency_s             # never far off
    assert error[true_t > t0 + 8].max() < period + latency_s  # and within a sample later on
    assert abs(1 / stamper.period_s - 1 / period) < 0.002 * nominal_hz


def test_restart_reanchors_after_a_gap():
    stamper = FifoTimestamper(100.0)
    stamper.restart(0.0)
    first = stamper.stamp(10, 0.1, 0.1)
    stamper.restart(5.0)
    second = stamper.stamp(10, 5.1, 5.1)
    assert first[-1] <= 0.1 and second[0] > 5.0 and second[-1] <= 5.1
    assert stamper.stamp(0, 5.2, 5.2).size == 0
