"""Real OpenSSH servers on 127.0.0.1 that play the part of boards in the deploy tests.

Each board is a separate ``sshd -D`` process on a free port with its own generated host key and a
temporary home (sshd's ``SetEnv HOME=``), so deploys land in ``<home>/keras-edge``. The client
side is an ssh config file (passed with ``-F``) holding the aliases, the generated user key and a
known_hosts file with the boards' host keys: host-key checking stays on. A user key that is not
authorized and a port nobody listens on give the "wrong key" and "unreachable" cases.

Works as root (CI) and as an ordinary user (sshd then only accepts that user).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
INSTALL_HINT = "the deploy tests need openssh-server, openssh-client and rsync: `make test` installs them (apt-get)"


def require_tools() -> None:
    missing = [t for t in ("ssh", "ssh-keygen", "rsync") if shutil.which(t) is None]
    if not os.access(SSHD, os.X_OK):
        missing.append(SSHD)
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: {INSTALL_HINT}", pytrace=False)


@pytest.fixture
def lab(tmp_path):
    """An empty lab; a test starts the boards it needs with ``lab.start(alias)``; all stop afterwards."""
    require_tools()
    lab = SshLab(tmp_path / "lab")
    yield lab
    lab.stop()


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Board:
    """One sshd "board": its alias in the ssh config, port, home directory and process."""

    alias: str
    port: int
    home: Path
    process: subprocess.Popen
    log: Path

    def bundle_dir(self, name: str) -> Path:
        return self.home / "keras-edge" / "bundles" / name

    def link(self, name: str, which: str = "current") -> str | None:
        path = self.bundle_dir(name) / which
        return os.readlink(path) if path.is_symlink() else None

    def versions(self, name: str) -> list[str]:
        d = self.bundle_dir(name)
        return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
                      and p.name != "history") if d.is_dir() else []

    def hidden(self, name: str) -> list[str]:
        d = self.bundle_dir(name)
        return sorted(p.name for p in d.iterdir() if p.name.startswith(".")) if d.is_dir() else []


@dataclass
class SshLab:
    """Keys, known_hosts and an ssh config for a set of local sshd boards."""

    root: Path
    user: str = field(default_factory=getpass.getuser)
    boards: dict[str, Board] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.user_key = keygen(self.root / "id_user")
        self.wrong_key = keygen(self.root / "id_wrong")
        (self.root / "authorized_keys").write_text((self.root / "id_user.pub").read_text())
        self.known_hosts = self.root / "known_hosts"
        self.known_hosts.write_text("")
        self.closed_port = free_port()  # nothing listens here: the "unreachable" board
        self.config = self.root / "ssh_config"
        self._write_config()

    def start(self, alias: str, runner: Path | None = None, env: dict[str, str] | None = None) -> Board:
        """Start a board. ``runner``: a keras-edge environment to link as the board's ~/keras-edge/venv;
        ``env``: extra environment for the board's sessions."""
        home = self.root / alias / "home"
        home.mkdir(parents=True)
        if runner is not None:
            (home / "keras-edge").mkdir()
            (home / "keras-edge" / "venv").symlink_to(runner)
        host_key = keygen(self.root / alias / "host_key")
        port = free_port()
        cfg = self.root / alias / "sshd_config"
        cfg.write_text("\n".join([
            f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", "PidFile none",
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}", "PubkeyAuthentication yes",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password",
            f"AllowUsers {self.user}", "UsePAM no",
            "StrictModes no",  # the keys live under /tmp, which is world-writable
            "Subsystem sftp internal-sftp",  # as on a Pi: file transfers (Ansible's copy) use sftp
            "SetEnv " + " ".join(f"{k}={v}" for k, v in {"HOME": str(home), **(env or {})}.items()), "PrintMotd no", "LogLevel INFO", ""]))
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
        log = self.root / alias / "sshd.log"
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                                stderr=log.open("w"), stdin=subprocess.DEVNULL)
        board = Board(alias, port, home, proc, log)
        self.boards[alias] = board
        self._wait_listening(board)
        pub = (host_key.with_suffix(".pub")).read_text().split()
        with self.known_hosts.open("a") as f:
            f.write(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
        self._write_config()
        return board

    def stop(self) -> None:
        for board in self.boards.values():
            if board.process.poll() is None:
                board.process.terminate()
                try:
                    board.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    board.process.kill()
                    board.process.wait()

    def _wait_listening(self, board: Board) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if board.process.poll() is not None:
                pytest.fail(f"sshd for {board.alias} exited: {board.log.read_text()}", pytrace=False)
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", board.port)) == 0:
                    return
            time.sleep(0.05)
        pytest.fail(f"sshd for {board.alias} did not listen on port {board.port}: {board.log.read_text()}", pytrace=False)

    def _write_config(self) -> None:
        blocks = [f"Host {b.alias}\n  HostName 127.0.0.1\n  Port {b.port}\n" for b in self.boards.values()]
        first = next(iter(self.boards.values()), None)
        if first is not None:
            blocks.append(f"Host wrongkey\n  HostName 127.0.0.1\n  Port {first.port}\n  IdentityFile {self.wrong_key}\n")
        blocks.append(f"Host nowhere\n  HostName 127.0.0.1\n  Port {self.closed_port}\n")
        blocks.append(f"Host * !wrongkey\n  IdentityFile {self.user_key}\n")
        blocks.append("Host *\n" + "".join(f"  {line}\n" for line in [
            f"User {self.user}", "IdentitiesOnly yes", f"UserKnownHostsFile {self.known_hosts}",
            "GlobalKnownHostsFile /dev/null", "StrictHostKeyChecking yes", "LogLevel ERROR",
            "ControlMaster no"]))
        self.config.write_text("\n".join(blocks))
