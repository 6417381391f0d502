"""A throwaway local MQTT broker for ``roller demo`` on a laptop that has none configured.

:func:`start_local_broker` prefers Debian's ``mosquitto`` (a child process on a free loopback
port, with a temporary config: anonymous, no persistence, and the roller's limits of
config/mosquitto.conf, :data:`BROKER_LIMITS`) and otherwise runs the maintained
pure-Python ``amqtt`` broker in this process (in a thread with its own asyncio loop; install
it with the ``demo`` extra). Either listens on 127.0.0.1 only: the demo is not a network service.
Production installs use a real broker (see the README's mosquitto section), never this.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Literal

from roller.base.errors import RollerError
from roller.mqtt.client import MAX_PACKET_BYTES

log = logging.getLogger(__name__)

BrokerKind = Literal["auto", "mosquitto", "amqtt"]

BROKER_LIMITS = f"message_size_limit {MAX_PACKET_BYTES}\n"
"""The mosquitto lines of config/mosquitto.conf (a test keeps the two alike): no message above
the roller clients' own bound is taken, so none can be planted for every process to receive."""


class BrokerError(RollerError, RuntimeError):
    """The local broker could not be started."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (there is a small race until it is used)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _check_free(host: str, port: int) -> None:
    """Raise BrokerError when ``host:port`` is taken: otherwise a broker that failed to bind
    would look alive because someone else answers there."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise BrokerError(f"cannot start a broker on {host}:{port}: "
                              f"{exc.strerror or exc}") from None


def find_mosquitto() -> str | None:
    """Path of the mosquitto executable (Debian installs it in /usr/sbin), or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if Path(candidate).is_file():
            return candidate
    return None


def wait_listening(host: str, port: int, timeout_s: float) -> bool:
    """Poll until something accepts TCP connections on ``host:port``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def die_with_parent() -> None:
    """In a child (``preexec_fn``): get SIGTERM when the parent dies, so a killed demo leaves no
    orphans. Linux only; elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LocalBroker:
    """A running local broker: ``host``, ``port``, ``kind``; :meth:`stop` ends it."""

    def __init__(self, kind: Literal["mosquitto", "amqtt"], host: str, port: int) -> None:
        self.kind = kind
        self.host = host
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._amqtt: object | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The mosquitto child's process id (None for the in-process broker)."""
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the broker and remove its temporary files. Safe to call twice."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None
        if self._loop is not None and self._thread is not None:
            loop, broker = self._loop, self._amqtt
            if broker is not None and loop.is_running():
                fut = asyncio.run_coroutine_threadsafe(broker.shutdown(), loop)  # type: ignore[attr-defined]
                with contextlib.suppress(Exception):
                    fut.result(timeout_s)
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout_s)
            self._loop = None
            self._thread = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def start_local_broker(kind: BrokerKind = "auto", *, port: int | None = None,
                       host: str = "127.0.0.1", timeout_s: float = 10.0) -> LocalBroker:
    """Start mosquitto (``auto`` when installed) or amqtt on ``host:port`` (a free port by
    default) and return once it accepts connections. Raises :class:`BrokerError`."""
    port = port or free_port(host)
    _check_free(host, port)
    if kind in ("auto", "mosquitto"):
        exe = find_mosquitto()
        if exe is not None:
            return _start_mosquitto(exe, host, port, timeout_s)
        if kind == "mosquitto":
            raise BrokerError("mosquitto is not installed (Debian: sudo apt install mosquitto)")
    return _start_amqtt(host, port, timeout_s)


def _start_mosquitto(exe: str, host: str, port: int, timeout_s: float) -> LocalBroker:
    broker = LocalBroker("mosquitto", host, port)
    broker._tmp = tempfile.TemporaryDirectory(prefix="roller-demo-mosquitto-")
    conf = Path(broker._tmp.name) / "mosquitto.conf"
    logfile = Path(broker._tmp.name) / "mosquitto.log"
    # `user` = ourselves: mosquitto started as root would otherwise switch to its own user,
    # and changing credentials clears the parent-death signal that keeps it from outliving us.
    conf.write_text(f"listener {port} {host}\nallow_anonymous true\npersistence false\n"
                    f"user {getpass.getuser()}\n" + BROKER_LIMITS +
                    "log_dest stderr\nlog_type error\nlog_type warning\n")
    with open(logfile, "wb") as log_handle:
        broker._process = subprocess.Popen(
            [exe, "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=log_handle,
            stderr=log_handle, start_new_session=True, preexec_fn=die_with_parent)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if broker._process.poll() is not None:
            text = logfile.read_text(errors="replace")[-1000:]
            broker.stop()
            raise BrokerError(f"mosquitto exited at start on {host}:{port}: {text.strip()}")
        if wait_listening(host, port, 0.2):
            return broker
    broker.stop()
    raise BrokerError(f"mosquitto did not listen on {host}:{port} within {timeout_s} s")


def _start_amqtt(host: str, port: int, timeout_s: float) -> LocalBroker:
    try:
        from amqtt.broker import Broker
    except ImportError:
        raise BrokerError("no MQTT broker available: install mosquitto (apt install mosquitto) "
                          "or the demo extra (pip install 'roller-companion[demo]')") from None
    broker = LocalBroker("amqtt", host, port)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {
            "allow_anonymous": True}},
    }

    def refused(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        # amqtt speaks MQTT 3.1.1 only and fails on an MQTT 5 CONNECT with a traceback; the
        # roller's clients then fall back to 3.1.1 (roller.mqtt.connection): one line will do.
        log.info("amqtt: a connection failed (%s); an MQTT 5 client falls back to 3.1.1",
                 context.get("exception") or context.get("message"))

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(refused)

        async def boot() -> None:
            instance = Broker(config, loop=loop)
            await instance.start()
            broker._amqtt = instance

        try:
            loop.run_until_complete(boot())
        except BaseException as exc:  # report any start failure to the caller
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.close()

    # amqtt logs every connection at INFO; the demo's own output matters more
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    broker._loop = loop
    broker._thread = threading.Thread(target=serve, name="roller-demo-amqtt", daemon=True)
    broker._thread.start()
    if not started.wait(timeout_s) or failure:
        broker.stop()
        why = failure[0] if failure else f"no answer within {timeout_s} s"
        raise BrokerError(f"the in-process amqtt broker did not start on {host}:{port}: {why}")
    return broker  # Broker.start() returned: its listener is bound and serving
