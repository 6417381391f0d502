"""Today's totals (roller.coaching.day_totals) on a real SQLite history and real sessions: the
same figures after a restart, never lower when a session ends, a new day at local midnight
(later for a session running across it), a short bump never counted, and the history read
once at the start and once per change of date, not per tick."""

from __future__ import annotations

import datetime as dt
import itertools

from roller.coaching.day_totals import TodaysRolling, local_date
from roller.coaching.history import History
from roller.coaching.records import SessionSummary
from roller.coaching.routine import load_routine
from roller.coaching.session import Session, SessionSettings
from roller.pipeline.events import Hold, LiveState, Stroke

DEVICE = "mat-3"
EVENING = dt.datetime(2026, 12, 7, 22, 0).timestamp()
"""A local evening [Unix s]: two hours before midnight."""


class Wall:
    """A wall clock the test moves (the sessions and the totals read the same one)."""

    def __init__(self, unix_s: float) -> None:
        self.unix_s = unix_s

    def __call__(self) -> float:
        return self.unix_s


def live(phase: str, t: float) -> LiveState:
    return LiveState(t=t, speed_m_s=0.03 if phase == "rolling" else 0.0, velocity_m_s=0.0,
                     phase=phase, stroke_count=0, hold_time_s=0.0, too_fast=False,
                     calibrated=True)


class Roller:
    """A session driven the way the service drives it: a step every 0.5 s, a 5 cm stroke every
    2 s, a hold every 20 s; ``today`` observes each step as the Home Assistant sink does."""

    def __init__(self, session: Session, wall: Wall, today: TodaysRolling,
                 history: History) -> None:
        self.session, self.wall, self.today, self.history = session, wall, today, history
        self.now = 0.0
        self.seen: list[tuple[float, float, int, float]] = []

    def step(self, phase: str = "rolling") -> None:
        self.now += 0.5
        self.wall.unix_s += 0.5
        n = round(self.now * 2)
        if phase == "rolling" and n % 4 == 0:
            self.session.observe_event(Stroke(start=self.now - 2, end=self.now, distance_m=0.05,
                                              peak_speed_m_s=0.03, mean_speed_m_s=0.025,
                                              direction=1, emitted_at=self.now), self.now)
        if phase == "rolling" and n % 40 == 0:
            self.session.observe_event(Hold(start=self.now - 4, end=self.now - 0.5,
                                            emitted_at=self.now), self.now)
        self.session.observe_phase(live(phase, self.now), self.now)
        self.today.observe(self.session, None, self.wall())
        totals = self.today.totals(self.session, self.wall())
        self.seen.append((self.wall(), totals.active_s, totals.holds, totals.distance_m))

    def roll(self, seconds: float) -> None:
        for _ in range(round(seconds / 0.5)):
            self.step()

    def stop(self) -> SessionSummary | None:
        """End the session as a stop does: its summary stored, then observed."""
        self.session.stop(self.now)
        summary = None
        if self.session.active_s >= self.session.settings.min_record_active_s:
            summary = SessionSummary.of(self.session, load_routine(), [], {})
            self.history.record(summary, device_id=DEVICE)
        self.today.observe(self.session, summary, self.wall())
        return summary


def setup(tmp_path, wall: Wall, **settings) -> tuple[History, Roller]:
    history = History(tmp_path / "history.sqlite3")
    session = Session(SessionSettings(**settings), wall_clock=wall)
    return history, Roller(session, wall, TodaysRolling(history, device_id=DEVICE), history)


def never_lower_within_a_day(seen) -> None:
    for (w0, a0, h0, d0), (w1, a1, h1, d1) in itertools.pairwise(seen):
        if local_date(w0) == local_date(w1):
            assert a1 >= a0 and h1 >= h0 and d1 >= d0, \
                (w1, (a0, h0, d0), (a1, h1, d1))


