"""``roller run``: the live service (sensor -> pipeline -> coach -> MQTT) until SIGTERM."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys

HELP = "run the live service: read the roller, analyse, coach and publish over MQTT"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="TOML config file (default: $ROLLER_CONFIG, else built-in defaults)")
    parser.add_argument("--simulate", action="store_true",
                        help="use an emulated IMU fed by a simulated person (no hardware)")
    parser.add_argument("--phone", metavar="APP",
                        help="use a phone as the sensor: phyphox:http://HOST:PORT (its remote "
                             "access) or sensor-logger (receive its HTTP pushes)")
    parser.add_argument("--phone-port", type=int, metavar="P",
                        help="port for Sensor Logger's pushes (default: [phone] listen_port)")
    parser.add_argument("--broker", metavar="HOST:PORT",
                        help="MQTT broker, overriding mqtt.host and mqtt.port")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed of the simulated session (with --simulate)")
    parser.add_argument("--person", choices=("routine", "demo"), default="routine",
                        help="with --simulate, who rolls: routine (from the first second, "
                             "again and again) or demo (still for 30 s, the routine once, "
                             "then still)")
    parser.add_argument("--log-level", default="info",
                        choices=("debug", "info", "warning", "error"),
                        help="how much to log on stderr (journald under systemd)")


def run(args: argparse.Namespace) -> int:
    from roller.base.config_file import config_path
    from roller.base.errors import ConfigError
    from roller.service.config import load_config, override_broker
    from roller.service.wiring import build_service

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    config = load_config(args.config)
    if args.broker:
        config = override_broker(config, args.broker)
    if getattr(args, "phone", None):
        from roller.phone.settings import phone_from_option

        config = dataclasses.replace(config, phone=phone_from_option(
            args.phone, port=args.phone_port, base=config.phone))
    try:
        service = build_service(config, simulate=args.simulate, seed=args.seed,
                                person=getattr(args, "person", "routine"))
    except ConfigError:
        raise
    except (ValueError, ArithmeticError) as exc:
        # A value that passed validation but that the parts cannot start with (the ranges
        # are meant to rule this out): still a configuration error, exit 78 with one line,
        # not a traceback and a restart every few seconds under systemd.
        source = config_path(args.config)
        raise ConfigError("(settings)", "values the service can start with",
                          f"{exc.__class__.__name__}: {exc}",
                          str(source) if source else "built-in defaults") from None
    if hasattr(service.driver, "instructions"):  # a phone: where to point the app
        print(f"roller run: {service.driver.instructions()}", file=sys.stderr, flush=True)

    def stop(signum: int, frame: object) -> None:
        service.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    topics = service.publisher.topics
    kind = "phone" if config.phone.app != "none" else \
        "simulated" if args.simulate else "sensor"
    print(f"roller run: device {config.device_id!r} ({kind}"
          f" {service.driver.chip}), publishing to {config.mqtt.host}:"
          f"{config.mqtt.port} under {topics.base}/", file=sys.stderr, flush=True)
    service.run()
    return 0
