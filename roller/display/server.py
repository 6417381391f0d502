"""The display's HTTP server: the page, a Server-Sent Events stream, and a command endpoint.

* ``GET /`` and ``/static/...``: the page (our own HTML/CSS/JS, works offline).
* ``GET /events``: ``text/event-stream``; first ``{"type": "config", "device": ...}`` (the
  ``[display] device`` to show when the browser has no choice of its own), then each message of
  :class:`~roller.display.bridge.MqttBridge` as one ``data:`` line of JSON. A comment line
  every ``keepalive_s`` keeps proxies and phones from closing an idle stream; the browser's
  EventSource reconnects by itself.
* ``POST /api/cmd/<verb>`` with a JSON body ``{"device": id, "payload": {...}}``: publishes
  ``cmd/<verb>`` to that roller. Only ``application/json`` bodies are taken, so a page from another
  site cannot post here without a CORS preflight, which this server never grants.
* ``GET /api/state``: the broker link and every device's latest messages as JSON.
* ``GET /api/contract``: what the page must agree on with the roller, built from the Python
  declarations: the command verbs (:mod:`roller.verbs`), the cues with their speech priority,
  look and tone (:mod:`roller.cues`), the go-slow band (the pipeline's settings, given by the
  command that starts the display) and the speech freshness limit. The same JSON is embedded in
  the page when it is served, so the page has no copies of its own.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from roller.cues import CUES
from roller.display.bridge import MqttBridge
from roller.mqtt_contract import display_contract
from roller.settings import setting
from roller.speech import SpeechSettings
from roller.verbs import VERBS

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
                 ".png": "image/png", ".ico": "image/x-icon"}
MAX_BODY_BYTES = 4096
CONTRACT_MARK = b"<!--contract-->"


def contract(speed_band_m_s: tuple[float, float] | None = None) -> dict[str, Any]:
    """The page's contract: :func:`roller.mqtt_contract.display_contract` (verbs, event kinds,
    topics, the go-slow band (target, limit) [m/s]) plus the cues and the speech freshness."""
    target, limit = speed_band_m_s if speed_band_m_s is not None else (None, None)
    return display_contract(target_speed_m_s=target, max_speed_m_s=limit) | {
        "cues": {name: cue.to_dict() for name, cue in CUES.items()},
        "speech": {"stale_s": SpeechSettings().stale_s}}


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


class DisplayServer:
    """Serves the page and streams ``bridge``'s messages; ``start()`` runs it in a thread.

    ``speed_band_m_s``: the pipeline's (target, limit) speeds [m/s], drawn until a roller's
    coach state brings its own; None draws no band until then.
    """

    def __init__(self, settings: DisplaySettings, bridge: MqttBridge, *,
                 speed_band_m_s: tuple[float, float] | None = None) -> None:
        self.settings = settings
        self.bridge = bridge
        self.contract = contract(speed_band_m_s)
        embedded = json.dumps(self.contract, separators=(",", ":")).replace("</", "<\\/")
        self._contract_tag = (f'<script id="contract" type="application/json">{embedded}'
                              "</script>").encode()
        handler = type("Handler", (_Handler,), {"display": self})
        self.httpd = ThreadingHTTPServer((settings.http_host, settings.http_port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def url(self, host: str | None = None) -> str:
        """The page's address; ``host`` defaults to the bound one (localhost for 0.0.0.0)."""
        bound = str(self.httpd.server_address[0])
        name = host or ("localhost" if bound in ("0.0.0.0", "::") else bound)
        return f"http://{name}:{self.port}/"

    def start(self) -> None:
        """Start the bridge and serve in a background thread."""
        self.bridge.start()
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        kwargs={"poll_interval": 0.2},
                                        name="roller-display-http", daemon=True)
        self._thread.start()

    def serve_forever(self) -> None:
        """Start the bridge and serve in this thread until :meth:`close` (or Ctrl-C)."""
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


class _Handler(BaseHTTPRequestHandler):
    display: DisplayServer
    server_version = "roller-display"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # -- routing -------------------------------------------------------------------------
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html", "/static/index.html"):
            page = (STATIC_DIR / "index.html").read_bytes()
            self._bytes(page.replace(CONTRACT_MARK, self.display._contract_tag),
                        CONTENT_TYPES[".html"])
        elif path.startswith("/static/"):
            name = path[len("/static/"):]
            target = (STATIC_DIR / name).resolve()
            if "/" in name or not target.is_file() or target.parent != STATIC_DIR:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such file: {path}"})
            else:
                self._file(target)
        elif path == "/events":
            self._events()
        elif path == "/api/contract":
            self._json(HTTPStatus.OK, self.display.contract)
        elif path == "/api/state":
            self._json(HTTPStatus.OK, self.display.bridge.snapshot())
        elif path == "/favicon.ico":
            self.send_response(HTTPStatus.NO_CONTENT)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {path}"})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if not path.startswith("/api/cmd/"):
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {path}"})
            return
        verb = path[len("/api/cmd/"):]
        if verb not in VERBS:
            self._json(HTTPStatus.NOT_FOUND,
                       {"error": f"unknown command {verb!r}; expected one of {', '.join(VERBS)}"})
            return
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                       {"error": f"expected Content-Type application/json, got {ctype!r}"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY_BYTES:
            self._json(HTTPStatus.BAD_REQUEST,
                       {"error": f"expected a JSON body of 1 to {MAX_BODY_BYTES} bytes"})
            return
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"body is not JSON: {exc}"})
            return
        device = body.get("device") if isinstance(body, dict) else None
        payload = body.get("payload") if isinstance(body, dict) else None
        if not isinstance(device, str) or (payload is not None and not isinstance(payload, dict)):
            self._json(HTTPStatus.BAD_REQUEST,
                       {"error": "expected {\"device\": \"<id>\", \"payload\": {...} or absent}"})
            return
        try:
            sent = self.display.bridge.publish_command(device, verb, payload)
        except ValueError as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        if not sent:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE,
                       {"error": "not connected to the MQTT broker; try again in a moment"})
            return
        self._json(HTTPStatus.OK, {"ok": True, "device": device, "verb": verb})

    # -- responses -----------------------------------------------------------------------
    def _file(self, path: Path) -> None:
        self._bytes(path.read_bytes(),
                    CONTENT_TYPES.get(path.suffix, "application/octet-stream"))

    def _bytes(self, data: bytes, content_type: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: HTTPStatus, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _events(self) -> None:
        display = self.display
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
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the browser went away; it reconnects by itself if it wants more
        finally:
            display.bridge.unsubscribe(sub)


def _sse(message: dict[str, Any]) -> bytes:
    """One Server-Sent Events message: a single ``data:`` line of compact JSON."""
    return f"data: {json.dumps(message, separators=(',', ':'))}\n\n".encode()
