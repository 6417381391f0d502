"""Our own phyphox experiment, served to the phone as a QR code.

``config/phyphox/roller.phyphox`` (written for this project) records the accelerometer *with*
gravity and the gyroscope at the fastest rate the phone offers, into buffers the remote access
serves, and exports ``Accelerometer.csv`` + ``Gyroscope.csv`` (what ``roller analyze`` reads).
phyphox loads an experiment from a QR code that holds the file's URL ("+" -> "Add experiment
from QR code"), so :func:`serve_experiment` serves the file on the LAN and :func:`qr_text` draws
the code in the terminal (with the optional ``segno`` library; without it, the URL is printed
to type or to turn into a code elsewhere).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

EXPERIMENT_FILE = Path(__file__).resolve().parents[2] / "config" / "phyphox" / "roller.phyphox"
"""The checkout's experiment file (source and editable installs)."""
MAX_FETCHES = 64


def experiment_bytes() -> bytes:
    return EXPERIMENT_FILE.read_bytes()


class ExperimentServer:
    """Serves ``GET /roller.phyphox`` (the file, nothing else) until :meth:`close`;
    ``fetches`` counts the downloads (the phone scanned the code)."""

    def __init__(self, host: str = "0.0.0.0", port: int = 0) -> None:
        body = experiment_bytes()
        self.fetches = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/roller.phyphox" or \
                        owner.fetches >= MAX_FETCHES:
                    self.send_error(404)
                    return
                owner.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Disposition", 'attachment; filename="roller.phyphox"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                        name="phyphox-experiment")
        self._thread.start()

    def url(self, host: str) -> str:
        return f"http://{host}:{self.port}/roller.phyphox"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def qr_text(url: str) -> str | None:
    """A QR code of ``url`` drawn with text blocks for a terminal, or None without segno."""
    try:
        import segno  # optional: pip install 'roller-companion[phone]'
    except ImportError:
        return None
    import io

    out = io.StringIO()
    segno.make(url, error="m").terminal(out=out, compact=True)
    return out.getvalue()
