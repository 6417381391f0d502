"""The ``[mqtt]`` section's rules beyond single values, for both processes that connect.

``roller run`` and ``roller display`` both read ``[mqtt]`` in full and connect with it, so both
check it the same way before anything starts: the host, client id and user name are what paho
and the broker accept, the reconnect delays are in order, the TLS files are PEM that OpenSSL
loads, and the password file is a readable regular file (never quoted: the value may be the
password itself, typed into the wrong key).
"""

from __future__ import annotations

import re
import ssl

from roller.base.errors import ConfigError
from roller.base.tomlfile import MAX_FILE_BYTES, check_path_text, hidden, read_regular_file, shown
from roller.contract.messages import SAFE_PREFIX
from roller.mqtt.client import MqttSettings, resolve_password

HOST = re.compile(r"[A-Za-z0-9._:%-]{1,253}")
"""A host name, IPv4 or IPv6 address (with a %zone): what paho can connect to."""

MAX_CLIENT_ID_BYTES = 128
"""Longest MQTT client id accepted. MQTT allows 65535 bytes, but a broker may refuse long ids
(paho's network thread then dies quietly); the default, roller-<device id>, is at most 71."""

MAX_USERNAME_BYTES = 1024

PASSWORD_FILE_VALUE = hidden("it may be the password itself, written into the wrong key")
"""What an error about ``mqtt.password_file`` shows instead of the value."""


def check_mqtt_settings(mqtt: MqttSettings, where: str) -> None:
    """Raise ConfigError naming the first ``[mqtt]`` key paho, the broker or OpenSSL would
    refuse later (at connect, or quietly in paho's network thread)."""
    if not SAFE_PREFIX.fullmatch(mqtt.topic_prefix):
        raise ConfigError("mqtt.topic_prefix", "levels of letters, digits, '_' or '-' "
                          "separated by '/'", mqtt.topic_prefix, where)
    if not HOST.fullmatch(mqtt.host):
        raise ConfigError("mqtt.host", "a host name or IP address (1-253 letters, digits, "
                          "'.', '-', '_' or ':')", shown("mqtt.host", mqtt.host), where)
    if mqtt.client_id and not _printable_token(mqtt.client_id, MAX_CLIENT_ID_BYTES):
        raise ConfigError("mqtt.client_id", f"empty, or at most {MAX_CLIENT_ID_BYTES} bytes "
                          "without spaces or control characters",
                          shown("mqtt.client_id", mqtt.client_id), where)
    if mqtt.username and not (mqtt.username.isprintable()
                              and len(mqtt.username.encode()) <= MAX_USERNAME_BYTES):
        raise ConfigError("mqtt.username", f"at most {MAX_USERNAME_BYTES} bytes without "
                          "control characters", shown("mqtt.username", mqtt.username), where)
    if mqtt.reconnect_min_delay_s > mqtt.reconnect_max_delay_s:
        raise ConfigError("mqtt.reconnect_min_delay_s",
                          f"at most mqtt.reconnect_max_delay_s ({mqtt.reconnect_max_delay_s})",
                          mqtt.reconnect_min_delay_s, where)
    for key in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
        value = getattr(mqtt, key)
        check_path_text(f"mqtt.{key}", value, where)
        if value:
            try:
                read_regular_file(value, key=f"mqtt.{key}", what="PEM file",
                                  max_bytes=MAX_FILE_BYTES)
            except ConfigError as exc:
                raise ConfigError(exc.key, exc.expected, exc.actual, where) from None
    _check_password_file(mqtt, where)
    if bool(mqtt.tls_cert_file) != bool(mqtt.tls_key_file):
        raise ConfigError("mqtt.tls_key_file", "both tls_cert_file and tls_key_file, or neither",
                          mqtt.tls_key_file, where)
    _check_tls_files(mqtt, where)
    if mqtt.password_file and not mqtt.username:
        raise ConfigError("mqtt.username", "a user name (a password_file is set)", "", where)


def _check_password_file(mqtt: MqttSettings, where: str) -> None:
    """A readable regular file of UTF-8 text; an error names the key and says what is wrong
    with the file, never the value."""
    if not mqtt.password_file:
        return
    if "\0" in mqtt.password_file:
        raise ConfigError("mqtt.password_file", "a path without NUL characters",
                          PASSWORD_FILE_VALUE, where)
    try:
        read_regular_file(mqtt.password_file, key="mqtt.password_file", what="password file",
                          max_bytes=MAX_FILE_BYTES)
        resolve_password(mqtt)  # UTF-8, readable: fails now, not at connect
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.expected, PASSWORD_FILE_VALUE, where) from None


def _printable_token(text: str, max_bytes: int) -> bool:
    return text.isprintable() and not any(c.isspace() for c in text) \
        and len(text.encode()) <= max_bytes


def _check_tls_files(mqtt: MqttSettings, where: str) -> None:
    """The TLS files must be what OpenSSL can load: PEM, and an unencrypted key matching the
    certificate (paho would otherwise fail at connect, or OpenSSL prompt for a pass phrase)."""
    if not (mqtt.tls_ca_file or mqtt.tls_cert_file):
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if mqtt.tls_ca_file:
        try:
            context.load_verify_locations(cafile=mqtt.tls_ca_file)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError("mqtt.tls_ca_file", "a PEM file of CA certificates",
                              f"{mqtt.tls_ca_file} ({_ssl_reason(exc)})", where) from None
    if mqtt.tls_cert_file:
        try:
            context.load_cert_chain(mqtt.tls_cert_file, mqtt.tls_key_file,
                                    password=lambda: b"")  # an encrypted key fails, not prompts
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError("mqtt.tls_cert_file", "a PEM certificate and its matching, "
                              "unencrypted PEM key (mqtt.tls_key_file)",
                              f"{mqtt.tls_cert_file} ({_ssl_reason(exc)})", where) from None


def _ssl_reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc)
