"""Pure parts of deploy: host names, ssh options, failure lines, board fingerprints, the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from keras_edge.host.errors import RemoteError
from keras_edge.host.deploy.core import HostResult, Outcome, board_fingerprint, describe_board
from keras_edge.commands.deploy import render_table
from keras_edge.host.deploy.ssh import ScriptResult, SshOptions, Target, parse_values, ssh_failure


@pytest.mark.parametrize("spec, destination, port, rsync", [
    ("pi@board", "pi@board", None, "pi@board"),
    ("pi@board:2222", "pi@board", 2222, "pi@board"),
    ("board-alias", "board-alias", None, "board-alias"),
    ("10.0.0.7:22", "10.0.0.7", 22, "10.0.0.7"),
    ("pi@[fe80::1]:2200", "pi@fe80::1", 2200, "pi@[fe80::1]"),
    ("::1", "::1", None, "[::1]"),
])
def test_hosts_parse_into_ssh_and_rsync_destinations(spec, destination, port, rsync):
    t = Target.parse(spec)
    assert (t.destination, t.port, t.rsync_destination) == (destination, port, rsync)


@pytest.mark.parametrize("spec, message", [
    ("-oProxyCommand=x", "is not a valid ssh destination"),
    ("pi@-oProxyCommand=x", "has no valid host name"),
    ("pi@board:99999", "is not a port number"),
    ("pi@board:ssh", "is not a port number"),
    ("two words", "is not a valid ssh destination"),
])
def test_bad_hosts_are_refused(spec, message):
    with pytest.raises(RemoteError, match=message):
        Target.parse(spec)


def test_ssh_options_put_the_users_first_and_never_disable_host_key_checking(tmp_path):
    cfg = tmp_path / "config"
    cfg.write_text("")
    argv = SshOptions(config=cfg, options=("ConnectTimeout=3",)).argv(Target.parse("pi@b:2200"))
    assert argv[:5] == ["ssh", "-F", str(cfg), "-o", "ConnectTimeout=3"]
    assert argv.index("ConnectTimeout=3") < argv.index("ConnectTimeout=10")  # ssh keeps the first value
    assert argv[-2:] == ["-p", "2200"]
    assert not any("StrictHostKeyChecking" in a or "KnownHostsFile" in a for a in argv)
    with pytest.raises(RemoteError, match="is not of the form Key=Value"):
        SshOptions(options=("-oProxyCommand=x",))
    with pytest.raises(RemoteError, match="does not exist"):
        SshOptions(config=Path(tmp_path / "missing"))


def test_ssh_failures_become_one_line_with_a_fix():
    t = Target.parse("pi@board:2200")
    assert str(ssh_failure(t, "ssh: connect to host board port 2200: Connection refused\n")) == (
        "cannot reach pi@board:2200: connection refused; check that the board is on, sshd is running and the port is right")
    assert "ssh-copy-id -p 2200 pi@board" in str(ssh_failure(t, "pi@board: Permission denied (publickey).\n"))
    assert "`ssh -p 2200 pi@board`" in str(ssh_failure(t, "Host key verification failed.\n"))
    assert str(ssh_failure(t, "kex_exchange_identification: read: Connection reset by peer\n")).startswith(
        "cannot connect to pi@board:2200: kex_exchange_identification: read: Connection reset by peer")


def test_script_results_explain_themselves():
    out = "dir=/x\nverify_error=checksum mismatch\n"
    assert parse_values(out) == {"dir": "/x", "verify_error": "checksum mismatch"}
    assert ScriptResult(3, parse_values(out), out, "").failure() == "checksum mismatch"
    assert ScriptResult(1, {}, "", "sh: 1: mktemp: not found\n").failure() == "sh: 1: mktemp: not found"


def test_board_fingerprint_prefers_the_device_tree_model():
    pi = {"model": "Raspberry Pi 4 Model B Rev 1.4", "cpu": "Cortex-A72", "arch": "aarch64", "os_id": "debian-12",
          "os": "Debian GNU/Linux 12 (bookworm)"}
    assert board_fingerprint(pi) == "raspberry-pi-4-model-b-rev-1-4-aarch64-debian-12"
    assert board_fingerprint({**pi, "model": ""}) == "cortex-a72-aarch64-debian-12"
    assert describe_board(pi) == "Raspberry Pi 4 Model B Rev 1.4, aarch64, Debian GNU/Linux 12 (bookworm)"


def test_the_summary_table_has_one_row_per_board_and_the_error_last():
    rows = [HostResult("pi@a", Outcome.DEPLOYED, version="abc", files_sent=3, bytes_sent=3 << 20,
                       verified_by="sha256", board="Pi 4", seconds=1.25),
            HostResult("pi@b", Outcome.FAILED, version="abc", error="cannot reach pi@b: connection refused")]
    lines = render_table(rows).splitlines()
    assert lines[1].split()[:7] == ["pi@a", "deployed", "abc", "-", "3", "files,", "3.0"]
    assert lines[2].split()[:3] == ["pi@b", "FAILED", "-"]
    assert lines[2].endswith("cannot reach pi@b: connection refused")
