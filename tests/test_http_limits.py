"""The HTTP transport's deadlines run on the injected clock: a manual clock runs one out
without a test waiting for it, and a request inside its deadline reads as usual."""

from __future__ import annotations

import socket
import time

import pytest

from roller.base.clock import ManualClock
from roller.base.http_limits import DeadlineReader, HeadTooLargeError


def test_a_request_inside_its_deadline_reads_line_by_line() -> None:
    a, b = socket.socketpair()
    with a, b:
        reader = DeadlineReader(a, write_timeout_s=1.0, clock=ManualClock(100.0))
        reader.begin(timeout_s=5.0, head_bytes=1024)
        b.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reader.readline() == b"GET / HTTP/1.1\r\n"
        assert reader.readline() == b"Host: x\r\n"


def test_a_deadline_passed_on_the_clock_ends_the_read_at_once() -> None:
    a, b = socket.socketpair()
    with a, b:
        clock = ManualClock(100.0)
        reader = DeadlineReader(a, write_timeout_s=30.0, clock=clock)
        reader.begin(timeout_s=5.0, head_bytes=1024)
        b.sendall(b"GET / HT")  # a slow client: half a request line, then nothing
        assert reader.read(8) == b"GET / HT"
        clock.advance(5.5)
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="not complete in time"):
            reader.readline()
        assert time.monotonic() - started < 1.0  # the manual clock's deadline, not 30 s


def test_the_head_budget_is_kept() -> None:
    a, b = socket.socketpair()
    with a, b:
        reader = DeadlineReader(a, write_timeout_s=1.0, clock=ManualClock())
        reader.begin(timeout_s=5.0, head_bytes=16)
        b.sendall(b"GET /" + b"x" * 64 + b" HTTP/1.1\r\n")
        with pytest.raises(HeadTooLargeError):
            reader.readline()
