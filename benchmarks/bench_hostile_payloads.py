"""How long the MQTT payload decoders take on hostile payloads (worst case per kind).

    .venv/bin/python benchmarks/bench_hostile_payloads.py [--repeat 5]

Times :func:`roller.contract.command_table.decode_payload` (the service's ``cmd/<verb>`` decoder)
and
:func:`roller.display.bridge.decode_message` (the display's feed) on payloads built to be slow
or to crash a naive decoder: deep nesting, long runs of quotes and backslashes, megabytes of
junk, huge numbers. Prints the best of ``--repeat`` per payload and decoder, and what each
answered. A network thread spends at most this long on one message.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from roller.base.untrusted import PayloadError  # noqa: E402
from roller.contract.command_table import CommandError, decode_payload  # noqa: E402
from roller.display.bridge import decode_message  # noqa: E402

PAYLOADS: dict[str, bytes] = {
    "1000 [ then 1000 ]": b"[" * 1000 + b"]" * 1000,
    "1 M [": b"[" * (1 << 20),
    "200 k escaped quotes, unterminated": b'"' + b'\\"' * 100_000,
    "200 k quotes": b'"' * 200_000,
    "deep inside a 250 kB object": b'{"a": ' + b"[" * 120_000 + b"]" * 120_000 + b"}",
    "250 kB string": b'{"a": "' + b"x" * 250_000 + b'"}',
    "8 MB of zeros": b"\0" * (8 << 20),
    "a 200 k digit number": b'{"a": 1' + b"0" * 200_000 + b"}",
    "16 levels, 250 kB": b"[" * 16 + b"1," * 120_000 + b"1" + b"]" * 16,
}


def best(fn, raw: bytes, repeat: int) -> tuple[float, str]:
    times = []
    answer = ""
    for _ in range(repeat):
        began = time.perf_counter()
        try:
            fn(raw)
            answer = "accepted"
        except (CommandError, PayloadError) as exc:
            answer = f"refused: {str(exc)[:60]}"
        times.append(time.perf_counter() - began)
    return min(times), answer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    decoders = {"command": lambda raw: decode_payload("start", raw),
                "display": lambda raw: decode_message("coach", raw)}
    worst = dict.fromkeys(decoders, 0.0)
    print(f"{'payload':38} {'decoder':8} {'best [ms]':>9}  answer")
    for name, raw in PAYLOADS.items():
        for which, fn in decoders.items():
            took, answer = best(fn, raw, args.repeat)
            worst[which] = max(worst[which], took)
            print(f"{name:38} {which:8} {took * 1e3:9.2f}  {answer}")
    print("worst: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in worst.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
