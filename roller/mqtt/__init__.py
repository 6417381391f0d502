"""The broker side: the client recipe and the link (``client``, ``connection``), the publisher
with its on-disk outbox, what comes in (``command_intake``, ``duplicate_device``), Home
Assistant discovery, and a local broker for the demo."""
