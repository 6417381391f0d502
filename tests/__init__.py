"""The test suite (a package, so that `tests` is this folder and never an installed one)."""
