"""``roller detect --phone``: what the phone sends, before coaching from it.

For phyphox: the experiment and its buffers (from ``/config``), whether the acceleration
includes gravity, each sensor's delivered rate, the phone's clock against ours (``/time``
maps experiment time to the phone's wall clock). For Sensor Logger: the URL to enter, then
what the pushes hold (sensors, rates, gravity included or not, the phone's wall clock against
ours). Returns lines to print; problems are said in words, never as a traceback.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from roller.phone.phyphox import (
    LayoutError,
    PhyphoxClient,
    PhyphoxError,
    PhyphoxPoller,
)
from roller.phone.settings import PhoneSettings


def _rate(t: list[np.ndarray]) -> str:
    times = np.concatenate(t) if t else np.zeros(0)
    if times.size < 3:
        return "no samples"
    dt = np.diff(times)
    return (f"{1.0 / np.median(dt):.0f} Hz (median; spacing {dt.min() * 1e3:.1f}-"
            f"{dt.max() * 1e3:.1f} ms, {times.size} samples)")


def detect_phyphox(settings: PhoneSettings, seconds: float,
                   say: Callable[[str], None]) -> int:
    client = PhyphoxClient(settings.url, timeout_s=settings.request_timeout_s)
    say(f"phyphox at {client.base_url}:")
    try:
        layout = client.config()
    except LayoutError as exc:
        say(f"  {exc}")
        return 1
    except (OSError, PhyphoxError) as exc:
        say(f"  no answer ({exc}): is phyphox open with 'Allow remote access' on, on the "
            "same network as this machine?")
        return 1
    say(f"  experiment {layout.title!r}")
    say(f"  accelerometer (with gravity) buffers {', '.join(layout.accel.values)} at "
        f"{layout.accel.t}")
    say(f"  gyroscope buffers {', '.join(layout.gyro.values)} at {layout.gyro.t}")
    acc_t: list[np.ndarray] = []
    gyr_t: list[np.ndarray] = []
    acc_v: list[np.ndarray] = []
    offsets: list[float] = []
    poller = PhyphoxPoller(client, on_batch=lambda b, at: (
        acc_t.append(b.accel_t), gyr_t.append(b.gyro_t), acc_v.append(b.accel),
        offsets.append(time.time() - float(b.newest_t or 0.0))),
        on_new_session=lambda: None, now=time.monotonic,
        start_measuring=settings.start_measuring)
    poller.state.layout = layout
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            poller.step()
        except (OSError, PhyphoxError) as exc:
            say(f"  a request failed: {exc}")
        time.sleep(settings.poll_interval_s)
    if poller.state.problem:
        say(f"  {poller.state.problem}")
    say(f"  accelerometer: {_rate(acc_t)}")
    say(f"  gyroscope: {_rate(gyr_t)}")
    if acc_v and np.concatenate(acc_v).size:
        g = np.median(np.linalg.norm(np.concatenate(acc_v), axis=1))
        say(f"  median |a| {g:.2f} m/s^2: gravity {'included' if g > 5 else 'MISSING'}")
    try:
        events = client.time_events()
    except (OSError, PhyphoxError):
        events = []
    if offsets and events:
        last = events[-1]
        try:
            # phone wall time of experiment time 0 (this run), against ours
            phone_zero = float(last["systemTime"]) - float(last["experimentTime"])
            ours_zero = min(offsets)  # our wall clock minus the newest sample's time
            say(f"  clock: the phone's wall clock is {phone_zero - ours_zero:+.3f} s from "
                "ours (less the network delay)")
        except (KeyError, TypeError, ValueError):
            pass
    say(f"  samples arrive {np.median(offsets) - min(offsets):.3f} s late (median over the "
        "least)" if offsets else "  no samples arrived")
    return 0 if gyr_t and np.concatenate(gyr_t).size else 1


def detect_sensor_logger(settings: PhoneSettings, seconds: float,
                         say: Callable[[str], None]) -> int:
    from roller.phone.sensor_logger import SensorLoggerSource

    source = SensorLoggerSource(settings)
    try:
        say(f"Sensor Logger: {source.instructions()}")
        say(f"  listening for {seconds:g} s ...")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(0.2)
            source.read()
        say(f"  {source.pushes} pushes ({source.tests} test messages), "
            f"{source.refusals.total()} refused")
        for name, (n, first, last) in sorted(source.seen.items()):
            rate = (n - 1) / (last - first) if n > 1 and last > first else float("nan")
            say(f"  {name}: {n:.0f} readings, about {rate:.0f} Hz")
        has_g = "totalacceleration" in source.seen or \
            {"accelerometer", "gravity"} <= source.seen.keys()
        if source.seen:
            say("  gravity: " + ("included (total acceleration)" if "totalacceleration"
                                 in source.seen else "accelerometer + gravity added up"
                                 if has_g else "MISSING: turn on 'Total Acceleration'"))
            if "gyroscope" not in source.seen:
                say("  gyroscope: MISSING: turn it on (the speed comes from it)")
        if source.wall_offset_s is not None:
            say(f"  clock: the phone's wall clock is {source.wall_offset_s:+.3f} s from ours "
                "(less the network delay)")
        return 0 if has_g and "gyroscope" in source.seen else 1
    finally:
        source.close()
