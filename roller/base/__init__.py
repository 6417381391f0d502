"""The ground every stage stands on: errors, paths, TOML files, settings, untrusted input."""
