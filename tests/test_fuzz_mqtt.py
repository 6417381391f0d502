"""Fuzz tests (hypothesis) for the MQTT payload decoders: the service's command decoder and the
display bridge's message decoder. Any bytes, any nesting: never an exception but the
documented one (CommandError, PayloadError), always in bounded time."""

from __future__ import annotations

import json
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.clock import ManualClock
from roller.base.untrusted import PayloadError, nesting_depth
from roller.coaching.session import Session
from roller.coaching.session_commands import SessionCommands
from roller.contract.command_table import CommandError, CommandInbox, CommandTable, decode_payload
from roller.display.bridge import MqttBridge, _forbidden_key, decode_message
from roller.mqtt.client import MqttSettings

BOUND_S = 0.5
"""No single decode may take longer than this (they take microseconds to milliseconds)."""

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
    max_leaves=20)


@st.composite
def nested(draw) -> bytes:
    """Deep or unbalanced nesting, optionally inside an object or a string, with junk."""
    opens = draw(st.integers(0, 3000))
    closes = draw(st.integers(0, 3000))
    pair = draw(st.sampled_from([(b"[", b"]"), (b"{", b"}"), (b'{"a":[', b"]}")]))
    body = pair[0] * opens + draw(st.binary(max_size=8)) + pair[1] * closes
    wrap = draw(st.sampled_from([b"%s", b'{"step": %s}', b'"%s"', b'{"step": "%s"}']))
    return wrap.replace(b"%s", body)


payloads = st.one_of(
    st.binary(max_size=5000),
    nested(),
    st.builds(lambda v: json.dumps(v).encode(), json_values),
    st.builds(lambda v: json.dumps({"a": [v, {"__proto__": v}]}).encode(), json_values),
    st.builds(lambda t: t.encode("utf-8", errors="surrogatepass"), st.text(max_size=200)),
    st.builds(lambda n, c: c * n, st.integers(0, 20_000),
              st.sampled_from([b"[", b"{", b'"', b"\\", b" ", b"\0", b"\xff"])),
)

verbs = st.one_of(st.sampled_from(["start", "pause", "resume", "next", "stop", "start_pause",
                                   "pain"]),
                  st.text(min_size=1, max_size=100))


def timed(fn, *args):
    began = time.perf_counter()
    try:
        return fn(*args)
    finally:
        took = time.perf_counter() - began
        assert took < BOUND_S, f"{fn.__name__} took {took:.3f} s"


@settings(max_examples=400, deadline=None)
@given(verb=verbs, raw=payloads)
def test_the_command_decoder_raises_only_command_errors(verb, raw):
    try:
        data = timed(decode_payload, verb, raw)
    except CommandError as exc:
        assert exc.code == "bad_payload" and len(str(exc)) < 400
        return
    assert isinstance(data, dict)
    json.dumps(data)  # what came out can be shown again
    assert nesting_depth(json.dumps(data).encode()) <= 8


_TABLE = CommandTable()
_COMMANDS = SessionCommands(Session(), None, ManualClock(), _TABLE)


@settings(max_examples=300, deadline=None)
@given(verb=verbs, raw=payloads)
def test_the_command_table_refuses_with_command_errors_only(verb, raw):
    try:
        timed(_TABLE.dispatch, verb, raw)
    except CommandError as exc:
        assert exc.code in ("unknown_command", "bad_payload", "not_possible")
        repr(exc.details)  # reportable


TOPICS = ["live", "coach", "session", "health", "status", "error", "event/stroke"]


@settings(max_examples=400, deadline=None)
@given(topic=st.sampled_from(TOPICS), raw=payloads)
def test_the_display_decoder_raises_only_payload_errors(topic, raw):
    try:
        payload = timed(decode_message, topic, raw)
    except PayloadError as exc:
        assert len(str(exc)) < 400
        return
    assert payload is None or isinstance(payload, dict) or payload in ("online", "offline")
    assert _forbidden_key(payload) is None  # no __proto__ key reaches the page
    json.dumps(payload)  # the page gets it as JSON


_BRIDGE = MqttBridge(MqttSettings())  # not started: _handle is fed directly


@settings(max_examples=400, deadline=None)
@given(device=st.one_of(st.sampled_from(["mat-1", "__proto__", "mat-1\n", "", "-x"]),
                        st.text(max_size=70)),
       topic=st.one_of(st.sampled_from([*TOPICS, "cmd/start", "event/", "event/a/b"]),
                       st.text(max_size=30)),
       raw=payloads, retained=st.booleans())
def test_the_bridge_drops_what_breaks_the_contract_and_never_raises(device, topic, raw,
                                                                   retained):
    before = (_BRIDGE.messages, _BRIDGE.bad_messages, _BRIDGE.ignored_messages)
    timed(_BRIDGE._handle, f"roller/{device}/{topic}", raw, retained)
    after = (_BRIDGE.messages, _BRIDGE.bad_messages, _BRIDGE.ignored_messages)
    assert sum(after) - sum(before) == 1  # each message counted exactly once
    assert _BRIDGE.handler_failures == 0
    snap = _BRIDGE.snapshot()
    assert "__proto__" not in snap["devices"] and all(
        d[0].isalnum() for d in snap["devices"])
    json.dumps(snap)


def _message(topic: bytes, payload: bytes, retained: bool):
    import paho.mqtt.client as mqtt

    msg = mqtt.MQTTMessage(topic=topic)
    msg.payload = payload
    msg.retain = retained
    return msg


@settings(max_examples=300, deadline=None)
@given(topic=st.one_of(st.binary(max_size=60).map(lambda b: b"roller/" + b),
                       st.sampled_from([b"roller/mat-1/live", b"roller/fz/cmd/start",
                                        b"roller/fz/health", b"roller/\xff/live"])),
       raw=payloads, retained=st.booleans())
def test_paho_callbacks_take_any_topic_bytes(topic, raw, retained, tmp_path_factory):
    """What paho hands the callbacks, raw: a topic that is not even UTF-8 must not raise out
    of the network thread's callback (it would end the thread)."""
    before = (_BRIDGE.messages, _BRIDGE.bad_messages, _BRIDGE.ignored_messages)
    # paho's own callback (the connection's guard around the bridge's handler)
    timed(_BRIDGE.client.on_message, _BRIDGE.client, None, _message(topic, raw, retained))
    after = (_BRIDGE.messages, _BRIDGE.bad_messages, _BRIDGE.ignored_messages)
    assert sum(after) - sum(before) == 1 and _BRIDGE.handler_failures == 0
    assert _BRIDGE.link.callback_failures == 0
    pub = _publisher(tmp_path_factory)
    timed(pub.client.on_message, pub.client, None, _message(topic, raw, retained))
    assert len(_INBOX) <= _INBOX.capacity


_INBOX = CommandInbox()
_PUBLISHERS: list = []


def _publisher(tmp_path_factory):
    """One publisher, never connected (its callbacks are fed directly)."""
    if not _PUBLISHERS:
        from roller.contract.messages import Topics
        from roller.mqtt.outbox import Outbox
        from roller.mqtt.publisher import Publisher

        box = Outbox(tmp_path_factory.mktemp("fuzz-pub") / "o.sqlite3")
        _PUBLISHERS.append(Publisher(MqttSettings(), Topics("fz"), box,
                                     on_command=_INBOX.submit))
    return _PUBLISHERS[0]
