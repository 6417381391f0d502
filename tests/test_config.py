"""Config loading: defaults without a file, validation messages naming key/expected/actual,
exit status 78 from the CLI, secrets never printed, and config/roller.toml documenting every key."""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import sys
import time
import tomllib
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from roller.base.errors import ConfigError
from roller.coaching.routine import load_routine
from roller.commands.document_config import document
from roller.display.config import DisplayConfig, load_display_config
from roller.mqtt.client import PASSWORD_ENV, resolve_password
from roller.service.config import (
    RollerConfig,
    host_device_id,
    load_config,
    override_broker,
)

REPO = Path(__file__).resolve().parent.parent
ROLLER = [sys.executable, "-m", "roller.cli"]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "roller.toml"
    path.write_text(text)
    return path


def test_no_file_gives_built_in_defaults(monkeypatch):
    monkeypatch.delenv("ROLLER_CONFIG", raising=False)
    config = load_config(None)
    assert config.mqtt.port == 1883
    assert config.mqtt.live_interval_s == pytest.approx(0.1)
    assert config.device_id  # derived from the host name
    assert config.device_name == f"Roller {config.device_id}"


def test_env_var_names_the_file(tmp_path, monkeypatch):
    path = write(tmp_path, '[device]\nid = "mat-3"\n[mqtt]\nport = 1999\n')
    monkeypatch.setenv("ROLLER_CONFIG", str(path))
    config = load_config(None)
    assert (config.device_id, config.mqtt.port) == ("mat-3", 1999)


@pytest.mark.parametrize(("text", "key", "expected", "actual"), [
    ("[mqtt]\nprot = 1883\n", "mqtt.prot", "one of", "not shown"),
    ("[mqtt]\nport = \"1883\"\n", "mqtt.port", "a whole number", "'1883'"),
    ("[mqtt]\nport = 70000\n", "mqtt.port", "from 1 to 65535", "70000"),
    ("[mqtt]\nlive_interval_s = 0.001\n", "mqtt.live_interval_s", "from 0.02 to 60 in s", "0.001"),
    ("[service]\nread_interval_s = true\n", "service.read_interval_s", "a number", "True"),
    ("[mqtt]\nreconnect_min_delay_s = 10.0\nreconnect_max_delay_s = 5.0\n",
     "mqtt.reconnect_min_delay_s", "at most mqtt.reconnect_max_delay_s", "10.0"),
    ("[device]\nid = \"a/b\"\n", "device.id", "letters, digits", "'a/b'"),
    ("[mqtt]\ntopic_prefix = \"roller/#\"\n", "mqtt.topic_prefix", "levels of letters", "#"),
    ("[nonsense]\nx = 1\n", "nonsense", "one of", "not shown"),
    ("[mqtt]\ntls_ca_file = \"/nonexistent/ca.pem\"\n", "mqtt.tls_ca_file", "an existing PEM",
     "/nonexistent/ca.pem"),
])
def test_bad_values_name_the_key_the_expected_and_the_actual(tmp_path, text, key, expected,
                                                             actual):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.key == key
    message = str(err.value)
    assert key in message and expected in message and actual in message
    assert str(path) in message


