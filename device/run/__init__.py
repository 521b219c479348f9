"""device/run."""
