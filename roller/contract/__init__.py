"""What other programs may rely on: MQTT topics and payloads, command verbs."""
