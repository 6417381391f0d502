"""The live service: the loop, its sinks, health, systemd, wiring and config."""
