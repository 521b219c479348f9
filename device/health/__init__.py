"""device/health."""
