"""device/contract."""
