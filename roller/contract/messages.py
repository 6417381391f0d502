"""The MQTT contract of roller companion, in one place: topics, QoS, retain flags and payloads.

Everything another program may rely on is declared here once and used everywhere else:

- :data:`TOPICS`: every topic under ``<prefix>/<device_id>/`` with its QoS, retain flag and
  direction; :class:`Topics` names them for one roller.
- :data:`EVENT_KINDS` and :data:`COMMAND_VERBS`: the event kinds (``event/<kind>``) and the
  command verbs (``cmd/<verb>``).
- :data:`FIELDS`: a table per topic of every payload field (name, type, unit, meaning). Field
  names carry their unit (``start_s``, ``speed_m_s``, ``started_unix_s``).
- One builder per topic (:func:`event_payload`, :func:`live_payload`, :func:`session_payload`,
  :func:`coach_payload`, :func:`health_payload`, :func:`error_payload`, :func:`status_payload`,
  :func:`command_payload`): the service, the publisher, the coach's state and ``roller analyze
  --json`` shape their payloads only through them.

``docs/mqtt.md``'s tables are generated from this module: ``python -m roller.contract.messages
docs/mqtt.md`` rewrites the blocks between ``<!-- contract:NAME -->`` and ``<!-- /contract -->``
(a test fails when they are stale).

Why ``health`` is QoS 1: it is retained and sent only when something changes (or every
``service.health_interval_s``), so a lost ``degraded`` would leave a display showing ``ok``
for minutes; QoS 1 costs one PUBACK per change. ``live`` stays QoS 0: ten a second, each
worthless a moment later.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from roller.base.untrusted import shorten
from roller.contract.verbs import VERB_DOCS

# -- topics ---------------------------------------------------------------------------------

SAFE_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
"""What a device id (and a topic level: event kind, verb) may be: 1-64 letters, digits, '_'
or '-', beginning with a letter or digit. Safe in MQTT topics, Home Assistant object ids, file
names and as a key in a browser's objects (no ``__proto__``). Anchored with ``\\A``/``\\Z``
(``$`` would accept a trailing newline, which the broker refuses in a topic), so ``match``,
``fullmatch`` and ``search`` agree."""

ID_RULE = "1-64 letters, digits, '_' or '-', beginning with a letter or digit"
""":data:`SAFE_ID` in words, for error messages."""

SAFE_PREFIX = re.compile(r"\A[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64})*\Z")
"""A topic prefix (``roller``, ``site/roller``): levels of letters, digits, '_' or '-'."""

MAX_TOPIC_BYTES = 65535
"""The longest topic MQTT can carry (a two-byte length)."""


def is_safe_id(value: object) -> bool:
    """Whether ``value`` is a str matching :data:`SAFE_ID` (the whole of it)."""
    return isinstance(value, str) and SAFE_ID.fullmatch(value) is not None


def publishable_topic(topic: object) -> bool:
    """Whether a broker takes ``topic`` in a PUBLISH: a non-empty str of at most
    :data:`MAX_TOPIC_BYTES` UTF-8 bytes, no wildcard (``+``, ``#``), no NUL nor other control
    character (mosquitto disconnects a client that sends one). Everything this package builds
    passes; an outbox written by an older version might hold one that does not."""
    if not isinstance(topic, str) or not topic:
        return False
    if "+" in topic or "#" in topic or any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0
                                           for c in topic):
        return False
    try:
        return len(topic.encode("utf-8")) <= MAX_TOPIC_BYTES
    except UnicodeEncodeError:  # a lone surrogate
        return False


@dataclass(frozen=True)
class TopicSpec:
    """One topic of a roller: its name under ``<prefix>/<device_id>/`` and how it is sent."""

    name: str
    qos: Literal[0, 1]
    retain: bool
    direction: Literal["out", "in"]
    stored: bool
    """Written to the on-disk outbox before sending, removed once the broker acknowledged it."""
    what: str


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("status", 1, True, "out", False,
              "`online` / `offline` (plain text); last will `offline`"),
    TopicSpec("health", 1, True, "out", False,
              "JSON: sensor and delivery health, `ok` / `degraded`"),
    TopicSpec("live", 0, False, "out", False,
              "JSON, about 10 Hz: current speed, phase, counts"),
    TopicSpec("event/<kind>", 1, False, "out", True,
              "JSON, one per pipeline event, numbered `seq`"),
    TopicSpec("session", 1, True, "out", True,
              "JSON: summary of the current or last session"),
    TopicSpec("coach", 1, True, "out", True,
              "JSON: the coach's current step, prompt and progress"),
    TopicSpec("error", 1, False, "out", False,
              "JSON: what went wrong (bad command, sensor fault, ...)"),
    TopicSpec("state", 1, True, "out", False,
              "JSON, at most 1 Hz and only on change: rounded figures for Home Assistant and "
              "other home dashboards"),
    TopicSpec("cmd/<verb>", 1, False, "in", False, "empty or a JSON object"),
)
SPEC = {t.name: t for t in TOPICS}
"""``TOPICS`` by name (``"event/<kind>"`` and ``"cmd/<verb>"`` for the families)."""

STORED_QOS = 1
"""The QoS of everything sent from the outbox (QoS 1: the PUBACK is what lets it go)."""
assert all(t.qos == STORED_QOS for t in TOPICS if t.stored)

DISCOVERY_QOS = 1
"""Home Assistant's discovery config (retained on ``homeassistant/device/<id>/config``)."""

EVENT_KINDS = ("stroke", "hold_started", "hold", "too_fast_alert", "too_fast")
"""The pipeline's event kinds (``roller.pipeline.events``); each is published on
``event/<kind>``."""

RETAINED_NAMES = ("session", "coach")
"""Retained JSON state topics that go through the outbox (``Publisher.publish_retained``)."""

COMMAND_VERBS = VERB_DOCS
"""Every command verb the service takes on ``cmd/<verb>`` (and the GPIO buttons), with what it
does: declared in :mod:`roller.contract.verbs`."""


def qos(name: str) -> int:
    """The QoS of topic ``name`` (``event/stroke`` and ``cmd/start`` count as their family)."""
    return _spec(name).qos


def retain(name: str) -> bool:
    """Whether topic ``name`` is published retained."""
    return _spec(name).retain


def _spec(name: str) -> TopicSpec:
    head = name.split("/", 1)[0]
    family = {"event": "event/<kind>", "cmd": "cmd/<verb>"}.get(head, name)
    if family not in SPEC:
        raise ValueError(f"no MQTT topic {name!r} in the contract: expected one of "
                         f"{sorted(SPEC)}")
    return SPEC[family]


def _check_level(name: str, value: str) -> str:
    if not is_safe_id(value):
        raise ValueError(
            f"{name} must be {ID_RULE} (it becomes an MQTT topic level), got "
            f"{shorten(value)}")
    return value


@dataclass(frozen=True)
class Topics:
    """The topic names of one roller (``device_id``) under ``prefix``."""

    device_id: str
    prefix: str = "roller"
    discovery_prefix: str = "homeassistant"

    def __post_init__(self) -> None:
        _check_level("device id", self.device_id)
        if not isinstance(self.prefix, str) or not SAFE_PREFIX.fullmatch(self.prefix):
            raise ValueError(f"topic prefix must be levels of letters, digits, '_' or '-' "
                             f"separated by '/', got {shorten(self.prefix)}")

    @property
    def base(self) -> str:
        """``<prefix>/<device_id>``: the root of every topic of this roller."""
        return f"{self.prefix}/{self.device_id}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def health(self) -> str:
        return f"{self.base}/health"

    @property
    def live(self) -> str:
        return f"{self.base}/live"

    def event(self, kind: str) -> str:
        """``event/<kind>``; ``kind`` is an event kind (``stroke``, ...) or one a coach adds."""
        return f"{self.base}/event/{_check_level('event kind', kind)}"

    @property
    def events(self) -> str:
        """Wildcard for all events of this roller."""
        return f"{self.base}/event/+"

    def retained(self, name: str) -> str:
        """A retained JSON state topic (``session``, ``coach``)."""
        return f"{self.base}/{_check_level('retained topic name', name)}"

    @property
    def session(self) -> str:
        return self.retained("session")

    @property
    def coach(self) -> str:
        return self.retained("coach")

    def cmd(self, verb: str) -> str:
        return f"{self.base}/cmd/{_check_level('command verb', verb)}"

    @property
    def commands(self) -> str:
        """What the service subscribes to for commands: ``cmd/+``."""
        return f"{self.base}/cmd/+"

    def verb_of(self, topic: str) -> str | None:
        """The verb of a ``cmd/<verb>`` topic of this roller, or None for any other topic."""
        head = f"{self.base}/cmd/"
        if topic.startswith(head) and "/" not in topic[len(head):]:
            return topic[len(head):]
        return None

    @property
    def error(self) -> str:
        return f"{self.base}/error"

    @property
    def state(self) -> str:
        """The rounded, rate-limited summary Home Assistant reads (:func:`state_payload`)."""
        return f"{self.base}/state"

    # Home Assistant
    @property
    def discovery(self) -> str:
        """Device-based discovery config topic: ``homeassistant/device/<id>/config``."""
        return f"{self.discovery_prefix}/device/{self.device_id}/config"

    @property
    def ha_status(self) -> str:
        """Home Assistant's birth/last-will topic; ``online`` means announce again."""
        return f"{self.discovery_prefix}/status"


def all_rollers(name: str, prefix: str = "roller") -> str:
    """A wildcard for one topic of every roller on the broker: ``all_rollers("live")`` ->
    ``roller/+/live`` (for a display showing a whole clinic)."""
    return f"{prefix}/+/{name}"


# -- payload fields -------------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    """One payload field: its JSON type, unit (``-`` for none) and meaning."""

    name: str
    type: str
    unit: str
    meaning: str


def _f(name: str, type_: str, unit: str, meaning: str) -> Field:
    return Field(name, type_, unit, meaning)


MONO = "on the service's monotonic clock (CLOCK_MONOTONIC on the Pi; only differences mean " \
       "anything)"

EVENT_ENVELOPE: tuple[Field, ...] = (
    _f("seq", "int", "-", "per-device number, 1, 2, 3, ... persisted across restarts"),
    _f("epoch", "string", "-", "the outbox's epoch: a new one when the outbox was lost, so "
                               "deduplicate by (epoch, seq)"),
    _f("device_id", "string", "-", "the roller that sent it"),
    _f("kind", "string", "-", "the event kind, as in the topic"),
    _f("time_unix_s", "number", "s", "wall clock when it was stored (Unix time)"),
    _f("session_id", "string or null", "-", "the running session, or null"),
)

EVENT_FIELDS: dict[str, tuple[Field, ...]] = {
    "stroke": (
        _f("start_s", "number", "s", f"when the travel began, {MONO}"),
        _f("end_s", "number", "s", "when it reversed or stopped"),
        _f("distance_m", "number", "m", "distance travelled along the muscle, always positive"),
        _f("peak_speed_m_s", "number", "m/s", "fastest moment of the stroke"),
        _f("mean_speed_m_s", "number", "m/s", "distance / duration"),
        _f("direction", "int", "-", "+1 or -1: the sign of the roll about the roll axis"),
        _f("emitted_at_s", "number", "s", "when the pipeline was sure (latency = emitted_at_s - "
                                          "start_s)"),
    ),
    "hold_started": (
        _f("start_s", "number", "s", "when the roller came to rest on the spot"),
        _f("emitted_at_s", "number", "s", "when it had stayed long enough to count as a hold"),
    ),
    "hold": (
        _f("start_s", "number", "s", "when the hold began"),
        _f("end_s", "number", "s", "when the roller moved on"),
        _f("duration_s", "number", "s", "end_s - start_s"),
        _f("emitted_at_s", "number", "s", "when the pipeline knew the hold had ended"),
    ),
    "too_fast_alert": (
        _f("start_s", "number", "s", "when the speed crossed the limit"),
        _f("speed_m_s", "number", "m/s", "speed when the alert went out"),
        _f("limit_m_s", "number", "m/s", "the go-slow limit (`pipeline.max_speed_m_s`)"),
        _f("emitted_at_s", "number", "s", "when the alert went out (the buzzer pulses then)"),
    ),
    "too_fast": (
        _f("start_s", "number", "s", "when the speed crossed the limit"),
        _f("end_s", "number", "s", "when it fell below again"),
        _f("peak_speed_m_s", "number", "m/s", "fastest moment of the excursion"),
        _f("limit_m_s", "number", "m/s", "the go-slow limit"),
        _f("emitted_at_s", "number", "s", "when this excursion's alert went out"),
    ),
}

LIVE_FIELDS: tuple[Field, ...] = (
    _f("t_s", "number", "s", f"time of the newest sample, {MONO}"),
    _f("speed_m_s", "number", "m/s", "current speed along the muscle (roll rate x radius), "
                                     "unsigned"),
    _f("velocity_m_s", "number", "m/s", "signed speed (+ along the roll axis' positive "
                                        "direction)"),
    _f("phase", "string", "-", "`rolling`, `holding` (still, with someone on it: breathing "
                               "rocks the roller), or `idle` (nobody on it)"),
    _f("stroke_count", "int", "-", "strokes since the service started"),
    _f("hold_time_s", "number", "s", "length of the current hold, 0 when not holding"),
    _f("too_fast", "bool", "-", "true while the speed is above the go-slow limit "
                                "(`pipeline.max_speed_m_s`)"),
    _f("calibrated", "bool", "-", "false until the gyro bias and roll axis are known well "
                                  "enough to trust the speed"),
    _f("speed_clipped", "bool", "-", "true while the gyro (or accelerometer) reads at its full "
                                     "scale: the speed is then a lower bound"),
)

SESSION_FIELDS: tuple[Field, ...] = (
    _f("session_id", "string or null", "-", "date and time of the start and a random suffix"),
    _f("state", "string", "-", "`idle`, `running`, `paused` or `finished`"),
    _f("end_reason", "string or null", "-", "`stopped`, `idle`, `shutdown`, `pain`, "
                                            "`completed`; null while running"),
    _f("started_unix_s", "number or null", "s", "wall clock at the start (Unix time)"),
    _f("ended_unix_s", "number or null", "s", "wall clock at the end (Unix time)"),
    _f("active_s", "number", "s", "time someone was rolling or holding while it ran (pauses, "
                                  "rests and an unattended roller excluded)"),
    _f("running_s", "number", "s", "time running, pauses excluded (what `active_s` meant "
                                   "before 0.3)"),
    _f("strokes", "int", "-", "strokes in this session"),
    _f("distance_m", "number", "m", "distance rolled in this session"),
    _f("holds", "int", "-", "finished holds in this session"),
    _f("hold_time_s", "number", "s", "time spent in those holds"),
    _f("too_fast_count", "int", "-", "finished too-fast excursions"),
    _f("too_fast_s", "number", "s", "time spent above the go-slow limit"),
    _f("mean_speed_m_s", "number or null", "m/s", "time-weighted mean speed while rolling: "
                                                  "distance / time in strokes "
                                                  "(`roller/pipeline/speed_stats.py`; null without "
                                                  "strokes)"),
    _f("median_speed_m_s", "number or null", "m/s", "time-weighted median of the strokes' "
                                                    "speeds"),
    _f("mean_stroke_speed_m_s", "number or null", "m/s", "the same as `mean_speed_m_s`; the "
                                                         "old name, kept until the next "
                                                         "release"),
    _f("peak_speed_m_s", "number", "m/s", "fastest moment (stroke and too-fast peaks)"),
    _f("last_error", "string or null", "-", "why the last command was refused; null once "
                                            "one is accepted"),
    _f("routine", "object (optional)", "-", "the coach's summary once a coached session ended "
                                            "(fields below)"),
)

COACH_FIELDS: tuple[Field, ...] = (
    _f("t_s", "number", "s", "the coach's clock (monotonic; only differences mean anything)"),
    _f("state", "string", "-", "the session's state seen through the routine: `ready` "
                               "(session `idle`), `active` (`running`, in a step), "
                               "`transition` (`running`, changing position, nothing counts), "
                               "`paused` (`paused`), `done` (`finished`)"),
    _f("session_id", "string or null", "-", "the session this state belongs to (the "
                                            "`session` topic's `session_id`)"),
    _f("end_reason", "string or null", "-", "once `done`: the session's `end_reason`"),
    _f("routine", "string", "-", "routine name"),
    _f("routine_title", "string", "-", "routine title for people"),
    _f("step_index", "int or null", "-", "0-based index of the current step (null before "
                                         "start / after the end)"),
    _f("step_count", "int", "-", "steps in the routine"),
    _f("step", "object or null", "-", "the current step: `id`, `title`, `muscle`, `side` "
                                      "(`left`/`right`/`none`), `prop` (`roller`/`ball`), "
                                      "`position`, `caution`, `target_active_s` [s]"),
    _f("next_step", "object or null", "-", "the next step, same fields"),
    _f("prompt", "string", "-", "the one sentence to show large (and speak)"),
    _f("detail", "string", "-", "a second line: the position, a caution, the breathing cue, "
                                "the time left"),
    _f("cue", "string", "-", "what kind of prompt it is, for sounds and colours: "
                             "`calibrating`, `ready`, `position`, `rolling`, `keep_going`, "
                             "`too_fast`, `hold`, `hold_reached`, `hold_long`, "
                             "`switch_sides`, `step_done`, `paused`, `routine_done`, "
                             "`stopped`, `idle_end`, `shutdown`, `pain_stop`"),
    _f("step_active_s", "number", "s", "active time (rolling or holding) in this step"),
    _f("step_target_s", "number", "s", "the step's target active time"),
    _f("step_progress", "number", "1", "step_active_s / step_target_s, 0..1"),
    _f("routine_progress", "number", "1", "share of the whole routine's target done, 0..1"),
    _f("sides_s", "object", "s", "active time so far per side: `left`, `right`, `none`"),
    _f("side_targets_s", "object", "s",
       "the routine's dose per side: rolling plus its holds' minimum (hold_min_s each)"),
    _f("strokes", "int", "-", "strokes counted in this session's steps"),
    _f("hold", "object or null", "s", "during a hold: `elapsed_s`, the window `min_s`..`max_s` "
                                      "and `remaining_s` until `min_s`; else null"),
    _f("breath", "string or null", "-", "during a hold, the breathing rhythm: `in` / `out`"),
    _f("breath_remaining_s", "number or null", "s", "seconds left in that half breath"),
    _f("too_fast", "bool", "-", "true while the slow-down prompt is up"),
    _f("speed_target_m_s", "number or null", "m/s", "the go-slow target speed "
                                                    "(`pipeline.target_speed_m_s`)"),
    _f("speed_limit_m_s", "number or null", "m/s", "the go-slow limit "
                                                   "(`pipeline.max_speed_m_s`): draw the band "
                                                   "the pipeline judges by"),
    _f("summary", "object or null", "-", "once `state` is `done`: the session summary "
                                         "(fields below), else null"),
    _f("speech", "object or null", "-", "the last sentence the coach decided to say aloud "
       "(`roller/coaching/speech.py`, policy in [coaching.md](coaching.md)): `id` "
       "(increasing), `text`, "
       "`priority` (1 encouragement .. 5 safety), `kind` (a cue), `asked_s` (when the "
       "situation arose), `decided_s` (when it was chosen, at most 3 s later), `duration_s` "
       "(estimated speaking time), `replaces_id` (the obsolete sentence it may cut, after "
       "`next`; else null). A display speaks each id once, only while fresh, and interrupts "
       "only for a higher priority; null before anything was said"),
    _f("dose", "object or null", "-", "the current muscle and side's dose: `rolling_s` of "
                                      "`rolling_target_s` (or `rolling_only_s` alone), "
                                      "`holds` of `holds_target` (of `hold_min_s`), "
                                      "`progress` 0..1, `met`"),
)

SUMMARY_FIELDS: tuple[Field, ...] = (
    _f("routine", "string", "-", "routine name"),
    _f("routine_title", "string", "-", "routine title"),
    _f("started_unix_s", "number", "s", "wall clock at the start (Unix time)"),
    _f("ended_unix_s", "number", "s", "wall clock at the end (Unix time)"),
    _f("duration_s", "number", "s", "start to end, pauses included"),
    _f("end_reason", "string", "-", "`completed`, `stopped`, `pain`, `idle` (idle timeout) or "
                                    "`shutdown` (the service stopped)"),
    _f("active_s", "number", "s", "time rolling or holding while the session ran: the "
                                  "`session` topic's `active_s` (the routine's steps and the "
                                  "changes of position between them)"),
    _f("sides_s", "object", "s", "active time in the routine's steps per side: `left`, "
                                 "`right`, `none`"),
    _f("left_share", "number or null", "1", "left / (left + right); 0.5 is even"),
    _f("strokes", "int", "-", "strokes in the session (the `session` topic's figure; "
                              "`steps` count their own)"),
    _f("holds", "int", "-", "finished holds in the session"),
    _f("longest_hold_s", "number", "s", "the longest hold"),
    _f("too_fast_count", "int", "-", "too-fast excursions"),
    _f("too_fast_s", "number", "s", "time spent too fast"),
    _f("mean_speed_m_s", "number or null", "m/s", "time-weighted mean speed while rolling "
                                                  "(`roller/pipeline/speed_stats.py`)"),
    _f("median_speed_m_s", "number or null", "m/s", "time-weighted median of the strokes' "
                                                    "speeds"),
    _f("peak_speed_m_s", "number or null", "m/s", "fastest moment (stroke and too-fast "
                                                  "peaks)"),
    _f("advice", "string", "-", "set after `pain`"),
    _f("distance_m", "number", "m", "distance rolled in the session (the `session` topic's "
                                    "figure)"),
    _f("doses", "object", "-", "per muscle, per side `rolling_s`, `holding_s`, `holds` (of "
                               "20 s or more), and `left_share`"),
    _f("steps", "list", "-", "one object per step: `id`, `title`, `muscle`, `side`, `prop`, "
                             "`target_s`, `active_s`, `rolling_s`, `holding_s`, `strokes`, "
                             "`holds_s` (list) and `longest_hold_s` [s], `too_fast_count`, "
                             "`too_fast_s`, `mean_speed_m_s`, `peak_speed_m_s`, `completed`, "
                             "`skipped`"),
)

HEALTH_FIELDS: tuple[Field, ...] = (
    _f("device_id", "string", "-", "the roller"),
    _f("state", "string", "-", "`ok`, or `degraded` while the sensor is faulty, after "
                               "outbox drops, while the outbox cannot write to disk, or while "
                               "another roller uses the same device id"),
    _f("uptime_s", "number", "s", "time since the service started"),
    _f("sensor", "object", "-", "`chip`, `output_rate_hz` [Hz], `connected`, the driver's "
                                "counters (`samples`, `overflows`, `fifo_faults`, `retries`, "
                                "`reinits`, `disconnects`, `samples_lost_estimate`, "
                                "`burst_failures`, `burst_frames_lost`), `last_error` and "
                                "`last_sample_age_s` [s]"),
    _f("mqtt", "object", "-", "`connected`, `connects`, `outbox_pending`, `outbox_dropped`, "
                              "`last_seq`, `epoch`, `outbox_in_memory`, `outbox_disk_error` "
                              "(null when the disk is fine), `outbox_file_problem` (only once "
                              "the outbox file was deleted or replaced while running: what "
                              "happened), `undeliverable`, `live_sent`, "
                              "`live_skipped`, `commands_refused`, `retained_commands`, "
                              "`duplicate_of` (null, or the other instance with this id), "
                              "`last_disconnect_reason`, `link_problem` (null, or why the "
                              "broker link is not up), `client_rebuilds` (MQTT clients rebuilt "
                              "because one died, hung or failed in a callback), "
                              "`client_failure` (null, or why the last rebuild, for 2 min), "
                              "`callback_failures`"),
    _f("instance", "string", "-", "`<machine>-<run>`: a stable hash of the machine and a random "
                                  "id per process; another instance on this topic means two "
                                  "services share the device id"),
    _f("events_published", "int", "-", "events handed to the outbox since the start"),
    _f("calibrated", "bool", "-", "whether the speed can be trusted"),
    _f("speed_clipped", "bool", "-", "whether the sensor reads at its full scale now (the "
                                     "speed is then a lower bound: a larger gyro range helps)"),
    _f("time_unix_s", "number", "s", "wall clock when it was sent (Unix time)"),
)

ERROR_FIELDS: tuple[Field, ...] = (
    _f("device_id", "string", "-", "the roller"),
    _f("error", "string", "-", "the kind of error (table below)"),
    _f("message", "string", "-", "what was wrong and what was expected, for people"),
    _f("time_unix_s", "number", "s", "wall clock (Unix time)"),
    _f("command", "string (optional)", "-", "for a refused command: its verb"),
    _f("source", "string (optional)", "-", "for a refused command: `mqtt` or `gpio`"),
    _f("expected", "any (optional)", "-", "what would have been accepted"),
    _f("key", "string (optional)", "-", "for a bad payload: the offending key"),
    _f("actual", "string (optional)", "-", "for a bad payload: the value given"),
)

ERROR_CODES: dict[str, str] = {
    "unknown_command": "`cmd/<verb>` with a verb the service does not know (`expected` lists "
                       "them)",
    "bad_payload": "the payload is not empty / a JSON object, or fails validation (`key`, "
                   "`expected`, `actual`)",
    "not_possible": "the command makes no sense now (`pause` with no running session, ...)",
    "sensor_fault": "the sensor stopped answering or reports an error",
    "outbox_full": "events were dropped because the outbox was full (`dropped_total`, "
                   "`last_dropped_seq`)",
    "history_failed": "a finished session could not be stored in the history",
    "too_many_commands": "more than 256 commands arrived between two loop steps; the excess "
                         "was dropped (`dropped_total`)",
    "retained_command": "a `cmd/<verb>` arrived retained: commands act once, when sent, so it "
                        "was ignored (said once per topic; `ignored_total`); clear it with an "
                        "empty retained message",
    "undeliverable": "a stored message the broker can never take (a malformed topic, too "
                     "large) was dropped instead of retried (`topic`, `dropped_total`)",
    "outbox_disk": "the outbox cannot write to disk (full, read-only): events wait in memory "
                   "within the bound until the disk takes them again (`reason`)",
    "outbox_replaced": "the outbox file was deleted or replaced while the service ran: a new "
                       "file with a new `epoch` took every message still waiting (`epoch`, "
                       "`waiting`)",
    "duplicate_device": "another roller process, on this machine or another, publishes with "
                        "this device id (`other_instance`): run one service per device id "
                        "and give each roller its own `[device] id`",
}

STATE_FIELDS: tuple[Field, ...] = (
    _f("phase", "string", "-", "`idle`, `rolling` or `holding`, as in `live`, at the end of the "
                               "interval"),
    _f("calibrated", "bool", "-", "whether the speed can be trusted"),
    _f("speed_mm_s", "int or null", "mm/s", "mean speed along the muscle over the last "
                                            "`homeassistant.speed_average_s`, in steps of "
                                            "5 mm/s; null until calibrated"),
    _f("too_fast", "bool", "-", "true if the speed was above the go-slow limit at any moment "
                                "of the interval"),
    _f("session_state", "string", "-", "`idle`, `running`, `paused` or `finished`"),
    _f("last_error", "string", "-", "why the last command was refused (`cannot stop: the "
                                    "session is finished`); `none` once one is accepted"),
    _f("session_active_s", "int", "s", "the session's active time, in steps of 10 s"),
    _f("session_strokes", "int", "-", "strokes in this session"),
    _f("session_distance_m", "number", "m", "distance rolled in this session, in steps of 0.5 m"),
    _f("session_holds", "int", "-", "finished holds in this session"),
    _f("session_hold_time_s", "int", "s", "time spent in those holds, whole seconds"),
    _f("session_too_fast_count", "int", "-", "finished too-fast excursions in this session"),
    _f("session_too_fast_s", "number", "s", "time spent too fast in this session, to 0.1 s"),
    _f("session_mean_speed_mm_s", "int or null", "mm/s", "mean of the strokes' mean speeds, "
                                                         "whole mm/s (null without strokes)"),
    _f("coach_state", "string or null", "-", "the coach's `state` (null without a coach)"),
    _f("step", "string or null", "-", "the current step's title (null outside a step)"),
    _f("prompt", "string or null", "-", "the coach's prompt, at most 255 characters"),
    _f("routine_progress_pct", "int or null", "%", "share of the routine done, in steps of 5 %"),
    _f("health", "string", "-", "`ok` or `degraded`, as in `health`"),
    _f("sensor_connected", "bool", "-", "the sensor answers and delivers samples"),
    _f("today_active_s", "int", "s", "time rolling or holding today (the local date's "
                                     "finished sessions and the one under way), in whole "
                                     "minutes (steps of 60 s, rounded down); a session counts "
                                     "for the date it started on, once it has "
                                     "`session.min_record_active_s`"),
    _f("today_holds", "int", "-", "finished holds today"),
    _f("today_distance_m", "int", "m", "distance rolled today, whole metres (rounded down)"),
    _f("today_sessions", "int", "-", "sessions today, the one under way included"),
    _f("last_session", "object or null", "-", "the newest finished session kept in the "
                                               "history: `started_unix_s`, `ended_unix_s`, "
                                               "`routine_title`, `end_reason`, `active_s` and "
                                               "`too_fast_s` (whole s), `strokes`, `holds`, "
                                               "`distance_m` (0.1 m, null if unknown), "
                                               "`mean_speed_mm_s` (whole, or null), "
                                               "`left_share_pct` (whole %, or null); null "
                                               "before the first"),
)
"""The ``state`` payload: what a home-automation system records. Rounded so a value changes
only when a person would see the difference, sent at most every
``homeassistant.state_interval_s`` and only when something changed (plus a heartbeat), so a
recorder writes a few thousand rows per hour of rolling rather than tens of thousands."""

FIELDS: dict[str, tuple[Field, ...]] = {
    "live": LIVE_FIELDS,
    "event": EVENT_ENVELOPE,
    **{f"event/{kind}": fields for kind, fields in EVENT_FIELDS.items()},
    "session": SESSION_FIELDS,
    "coach": COACH_FIELDS,
    "summary": SUMMARY_FIELDS,
    "health": HEALTH_FIELDS,
    "error": ERROR_FIELDS,
    "state": STATE_FIELDS,
}
"""The field table of every JSON payload (``event`` is the envelope every event carries)."""

EVENT_ATTRIBUTES = {"start_s": "start", "end_s": "end", "emitted_at_s": "emitted_at"}
"""Payload field -> the pipeline event's attribute, where the two differ: the events name their
times by role (``roller.pipeline.events``), the payload adds the unit."""

SUMMARY_ATTRIBUTES = {"started_unix_s": "started_at", "ended_unix_s": "ended_at"}
"""Payload field -> the session summary's attribute, where the two differ (the history's
columns keep the summary's names)."""


# -- builders -------------------------------------------------------------------------------

def rounded(value: Any, digits: int = 4) -> Any:
    """Floats (also inside dicts and lists) to ``digits`` decimals: 4 is 0.1 ms, 0.1 mm,
    0.1 mm/s -- finer is noise, and payloads shrink. NaN and infinities become None."""
    if isinstance(value, float):
        return round(value, digits) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v, digits) for v in value]
    return value


