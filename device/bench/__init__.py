"""device/bench."""
