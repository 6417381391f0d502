"""HTTP transport with limits: a deadline on every request, a cap on connections.

Used by the display and by the phone's push receiver (:mod:`roller.phone.sensor_logger`);
it lives in ``base`` so the service never imports the display.

The standard library's servers trust their clients: a connection that sends one byte every few
seconds (slowloris) holds a thread for ever, 100 header lines of 64 kB each are read in full,
every connection gets a thread, and a client that hangs up mid-answer prints a traceback. The
display serves a LAN it does not control, so here:

* :class:`DeadlineReader` reads a request from the socket with a total deadline (a complete
  request line and headers within ``request_timeout_s`` of starting to wait for them, however
  slowly the bytes trickle in) and a byte budget for the head; the body gets its own deadline.
  Writes time out after ``write_timeout_s`` (a client that stops reading).
* :class:`LimitedHTTPServer` answers at most ``max_connections`` connections at once, at most
  ``max_per_client`` of them from one address (one host on the LAN cannot take every slot from
  the phone beside the mat), and a quick 503 beyond that (from the accepting thread, without
  starting a thread for it), and logs aborted clients at debug level instead of tracebacks.

Event streams are long by design: once a handler starts one it never reads again, so no read
deadline applies, and keep-alive comments keep it from looking idle to proxies and phones.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from http.server import ThreadingHTTPServer
from typing import Any

from roller.base.clock import Clock, SystemClock
from roller.base.refusals import RefusalLog

log = logging.getLogger("roller.http")

BUSY_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                 b"Retry-After: 2\r\nConnection: close\r\nContent-Length: 67\r\n\r\n"
                 b'{"error": "the display is serving too many connections; try again"}')
assert len(BUSY_RESPONSE.split(b"\r\n\r\n", 1)[1]) == 67
LINGER_S = 1.0
"""How long a connection refused as busy is read (and discarded) before it is closed."""
LINGER_MAX = 256


class HeadTooLargeError(Exception):
    """The request line and headers are longer than the head budget."""


class ShortBodyError(Exception):
    """The client ended its side before sending the whole body it announced."""


class DeadlineReader:
    """A buffered reader of one socket whose reads end at a deadline (``TimeoutError``).

    ``begin(timeout_s, head_bytes)`` starts a request: from then on ``readline`` may read at
    most ``head_bytes`` (else :class:`HeadTooLargeError`) until ``end_head()``, and every read must
    complete by ``timeout_s`` from now. ``read_body(n, timeout_s)`` reads a body of ``n`` bytes
    with its own deadline. Between reads the socket's timeout is ``write_timeout_s``, so a
    write to a client that stopped reading also ends. Deadlines are on ``clock`` (the system's
    by default; a test's manual clock runs one out without waiting).
    """

    def __init__(self, sock: socket.socket, *, write_timeout_s: float,
                 clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._sock = sock
        self._buf = bytearray()
        self._deadline: float | None = None
        self._head_left: int | None = None
        self._head_budget = 0
        self._eof = False
        self.write_timeout_s = write_timeout_s

    def begin(self, timeout_s: float, head_bytes: int) -> None:
        self._deadline = self._clock.monotonic() + timeout_s
        self._head_left = head_bytes
        self._head_budget = head_bytes

    @property
    def request_started(self) -> bool:
        """Whether any byte of the current request has arrived (an idle kept-alive connection
        that times out before one is closed quietly: browsers keep spare ones open)."""
        return bool(self._buf) or (self._head_left is not None
                                   and self._head_left < self._head_budget)

    def end_head(self) -> None:
        self._head_left = None
        self._deadline = None

    def readline(self, limit: int = -1) -> bytes:
        while True:
            end = self._buf.find(b"\n")
            if end >= 0 and (limit < 0 or end < limit):
                return self._take(end + 1)
            if 0 <= limit <= len(self._buf):
                return self._take(limit)
            if self._eof or not self._fill():
                return self._take(len(self._buf))

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            if self._eof or not self._fill():
                break
        return self._take(len(self._buf) if n < 0 else min(n, len(self._buf)))

    def read_body(self, n: int, timeout_s: float) -> bytes:
        """Exactly ``n`` bytes; ``TimeoutError`` after ``timeout_s``, :class:`ShortBodyError`
        when the stream ends first."""
        self._deadline = self._clock.monotonic() + timeout_s
        try:
            data = self.read(n)
        finally:
            self._deadline = None
        if len(data) < n:
            raise ShortBodyError(f"the body ended after {len(data)} of the {n} bytes announced")
        return data

    def close(self) -> None:
        self._buf.clear()

    def _take(self, n: int) -> bytes:
        data = bytes(self._buf[:n])
        del self._buf[:n]
        if self._head_left is not None:
            self._head_left -= len(data)
            if self._head_left < 0:
                raise HeadTooLargeError
        return data

    def _fill(self) -> bool:
        """One recv into the buffer, within the deadline; False at end of stream."""
        if self._head_left is not None and len(self._buf) > self._head_left:
            raise HeadTooLargeError
        timeout = self.write_timeout_s
        if self._deadline is not None:
            timeout = self._deadline - self._clock.monotonic()
            if timeout <= 0:
                raise TimeoutError("the request was not complete in time")
        self._sock.settimeout(timeout)
        try:
            chunk = self._sock.recv(8192)
        finally:
            self._sock.settimeout(self.write_timeout_s)
        if not chunk:
            self._eof = True
            return False
        self._buf += chunk
        return True


class SocketWriter:
    """``wfile`` for a handler: every write goes out in full (``sendall``) or raises."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def write(self, data: bytes) -> int:
        self._sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        """Nothing to flush: :meth:`write` sends at once (``sendall``)."""

    def close(self) -> None:
        """The socket is the server's to close, after the handler returns."""

    @property
    def closed(self) -> bool:
        return self._sock.fileno() < 0


class LimitedHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server with a connection cap, an event-stream cap and quiet aborts."""

    daemon_threads = True
    busy_response = BUSY_RESPONSE
    """The 503 a refused connection gets (a subclass may say who is busy)."""
    name = "display"
    """Who serves, in log lines."""
    request_queue_size = 128  # a burst of phones reloading is queued by the kernel, not refused

    def __init__(self, address: tuple[str, int], handler: type, *, max_connections: int,
                 max_streams: int, max_per_client: int, refusals: RefusalLog,
                 clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self.max_connections = max_connections
        self.max_streams = max_streams
        self.max_per_client = max_per_client
        self._per_client: dict[str, int] = {}
        self.refusals = refusals
        self._lock = threading.Lock()
        self.active = 0
        self.streams = 0
        self.accepted = 0
        self.answered = 0
        self._lingering: list[tuple[float, socket.socket]] = []  # accepting thread only
        super().__init__(address, handler)

    # -- the connection cap (the accepting thread) ----------------------------------------
    def process_request(self, request: Any, client_address: Any) -> None:
        who = str(client_address[0])
        with self._lock:
            self.accepted += 1
            if self.active >= self.max_connections:
                busy = f"more than {self.max_connections} connections at once"
            elif self._per_client.get(who, 0) >= self.max_per_client:
                busy = f"more than {self.max_per_client} connections at once from {who}"
            else:
                busy = ""
                self.active += 1
                self._per_client[who] = self._per_client.get(who, 0) + 1
        if busy:
            self._refuse_busy(request, client_address, busy)
            return
        try:
            super().process_request(request, client_address)
        except RuntimeError:  # no thread could be started: the same as busy
            self._release(who)
            self._refuse_busy(request, client_address, "no thread could be started")

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(str(client_address[0]))

    def _release(self, who: str) -> None:
        with self._lock:
            self.active -= 1
            left = self._per_client.get(who, 1) - 1
            if left > 0:
                self._per_client[who] = left
            else:
                self._per_client.pop(who, None)

    def _refuse_busy(self, request: socket.socket, client_address: Any, why: str) -> None:
        self.refusals.note("busy", f"{_client(client_address)}: {why}")
        try:
            request.setblocking(False)
            request.send(self.busy_response)
            request.shutdown(socket.SHUT_WR)
        except OSError:
            self.shutdown_request(request)
            return
        # Closing now, with the client's request still arriving, would reset the connection
        # and lose the 503 on its way: read and discard for a moment, then close
        # (service_actions, between accepts). Bounded, so a flood cannot pile sockets up.
        if len(self._lingering) >= LINGER_MAX:
            self._close_lingering(0)
        self._lingering.append((self._clock.monotonic() + LINGER_S, request))

    def service_actions(self) -> None:
        """Between accepts: close the refused connections whose moment has passed."""
        super().service_actions()
        if self._lingering:
            self._close_lingering(len(self._lingering))

    def _close_lingering(self, keep_at_most: int) -> None:
        now = self._clock.monotonic()
        still = []
        for i, (deadline, sock) in enumerate(self._lingering):
            done = i < len(self._lingering) - keep_at_most or now >= deadline
            if not done:
                try:
                    done = sock.recv(65536) == b""
                except BlockingIOError:
                    pass
                except OSError:
                    done = True
            if done:
                sock.close()
            else:
                still.append((deadline, sock))
        self._lingering = still

    def server_close(self) -> None:
        for _, sock in self._lingering:
            sock.close()
        self._lingering = []
        super().server_close()

    # -- the event-stream cap (handler threads) -------------------------------------------
    def open_stream(self) -> bool:
        with self._lock:
            if self.streams >= self.max_streams:
                return False
            self.streams += 1
            return True

    def close_stream(self) -> None:
        with self._lock:
            self.streams -= 1

    def count_answer(self) -> None:
        with self._lock:
            self.answered += 1

    # -- errors ---------------------------------------------------------------------------
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away is routine (debug); anything else is a bug, logged with its
        traceback at a bounded rate. The server goes on either way."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            log.debug("%s: %s went away: %s", self.name, _client(client_address), exc)
            return
        if self.refusals.note("internal_error", f"{_client(client_address)}: {exc!r}"):
            log.error("%s: the error while answering %s", self.name, _client(client_address),
                      exc_info=True)


def _client(address: Any) -> str:
    try:
        return f"{address[0]}:{address[1]}"
    except (TypeError, IndexError):
        return str(address)