def _event_fields(event: Any) -> dict[str, Any]:
    """The per-kind fields of a pipeline event (``roller.pipeline.events.Event``), units in the
    names."""
    kind = event.kind
    body = {}
    for field in EVENT_FIELDS[kind]:
        if field.name == "duration_s":
            value = event.duration_s
        else:
            source = EVENT_ATTRIBUTES.get(field.name, field.name)
            value = getattr(event, source)
        body[field.name] = value
    return rounded(body)


def event_payload(event: Any, *, session_id: str | None) -> dict[str, Any]:
    """An event's MQTT payload before the publisher adds ``seq``, ``device_id``, ``kind`` and
    ``time_unix_s`` (:func:`event_envelope`)."""
    return {**_event_fields(event), "session_id": session_id}


def event_envelope(device_id: str, kind: str, time_unix_s: float,
                   body: Mapping[str, Any]) -> dict[str, Any]:
    """What :meth:`roller.mqtt.publisher.Publisher.publish_event` stores (the outbox adds
    ``seq``)."""
    return {"device_id": device_id, "kind": kind, "time_unix_s": round(time_unix_s, 3),
            **body}


def analysis_event(event: Any) -> dict[str, Any]:
    """An event in ``roller analyze --json``: the MQTT event's fields plus ``kind``."""
    return {"kind": event.kind, **_event_fields(event)}


