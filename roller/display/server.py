"""The display's HTTP server: the page, a Server-Sent Events stream, and a command endpoint.

* ``GET /`` and ``/static/...``: the page (our own HTML/CSS/JS, works offline).
* ``GET /events``: ``text/event-stream``; first ``{"type": "config", "device": ...}`` (the
  ``[display] device`` to show when the browser has no choice of its own), then each message of
  :class:`~roller.display.bridge.MqttBridge` as one ``data:`` line of JSON. A comment line
  every ``keepalive_s`` keeps proxies and phones from closing an idle stream; the browser's
  EventSource reconnects by itself.
* ``POST /api/cmd/<verb>`` with a JSON body ``{"device": id, "payload": {...}}``: publishes
  ``cmd/<verb>`` to that roller. It needs the pairing token (``Authorization: Bearer <token>``,
  :mod:`roller.display.pairing`) and, when the browser sends an Origin, the page's own origin
  (:mod:`roller.base.request_guard`). Only ``application/json`` bodies of a known length
  are taken.
* ``GET /api/pairing``: ``{"paired": bool}``, whether the request's token is the display's.
* ``GET /api/state``: the broker link and every device's latest messages as JSON.
* ``GET /api/history?device=ID``: the sessions the display heard that roller finish
  (:mod:`roller.display.session_log`), oldest first, as ``{"columns": [...], "rows": [...]}``,
  plus the rollers it has sessions of; ``GET /api/history/session?device=ID&id=SESSION``: one
  session with its steps and chart; ``GET /api/history/verdict?device=ID&id=SESSION``: the
  closing words on it against the sessions before it (:mod:`roller.display.progress`). The
  display keeps this history itself from the messages
  on the broker: it never opens a roller's database.
* ``GET /api/contract``: what the page must agree on with the roller, built from the Python
  declarations: the command verbs (:mod:`roller.contract.verbs`), the cues with their speech
  priority,
  look and tone (:mod:`roller.contract.cues`), the go-slow band (the pipeline's settings, given by
  the
  command that starts the display) and the speech freshness limit. The same JSON is embedded in
  the page when it is served, so the page has no copies of its own.

Watching needs no token; every request must name the display by an allowed Host (DNS rebinding).
Every refused request gets a JSON ``{"error": ...}`` that says why, and is counted and logged at
a bounded rate (:mod:`roller.base.refusals`); the transport's limits (deadlines, connection
cap) are in :mod:`roller.base.http_limits`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import re
import socket
import sqlite3
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from roller.base.http_limits import (
    DeadlineReader,
    HeadTooLargeError,
    LimitedHTTPServer,
    ShortBodyError,
    SocketWriter,
)
from roller.base.refusals import RefusalLog
from roller.base.request_guard import RequestGuard, machine_names
from roller.base.settings import setting
from roller.base.untrusted import nesting_depth, shorten
from roller.contract.cues import CUES, SPEECH_STALE_S
from roller.contract.messages import ID_RULE, display_contract, is_safe_id
from roller.contract.verbs import VERBS
from roller.display.bridge import MqttBridge
from roller.display.pairing import PairingToken
from roller.display.session_log import (
    FILE_NAME as HISTORY_FILE_NAME,
)
from roller.display.session_log import (
    ROW_COLUMNS,
    HistoryListener,
    SessionLog,
    SessionRecorder,
)

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
                 ".png": "image/png", ".ico": "image/x-icon"}
MAX_BODY_BYTES = 4096
MAX_JSON_DEPTH = 8
"""Nesting a command body may have (``{"payload": {...}}`` needs 2): deeper is refused before
parsing, so 2000 ``[`` cannot reach the parser's recursion limit."""
MAX_LINE_BYTES = 8192
MAX_HEAD_BYTES = 16384
"""Request line plus headers: a browser's are under 2 kB."""
WRITE_TIMEOUT_S = 10.0
"""A client that takes longer to accept an answer (or an event) is disconnected."""
CONTRACT_MARK = b"<!--contract-->"
TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s]*")
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),  # the pairing link must not leak in a Referer
    ("X-Frame-Options", "DENY"),         # no other site may frame the page and steer its taps
    ("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                                "form-action 'none'"),
)
REASONS = {400: "bad_request", 401: "no_token", 403: "forbidden", 404: "not_found",
           405: "method", 408: "timeout", 411: "no_length", 413: "too_large", 414: "too_large",
           415: "media_type", 431: "too_large", 501: "method", 505: "bad_request"}
