"""SSH plumbing for deploy: the system OpenSSH client, rsync, and tar over ssh.

Everything runs as argument lists. The one string that must reach the board's shell is always
``sh -s -- ARG...`` with every argument quoted by :func:`shlex.quote`; the script itself is fixed
text sent on stdin (see ``deploy_scripts``), so no value the user typed is ever parsed as shell.
No TensorFlow here: deploy and rollback work in an environment without the host extra.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from keras_edge.host.errors import RemoteError

# Lines a board script prints for the workstation: `key=value`, one per line.
_KV = re.compile(r"^([a-z_]+)=(.*)$")


@dataclass(frozen=True)
class SshOptions:
    """How to call ssh: an optional config file (`-F`), extra `-o` options, and a connect timeout.

    Host-key checking is left to the user's configuration and never turned off here. BatchMode is
    on so that a parallel run fails with a clear line instead of waiting for a password prompt.
    """

    config: Path | None = None
    options: tuple[str, ...] = ()
    connect_timeout: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))
        for opt in self.options:
            if opt.startswith("-") or "=" not in opt or "\n" in opt:
                raise RemoteError(f"ssh option {opt!r} is not of the form Key=Value",
                                  "pass options as in `ssh -o`, e.g. --ssh-option Port=2222")
        if self.config is not None and not Path(self.config).is_file():
            raise RemoteError(f"ssh config file {self.config} does not exist", "give an existing file to --ssh-config")
        if self.connect_timeout < 1:
            raise RemoteError("the ssh connect timeout must be at least 1 second")

    def argv(self, target: "Target") -> list[str]:
        """The ssh command up to and including the destination (user options come first: ssh keeps the first value)."""
        argv = ["ssh"]
        if self.config is not None:
            argv += ["-F", str(self.config)]
        for opt in self.options:
            argv += ["-o", opt]
        argv += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}",
                 "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
        if target.port is not None:
            argv += ["-p", str(target.port)]
        return argv


@dataclass(frozen=True)
class Target:
    """One board as the user named it: `user@host`, `user@host:port`, or an ~/.ssh/config alias."""

    spec: str
    destination: str
    port: int | None = None

    @classmethod
    def parse(cls, spec: str) -> "Target":
        if not spec or spec.startswith("-") or any(c.isspace() for c in spec):
            raise RemoteError(f"host {spec!r} is not a valid ssh destination", "write it as user@host, user@host:port or an ssh alias")
        user, at, hostport = spec.rpartition("@")
        bracketed = re.fullmatch(r"\[([^\]]+)\](?::(.*))?", hostport)  # [IPv6] or [IPv6]:port
        if bracketed:
            host, port_text = bracketed.group(1), bracketed.group(2)
        elif hostport.count(":") == 1:
            host, port_text = hostport.split(":")
        else:  # a name, an alias, or a bare IPv6 address
            host, port_text = hostport, None
        port = None
        if port_text is not None:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise RemoteError(f"port {port_text!r} in {spec!r} is not a port number", "use a port between 1 and 65535")
            port = int(port_text)
        if not host or host.startswith("-"):
            raise RemoteError(f"host {spec!r} has no valid host name", "write it as user@host, user@host:port or an ssh alias")
        dest = f"{user}@{host}" if at else host
        return cls(spec=spec, destination=dest, port=port)

    @property
    def rsync_destination(self) -> str:
        user, _, host = self.destination.rpartition("@")
        host = f"[{host}]" if ":" in host else host
        return f"{user}@{host}" if user else host


@dataclass(frozen=True)
class ScriptResult:
    """What a board script printed: its `key=value` lines, exit status and the rest of its output."""

    returncode: int
    values: dict[str, str]
    stdout: str
    stderr: str

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    def failure(self) -> str:
        """The one line that best says why the script failed."""
        for key in ("error", "verify_error"):
            if self.values.get(key):
                return self.values[key]
        lines = [ln for ln in (self.stderr + "\n" + self.stdout).splitlines() if ln.strip() and not _KV.match(ln)]
        return lines[-1].strip() if lines else f"the board's script exited with status {self.returncode}"


def parse_values(stdout: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in stdout.splitlines():
        m = _KV.match(line)
        if m:
            values[m.group(1)] = m.group(2)
    return values


def ssh_failure(target: Target, stderr: str) -> RemoteError:
    """Turn an ssh failure (exit 255) into one line that says what happened and what to do."""
    text = stderr.strip()
    name = target.spec
    port = f"-p {target.port} " if target.port is not None else ""
    login = f"ssh {port}{target.destination}"
    checks = [
        ("Connection refused", f"cannot reach {name}: connection refused",
         "check that the board is on, sshd is running and the port is right"),
        ("timed out", f"cannot reach {name}: connection timed out", "check the address and the network"),
        ("Could not resolve hostname", f"cannot reach {name}: unknown host name", "check the name or use an IP address"),
        ("No route to host", f"cannot reach {name}: no route to host", "check the address and the network"),
        ("Network is unreachable", f"cannot reach {name}: network is unreachable", "check the network"),
        ("IDENTIFICATION HAS CHANGED", f"the host key of {name} has changed",
         "if the board was reinstalled, remove its old key with `ssh-keygen -R HOST`; otherwise do not connect"),
        ("Host key verification failed", f"the host key of {name} is not known (or does not match)",
         f"connect once with `{login}` to check and accept it"),
        ("Permission denied", f"{name} refused the login (permission denied: wrong user or key)",
         f"install your public key on the board with `ssh-copy-id {port}{target.destination}`, or check the user name"),
        ("Too many authentication failures", f"{name} refused the login (too many keys tried)",
         "set IdentitiesOnly and IdentityFile for this host in ~/.ssh/config"),
    ]
    for needle, what, fix in checks:
        if needle in text:
            return RemoteError(what, fix)
    last = text.splitlines()[-1] if text else "ssh exited with status 255"
    return RemoteError(f"cannot connect to {name}: {last}", f"check that `{login}` works")


def _run(argv: Sequence[str], *, input: str | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(list(argv), input=input, capture_output=True, text=True,
                              env={**os.environ, "LC_ALL": "C"})
    except FileNotFoundError:
        raise RemoteError(f"`{argv[0]}` is not installed on this workstation",
                          "install the OpenSSH client (and rsync): apt-get install openssh-client rsync") from None


def run_script(target: Target, ssh: SshOptions, script: str, args: Sequence[str]) -> ScriptResult:
    """Run a fixed board script with ``sh -s -- ARGS`` and collect its `key=value` lines.

    Raises :class:`RemoteError` when ssh itself fails (no connection, refused key, unknown host key);
    a script that runs and fails returns its non-zero status for the caller to explain.
    """
    for a in args:
        if "\n" in a or "\0" in a:
            raise RemoteError(f"argument {a!r} for the board contains a newline", "rename it")
    remote = "sh -s -- " + " ".join(shlex.quote(a) for a in args)
    proc = _run([*ssh.argv(target), "--", target.destination, remote], input=script)
    if proc.returncode == 255:
        raise ssh_failure(target, proc.stderr)
    return ScriptResult(proc.returncode, parse_values(proc.stdout), proc.stdout, proc.stderr)


@dataclass(frozen=True)
class TransferStats:
    files: int
    bytes: int


def have_local_rsync() -> bool:
    return shutil.which("rsync") is not None


def rsync_push(target: Target, ssh: SshOptions, sources: Sequence[str | Path], dest_dir: str, *,
               link_dest: Sequence[str] = (), bwlimit_kbps: int | None = None) -> TransferStats:
    """Copy ``sources`` into the existing board directory ``dest_dir`` with rsync over ssh.

    ``link_dest`` directories on the board are compared by checksum and their identical files
    hard-linked, so a new version only sends what changed.
    """
    # -L: the sources may be a staging directory of symlinks to the bundle's files
    argv = ["rsync", "-rtL", "--stats", "--exclude=.*", "-e", shlex.join(ssh.argv(target))]
    if link_dest:
        argv += ["--checksum", *(f"--link-dest={d}" for d in link_dest)]
    if bwlimit_kbps:
        argv.append(f"--bwlimit={bwlimit_kbps}")
    argv += [*(str(s) for s in sources), f"{target.rsync_destination}:{dest_dir}/"]
    proc = _run(argv)
    if proc.returncode != 0:
        full = disk_full(target, proc.stderr)
        if full is not None:
            raise full
        if proc.returncode == 255 or "ssh:" in proc.stderr or "Permission denied" in proc.stderr:
            raise ssh_failure(target, proc.stderr)
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit status {proc.returncode}"
        raise RemoteError(f"copying to {target.spec} failed: rsync: {last}", "run the deploy again; it resumes cleanly")
    return TransferStats(files=_stat(proc.stdout, "Number of regular files transferred"),
                         bytes=_stat(proc.stdout, "Total transferred file size"))


def disk_full(target: Target, stderr: str) -> RemoteError | None:
    """The board's disk filled up during a copy: said so, whatever the copy's last words were (a broken pipe)."""
    if "No space left on device" in stderr or "Disk quota exceeded" in stderr:
        return RemoteError(f"copying to {target.spec} failed: the board's disk is full",
                           "free space on the board (deploy with a smaller --keep removes old versions), then deploy "
                           "again; the partial copy is removed by the next deploy")
    return None


def _stat(text: str, label: str) -> int:
    m = re.search(rf"^{re.escape(label)}:\s*([\d,]+)", text, re.M)
    return int(m.group(1).replace(",", "")) if m else 0


def tar_push(target: Target, ssh: SshOptions, files: Sequence[tuple[Path, str]], dest_dir: str) -> TransferStats:
    """Copy ``(local path, name on the board)`` pairs into ``dest_dir`` as a tar stream over ssh.

    Used when the board (or this workstation) has no rsync. The stream is written by Python's
    tarfile, so the workstation needs no tar; the board extracts with its own `tar`.
    """
    remote = f"tar -x -o -f - -C {shlex.quote(dest_dir)}"
    try:
        proc = subprocess.Popen([*ssh.argv(target), "--", target.destination, remote], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "LC_ALL": "C"})
    except FileNotFoundError:
        raise RemoteError("`ssh` is not installed on this workstation", "install the OpenSSH client") from None
    total = 0
    try:
        with tarfile.open(fileobj=proc.stdin, mode="w|", dereference=True) as tar:
            for path, name in files:
                tar.add(str(path), arcname=name, recursive=False)
                total += path.stat().st_size
    except BrokenPipeError:
        pass  # the board hung up; its stderr below says why
    _, err = proc.communicate()
    text = err.decode(errors="replace")
    full = disk_full(target, text) if proc.returncode != 0 else None
    if full is not None:
        raise full
    if proc.returncode == 255:
        raise ssh_failure(target, text)
    if proc.returncode != 0:
        last = text.strip().splitlines()[-1] if text.strip() else f"exit status {proc.returncode}"
        raise RemoteError(f"copying to {target.spec} failed: tar: {last}", "run the deploy again; it resumes cleanly")
    return TransferStats(files=len(files), bytes=total)
