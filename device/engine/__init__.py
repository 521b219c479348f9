"""device/engine."""
