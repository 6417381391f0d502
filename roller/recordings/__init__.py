"""Files in: the recording format, phone-app exports, unit checks, offline analysis."""
