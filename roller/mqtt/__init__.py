"""The broker side: the publisher, its on-disk outbox, Home Assistant discovery."""