def live_payload(live: Any) -> dict[str, Any]:
    """The ``live`` message from the pipeline's ``roller.pipeline.events.LiveState``."""
    return rounded({"t_s": live.t, "speed_m_s": live.speed_m_s,
                    "velocity_m_s": live.velocity_m_s, "phase": live.phase,
                    "stroke_count": live.stroke_count, "hold_time_s": live.hold_time_s,
                    "too_fast": bool(live.too_fast), "calibrated": bool(live.calibrated),
                    "speed_clipped": bool(live.speed_clipped)})


def session_payload(*, session_id: str | None, state: str, end_reason: str | None,
                    started_unix_s: float | None, ended_unix_s: float | None, active_s: float,
                    running_s: float, strokes: int, distance_m: float, holds: int,
                    hold_time_s: float, too_fast_count: int, too_fast_s: float,
                    mean_speed_m_s: float | None, median_speed_m_s: float | None,
                    peak_speed_m_s: float, routine: Mapping[str, Any] | None = None
                    ) -> dict[str, Any]:
    """The retained ``session`` summary (see :data:`SESSION_FIELDS`)."""
    def speed(v: float | None) -> float | None:
        return None if v is None else round(v, 4)

    body = {"session_id": session_id, "state": state, "end_reason": end_reason,
            "started_unix_s": started_unix_s, "ended_unix_s": ended_unix_s,
            "active_s": round(active_s, 3), "running_s": round(running_s, 3),
            "strokes": strokes, "distance_m": round(distance_m, 4), "holds": holds,
            "hold_time_s": round(hold_time_s, 3), "too_fast_count": too_fast_count,
            "too_fast_s": round(too_fast_s, 3), "mean_speed_m_s": speed(mean_speed_m_s),
            "median_speed_m_s": speed(median_speed_m_s),
            "mean_stroke_speed_m_s": speed(mean_speed_m_s),
            "peak_speed_m_s": round(peak_speed_m_s, 4)}
    if routine is not None:
        body["routine"] = summary_payload(routine)
    return body