"""The refusal counter's reason for a status, when the code does not give a finer one."""


def contract(speed_band_m_s: tuple[float, float] | None = None) -> dict[str, Any]:
    """The page's contract: :func:`roller.contract.messages.display_contract` (verbs, event kinds,
    topics, the go-slow band (target, limit) [m/s]) plus the cues and the speech freshness."""
    target, limit = speed_band_m_s if speed_band_m_s is not None else (None, None)
    return display_contract(target_speed_m_s=target, max_speed_m_s=limit) | {
        "cues": {name: cue.to_dict() for name, cue in CUES.items()},
        "speech": {"stale_s": SPEECH_STALE_S}}


@dataclass(frozen=True)
class DisplaySettings:
    """Config section ``[display]``: the web page beside the mat (roller display)."""

    http_host: str = setting("0.0.0.0", doc="address to serve on; 0.0.0.0 lets a phone or "
                                            "tablet on the same network open the page")
    http_port: int = setting(8080, minimum=0, maximum=65535,
                             doc="TCP port of the page (0: any free port)")
    device: str = setting("", doc="device id to show first; empty: the first roller seen "
                                  "(the page has a picker when there are several)")
    keepalive_s: float = setting(15.0, unit="s", minimum=1.0, maximum=300.0,
                                 doc="idle time after which the event stream sends a comment "
                                     "line, so phones and proxies keep it open")
    allowed_hosts: tuple[str, ...] = setting(
        (), doc="host names the page may be opened by, besides IP addresses, localhost and "
                "this machine's own name (<hostname>, <hostname>.local); any other name is "
                "refused, so a web site cannot reach the display by re-pointing its own name "
                "(DNS rebinding)")
    request_timeout_s: float = setting(
        5.0, unit="s", minimum=0.5, maximum=60.0,
        doc="time a connection has to send a complete request (and an idle kept-alive "
            "connection to start the next one) before it is closed; event streams are exempt")
    max_connections: int = setting(64, minimum=4, maximum=1024,
                                   doc="connections served at once; beyond, a quick 503 (half "
                                       "of them at most may be event streams, a quarter from "
                                       "one address)")


