"""``deploy --serve``: run ``keras-edge serve`` on the board as a systemd user unit for the deployed bundle.

The board script (``files/serve.sh``, the same text over ssh and through the Ansible role) writes the unit
from its own fixed text with the values below as positional arguments, which are checked here first and
again on the board against narrow character sets; nothing is templated from a string the board or the
bundle gave. The unit runs the bundle's ``current`` link, so each deploy that switches it restarts it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from keras_edge.device.contract.errors import ConfigError

from . import scripts
from .ssh import SshOptions, Target, run_script


@dataclass(frozen=True)
class ServeSpec:
    """Where the board's server listens and what it shows. Off loopback the board makes and keeps a token."""

    host: str = "127.0.0.1"
    port: int = 8080
    camera: int | None = None

    def __post_init__(self) -> None:
        if self.host != "localhost":
            try:
                ipaddress.ip_address(self.host)
            except ValueError:
                raise ConfigError("serve_host", f"is {self.host!r}, not an IP address",
                                  "give an address of the board such as 127.0.0.1 or 0.0.0.0") from None
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise ConfigError("serve_port", f"is {self.port!r}", "give a TCP port from 1 to 65535")
        if self.camera is not None and (isinstance(self.camera, bool) or not isinstance(self.camera, int)
                                        or self.camera < 0):
            raise ConfigError("serve_camera", f"is {self.camera!r}", "give a camera number, 0 or more")

    @property
    def args(self) -> list[str]:
        """The board script's arguments after the bundle name."""
        return [self.host, str(self.port), "" if self.camera is None else str(self.camera)]


@dataclass(frozen=True)
class ServeOutcome:
    unit: str
    started: bool
    why: str = ""             # why it was not started
    token_file: str = ""      # off loopback: where the board keeps the token the page and API ask for
    note: str = ""

    def describe(self) -> str:
        """One line for the deploy's progress."""
        if not self.started:
            return f"serve: unit written to {self.unit}; not started: {self.why}"
        token = f"; the token is in {self.token_file} on the board" if self.token_file else ""
        return f"serve: {self.unit} (re)started and ready{token}" + (f" ({self.note})" if self.note else "")


def serve_on_board(target: Target, ssh: SshOptions, name: str, spec: ServeSpec) -> ServeOutcome:
    """Write (or update) the board's unit for bundle ``name`` and (re)start it where a user systemd runs."""
    from keras_edge.host.errors import RemoteError

    result = run_script(target, ssh, scripts.SERVE, [name, *spec.args])
    if result.returncode != 0:
        raise RemoteError(f"serving {name} on the board failed: {result.failure()}",
                          "the bundle is deployed and current; fix the cause and deploy again with --serve")
    return ServeOutcome(result.get("serve_unit"), result.get("serve_started") == "yes", result.get("serve_why"),
                        result.get("serve_token_file"), result.get("serve_note"))
