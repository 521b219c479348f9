"""device/outputs."""