def summary_payload(summary: Mapping[str, Any]) -> dict[str, Any]:
    """A coached session's summary (``roller.coaching.records.SessionSummary.to_dict()``) with
    units in its names (:data:`SUMMARY_ATTRIBUTES`)."""
    body = dict(summary)
    for new, old in SUMMARY_ATTRIBUTES.items():
        if old in body:
            value = body.pop(old)
            body.setdefault(new, value)
    return body


def coach_payload(state: Mapping[str, Any]) -> dict[str, Any]:
    """The retained ``coach`` payload from the coach's state fields (see
    :data:`COACH_FIELDS`), rounded to 4 decimals."""
    body = rounded(dict(state))
    if body.get("summary") is not None:
        body["summary"] = summary_payload(body["summary"])
    return body


def health_payload(*, device_id: str, degraded: bool, uptime_s: float,
                   sensor: Mapping[str, Any], mqtt: Mapping[str, Any], events_published: int,
                   calibrated: bool, time_unix_s: float, instance: str = "",
                   speed_clipped: bool = False) -> dict[str, Any]:
    """The retained ``health`` payload (see :data:`HEALTH_FIELDS`)."""
    return {"device_id": device_id, "state": "degraded" if degraded else "ok",
            "uptime_s": round(uptime_s, 1), "sensor": dict(sensor), "mqtt": dict(mqtt),
            "events_published": events_published, "calibrated": calibrated,
            "speed_clipped": speed_clipped, "instance": instance,
            "time_unix_s": round(time_unix_s, 3)}


