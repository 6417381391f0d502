"""systemd integration: sd_notify over a real datagram socket, and the unit file checked by
``systemd-analyze verify`` and ``systemd-analyze security --offline=true``."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from roller.coaching.history import History
from roller.service.systemd import Notifier

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "roller.service"
MAX_EXPOSURE = 2.0
"""The unit's `systemd-analyze security` exposure must stay at or below this (it is 1.5; what
is left is what I2C/GPIO access and a network broker need)."""


def listen(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path if not path.startswith("@") else "\0" + path[1:])
    sock.settimeout(2)
    return sock


def test_notifier_sends_ready_status_watchdog_stopping(tmp_path):
    path = str(tmp_path / "notify")
    with listen(path) as sock:
        n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"})
        assert n.enabled and n.watchdog_interval_s == pytest.approx(5.0)
        assert n.ready("running")
        assert sock.recv(4096) == b"READY=1\nSTATUS=running"
        assert n.status("degraded: broker unreachable")
        assert sock.recv(4096) == b"STATUS=degraded: broker unreachable"
        assert n.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
        assert n.stopping()
        assert sock.recv(4096) == b"STOPPING=1"


def test_notifier_abstract_socket(tmp_path):
    name = f"@roller-test-{tmp_path.name}"
    with listen(name) as sock:
        assert Notifier({"NOTIFY_SOCKET": name}).ready()
        assert sock.recv(4096) == b"READY=1"


def test_notifier_is_a_no_op_outside_systemd():
    n = Notifier({})
    assert not n.enabled and n.watchdog_interval_s is None
    assert not n.ready() and not n.watchdog()


def test_watchdog_for_another_pid_is_ignored():
    n = Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert n.watchdog_interval_s is None


def test_notifier_survives_a_vanished_socket(tmp_path):
    assert not Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}).ready()


DISPLAY_UNIT = REPO / "systemd" / "roller-display.service"
UNITS = pytest.mark.parametrize("source", [UNIT, DISPLAY_UNIT], ids=lambda p: p.name)


def _unit_for_analysis(tmp_path: Path, source: Path = UNIT) -> Path:
    """The unit with ExecStart pointing at this checkout's roller (verify checks it exists)."""
    exe = shutil.which("roller", path=str(REPO / ".venv" / "bin")) or shutil.which("roller")
    assert exe, "the roller console script is not installed"
    unit = tmp_path / source.name
    unit.write_text(source.read_text().replace("/opt/roller/.venv/bin/roller", exe))
    return unit


def _systemd_analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.fail("systemd-analyze is missing: scripts/setup --test installs systemd")
    return exe