def test_totals_add_the_days_sessions_and_the_one_under_way_and_survive_a_restart(tmp_path):
    wall = Wall(EVENING)
    history, r = setup(tmp_path, wall)
    r.session.start(r.now)
    r.roll(120)
    first = r.stop()
    assert first is not None and first.distance_m > 0
    stored = history.sessions(limit=1)[0]
    assert stored.distance_m == first.distance_m  # the summary's distance is stored
    r.roll(60)  # rest: a new session starts only after restart_rest_s without rolling
    for _ in range(80):
        r.step("idle")
    r.session.start(r.now)
    r.roll(90)
    running = r.today.totals(r.session, wall())
    assert running.sessions == 2
    assert running.active_s == first.active_s + r.session.active_s
    assert running.holds == first.holds + r.session.holds
    assert running.distance_m == first.distance_m + r.session.stats.distance_m
    r.stop()
    ended = r.today.totals(r.session, wall())
    assert (ended.active_s, ended.holds, ended.distance_m) == \
        (running.active_s, running.holds, running.distance_m)
    never_lower_within_a_day(r.seen)
    # A restart: a new reader on the same file finds the same day, and the last session.
    again = TodaysRolling(History(tmp_path / "history.sqlite3"), device_id=DEVICE)
    after = again.totals(Session(), wall())
    assert (after.active_s, after.holds, after.distance_m, after.sessions) == \
        (ended.active_s, ended.holds, ended.distance_m, 2)
    assert again.last_session() == r.today.last_session()
    assert again.last_session()["active_s"] == r.session.active_s
    # ... read once, not per call
    for _ in range(100):
        again.totals(Session(), wall())
    assert again.reads == 2  # today's sessions, and the last one


def test_a_bump_shorter_than_a_recorded_session_never_counts(tmp_path):
    wall = Wall(EVENING)
    history, r = setup(tmp_path, wall, min_record_active_s=10.0)
    r.session.start(r.now)
    r.roll(6)
    assert r.today.totals(r.session, wall()).active_s == 0
    assert r.stop() is None
    assert r.today.totals(r.session, wall()).active_s == 0
    assert history.count() == 0
    assert r.today.last_session() is None


def test_a_new_day_starts_at_midnight_and_after_a_session_running_across_it(tmp_path):
    wall = Wall(EVENING + 2 * 3600 - 300)  # 23:55
    history, r = setup(tmp_path, wall)
    r.session.start(r.now)
    r.roll(120)
    r.stop()
    for _ in range(80):
        r.step("idle")
    day = r.today.totals(r.session, wall())
    assert day.active_s > 0 and day.day == dt.date(2026, 12, 7)
    r.session.start(r.now)
    r.roll(200)  # on past midnight
    assert local_date(wall()) == dt.date(2026, 12, 8)
    late = r.today.totals(r.session, wall())
    assert late.day == dt.date(2026, 12, 7) and late.active_s > day.active_s  # still counting
    never_lower_within_a_day(r.seen)
    reads = r.today.reads
    r.stop()
    r.step("idle")
    new_day = r.today.totals(r.session, wall())
    assert new_day.day == dt.date(2026, 12, 8)
    assert (new_day.active_s, new_day.holds, new_day.distance_m, new_day.sessions) == \
        (0, 0, 0, 0)
    assert r.today.reads == reads + 1  # the new date's sessions, read once
    # The session across midnight is stored under the day it started on, as counted.
    assert local_date(history.sessions(limit=1)[0].started_at) == dt.date(2026, 12, 7)


def test_at_rest_the_totals_fall_to_zero_at_midnight_and_a_clock_jump_rereads(tmp_path):
    wall = Wall(EVENING)
    history, r = setup(tmp_path, wall)
    r.session.start(r.now)
    r.roll(60)
    r.stop()
    # A restarted service whose clock is still a day behind (no clock battery, no network
    # yet): nothing that day; then the network sets the date and today's session is found.
    wall.unix_s -= 86400
    today = TodaysRolling(history, device_id=DEVICE)
    assert today.totals(Session(), wall()).active_s == 0
    wall.unix_s += 86400
    assert today.totals(Session(), wall()).active_s == r.session.active_s
    wall.unix_s += 3 * 3600  # past midnight, at rest
    assert today.totals(Session(), wall()).active_s == 0
