"""The closing words (roller/display/progress.py): time in the slow band against the last
sessions, the dose per muscle and side, the balance, in one or two plain sentences."""

from __future__ import annotations

from roller.display.progress import verdict


def step(title: str, side: str, active_s: float, target_s: float = 40.0, **kw) -> dict:
    return {"title": title, "muscle": title.split(",")[0].lower(), "side": side,
            "active_s": active_s, "target_s": target_s, "skipped": False, **kw}


def session(rolling_s: float, too_fast_s: float, left_s: float, right_s: float,
            steps: list | None = None) -> dict:
    return {"rolling_s": rolling_s, "too_fast_s": too_fast_s, "left_s": left_s,
            "right_s": right_s,
            "steps": steps if steps is not None else [step("Glutes, left side", "left", 45),
                                                      step("Glutes, right side", "right", 44)]}


def test_better_than_the_last_sessions_and_even() -> None:
    before = [session(100, 20, 40, 40) for _ in range(7)]  # 80 % each
    v = verdict(session(100, 8, 45, 44), before)
    assert v["text"] == ("92% of your rolling was in the slow band, better than your last 5 "
                         "sessions (80%). Every step got its time, and left and right were "
                         "even (left 51% / right 49%).")
    assert v["compared_with"] == 5 and v["dose_met"]


def test_worse_is_said_kindly_and_a_short_step_is_named() -> None:
    steps = [step("Glutes, left side", "left", 45),
             step("Side of the waist (QL), right", "right", 20, target_s=40)]
    v = verdict(session(100, 30, 45, 20, steps), [session(100, 10, 40, 40)])
    assert v["text"] == ("70% of your rolling was in the slow band, a little less than your "
                         "last session (90%): slow and steady next time. Side of the waist "
                         "(QL), right got 20 of 40 s: give it a little more next time.")
    assert not v["dose_met"]


def test_about_the_same_one_sided_and_the_first_session() -> None:
    v = verdict(session(100, 11, 70, 30), [session(200, 20, 50, 50)])
    assert v["text"].startswith("89% of your rolling was in the slow band, about the same as")
    assert v["text"].endswith("The left side got more time (left 70% / right 30%): even "
                              "them out next time.")
    first = verdict(session(50, 0, 30, 30), [])
    assert first["text"].startswith("100% of your rolling was in the slow band. ")
    assert verdict(session(0, 0, 0, 0, []), [])["text"] == "No rolling was counted this time."


def test_skipped_and_unreached_steps_are_not_blamed() -> None:
    steps = [step("Glutes, left side", "left", 0, skipped=True),
             step("Glutes, right side", "right", 40),
             step("Piriformis, right side", "right", 0)]  # the session stopped before it
    v = verdict(session(30, 0, 0, 40, steps), [])
    assert "got 0 of" not in v["text"] and v["dose_met"]