@UNITS
def test_unit_passes_systemd_analyze_verify(tmp_path, source):
    unit = _unit_for_analysis(tmp_path, source)
    proc = subprocess.run([_systemd_analyze(), "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)
    problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                if source.name in line]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr


@UNITS
def test_unit_exposure_is_low(tmp_path, source):
    unit = _unit_for_analysis(tmp_path, source)
    proc = subprocess.run([_systemd_analyze(), "security", "--offline=true", str(unit)],
                          capture_output=True, text=True, timeout=60)
    match = re.search(rf"Overall exposure level for {re.escape(source.name)}: ([0-9.]+)",
                      proc.stdout)
    assert match, proc.stdout + proc.stderr
    score = float(match.group(1))
    print(f"systemd-analyze security exposure of {source.name}: {score}")
    # The display touches no device, so it must do at least as well as the service.
    assert score <= MAX_EXPOSURE


def test_unit_keeps_hardware_access_and_the_contract():
    text = UNIT.read_text()
    settings = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    assert settings["Type"] == ["notify"]
    assert settings["Restart"] == ["on-failure"]
    assert float(settings["WatchdogSec"][0]) > 0
    assert "PrivateDevices" not in settings  # it would hide /dev/i2c-*
    assert settings["DevicePolicy"] == ["closed"]
    assert {"char-i2c rw", "char-gpiochip rw"} <= set(settings["DeviceAllow"])
    assert settings["SupplementaryGroups"] == ["i2c gpio"]
    assert settings["StateDirectory"] == ["roller"]
    assert settings["WorkingDirectory"] == ["/run/roller"]  # writable: RuntimeDirectory
    assert settings["RuntimeDirectory"] == ["roller"]
    assert settings["ProtectSystem"] == ["strict"]
    assert settings["NoNewPrivileges"] == ["yes"]
    assert settings["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert "@system-service" in settings["SystemCallFilter"]
    assert settings["User"] == ["roller"]
    assert "--config /etc/roller/roller.toml" in settings["ExecStart"][0]


def test_install_script_is_valid_bash():
    script = REPO / "scripts" / "install-pi"
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = script.read_text()
    for needed in ("--system-site-packages", "useradd", "systemctl", "/etc/roller/roller.toml",
                   "roller.service"):
        assert needed in text


def test_service_without_a_bus_is_ready_degraded_then_running_when_the_sensor_answers(
        broker, tmp_path):
    """No /dev/i2c-N at start (I2C off): READY with a degraded status naming the cause and the
    fix, the bus tried again every few seconds (not a crash into systemd's restart loop), and
    `running` as soon as the sensor answers."""
    from test_service import FAST_MQTT, session_scenario

    from firmware_bridge.clock import ManualClock
    from firmware_bridge.errors import BusOpenError
    from firmware_bridge.sensor import AwaitedSensor, SensorSettings, open_bus, open_sensor
    from roller.contract.messages import Topics
    from roller.mqtt.client import MqttSettings
    from roller.mqtt.outbox import Outbox
    from roller.mqtt.publisher import Publisher
    from roller.pipeline import Pipeline, PipelineSettings
    from roller.service.loop import Service, ServiceSettings, SessionSettings

    clock = ManualClock(50.0)
    plugged_in = False
    opens = []

    def opener():
        opens.append(clock.monotonic())
        if not plugged_in:
            open_bus(250)  # no such bus here: the real FileNotFoundError path
        return open_sensor(SensorSettings(), simulate=True, scenario=session_scenario(),
                           clock=clock)

    with pytest.raises(BusOpenError) as first:
        opener()
    driver = AwaitedSensor(opener, first.value, clock=clock, retry_interval_s=5.0)
    path = str(tmp_path / "notify")
    with listen(path) as sock:
        publisher = Publisher(MqttSettings(host=broker.host, port=broker.port, **FAST_MQTT),
                              Topics("nobus"), Outbox(tmp_path / "outbox.sqlite3"))
        service = Service(ServiceSettings(ready_timeout_s=2.0), SessionSettings(),
                          device_id="nobus", driver=driver,
                          pipeline=Pipeline(PipelineSettings()), publisher=publisher,
                          clock=clock, notifier=Notifier({"NOTIFY_SOCKET": path}))
        publisher.start()
        assert publisher.wait_connected(5)

        def run_for(seconds: float) -> list[str]:
            for _ in range(round(seconds / 0.05)):
                clock.advance(0.05)
                service.step()
            got = []
            sock.settimeout(0.05)
            try:
                while True:
                    got.append(sock.recv(4096).decode())
            except TimeoutError:
                return got

        sent = run_for(3.0)
        ready = [m for m in sent if m.startswith("READY=1")]
        assert len(ready) == 1, sent
        assert "STATUS=degraded: sensor fault: /dev/i2c-250 does not exist" in ready[0]
        assert "raspi-config nonint do_i2c 0" in ready[0]  # the fix, not only the cause
        run_for(20.0)
        assert 4 <= len(opens) - 1 <= 6, opens  # every 5 s, not every step
        plugged_in = True
        sent = run_for(6.0)
        assert driver.opened and driver.chip == "MPU-6050"
        assert any(m.startswith("STATUS=running") for m in sent), sent
        assert service.health.sensor_ok
        service.close()


def test_a_device_cgroup_refusal_is_not_blamed_on_the_group():
    import errno

    from firmware_bridge.sensor import denied_message

    cgroup = denied_message("/dev/i2c-1", PermissionError(errno.EPERM, "Operation not permitted"))
    assert "device cgroup" in cgroup and "DeviceAllow=char-i2c rw" in cgroup
    assert "group (sudo adduser" not in cgroup
    group = denied_message("/dev/null", PermissionError(errno.EACCES, "Permission denied"))
    assert "EACCES" in group and "mode 0666" in group and "adduser $USER root" in group


def test_history_outside_the_roller_group_is_one_line_not_a_traceback(tmp_path):
    """The service's /var/lib/roller is 0750 roller:roller: a user outside the group is told
    which group to join (run here as nobody against a history in a root-only folder)."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run as another user")
    private = tmp_path / "state"
    private.mkdir(mode=0o700)
    History(private / "history.sqlite3").close()
    proc = subprocess.run([setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           str(REPO / ".venv" / "bin" / "roller"), "history", "--db",
                           str(private / "history.sqlite3")],
                          capture_output=True, text=True, timeout=60, cwd="/")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "roller group" in lines[0] and "history.sqlite3" in lines[0], lines
