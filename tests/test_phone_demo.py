"""``roller demo --phone``: the whole phone path on a laptop, with a stand-in phone speaking
phyphox's remote-access protocol fed by the simulated person."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from test_demo import Lines, alive, sse_messages


def test_roller_demo_with_a_simulated_phone(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"), PYTHONUNBUFFERED="1")
    env.pop("ROLLER_CONFIG", None)
    demo = subprocess.Popen([sys.executable, "-m", "roller.cli", "demo", "--port", "0",
                             "--phone", "--broker-kind", "mosquitto"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = Lines(demo.stdout)
    try:
        phone_url = out.wait_for(r"simulated phone \(phyphox remote access\) at (\S+)",
                                 20).group(1)
        with urllib.request.urlopen(phone_url + "/config", timeout=5) as res:
            assert b"acc_time" in res.read()  # a stand-in phone, answering as phyphox does
        url = out.wait_for(r"open (http://\S+)", 20).group(1).split("?", 1)[0]
        service_pid = int(out.wait_for(r"service pid (\d+)", 5).group(1))

        def have_phone_health_and_live(msgs: list[dict]) -> bool:
            health = [m["payload"] for m in msgs if m.get("topic") == "health"]
            return any(h.get("sensor", {}).get("chip") == "phyphox" for h in health) and \
                any(m.get("topic") == "live" for m in msgs)

        msgs = sse_messages(url + "events", have_phone_health_and_live, 30)
        assert have_phone_health_and_live(msgs), msgs[:5]
        assert alive(service_pid)
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(20)
    assert code == 0, "\n".join(out.lines)
    assert "Traceback" not in "\n".join(out.lines)
    assert not alive(service_pid)
