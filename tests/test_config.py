"""Config loading: defaults without a file, validation messages naming key/expected/actual,
exit status 78 from the CLI, secrets never printed, and config/roller.toml documenting every key."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from roller.config import RollerConfig, document, host_device_id, load_config, override_broker
from roller.errors import ConfigError
from roller.publisher import PASSWORD_ENV, resolve_password

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
    ("[mqtt]\nprot = 1883\n", "mqtt.prot", "one of", "1883"),
    ("[mqtt]\nport = \"1883\"\n", "mqtt.port", "a whole number", "'1883'"),
    ("[mqtt]\nport = 70000\n", "mqtt.port", "from 1 to 65535", "70000"),
    ("[mqtt]\nlive_interval_s = 0.001\n", "mqtt.live_interval_s", "from 0.02 to 60 in s", "0.001"),
    ("[service]\nread_interval_s = true\n", "service.read_interval_s", "a number", "True"),
    ("[mqtt]\nreconnect_min_delay_s = 10.0\nreconnect_max_delay_s = 5.0\n",
     "mqtt.reconnect_min_delay_s", "at most mqtt.reconnect_max_delay_s", "10.0"),
    ("[device]\nid = \"a/b\"\n", "device.id", "letters, digits", "'a/b'"),
    ("[mqtt]\ntopic_prefix = \"roller/#\"\n", "mqtt.topic_prefix", "levels of letters", "#"),
    ("[nonsense]\nx = 1\n", "nonsense", "one of", "{'x': 1}"),
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
    assert host_device_id("raspberrypi.local") == "raspberrypi"
    assert host_device_id("my pi#2") == "my-pi-2"
    assert host_device_id("###") == "roller"


def test_documented_file_lists_every_key_and_loads():
    text = (REPO / "config" / "roller.toml").read_text()
    assert text == document(), "regenerate: python -m roller.config > config/roller.toml"
    tomllib.loads(text)
    load_config(REPO / "config" / "roller.toml")
    for f in dataclasses.fields(RollerConfig):
        if f.default_factory is dataclasses.MISSING:
            assert f"# {f.name} =" in text
            continue
        section = f.default_factory
        assert f"[{f.name}]" in text
        for sub in dataclasses.fields(section):
            assert f"# {sub.name} =" in text, f"{f.name}.{sub.name} is not documented"
