"""``scripts/install-pi`` under a real systemd: a minimal Debian booted with systemd-nspawn.

The root is built once with debootstrap from this machine's own apt sources (read at run time)
and cached outside the clone (``$ROLLER_TEST_ROOT``, default /var/cache/roller-test-root); each
run boots it with a throw-away overlay (``--volatile=overlay``) and no network but loopback
(``--private-network``). The Python packages come from a wheelhouse downloaded once beside the
root, so the install inside runs offline. There is no /dev/i2c-1 in the container: that is the
Raspberry Pi OS default of I2C off.

Warm (the root and wheels cached) about 2.5 min on two cores: the install about 45 s, then the
60 s of watching for a restart loop and the watchdog's 10 s. A cold run adds about 3 min
(debootstrap over the network, then the wheel download). Needs root, network for a cold run,
debootstrap and systemd-container (``scripts/setup --test`` installs them).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("ROLLER_TEST_ROOT", "/var/cache/roller-test-root"))
ROOT_PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "ca-certificates",
                 "mosquitto", "mosquitto-clients", "i2c-tools", "procps")
"""What a Pi image has already (the script's apt step then only checks), plus the clients the
checks use. mosquitto is preinstalled because the container has no network to fetch it."""
PROBE = "roller/_upgrade_probe.py"
"""A module present in the first install only: the upgrade must remove it."""
HTTP_PORT = 8093
"""A non-default display port in the config the install must keep and print."""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (debootstrap, systemd-nspawn)"
    for tool in ("debootstrap", "systemd-nspawn", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} is missing: scripts/setup --test installs debootstrap and " \
                   "systemd-container"
    return None


# ---- the cached root ------------------------------------------------------------------------

def host_apt_source() -> tuple[str, str]:
    """(mirror URI, suite) of this machine's Debian archive, from its apt sources."""
    release = dict(line.split("=", 1) for line in
                   Path("/etc/os-release").read_text().splitlines() if "=" in line)
    suite = release.get("VERSION_CODENAME", "").strip('"')
    stanzas: list[dict[str, str]] = []
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for block in path.read_text().split("\n\n"):
            fields = dict(line.split(":", 1) for line in block.splitlines()
                          if ":" in line and not line.startswith(("#", " ")))
            stanzas.append({k.strip(): v.strip() for k, v in fields.items()})
    lists = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]
    for path in lists:
        for line in path.read_text().splitlines() if path.exists() else []:
            parts = re.sub(r"\[[^]]*\]", "", line).split()
            if len(parts) >= 3 and parts[0] == "deb":
                stanzas.append({"Types": "deb", "URIs": parts[1], "Suites": parts[2]})
    for st in stanzas:
        if "deb" in st.get("Types", "").split() and suite in st.get("Suites", "").split():
            return st["URIs"].split()[0], suite
    pytest.fail(f"no apt source for {suite!r} in /etc/apt: cannot debootstrap a matching root")