def test_malformed_toml_says_where(tmp_path):
    path = write(tmp_path, "[mqtt]\nport = 1883\nhost = \n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "line 3" in str(err.value)
    assert "valid TOML" in str(err.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="an existing TOML file"):
        load_config(tmp_path / "absent.toml")


def test_cli_exits_78_with_the_message(tmp_path):
    path = write(tmp_path, "[mqtt]\nport = 0\n")
    proc = subprocess.run([*ROLLER, "run", "--config", str(path), "--simulate"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 78, proc.stderr
    assert "mqtt.port" in proc.stderr and "from 1 to 65535" in proc.stderr
    assert "got 0" in proc.stderr


def test_bad_broker_override_exits_78(tmp_path, monkeypatch):
    env = {k: v for k, v in os.environ.items() if k != "ROLLER_CONFIG"}
    proc = subprocess.run([*ROLLER, "run", "--simulate", "--broker", "localhost:notaport"],
                          capture_output=True, text=True, timeout=60, cwd=REPO, env=env)
    assert proc.returncode == 78
    assert "--broker" in proc.stderr and "HOST:PORT" in proc.stderr


def test_override_broker():
    config = RollerConfig()
    c = override_broker(config, "10.0.0.5:1884")
    assert (c.mqtt.host, c.mqtt.port) == ("10.0.0.5", 1884)
    assert override_broker(config, "broker.lan").mqtt.port == 1883
    assert override_broker(config, "[::1]:1885").mqtt.host == "::1"
    with pytest.raises(ConfigError):
        override_broker(config, "host:0")


def test_password_from_file_or_env_and_never_in_the_config(tmp_path, monkeypatch):
    secret = "s3cret-Pa55"
    pw = tmp_path / "pw"
    pw.write_text(secret + "\n")
    path = write(tmp_path, f'[mqtt]\nusername = "roller"\npassword_file = "{pw}"\n')
    config = load_config(path)
    assert resolve_password(config.mqtt) == secret
    assert secret not in repr(config)
    env_only = dataclasses.replace(config.mqtt, password_file="")
    assert resolve_password(env_only, {PASSWORD_ENV: "from-env"}) == "from-env"
    assert resolve_password(env_only, {}) is None


def test_unreadable_password_file_fails_at_load_without_leaking(tmp_path):
    path = write(tmp_path, f'[mqtt]\nusername = "u"\npassword_file = "{tmp_path}/nope"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.key == "mqtt.password_file"


def test_password_file_needs_a_user_name(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("x")
    with pytest.raises(ConfigError, match=r"mqtt\.username"):
        load_config(write(tmp_path, f'[mqtt]\npassword_file = "{pw}"\n'))


def test_host_device_id_is_topic_safe():
    assert host_device_id("raspberrypi.local", machine="") == "raspberrypi"
    assert host_device_id("my pi#2", machine="") == "my-pi-2"
    assert host_device_id("###", machine="") == "roller"
    assert host_device_id("raspberrypi", machine="3f9a1c") == "raspberrypi-3f9a1c"
    assert len(host_device_id("x" * 100, machine="3f9a1c")) == 64
    assert host_device_id("_x", machine="") == "x"  # no leading '_' (no __proto__)
    # The default: stable across calls (restarts), unique per machine id file.
    assert host_device_id("raspberrypi") == host_device_id("raspberrypi")


def test_documented_file_lists_every_key_and_loads():
    text = (REPO / "config" / "roller.toml").read_text()
    assert text == document(), \
        "regenerate: python -m roller.commands.document_config > config/roller.toml"
    tomllib.loads(text)
    load_config(REPO / "config" / "roller.toml")
    load_display_config(REPO / "config" / "roller.toml")
    for config_cls in (RollerConfig, DisplayConfig):
        for f in dataclasses.fields(config_cls):
            if f.default_factory is dataclasses.MISSING:
                assert f"# {f.name} =" in text
                continue
            section = f.default_factory
            assert f"[{f.name}]" in text
            for sub in dataclasses.fields(section):
                assert f"# {sub.name} =" in text, f"{f.name}.{sub.name} is not documented"


# -- adversarial inputs (issue 12): one ConfigError each, bounded time and memory -----------
SECRET = "hunter2-Pa55"


def _hostile_cases(tmp: Path) -> dict[str, tuple[str, str]]:
    """name -> (config text, the key the error must name). Files the config points at are made
    in ``tmp``."""
    (tmp / "statefile").write_text("x")
    (tmp / "notpem.txt").write_text("hello, not a certificate\n")
    (tmp / "bin_routine.toml").write_bytes(bytes(range(256)) * 10)
    (tmp / "deep_routine.toml").write_text("name = " + "[" * 2000 + "]" * 2000 + "\n")
    os.mkfifo(tmp / "fifo")
    return {
        "deep arrays": ("x = " + "[" * 1000 + "]" * 1000 + "\n", "(file syntax)"),
        "deep inline tables": ("x = " + "{a=" * 1000 + "1" + "}" * 1000 + "\n", "(file syntax)"),
        "deep table headers": ("[" + ".".join(["a"] * 5000) + "]\n", "(file)"),
        "deep unknown value": ("[device]\nx = " + "[" * 400 + "]" * 400 + "\n", "(file)"),
        "binary routine": (f'[coach]\nroutine = "{tmp}/bin_routine.toml"\n', "(file)"),
        "deep routine": (f'[coach]\nroutine = "{tmp}/deep_routine.toml"\n', "(file)"),
        "routine is /dev/zero": ('[coach]\nroutine = "/dev/zero"\n', "routine"),
        "NUL in state_dir": ('state_dir = "/tmp/a\\u0000b"\n', "state_dir"),
        "NUL in password_file": ('[mqtt]\nusername="u"\npassword_file = "/tmp/a\\u0000b"\n',
                                 "mqtt.password_file"),
        "NUL in history.file": ('[history]\nfile = "h\\u0000.sqlite3"\n', "history.file"),
        "NUL in routine": ('[coach]\nroutine = "a\\u0000b"\n', "coach.routine"),
        "NUL in tls_ca_file": ('[mqtt]\ntls = true\ntls_ca_file = "/tmp/a\\u0000b"\n',
                               "mqtt.tls_ca_file"),
        "state_dir is a file": (f'state_dir = "{tmp}/statefile"\n', "state_dir"),
        "state_dir under a file": (f'state_dir = "{tmp}/statefile/sub"\n', "state_dir"),
        "history.file is a directory": ('[history]\nfile = "/tmp"\n', "history.file"),
        "CA file not PEM": (f'[mqtt]\ntls = true\ntls_ca_file = "{tmp}/notpem.txt"\n',
                            "mqtt.tls_ca_file"),
        "cert and key not PEM": (f'[mqtt]\ntls = true\ntls_cert_file = "{tmp}/notpem.txt"\n'
                                 f'tls_key_file = "{tmp}/notpem.txt"\n', "mqtt.tls_cert_file"),
        "password file a FIFO": (f'[mqtt]\nusername = "u"\npassword_file = "{tmp}/fifo"\n',
                                 "mqtt.password_file"),
        "password file /dev/zero": ('[mqtt]\nusername = "u"\npassword_file = "/dev/zero"\n',
                                    "mqtt.password_file"),
        "GPIO pin used twice": ("[gpio]\nstart_pause_pin = 17\nnext_pin = 17\n", "gpio.next_pin"),
        "LED and buzzer on one pin": ("[gpio]\nstatus_led_pin = 4\nbuzzer_pin = 4\n",
                                      "gpio.buzzer_pin"),
        "NaN gyro bias": ("[pipeline]\ngyro_bias_rad_s = [nan, 0.0, 0.0]\n",
                          "pipeline.gyro_bias_rad_s"),
        "inf gyro bias": ("[pipeline]\ngyro_bias_rad_s = [inf, 0.0, 0.0]\n",
                          "pipeline.gyro_bias_rad_s"),
        "NaN roll axis": ("[pipeline]\nroll_axis = [nan, 0.0, 1.0]\n", "pipeline.roll_axis"),
        "empty host": ('[mqtt]\nhost = ""\n', "mqtt.host"),
        "host with a space": ('[mqtt]\nhost = "local host"\n', "mqtt.host"),
        "device id ending in a newline": ('[device]\nid = "mat-1\\n"\n', "device.id"),
        "prefix ending in a newline": ('[mqtt]\ntopic_prefix = "roller\\n"\n',
                                       "mqtt.topic_prefix"),
        "65 kB client id": ('[mqtt]\nclient_id = "' + "c" * 65536 + '"\n', "mqtt.client_id"),
        "client id with a newline": ('[mqtt]\nclient_id = "abc\\n"\n', "mqtt.client_id"),
        "70 kB user name": ('[mqtt]\nusername = "' + "u" * 70000 + '"\n', "mqtt.username"),
        "misplaced mqtt.password": (f'[mqtt]\npassword = "{SECRET}"\n', "mqtt.password"),
        "misspelt mqtt.pasword": (f'[mqtt]\npasword = "{SECRET}"\n', "mqtt.pasword"),
        "top-level password": (f'password = "{SECRET}"\n', "password"),
        "100 kB value": ('[mqtt]\nport = "' + "p" * 100_000 + '"\n', "mqtt.port"),
    }


def _names() -> list[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return list(_hostile_cases(Path(tmp)))


@pytest.mark.parametrize("case", _names())
def test_hostile_config_gives_one_config_error(tmp_path, monkeypatch, case):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    text, key = _hostile_cases(tmp_path)[case]
    path = write(tmp_path, text)
    started = time.monotonic()
    with pytest.raises(ConfigError) as err:
        config = load_config(path)
        load_routine(config.coach.routine)  # what `roller run` loads next
    assert time.monotonic() - started < 5.0
    assert err.value.key.startswith(key), str(err.value)
    message = str(err.value)
    assert "\n" not in message and len(message) < 1000
    assert SECRET not in message


@pytest.mark.parametrize("case", ["deep arrays", "binary routine", "NUL in state_dir",
                                  "GPIO pin used twice", "NaN roll axis",
                                  "misplaced mqtt.password", "password file a FIFO"])
def test_roller_run_exits_78_with_one_line(tmp_path, case):
    text, _key = _hostile_cases(tmp_path)[case]
    path = write(tmp_path, text)
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    proc = subprocess.run([*ROLLER, "run", "--simulate", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, env=env, check=False)
    assert proc.returncode == 78, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("roller run: configuration error:")
    assert SECRET not in proc.stderr


@pytest.mark.parametrize("target", ["/dev/zero", "fifo", "dir"])
def test_the_config_file_itself_must_be_a_regular_file(tmp_path, target):
    if target == "fifo":
        os.mkfifo(tmp_path / "fifo")
    elif target == "dir":
        (tmp_path / "dir").mkdir()
    path = target if target.startswith("/") else str(tmp_path / target)
    started = time.monotonic()
    with pytest.raises(ConfigError, match="expected a regular TOML file") as err:
        load_config(path)
    assert err.value.key == "--config"
    assert time.monotonic() - started < 2.0


def test_a_config_file_over_a_mebibyte_is_refused_unread(tmp_path):
    path = tmp_path / "roller.toml"
    path.write_text("# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="at most 1048576 bytes"):
        load_config(path)


def test_a_real_pem_pair_is_accepted(tmp_path):
    """The PEM check must not refuse what OpenSSL loads (a self-signed pair made by openssl)."""
    if subprocess.run(["which", "openssl"], capture_output=True, check=False).returncode:
        pytest.skip("openssl is not installed")
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=roller"],
                   check=True, capture_output=True, timeout=60)
    config = load_config(write(tmp_path, f'[mqtt]\ntls = true\ntls_ca_file = "{cert}"\n'
                                         f'tls_cert_file = "{cert}"\ntls_key_file = "{key}"\n'))
    assert config.mqtt.tls_cert_file == str(cert)


# -- each process reads its own sections (issue 15) ------------------------------------------
def test_every_section_is_read_in_full_by_one_process():
    from roller.base.config_file import SECTIONS, section_classes
    from roller.commands.document_config import full_sections

    assert list(full_sections()) == list(SECTIONS)  # raises for a section nobody reads in full
    for config_cls in (RollerConfig, DisplayConfig):
        assert set(section_classes(config_cls)) <= set(SECTIONS), config_cls


def test_a_partial_section_declares_its_keys_as_the_full_one_does():
    # The service reads where the page is, the display the go-slow band: the same default,
    # range, unit and text as the class that reads the section in full.
    from roller.base.config_file import section_classes
    from roller.commands.document_config import full_sections

    full = full_sections()
    pairs = 0
    for config_cls in (RollerConfig, DisplayConfig):
        for name, cls in section_classes(config_cls, partial=True).items():
            declared = {f.name: f for f in dataclasses.fields(full[name])}
            for f in dataclasses.fields(cls):
                assert f.name in declared, f"{name}.{f.name}"
                assert (f.default, dict(f.metadata)) == (declared[f.name].default,
                                                         dict(declared[f.name].metadata))
                pairs += 1
    assert pairs >= 4


def test_the_display_reads_its_sections_from_the_same_file(tmp_path):
    path = write(tmp_path, '[display]\nhttp_port = 8181\n[mqtt]\nport = 1999\n'
                           '[pipeline]\ntarget_speed_m_s = 0.02\nmax_speed_m_s = 0.04\n'
                           'radius_m = 0.05\n[coach]\nroutine = "x.toml"\n')
    config = load_display_config(path)
    assert (config.display.http_port, config.mqtt.port) == (8181, 1999)
    assert config.speed_band_m_s == (0.02, 0.04)
    # The same file, as the service reads it.
    assert load_config(path).display.http_port == 8181


@pytest.mark.parametrize(("text", "key"), [
    ("[displya]\nhttp_port = 1\n", "displya"),
    ("[display]\nhttp_prot = 1\n", "display.http_prot"),
    ("[display]\nhttp_port = 70000\n", "display.http_port"),
    ("[mqtt]\nprot = 1883\n", "mqtt.prot"),
    ("[mqtt]\nhost = \"local host\"\n", "mqtt.host"),
    ("[pipeline]\nmax_speed_m_s = 9.0\n", "pipeline.max_speed_m_s"),
    ("[mqtt]\npassword = \"hunter2-Pa55\"\n", "mqtt.password"),
    ("state_dri = \"/tmp\"\n", "state_dri"),
])
def test_the_display_refuses_what_it_reads_and_unknown_sections(tmp_path, text, key):
    with pytest.raises(ConfigError) as err:
        load_display_config(write(tmp_path, text))
    assert err.value.key == key
    assert SECRET not in str(err.value)


def test_each_process_leaves_the_keys_it_does_not_read_to_the_other(tmp_path):
    # [display] keepalive_s is the display's to check, [pipeline] radius_m the service's.
    path = write(tmp_path, "[display]\nkeepalive_s = 20.0\n[pipeline]\nradius_m = 0.05\n")
    assert load_config(path).pipeline.radius_m == 0.05
    assert load_display_config(path).display.keepalive_s == 20.0


def test_roller_display_exits_78_with_one_line(tmp_path):
    path = write(tmp_path, "[display]\nhttp_prot = 8080\n")
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    proc = subprocess.run([*ROLLER, "display", "--config", str(path)], capture_output=True,
                          text=True, timeout=60, env=env, check=False)
    assert proc.returncode == 78, proc.stderr
    assert proc.stderr.strip() == proc.stderr.strip().splitlines()[0]
    assert proc.stderr.startswith("roller display: configuration error:")
    assert "display.http_prot" in proc.stderr


# -- a password in the wrong key is never echoed (issue 20) ----------------------------------
@pytest.mark.parametrize("loader", ["service", "display"])
@pytest.mark.parametrize("value", [SECRET, "/nonexistent/" + SECRET, "/dev/null/" + SECRET])
def test_a_password_file_that_is_not_a_file_is_named_not_echoed(tmp_path, loader, value):
    load = load_config if loader == "service" else load_display_config
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, f'[mqtt]\nusername = "u"\npassword_file = "{value}"\n'))
    assert err.value.key == "mqtt.password_file"
    assert SECRET not in str(err.value)
    assert "password file" in str(err.value)


# -- every value that validates also runs (issue 20) -----------------------------------------
def _pipeline_numbers() -> dict[str, tuple[bool, float | None, float | None]]:
    """[pipeline] numeric key -> (is a vector, minimum, maximum)."""
    from roller.pipeline import PipelineSettings

    out = {}
    for f in dataclasses.fields(PipelineSettings):
        kind = str(f.type)
        if "float" in kind or "int" in kind:
            out[f.name] = ("list" in kind, f.metadata.get("minimum"), f.metadata.get("maximum"))
    return out


def _floats(lo: float | None, hi: float | None, *, inside: bool) -> st.SearchStrategy[float]:
    """With ``inside``, floats of the allowed range, weighted towards its bounds; else any
    float, weighted towards the edges: the bounds, just past them, zero, the largest and
    smallest doubles, inf and NaN."""
    lo_, hi_ = (-1.0 if lo is None else lo), (1.0 if hi is None else hi)
    if inside:
        return st.one_of(st.sampled_from([lo_, hi_, 0.0 if lo_ <= 0.0 <= hi_ else lo_]),
                         st.floats(min_value=lo_, max_value=hi_))
    edges = [0.0, -0.0, 5e-324, -5e-324, 1e-300, 1e200, -1e200, 1e308, -1e308,
             math.inf, -math.inf, math.nan]
    for bound in (lo, hi):
        if bound is not None:
            edges += [bound, math.nextafter(bound, math.inf), math.nextafter(bound, -math.inf)]
    return st.one_of(st.sampled_from(edges), st.floats())


@st.composite
def _pipeline_tables(draw: st.DrawFn) -> dict[str, Any]:
    """A [pipeline] table of numbers in their ranges (so it must run), except at most one key
    of any floats (so it must be refused by name, or run): one wild key at a time, or the
    first refusal would hide the others."""
    numbers = _pipeline_numbers()
    wild = draw(st.sampled_from([None, *numbers]))
    table: dict[str, Any] = {}
    for name, (vector, lo, hi) in numbers.items():
        if name != wild and not draw(st.booleans()):
            continue
        inside = name != wild
        floats = _floats(lo, hi, inside=inside)
        if vector:
            size = (3, 3) if inside or draw(st.booleans()) else (0, 4)
            table[name] = draw(st.lists(floats, min_size=size[0], max_size=size[1]))
        else:
            table[name] = draw(floats)
    table["body"] = draw(st.sampled_from(["roller", "ball"]))
    return table


def _pipeline_toml(table: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, str):
            return f'"{v}"'
        return repr(float(v))  # 1e+200, inf, nan: all TOML
    return "[pipeline]\n" + "".join(f"{k} = {value(v)}\n" for k, v in table.items())


@cache
def _eight_seconds_of_rolling() -> tuple[Any, Any]:
    from firmware_bridge.simulator import SimulatedRoller, person_scenario

    return SimulatedRoller(person_scenario(8, seed=5), seed=5).recording(200.0)


def _run_pipeline(config: RollerConfig) -> None:
    """What `roller run` does with [pipeline] at start and in its first seconds: build the
    pipeline (as the service wiring does) and feed it 8 s of rolling in 30 ms blocks."""
    from roller.service.wiring import make_pipeline

    t, samples = _eight_seconds_of_rolling()
    pipeline = make_pipeline(config, None)
    for i in range(0, t.size, 6):
        pipeline.update(t[i:i + 6], samples[i:i + 6])
    pipeline.finish()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(table=_pipeline_tables())
def test_any_pipeline_values_are_refused_by_name_or_run(tmp_path, table):
    path = write(tmp_path, _pipeline_toml(table))
    try:
        config = load_config(path)
    except ConfigError as exc:
        assert exc.key.startswith("pipeline."), str(exc)
        assert "\n" not in str(exc)
        event("refused")
        return
    event("accepted")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # an overflow on the way counts too
        _run_pipeline(config)


@pytest.mark.parametrize(("text", "key", "expected"), [
    ("[pipeline]\nroll_axis = [1e200, 1e200, 0.0]\n", "pipeline.roll_axis[0]",
     "from -1000.0 to 1000.0"),
    ("[pipeline]\ngyro_bias_rad_s = [1e308, -1e308, 1e308]\n", "pipeline.gyro_bias_rad_s[0]",
     "from -5.0 to 5.0 in rad/s"),
    ("[pipeline]\nroll_axis = [1e-9, 0.0, 0.0]\n", "pipeline.roll_axis", "non-zero vector"),
])
def test_the_values_that_crashed_the_service_are_refused_with_one_line(tmp_path, text, key,
                                                                      expected):
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    proc = subprocess.run([*ROLLER, "run", "--simulate", "--config", str(write(tmp_path, text))],
                          capture_output=True, text=True, timeout=60, env=env, check=False)
    assert proc.returncode == 78, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert key in proc.stderr and expected in proc.stderr


def _unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _edge_config(pick: str) -> str:
    """[pipeline] with every number at its lower or upper bound (the vectors too)."""
    table: dict[str, Any] = {}
    for name, (vector, lo, hi) in _pipeline_numbers().items():
        bound = lo if pick == "minimum" else hi
        if bound is None:
            continue
        table[name] = [bound, -bound if vector else bound, bound] if vector else bound
    return _pipeline_toml(table)


@pytest.mark.parametrize("pick", ["minimum", "maximum"])
def test_roller_run_starts_with_every_pipeline_value_at_its_bound(tmp_path, pick):
    # A real `roller run --simulate` past the 3.6 s where an overflowed offset used to crash
    # it; no broker on the port, so it runs degraded, which is enough to see it keep running.
    path = write(tmp_path, _edge_config(pick))
    load_config(path)  # valid, or the run below proves nothing
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    proc = subprocess.Popen([*ROLLER, "run", "--simulate", "--config", str(path), "--broker",
                             f"127.0.0.1:{_unused_port()}"], stderr=subprocess.PIPE, text=True,
                            env=env, cwd=tmp_path)
    try:
        time.sleep(6.0)
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_a_value_that_validates_but_cannot_start_exits_78_with_one_line(tmp_path, monkeypatch,
                                                                       capsys):
    # The ranges are meant to make this impossible; should one still let through a value the
    # pipeline cannot start with, `roller run` says so as a configuration error (exit 78, one
    # line), not a traceback with exit 1 that systemd restarts every few seconds.
    from roller.cli import main
    from roller.service import wiring

    def overflowing(config, calibration_path):
        return math.exp(1e6)  # OverflowError: math range error, as roll_axis = [1e200, ...] did

    monkeypatch.setattr(wiring, "make_pipeline", overflowing)
    path = write(tmp_path, f'state_dir = "{tmp_path / "state"}"\n')
    assert main(["run", "--simulate", "--config", str(path)]) == 78
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("roller run: configuration error:")
    assert "OverflowError" in err and str(path) in err