class DisplayServer:
    """Serves the page and streams ``bridge``'s messages; ``start()`` runs it in a thread.

    ``speed_band_m_s``: the pipeline's (target, limit) speeds [m/s], drawn until a roller's
    coach state brings its own; None draws no band until then. ``pairing``: the token that
    commands need (:meth:`PairingToken.load_or_create` keeps it in the state dir); None: a new
    one in memory, read from :attr:`token`. ``history``: where the sessions the display hears
    are kept (:class:`~roller.display.session_log.SessionLog`); None: beside a kept pairing
    token (the display's own state directory), else in memory.
    """

    def __init__(self, settings: DisplaySettings, bridge: MqttBridge, *,
                 speed_band_m_s: tuple[float, float] | None = None,
                 pairing: PairingToken | None = None,
                 history: SessionLog | None = None) -> None:
        self.settings = settings
        self.bridge = bridge
        self.pairing = pairing or PairingToken.in_memory()
        if history is None:
            history = open_history(None if self.pairing.path is None
                                   else self.pairing.path.parent / HISTORY_FILE_NAME)
        self.history = history
        self.history_recorder = SessionRecorder(history)
        self._history_listener = HistoryListener(bridge, self.history_recorder)
        self.guard = RequestGuard(settings.allowed_hosts + machine_names())
        self.refusals = RefusalLog()
        self.contract = contract(speed_band_m_s)
        embedded = json.dumps(self.contract, separators=(",", ":")).replace("</", "<\\/")
        self._contract_tag = (f'<script id="contract" type="application/json">{embedded}'
                              "</script>").encode()
        self._static = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()}
        handler = type("Handler", (_Handler,), {"display": self})
        self.httpd = LimitedHTTPServer(
            (settings.http_host, settings.http_port), handler,
            max_connections=settings.max_connections,
            max_streams=max(1, settings.max_connections // 2),
            max_per_client=max(4, settings.max_connections // 4), refusals=self.refusals)
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def token(self) -> str:
        return self.pairing.token

    def url(self, host: str | None = None) -> str:
        """The page's address; ``host`` defaults to the bound one (localhost for 0.0.0.0)."""
        bound = str(self.httpd.server_address[0])
        name = host or ("localhost" if bound in ("0.0.0.0", "::") else bound)
        if ":" in name:
            name = f"[{name}]"
        return f"http://{name}:{self.port}/"

    def pairing_links(self) -> dict[str, str]:
        """Links that pair a page, by where they work: ``"lan"`` (a phone on the same network;
        absent when the display serves this machine only or no network address is known) and
        ``"local"`` (this machine; absent when bound to one network address)."""
        bound = str(self.httpd.server_address[0])
        links = {}
        if bound in ("0.0.0.0", "::", ""):
            lan = lan_address()
            if lan:
                links["lan"] = self.pairing.link(self.url(lan))
            links["local"] = self.pairing.link(self.url("127.0.0.1"))
        elif bound.startswith("127.") or bound == "::1":
            links["local"] = self.pairing.link(self.url(bound))
        else:
            links["lan"] = self.pairing.link(self.url(bound))
        return links

    def start(self) -> None:
        """Start the bridge and serve in a background thread."""
        self._history_listener.start()
        self.bridge.start()
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        kwargs={"poll_interval": 0.2},
                                        name="roller-display-http", daemon=True)
        self._thread.start()

    def serve_forever(self) -> None:
        """Start the bridge and serve in this thread until :meth:`close` (or Ctrl-C)."""
        self._history_listener.start()
        self.bridge.start()
        self.httpd.serve_forever(poll_interval=0.2)

    def close(self) -> None:
        """Stop serving, end every event stream, disconnect from the broker."""
        self._closing.set()
        self.bridge.close()  # wakes every stream with a close marker
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._history_listener.join(5)
        refused = self.refusals.counts()
        log.info("display: %d connections, %d answers, %d refused%s", self.httpd.accepted,
                 self.httpd.answered, sum(refused.values()),
                 f" ({', '.join(f'{k} {v}' for k, v in sorted(refused.items()))})"
                 if refused else "")


def open_history(path: Path | None) -> SessionLog:
    """The display's session log at ``path``; in memory (with a warning) when the file cannot
    be opened, so a full or read-only disk costs the history across restarts, not the page."""
    try:
        return SessionLog(path)
    except (OSError, sqlite3.Error) as exc:
        log.warning("display: cannot keep the history in %s (%s); keeping it in memory until "
                    "the display stops", path, exc)
        return SessionLog(None)


def lan_address() -> str | None:
    """This machine's address on its main network (the one a phone beside it would use), or
    None without one. No packet is sent: a UDP socket is only pointed at a documentation
    address, which makes the kernel choose the outgoing interface."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))
        address = str(s.getsockname()[0])
        if not address.startswith(("0.", "127.")):
            return address
    return None


class _Handler(BaseHTTPRequestHandler):
    display: DisplayServer
    server: LimitedHTTPServer
    rfile: DeadlineReader  # type: ignore[assignment]
    server_version = "roller-display"
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.1"  # a garbled request line still gets a status line

    def setup(self) -> None:
        self.connection = self.request
        self.connection.settimeout(WRITE_TIMEOUT_S)
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        self.rfile = DeadlineReader(self.connection, write_timeout_s=WRITE_TIMEOUT_S)
        self.wfile = SocketWriter(self.connection)  # type: ignore[assignment]
        self._head = False

    def log_message(self, format: str, *args: Any) -> None:
        # the request line of the pairing link carries the token: never into a log
        log.debug("%s %s", self.address_string(), TOKEN_IN_QUERY.sub(r"\1…", format % args))

    def handle_one_request(self) -> None:
        """One request, read within the deadline and the head budget, answered or refused."""
        self.command = ""
        self.request_version = self.default_request_version
        self.requestline = ""
        self._head = False
        self._started = False
        self.rfile.begin(self.display.settings.request_timeout_s, MAX_HEAD_BYTES)
        try:
            line = self.rfile.readline(MAX_LINE_BYTES + 1)
            if not line:
                self.close_connection = True
                return
            if len(line) > MAX_LINE_BYTES:
                self._refuse(HTTPStatus.REQUEST_URI_TOO_LONG, "too_large",
                             f"the request line is longer than {MAX_LINE_BYTES} bytes")
                return
            self.raw_requestline = line
            if not self.parse_request():
                self.close_connection = True
                return
            self.rfile.end_head()
            handler = {"GET": self.do_GET, "HEAD": self.do_HEAD,
                       "POST": self.do_POST}.get(self.command)
            if handler is None:
                self._refuse(HTTPStatus.METHOD_NOT_ALLOWED, "method",
                             f"{shorten(self.command)} is not served here; expected GET, HEAD "
                             "or POST", extra=(("Allow", "GET, HEAD, POST"),))
                return
            handler()
        except HeadTooLargeError:
            self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too_large",
                         f"the request line and headers are longer than {MAX_HEAD_BYTES} "
                         "bytes")
        except TimeoutError:
            self.close_connection = True
            if self._started or not self.rfile.request_started:
                return  # an answer is under way, or an idle connection: just close it
            with contextlib.suppress(OSError):
                self._refuse(HTTPStatus.REQUEST_TIMEOUT, "timeout",
                             "the request was not complete within "
                             f"{self.display.settings.request_timeout_s:g} s")
        except ConnectionError:
            self.close_connection = True  # the client went away: nothing to answer

    # -- routing -------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self._head = True
        self.do_GET()

    def do_GET(self) -> None:
        if not self._host_ok():
            return
        display = self.display
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html", "/static/index.html"):
            page = (STATIC_DIR / "index.html").read_bytes()
            self._bytes(page.replace(CONTRACT_MARK, display._contract_tag),
                        CONTENT_TYPES[".html"])
        elif path.startswith("/static/"):
            target = display._static.get(path[len("/static/"):])
            if target is None:
                self._refuse(HTTPStatus.NOT_FOUND, "not_found", f"no such file: {shorten(path)}")
            else:
                self._bytes(target.read_bytes(),
                            CONTENT_TYPES.get(target.suffix, "application/octet-stream"))
        elif path == "/events":
            self._events()
        elif path == "/api/contract":
            self._json(HTTPStatus.OK, display.contract)
        elif path == "/api/state":
            self._json(HTTPStatus.OK, display.bridge.snapshot())
        elif path == "/api/history":
            self._history_list()
        elif path == "/api/history/session":
            self._history_session()
        elif path == "/api/history/verdict":
            self._history_session(verdict=True)
        elif path == "/api/pairing":
            self._json(HTTPStatus.OK, {"paired": display.pairing.matches(self._bearer())})
        elif path == "/favicon.ico":
            self.send_response(HTTPStatus.NO_CONTENT)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._refuse(HTTPStatus.NOT_FOUND, "not_found", f"no such page: {shorten(path)}")

    def do_POST(self) -> None:
        if not self._host_ok():
            return
        path = self.path.split("?", 1)[0]
        if not path.startswith("/api/cmd/"):
            self._refuse(HTTPStatus.NOT_FOUND, "not_found", f"no such endpoint: {shorten(path)}")
            return
        verb = path[len("/api/cmd/"):]
        if verb not in VERBS:
            self._refuse(HTTPStatus.NOT_FOUND, "not_found",
                         f"unknown command {shorten(verb)}; expected one of {', '.join(VERBS)}")
            return
        reason = self.display.guard.check_origin(self.headers.get("Origin"),
                                                 self.headers.get("Host", ""))
        if reason:
            self._refuse(HTTPStatus.FORBIDDEN, "origin", f"command refused: {reason}")
            return
        token = self._bearer()
        if not self.display.pairing.matches(token):
            self._refuse(HTTPStatus.UNAUTHORIZED, "bad_token" if token else "no_token",
                         ("this page's pairing token is not the display's (it was replaced?)"
                          if token else "this page is not paired") +
                         ": open the link with ?token= that roller display printed",
                         extra=(("WWW-Authenticate", 'Bearer realm="roller display"'),))
            return
        body = self._read_json_body()
        if body is None:
            return
        device = body.get("device") if isinstance(body, dict) else None
        payload = body.get("payload") if isinstance(body, dict) else None
        if not isinstance(device, str) or (payload is not None and not isinstance(payload, dict)):
            self._refuse(HTTPStatus.BAD_REQUEST, "bad_request",
                         "expected {\"device\": \"<id>\", \"payload\": {...} or absent}")
            return
        if not is_safe_id(device):
            self._refuse(HTTPStatus.BAD_REQUEST, "bad_id",
                         f"device id must be {ID_RULE} (the whole id), got {shorten(device)}")
            return
        try:
            sent = self.display.bridge.publish_command(device, verb, payload)
        except ValueError as exc:
            self._refuse(HTTPStatus.BAD_REQUEST, "bad_request", str(exc))
            return
        if not sent:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE,
                       {"error": "not connected to the MQTT broker; try again in a moment"})
            return
        self._json(HTTPStatus.OK, {"ok": True, "device": device, "verb": verb})

    # -- history (the display's own, roller/display/session_log.py) -----------------------
    def _query(self) -> dict[str, str]:
        from urllib.parse import parse_qs

        query = self.path.split("?", 1)[1] if "?" in self.path else ""
        return {k: v[0] for k, v in parse_qs(query, max_num_fields=8).items()}

    def _history_device(self, query: dict[str, str]) -> str | None:
        """The ``device`` asked for; None after refusing a malformed one."""
        device = query.get("device", "")
        if device and not is_safe_id(device):
            self._refuse(HTTPStatus.BAD_REQUEST, "bad_id",
                         f"device id must be {ID_RULE} (the whole id), got {shorten(device)}")
            return None
        return device

    def _history_list(self) -> None:
        log_ = self.display.history
        device = self._history_device(self._query())
        if device is None:
            return
        devices = log_.devices()
        if not device:
            device = devices[0] if devices else ""
        rows = log_.summaries(device) if device else []
        self._json(HTTPStatus.OK, {"device": device or None, "devices": devices,
                                   "columns": list(ROW_COLUMNS), "rows": rows})

    def _history_session(self, *, verdict: bool = False) -> None:
        """One session (``verdict``: the closing words on it, :mod:`roller.display.progress`,
        against the sessions before it)."""
        query = self._query()
        device = self._history_device(query)
        if device is None:
            return
        sid = query.get("id", "")
        if not device or not sid or len(sid) > 100:
            self._refuse(HTTPStatus.BAD_REQUEST, "bad_request",
                         "expected ?device=<id>&id=<session id> (at most 100 characters)")
            return
        found = self.display.history.session(device, sid)
        if found is None:
            self._refuse(HTTPStatus.NOT_FOUND, "not_found",
                         f"no session {shorten(sid)} of {device} in the display's history")
            return
        if verdict:
            from roller.display.progress import COMPARE_LAST
            from roller.display.progress import verdict as judge

            previous = self.display.history.previous(device, sid, COMPARE_LAST)
            self._json(HTTPStatus.OK, {"device": device, "session_id": sid,
                                       **judge(found, previous)})
            return
        self._json(HTTPStatus.OK, found)

    # -- checks --------------------------------------------------------------------------
    def _host_ok(self) -> bool:
        hosts = self.headers.get_all("Host") or []
        reason = ("more than one Host header" if len(hosts) > 1
                  else self.display.guard.check_host(hosts[0] if hosts else None))
        if reason:
            self._refuse(HTTPStatus.FORBIDDEN, "host", reason)
            return False
        return True

    def _bearer(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        scheme, _, value = auth.strip().partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None

    def _read_json_body(self) -> Any:
        """The request's JSON body, or None after refusing it (the connection then closes, as
        an unread body cannot be told from the next request)."""
        if "Transfer-Encoding" in self.headers:
            self._refuse(HTTPStatus.LENGTH_REQUIRED, "no_length",
                         "chunked bodies are not taken; send Content-Length")
            return None
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            self._refuse(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "media_type",
                         f"expected Content-Type application/json, got {shorten(ctype)}")
            return None
        lengths = self.headers.get_all("Content-Length") or []
        text = lengths[0].strip() if len(lengths) == 1 else ""
        if not text.isascii() or not text.isdigit():
            self._refuse(HTTPStatus.LENGTH_REQUIRED, "no_length",
                         f"expected one Content-Length of 1 to {MAX_BODY_BYTES} bytes")
            return None
        length = int(text)
        if not 0 < length <= MAX_BODY_BYTES:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length else
                         HTTPStatus.BAD_REQUEST, "too_large" if length else "bad_request",
                         f"expected a JSON body of 1 to {MAX_BODY_BYTES} bytes, got {length}")
            return None
        try:
            raw = self.rfile.read_body(length, self.display.settings.request_timeout_s)
        except ShortBodyError as exc:
            self._refuse(HTTPStatus.BAD_REQUEST, "bad_request", str(exc))
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._refuse(HTTPStatus.BAD_REQUEST, "bad_request",
                         f"the body is not UTF-8 (byte {exc.start})")
            return None
        depth = nesting_depth(raw, stop_above=MAX_JSON_DEPTH)
        if depth > MAX_JSON_DEPTH:
            self._refuse(HTTPStatus.BAD_REQUEST, "bad_request",
                         f"the body nests more than {MAX_JSON_DEPTH} levels deep; at most "
                         f"{MAX_JSON_DEPTH} taken")
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            self._refuse(HTTPStatus.BAD_REQUEST, "bad_request", f"body is not JSON: {exc}")
            return None

    # -- responses -----------------------------------------------------------------------
    def send_response(self, code: int, message: str | None = None) -> None:
        self._started = True
        self.server.count_answer()
        super().send_response(code, message)
        for name, value in SECURITY_HEADERS:
            self.send_header(name, value)

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """The standard library's refusals (a bad request line, too many headers), as JSON."""
        self._refuse(HTTPStatus(code), REASONS.get(code, "bad_request"),
                     explain if explain and explain != message else (message or str(code)))

    def _refuse(self, status: HTTPStatus, reason: str, text: str,
                extra: tuple[tuple[str, str], ...] = ()) -> None:
        """Answer ``status`` with ``{"error": text}``, count it under ``reason``, close."""
        path = self.path.split("?", 1)[0] if self.command else ""  # no query: it may hold a token
        where = f"{self.command or '-'} {shorten(path) if path else ''}".strip()
        self.display.refusals.note(reason, f"{self.client_address[0]} {where}: {text}")
        self.close_connection = True
        data = json.dumps({"error": text}).encode()
        self.send_response(status)
        for name, value in extra:
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        if not self._head:
            self.wfile.write(data)

    def _bytes(self, data: bytes, content_type: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        self._keep_alive()
        self.end_headers()
        if not self._head:
            self.wfile.write(data)

    def _json(self, status: HTTPStatus, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self._keep_alive()
        self.end_headers()
        if not self._head:
            self.wfile.write(data)

    def _keep_alive(self) -> None:
        if not self.close_connection:
            timeout = max(1, int(self.display.settings.request_timeout_s))
            self.send_header("Keep-Alive", f"timeout={timeout}")

    def _events(self) -> None:
        display = self.display
        if self._head:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            return
        if not self.server.open_stream():
            self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, "busy",
                         f"already {self.server.max_streams} live streams open; try again",
                         extra=(("Retry-After", "2"),))
            return
        try:
            self._stream(display)
        finally:
            self.server.close_stream()

    def _stream(self, display: DisplayServer) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.send_header("X-Accel-Buffering", "no")
        self.end_headers()
        self.close_connection = True
        sub = display.bridge.subscribe()
        try:
            self.wfile.write(b"retry: 1000\n\n")
            self.wfile.write(_sse({"type": "config", "device": display.settings.device}))
            self.wfile.flush()
            while not display._closing.is_set():
                try:
                    message = sub.get(display.settings.keepalive_s)
                except queue.Empty:
                    self.wfile.write(b": keepalive\n\n")
                    self.wfile.flush()
                    continue
                if message is None:
                    break
                chunk = [_sse(message)]
                # send what has piled up in one write: fewer syscalls at 10 Hz x devices
                closing = False
                while len(chunk) < 64:
                    try:
                        more = sub.queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        closing = True
                        break
                    chunk.append(_sse(more))
                self.wfile.write(b"".join(chunk))
                self.wfile.flush()
                if closing:
                    break
        except (ConnectionError, TimeoutError, OSError):
            pass  # the browser went away; it reconnects by itself if it wants more
        finally:
            display.bridge.unsubscribe(sub)



def _sse(message: dict[str, Any]) -> bytes:
    """One Server-Sent Events message: a single ``data:`` line of compact JSON."""
    return f"data: {json.dumps(message, separators=(',', ':'))}\n\n".encode()
