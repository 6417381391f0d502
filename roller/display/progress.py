"""The closing words of a session: how it went, against the last ones, in one or two sentences.

:func:`verdict` takes a finished session and the sessions before it (rows of the display's
own history, :mod:`roller.display.session_log`) and judges three things a person can act on:

1. **Time in the slow band**: the share of the rolling time spent at or under the go-slow limit
   (``(rolling_s - too_fast_s) / rolling_s``), against the same share over the last
   :data:`COMPARE_LAST` sessions pooled by time. A change under :data:`SAME_WITHIN` (3
   percentage points) is "about the same".
2. **Dose per muscle and side**: a step that was begun, not skipped, and got less than
   :data:`DOSE_MET_SHARE` of its target time is named (at most two); steps a session stopped
   before are not.
3. **Balance**: the left share of left+right time; more than 10 points off even is named.

The words are kind and never scold (docs: "go slow" is advice for comfort, not a proven
lever). The page shows the sentences under the summary and speaks them once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

COMPARE_LAST = 5
"""Sessions before this one that it is compared with."""
SAME_WITHIN = 0.03
"""A slow-band share within 3 percentage points of the last sessions' is "about the same"."""
DOSE_MET_SHARE = 0.9
"""A step whose active time reached 90 % of its target counts as done."""
EVEN_WITHIN = 0.1
"""Left share within 40-60 % is even (as ``roller history`` says)."""


def slow_share(rows: Sequence[Mapping[str, Any]]) -> float | None:
    """Share of the rolling time at or under the go-slow limit, pooled over ``rows``; None
    without rolling time."""
    rolling = sum(float(r.get("rolling_s") or 0.0) for r in rows)
    if rolling <= 0:
        return None
    fast = sum(min(float(r.get("too_fast_s") or 0.0), float(r.get("rolling_s") or 0.0))
               for r in rows)
    return (rolling - fast) / rolling


def left_share(row: Mapping[str, Any]) -> float | None:
    left, right = float(row.get("left_s") or 0.0), float(row.get("right_s") or 0.0)
    return None if left + right <= 0 else left / (left + right)


def _pct(x: float) -> str:
    return f"{round(x * 100)}%"


def _slow_sentence(current: Mapping[str, Any], previous: Sequence[Mapping[str, Any]]) -> str:
    now = slow_share([current])
    if now is None:
        return "No rolling was counted this time."
    before = slow_share(previous)
    head = f"{_pct(now)} of your rolling was in the slow band"
    if before is None:
        return head + "."
    n = len(previous)
    last = "your last session" if n == 1 else f"your last {n} sessions"
    if now - before >= SAME_WITHIN:
        return f"{head}, better than {last} ({_pct(before)})."
    if before - now >= SAME_WITHIN:
        return f"{head}, a little less than {last} ({_pct(before)}): slow and steady next time."
    return f"{head}, about the same as {last}."


def _side_name(step: Mapping[str, Any]) -> str:
    title = str(step.get("title") or step.get("muscle") or "a step")
    side = step.get("side")
    if side in ("left", "right") and side not in title.lower():
        return f"{title} ({side})"
    return title


def _dose_sentence(current: Mapping[str, Any]) -> str | None:
    short = [st for st in current.get("steps") or ()
             if not st.get("skipped") and float(st.get("target_s") or 0) > 0
             and float(st.get("active_s") or 0) > 0  # not reached (a session stopped early)
             and float(st.get("active_s") or 0) < DOSE_MET_SHARE * float(st["target_s"])]
    if not short:
        return None
    named = " and ".join(f"{_side_name(st)} got {round(float(st['active_s']))} of "
                         f"{round(float(st['target_s']))} s" for st in short[:2])
    more = f" (and {len(short) - 2} more)" if len(short) > 2 else ""
    return f"{named[0].upper()}{named[1:]}{more}: give it a little more next time."


def _balance_sentence(current: Mapping[str, Any], dose_met: bool) -> str | None:
    share = left_share(current)
    if share is None:
        return "Every step got its time." if dose_met and current.get("steps") else None
    ratio = f"left {_pct(share)} / right {_pct(1 - share)}"
    if abs(share - 0.5) <= EVEN_WITHIN:
        lead = "Every step got its time, and left" if dose_met else "Left"
        return f"{lead} and right were even ({ratio})."
    side = "left" if share > 0.5 else "right"
    return f"The {side} side got more time ({ratio}): even them out next time."


def verdict(current: Mapping[str, Any], previous: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The closing words for ``current`` (a session with ``rolling_s``, ``too_fast_s``,
    ``left_s``, ``right_s`` and its ``steps``), against ``previous`` (the sessions before it,
    newest first; the first :data:`COMPARE_LAST` count). Returns ``text`` (one or two
    sentences, shown and spoken) and the figures behind it."""
    previous = list(previous[:COMPARE_LAST])
    sentences = [_slow_sentence(current, previous)]
    dose = _dose_sentence(current)
    second = dose or _balance_sentence(current, dose_met=True)
    if second:
        sentences.append(second)
    return {"text": " ".join(sentences), "slow_share": slow_share([current]),
            "previous_slow_share": slow_share(previous), "compared_with": len(previous),
            "left_share": left_share(current), "dose_met": dose is None}