@contextlib.contextmanager
def cache_lock() -> Iterator[None]:
    """One builder at a time (two CI runs on one machine share the cache)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def cached_root() -> Path:
    """The minimal Debian root, built on first use (a finished build is marked complete)."""
    with cache_lock():
        return _cached_root()


def _cached_root() -> Path:
    mirror, suite = host_apt_source()
    key = hashlib.sha256(f"{mirror} {suite} {ROOT_PACKAGES}".encode()).hexdigest()[:10]
    root = CACHE / f"{suite}-{key}"
    if (root / ".complete").exists():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    building = root.with_name(root.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(ROOT_PACKAGES)}",
                    suite, str(building), mirror], check=True, capture_output=True, timeout=1800)
    subprocess.run(["chroot", str(building), "apt-get", "clean"], check=True)
    # A Pi image resolves localhost from /etc/hosts; debootstrap writes none.
    (building / "etc" / "hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")
    (building / "etc" / "hostname").write_text("rollerpi\n")
    (building / ".complete").write_text(f"{mirror} {suite}\n")
    building.rename(root)
    return root


def wheelhouse() -> Path:
    """The project's dependencies, the build backend and lgpio as wheels (downloaded once per
    pyproject.toml): the install in the container then runs without network."""
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:10]
    wheels = CACHE / f"wheels-{key}"
    with cache_lock():
        if not (wheels / ".complete").exists():
            _download_wheels(wheels)
    return wheels


def _download_wheels(wheels: Path) -> None:
    wheels.mkdir(parents=True, exist_ok=True)
    backend = re.search(r'requires = \["([^"]+)"\]',
                        (REPO / "pyproject.toml").read_text()).group(1)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "-d", str(wheels),
                    backend, "lgpio", str(REPO)], check=True, capture_output=True, timeout=900)
    (wheels / ".complete").touch()


# ---- the booted container -------------------------------------------------------------------

class Container:
    """A booted container: :meth:`sh` runs a command inside as root (nsenter into PID 1)."""

    def __init__(self, root: Path, binds: dict[Path, str], log: Path) -> None:
        self.name = f"rollertest{os.getpid()}"
        args = ["systemd-nspawn", "-q", "-D", str(root), "--volatile=overlay", "--boot",
                "--register=no", "--keep-unit", "--private-network", f"--machine={self.name}"]
        args += [f"--bind={host}:{inside}" for host, inside in binds.items()]
        self._log = log.open("wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        try:
            self._boot()
        except BaseException:  # a container that did not boot must not outlive the test
            self.proc.terminate()  # nspawn powers the container off on SIGTERM
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self._log.close()
            raise

    def _boot(self) -> None:
        self.pid = self._find_init()
        deadline = time.monotonic() + 120
        while True:  # until systemd in there answers (its bus exists only once it is up)
            state = self.sh("systemctl is-system-running --wait", check=False, timeout=120)
            if state.stdout.strip() in ("running", "degraded"):
                break
            assert time.monotonic() < deadline, f"the container did not boot: {state}"
            time.sleep(0.2)

    def _find_init(self) -> int:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "systemd-nspawn exited: see " + self._log.name
            for child in Path("/proc").glob("[0-9]*"):
                with contextlib.suppress(OSError):
                    status = (child / "status").read_text()
                    nspid = re.search(r"^NSpid:\s+(\d+)\s+(\d+)$", status, re.M)
                    ppid = int(re.search(r"^PPid:\s+(\d+)", status, re.M).group(1))
                    if nspid and nspid.group(2) == "1" and ppid == self.proc.pid:
                        return int(nspid.group(1))
            time.sleep(0.2)
        pytest.fail("the container's systemd did not start within 60 s")

    def sh(self, command: str, *, check: bool = True, timeout: float = 120,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        base = {"PATH": "/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
                **(env or {})}
        proc = subprocess.run(["nsenter", "-t", str(self.pid), "-m", "-u", "-i", "-n", "-p",
                               "-C", "-r", "-w", "env", "-i",
                               *[f"{k}={v}" for k, v in base.items()], "sh", "-c", command],
                              capture_output=True, text=True, timeout=timeout)
        if check:
            assert proc.returncode == 0, f"{command}: exit {proc.returncode}\n" \
                                         f"{proc.stdout}\n{proc.stderr}"
        return proc

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.sh(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_for(self, unit: str, predicate, timeout_s: float, what: str) -> dict[str, str]:
        deadline = time.monotonic() + timeout_s
        while True:
            props = self.show(unit, "ActiveState", "SubState", "StatusText", "MainPID",
                              "NRestarts")
            if predicate(props):
                return props
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {props}"
            time.sleep(0.2)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.sh("systemctl poweroff", check=False, timeout=30)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


@pytest.fixture(scope="module")
def pi(tmp_path_factory) -> Iterator[tuple[Container, Path]]:
    why = _why_not()
    if why:
        pytest.fail(why)  # it runs in .ci/run: a missing tool is a setup bug, not a skip
    root, wheels = cached_root(), wheelhouse()
    work = tmp_path_factory.mktemp("pi")
    src = work / "src"
    src.mkdir()
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True,
                           check=True).stdout.decode().split("\0")
    with tarfile.open(work / "src.tar", "w") as tar:
        for name in filter(None, files):
            if (REPO / name).exists():
                tar.add(REPO / name, arcname=name)
    with tarfile.open(work / "src.tar") as tar:
        tar.extractall(src, filter="tar")
    (src / PROBE).write_text('"""Present in the first install only."""\n')
    container = Container(root, {src: "/src", wheels: "/wheels"}, work / "boot.log")
    try:
        yield container, src
    finally:
        container.close()


INSTALL_ENV = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/wheels", "SUDO_USER": "maker"}


def test_install_on_plain_debian_under_systemd(pi):
    c, _ = pi
    c.sh("useradd -m maker && useradd -m guest && install -d -m 0750 /etc/roller && "
         f"printf '[display]\\nhttp_port = {HTTP_PORT}\\n' > /etc/roller/roller.toml")
    began = time.monotonic()
    install = c.sh("/src/scripts/install-pi", check=False, timeout=600, env=INSTALL_ENV)
    took = time.monotonic() - began
    out = install.stdout + install.stderr
    print(f"install-pi (warm wheelhouse, I2C absent): exit {install.returncode} in {took:.1f} s")
    # 1. exit 0 with I2C absent, and a summary that says what runs, what is degraded, what to do
    assert install.returncode == 0, out
    assert "Job for" not in out, out
    assert "degraded: no /dev/i2c-1" in out and "To do:" in out and "enable I2C" in out, out
    assert "lgpio from PyPI" in out and "mosquitto on this machine" in out, out
    # 4. the display address with the configured port and the machine's name
    assert f"display: http://rollerpi.local:{HTTP_PORT}/" in out, out
    display_log = c.sh("journalctl -u roller-display -o cat --no-pager").stdout
    assert f"open http://rollerpi.local:{HTTP_PORT}/" in display_log, display_log

    # 2. READY, degraded with the I2C cause and the fix, no restart loop
    props = c.show("roller", "ActiveState", "SubState", "StatusText", "NRestarts",
                   "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic")
    ready_s = (int(props["ActiveEnterTimestampMonotonic"])
               - int(props["ExecMainStartTimestampMonotonic"])) / 1e6
    print(f"READY (degraded, no I2C) {ready_s:.1f} s after start: {props['StatusText']}")
    assert props["ActiveState"] == "active", props
    assert props["StatusText"].startswith("degraded: sensor fault: /dev/i2c-1 does not exist")
    assert "raspi-config nonint do_i2c 0" in props["StatusText"]
    journal = c.sh("journalctl -b -o cat --no-pager").stdout
    assert "ConfigurationDirectory" not in journal, journal  # the mode warning is gone

    # 3. roller on PATH for everyone; the installer's user in group roller; others told why
    assert "roller" in c.sh("id -nG maker").stdout.split()
    assert "log out and in again" in out
    assert c.sh("runuser -u maker -- roller history").returncode == 0
    guest = c.sh("runuser -u guest -- roller history", check=False)
    assert guest.returncode == 1 and "Traceback" not in guest.stderr, guest.stderr
    assert len(guest.stderr.strip().splitlines()) == 1 and "roller group" in guest.stderr

    # systemd-analyze security on the installed units
    for unit, limit in (("roller.service", 1.5), ("roller-display.service", 1.1)):
        text = c.sh(f"systemd-analyze security {unit} --no-pager").stdout
        score = float(re.search(rf"Overall exposure level for {unit}: ([0-9.]+)", text).group(1))
        print(f"systemd-analyze security {unit}: {score}")
        assert score <= limit, text

    # the display answers on the configured port
    page = c.sh(f"python3 -c \"import urllib.request; print(urllib.request.urlopen("
                f"'http://127.0.0.1:{HTTP_PORT}/', timeout=5).status)\"").stdout
    assert page.strip() == "200"

    # no restart loop: 60 s after the start, still the first process
    first_pid = c.show("roller", "MainPID")["MainPID"]
    time.sleep(max(0.0, 60 - (time.monotonic() - began - took)))
    props = c.show("roller", "NRestarts", "MainPID", "ActiveState", "StatusText")
    print(f"after 60 s without I2C: NRestarts={props['NRestarts']}")
    assert props["NRestarts"] == "0" and props["MainPID"] == first_pid, props
    assert props["StatusText"].startswith("degraded: sensor fault"), props


def test_simulated_sensor_running_watchdog_and_clean_stop(pi):
    c, _ = pi
    c.sh("mkdir -p /etc/systemd/system/roller.service.d && printf '[Service]\\nExecStart=\\n"
         "ExecStart=/opt/roller/.venv/bin/roller run --config /etc/roller/roller.toml "
         "--simulate\\n' > /etc/systemd/system/roller.service.d/simulate.conf && "
         "systemctl daemon-reload")
    began = time.monotonic()
    c.sh("systemctl restart roller", timeout=90)
    ready_s = time.monotonic() - began
    props = c.show("roller", "ActiveState", "StatusText", "MainPID")
    print(f"READY with the simulated sensor {ready_s:.1f} s after restart: {props['StatusText']}")
    assert props["ActiveState"] == "active" and props["StatusText"].startswith("running"), props

    # the watchdog restarts a frozen service
    frozen = props["MainPID"]
    c.sh(f"kill -STOP {frozen}")
    began = time.monotonic()
    c.wait_for("roller", lambda p: p["MainPID"] not in (frozen, "0")
               and p["ActiveState"] == "active" and p["StatusText"].startswith("running"),
               60, "the watchdog to restart the frozen service")
    print(f"frozen service READY again after {time.monotonic() - began:.1f} s (WatchdogSec=10)")
    assert "Watchdog timeout" in c.sh("journalctl -u roller -o cat --no-pager").stdout

    # SIGTERM: an orderly stop that leaves a retained offline
    device = c.sh("/opt/roller/.venv/bin/python -c \"from roller.service.config import "
                  "load_config; print(load_config('/etc/roller/roller.toml').device_id)\"")
    began = time.monotonic()
    c.sh("systemctl stop roller")
    print(f"stopped in {time.monotonic() - began:.2f} s")
    status = c.sh(f"mosquitto_sub -h 127.0.0.1 -t roller/{device.stdout.strip()}/status -C 1 "
                  "-W 5 -F '%r %p'").stdout.split()
    assert status == ["1", "offline"], status
    assert c.show("roller", "Result")["Result"] == "success"


def test_upgrade_removes_a_deleted_module_and_keeps_the_config(pi):
    c, src = pi
    site = c.sh("/opt/roller/.venv/bin/python -c \"import roller, pathlib; "
                "print(pathlib.Path(roller.__file__).parent)\"").stdout.strip()
    assert c.sh(f"test -f {site}/_upgrade_probe.py", check=False).returncode == 0
    (src / PROBE).unlink()
    c.sh("rm -f /etc/systemd/system/roller.service.d/simulate.conf")
    again = c.sh("/src/scripts/install-pi", check=False, timeout=600, env=INSTALL_ENV)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out
    assert c.sh(f"test -e {site}/_upgrade_probe.py", check=False).returncode == 1, out
    assert "keeping the existing /etc/roller/roller.toml" in out
    assert f":{HTTP_PORT}/" in out and "maker is in the roller group" in out
    assert json.dumps(c.show("roller", "ActiveState")) == '{"ActiveState": "active"}'