MAX_STATE_TEXT_CHARS = 255
"""Home Assistant refuses states longer than 255 characters."""

STATE_SPEED_STEP_MM_S = 5
"""``state`` speeds in steps of 5 mm/s: a tenth of the go-slow limit, what a person can tell
apart; finer steps change every second while rolling and fill the recorder."""

STATE_PROGRESS_STEP_PCT = 5
"""``state`` routine progress in steps of 5 %."""

STATE_DAY_ACTIVE_STEP_S = 60
"""``state`` day totals of active time in whole minutes: a row a minute in a recorder while
someone rolls, not one every few seconds."""

STATE_DAY_DISTANCE_STEP_M = 1
"""``state`` day totals of distance in whole metres (about a minute of rolling at the go-slow
target speed)."""


def _floor(value: float, step: float) -> int:
    """``value`` rounded down to a multiple of ``step`` (a total never shows what is not yet
    done; the micro-margin absorbs a sum's last-digit noise at an exact multiple)."""
    return int(math.floor(value / step + 1e-9) * step)


def last_session_state(last: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ``state`` payload's ``last_session`` from a finished session's figures
    (``roller.coaching.day_totals.last_session_of_summary``), rounded so it reads at a glance."""
    if last is None:
        return None
    distance = last.get("distance_m")
    mean = last.get("mean_speed_m_s")
    share = last.get("left_share")
    return {"started_unix_s": last["started_unix_s"], "ended_unix_s": last["ended_unix_s"],
            "routine_title": last["routine_title"], "end_reason": last["end_reason"],
            "active_s": _whole(last["active_s"]) or 0, "strokes": int(last["strokes"]),
            "holds": int(last["holds"]),
            "distance_m": None if distance is None else round(distance, 1),
            "too_fast_s": _whole(last["too_fast_s"]) or 0,
            "mean_speed_mm_s": None if mean is None else _whole(mean * 1000.0),
            "left_share_pct": None if share is None else _whole(share * 100.0)}


def _whole(value: float | None, step: float = 1.0) -> int | None:
    if value is None or not math.isfinite(value):
        return None
    return int(round(value / step) * step)


def state_payload(*, phase: str, calibrated: bool, speed_m_s: float | None, too_fast: bool,
                  session: Mapping[str, Any], too_fast_s: float,
                  coach: Mapping[str, Any] | None, health_ok: bool,
                  sensor_connected: bool, today: Any = None,
                  last_session: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``state`` payload (see :data:`STATE_FIELDS`). ``speed_m_s`` is the recent mean
    speed [m/s] (None: no reading); ``session`` is a ``session`` payload
    (:func:`session_payload`); ``too_fast_s`` the session's time too fast [s]; ``coach`` the
    coach's state fields (``state``, ``step``, ``prompt``, ``routine_progress``) or None;
    ``today`` the day's totals (``active_s`` [s], ``holds``, ``distance_m`` [m],
    ``sessions``: ``roller.coaching.day_totals.DayTotals``; None: nothing today);
    ``last_session`` the newest finished session's figures (:func:`last_session_state`)."""
    mean = session.get("mean_stroke_speed_m_s")
    step = (coach or {}).get("step")
    prompt = (coach or {}).get("prompt")
    progress = (coach or {}).get("routine_progress")
    return {
        "phase": phase, "calibrated": bool(calibrated),
        "speed_mm_s": _whole(speed_m_s * 1000.0, STATE_SPEED_STEP_MM_S)
        if calibrated and speed_m_s is not None else None,
        "too_fast": bool(too_fast),
        "session_state": session["state"],
        "last_error": session.get("last_error") or "none",
        "session_active_s": _whole(session["active_s"], 10.0) or 0,
        "session_strokes": int(session["strokes"]),
        "session_distance_m": round(session["distance_m"] * 2.0) / 2.0,
        "session_holds": int(session["holds"]),
        "session_hold_time_s": _whole(session["hold_time_s"]) or 0,
        "session_too_fast_count": int(session["too_fast_count"]),
        "session_too_fast_s": round(too_fast_s, 1),
        "session_mean_speed_mm_s": None if mean is None else _whole(mean * 1000.0),
        "coach_state": None if coach is None else coach.get("state"),
        "step": step.get("title") if isinstance(step, Mapping) else None,
        "prompt": prompt[:MAX_STATE_TEXT_CHARS] if isinstance(prompt, str) and prompt
        else None,
        "routine_progress_pct": None if progress is None
        else _whole(progress * 100.0, STATE_PROGRESS_STEP_PCT),
        "health": "ok" if health_ok else "degraded",
        "sensor_connected": bool(sensor_connected),
        "today_active_s": 0 if today is None else _floor(today.active_s,
                                                          STATE_DAY_ACTIVE_STEP_S),
        "today_holds": 0 if today is None else int(today.holds),
        "today_distance_m": 0 if today is None else _floor(today.distance_m,
                                                            STATE_DAY_DISTANCE_STEP_M),
        "today_sessions": 0 if today is None else int(today.sessions),
        "last_session": last_session_state(last_session),
    }


def error_payload(device_id: str, code: str, message: str, time_unix_s: float,
                  **details: Any) -> dict[str, Any]:
    """An ``error`` report: ``code`` is one of :data:`ERROR_CODES`."""
    return {"device_id": device_id, "error": code, "message": message,
            "time_unix_s": round(time_unix_s, 3), **details}


def status_payload(online: bool) -> bytes:
    """``status``: plain text ``online`` or ``offline``."""
    return b"online" if online else b"offline"


def command_payload(payload: Mapping[str, Any] | None = None) -> bytes:
    """A ``cmd/<verb>`` payload: empty, or a compact JSON object (NaN and infinities refused:
    raises ValueError, as for anything not JSON)."""
    return json.dumps(dict(payload), separators=(",", ":"), allow_nan=False).encode() \
        if payload else b""


def display_contract(*, target_speed_m_s: float | None = None,
                     max_speed_m_s: float | None = None) -> dict[str, Any]:
    """What a display needs besides the payloads, for the display server to serve (so the page
    holds no copy): the command verbs (a list, and with what each does), the event kinds, the
    topics, and the go-slow ``band`` [m/s] to draw until a roller's ``coach`` payload brings its
    own (``speed_target_m_s``, ``speed_limit_m_s``); None when the display was given none. Pass
    the ``[pipeline]`` settings the display's config names."""
    band = None if target_speed_m_s is None or max_speed_m_s is None else \
        {"target_m_s": target_speed_m_s, "limit_m_s": max_speed_m_s}
    return {"verbs": list(COMMAND_VERBS), "command_verbs": dict(COMMAND_VERBS),
            "event_kinds": list(EVENT_KINDS),
            "topics": {t.name: {"qos": t.qos, "retain": t.retain} for t in TOPICS},
            "band": band}


# -- documentation --------------------------------------------------------------------------

def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def field_table(fields: tuple[Field, ...]) -> str:
    rows = ["| field | type | unit | meaning |", "| --- | --- | --- | --- |"]
    rows += [f"| `{f.name}` | {f.type} | {f.unit} | {_cell(f.meaning)} |" for f in fields]
    return "\n".join(rows)


def topic_table() -> str:
    rows = ["| topic | QoS | retained | stored | direction | payload |",
            "| --- | --- | --- | --- | --- | --- |"]
    rows += [f"| `roller/<id>/{t.name}` | {t.qos} | {'yes' if t.retain else 'no'} | "
             f"{'yes' if t.stored else 'no'} | {t.direction} | {t.what} |" for t in TOPICS]
    rows += ["| `homeassistant/device/<id>/config` | 1 | yes | no | out | Home Assistant "
             "device discovery |",
             "| `homeassistant/status` | - | - | - | in | `online` from Home Assistant: "
             "discovery is sent again |"]
    return "\n".join(rows)


def command_table() -> str:
    rows = ["| verb | effect |", "| --- | --- |"]
    rows += [f"| `{verb}` | {_cell(doc)} |" for verb, doc in COMMAND_VERBS.items()]
    return "\n".join(rows)


def error_table() -> str:
    rows = ["| `error` | when |", "| --- | --- |"]
    rows += [f"| `{code}` | {_cell(doc)} |" for code, doc in ERROR_CODES.items()]
    return "\n".join(rows)


def blocks() -> dict[str, str]:
    """Every generated block of ``docs/mqtt.md`` by name."""
    out = {"topics": topic_table(), "commands": command_table(), "errors": error_table()}
    out.update({name: field_table(fields) for name, fields in FIELDS.items()})
    return out


_BLOCK = re.compile(r"(?P<head><!-- contract:(?P<name>[a-z_/]+) -->\n)"
                    r"(?P<body>(?:(?!<!-- /?contract).*\n)*?)(?P<tail><!-- /contract -->)")


def render_docs(text: str) -> str:
    """``text`` (docs/mqtt.md) with every ``<!-- contract:NAME -->`` block regenerated."""
    tables = blocks()

    def replace(m: re.Match[str]) -> str:
        name = m.group("name")
        if name not in tables:
            raise ValueError(f"docs/mqtt.md names an unknown contract block {name!r}: "
                             f"expected one of {sorted(tables)}")
        return m.group("head") + tables[name] + "\n" + m.group("tail")

    return _BLOCK.sub(replace, text)


def main(argv: list[str] | None = None) -> int:
    """``python -m roller.contract.messages docs/mqtt.md``: regenerate the tables in place."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m roller.contract.messages docs/mqtt.md", file=sys.stderr)
        return 2
    path = Path(args[0])
    path.write_text(render_docs(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
