"""roller companion: turns a foam roller with an IMU inside into a coach.

The flow, one package per stage:

    firmware_bridge (sensor)  ->  roller.pipeline  ->  roller.coaching (the coach)
        ->  roller.mqtt (publisher)  ->  roller.display (web page)

Beside the flow: ``roller.base`` (errors, paths, settings), ``roller.contract`` (what other
programs may rely on: MQTT topics, payloads, verbs, cues), ``roller.recordings`` (files in,
offline analysis), ``roller.service`` (the live loop and its wiring) and ``roller.commands``
(one module per ``roller`` subcommand).

Every public surface uses SI units: m, s, m/s, rad/s, m/s^2.
"""

__version__ = "0.1.0"
