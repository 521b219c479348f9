"""device/inputs."""
