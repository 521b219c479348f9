"""Hostile bundles and boards at the trust boundaries (issue 22): real sshd boards on loopback, real rsync, real
ansible-playbook.

- Nothing but what the manifest names travels to a board, and never through a symlink (item 1).
- Nothing that reaches Ansible from a bundle, a board's reply or a user string is templated (item 2): a canary
  file that a ``{{ lookup('pipe', 'touch …') }}`` would create must not exist afterwards. A control run
  without keras-edge's data marking shows the same string *does* run, so the checks can fail.
- A killed deploy's lock does not stall rollback, a stray ``.lock`` file or a real-folder ``current`` is one
  clear line, a killed deploy's staging folder is removed by the next one, a disk filling mid-copy is named
  (items 9, 10 and 14).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from sshd import lab  # noqa: F401  (the fixture)
from test_deploy import deploy, make_bundle, run

from keras_edge.device.contract import bundle as B

ANSIBLE = shutil.which("ansible-playbook", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
needs_ansible = pytest.mark.skipif(ANSIBLE is None, reason="needs ansible-core (make setup installs it)")


def inventory(lab, hosts: list[str]) -> Path:
    path = lab.root / "hosts.yml"
    path.write_text("all:\n  children:\n    pis:\n      hosts:\n" + "".join(f"        {h}: {{}}\n" for h in hosts))
    return path


def pwn(canary: Path) -> str:
    return "{{ lookup('pipe', 'touch " + str(canary) + "') }}"


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --- item 1: only what the manifest names, never through a link --------------------------------------------

@pytest.mark.parametrize("transport", ["rsync", "tar"])
def test_a_symlink_in_a_bundle_is_refused_before_any_board(lab, tmp_path, capsys, transport):
    board = lab.start("board1")
    secret = tmp_path / "secret.txt"
    secret.write_text("the workstation's secret")
    v1 = make_bundle(tmp_path, "v1")
    (v1 / "notes.txt").symlink_to(secret)
    rc, out, err = deploy(capsys, lab, v1, "board1", extra=["--transport", transport])
    assert rc == 2, err
    assert err.strip().splitlines()[-1] == (
        f"error: bundle {v1} holds a symlink, notes.txt -> {secret}; refusing to deploy it; a bundle is copied as it "
        "is, never through links: replace the link with the file or remove it")
    assert not board.bundle_dir("toy").exists()
    # a variant file that is a link is refused the same way, even one that stays inside the bundle (a link out
    # of it is refused as any path leaving the bundle) and whose checksum matches
    v2 = make_bundle(tmp_path, "v2")
    (v2 / "int8.tflite").rename(v2 / ".int8.tflite")
    (v2 / "int8.tflite").symlink_to(".int8.tflite")
    rc, _, err = deploy(capsys, lab, v2, "board1")
    assert rc == 2 and "holds a symlink, int8.tflite ->" in err and not board.bundle_dir("toy").exists()


def test_files_the_manifest_does_not_name_never_travel(lab, tmp_path, capsys):
    board = lab.start("board1")
    v1 = make_bundle(tmp_path, "v1")
    (v1 / "notes.txt").write_text("private notes")
    rc, _, err = deploy(capsys, lab, v1, "board1")
    assert rc == 2
    assert f"bundle {v1} holds notes.txt, which its manifest does not name; refusing to deploy it" in err
    (v1 / "notes.txt").unlink()
    (v1 / "extra").mkdir()
    assert "holds extra/, which its manifest does not name" in deploy(capsys, lab, v1, "board1")[2]
    (v1 / "extra").rmdir()
    (v1 / B.REPORT_JSON).write_text("{}")          # the report travels, hidden temporary files do not
    (v1 / ".report.json.123.tmp").write_text("half written")
    rc, _, err = deploy(capsys, lab, v1, "board1")
    assert rc == 0, err
    current = board.bundle_dir("toy") / "current"
    assert sorted(p.name for p in current.iterdir()) == sorted(
        ["SHA256SUMS", "fp32.tflite", "int8.tflite", "labels.txt", "manifest.json", B.REPORT_JSON])


def test_a_file_name_a_shell_could_misread_is_refused(lab, tmp_path, capsys):
    lab.start("board1")
    v1 = make_bundle(tmp_path, "v1")
    m = B.read_manifest(v1)
    (v1 / "labels.txt").rename(v1 / "$(touch x).txt")
    B.write_manifest(v1, B.Manifest(**{**m.__dict__, "labels": "$(touch x).txt"}))
    rc, _, err = deploy(capsys, lab, v1, "board1")
    assert rc == 2 and "bundle file name '$(touch x).txt' has characters a board's shell or Ansible could misread" in err


# --- item 2: Ansible gets data, never templates -----------------------------------------------------------------

@needs_ansible
def test_a_bundle_name_that_is_a_template_runs_nothing(lab, tmp_path, capsys):
    lab.start("board01")
    inv = inventory(lab, ["board01"])
    canary = tmp_path / "pwned"
    v1 = make_bundle(tmp_path, "v1")
    m = B.read_manifest(v1)
    B.write_manifest(v1, B.Manifest(**{**m.__dict__, "name": pwn(canary)}))
    for argv in (["bench", v1, "--on", "pis", "-i", inv, "-F", lab.config],
                 ["bench", v1, "--on", "board01", "-F", lab.config],
                 ["deploy", v1, "-i", inv, "-F", lab.config],
                 ["rollback", pwn(canary), "-i", inv, "-F", lab.config]):
        rc, out, err = run(capsys, *argv)
        assert rc == 2 and "is not a bundle name" in err.strip().splitlines()[-1], (argv, err)
        assert not canary.exists()
    rc, _, err = run(capsys, "bench", make_bundle(tmp_path, "v2"), "--on", pwn(canary), "-i", inv, "-F", lab.config)
    assert rc == 2 and "--on" in err and "holds a Jinja template marker" in err and not canary.exists()


@needs_ansible
def test_templates_in_extra_vars_and_board_replies_stay_data_in_a_real_playbook(lab, tmp_path, monkeypatch):
    """The bench playbook run with a hostile name straight through keras-edge's Ansible layer (past the name
    check): the name reaches the board's script as a literal string, the board's reply quoting it comes back
    as a literal string, and the canary is never touched. Without the data marking, the same run creates it."""
    from keras_edge.host.deploy import fleet
    from keras_edge.host.deploy.ssh import SshOptions

    board = lab.start("board01")
    (board.home / "keras-edge" / "venv" / "bin").mkdir(parents=True)
    runner = board.home / "keras-edge" / "venv" / "bin" / "keras-edge"
    runner.write_text("#!/bin/sh\necho never\n")
    runner.chmod(0o755)
    inv = fleet.Inventory(inventory(lab, ["board01"]), ssh=SshOptions(config=lab.config))
    canary = tmp_path / "pwned"

    def bench_with_name(name: str) -> dict:
        work = tmp_path / f"work-{len(list(tmp_path.glob('work-*')))}"
        (work / "results").mkdir(parents=True)
        extra = {"keras_edge_name": name, "keras_edge_version": "0" * 12, "keras_edge_hosts": "pis",
                 "keras_edge_bench_args": [pwn(canary)], "keras_edge_results_dir": str(work / "results")}
        fleet.run_playbook("keras_edge_bench.yml", inv, extra, work)
        return json.loads((work / "results" / "bench.json").read_text())["results"]["board01"]

    result = bench_with_name(pwn(canary))
    assert result["outcome"] == "failed"
    assert result["why"] == f"bundle {pwn(canary)} is not deployed on the board; run keras-edge deploy first"
    assert not canary.exists()

    monkeypatch.setattr(fleet, "as_data", lambda value: value)   # the control: plain extra vars
    bench_with_name(pwn(canary))
    assert canary.exists(), "the control run did not evaluate the template: this test would prove nothing"


@needs_ansible
def test_a_board_whose_replies_are_templates_runs_nothing_here(lab, tmp_path, capsys):
    """A board answers `verify` (deploy's health check) and `bench` with template text: both come back as text."""
    board = lab.start("board01")
    canary = tmp_path / "pwned"
    venv = board.home / "keras-edge" / "venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "keras-edge").write_text(f"#!/bin/sh\necho \"error: {pwn(canary)}\" >&2\nexit 1\n")
    (venv / "keras-edge").chmod(0o755)
    inv = inventory(lab, ["board01"])
    v1 = make_bundle(tmp_path, "v1")
    rc, out, err = run(capsys, "deploy", v1, "-i", inv, "-F", lab.config)
    assert rc == 2 and "keras-edge verify failed on the board: " + pwn(canary) in out, out
    assert not canary.exists()
    (venv / "keras-edge").rename(venv / "rigged")
    assert run(capsys, "deploy", v1, "board01", "-F", lab.config)[0] == 0   # sha256 only, then rig bench
    (venv / "rigged").rename(venv / "keras-edge")
    rc, out, err = run(capsys, "bench", v1, "--on", "pis", "-i", inv, "-F", lab.config)
    assert rc == 2 and pwn(canary) in err and not canary.exists()


# --- item 10: locks -------------------------------------------------------------------------------------------------

def dead_deploys_lock(board, when: str):
    """The lock a killed deploy leaves on the board's toy bundle (taken now, by a pid that no longer runs):
    (its folder, its owner line)."""
    lock = board.bundle_dir("toy") / ".lock"
    lock.mkdir()
    owner = f"keras-edge deploy by someone@{socket.gethostname()} pid {dead_pid()} {when} (abcdef)"
    (lock / "owner").write_text(owner + "\n")
    (lock / "since").write_text(f"{int(time.time())}\n")
    return lock, owner

def test_rollback_takes_over_a_killed_deploys_lock_at_once(lab, tmp_path, capsys):
    board = lab.start("board1")
    v1, v2 = make_bundle(tmp_path, "v1"), make_bundle(tmp_path, "v2")
    assert deploy(capsys, lab, v1, "board1")[0] == 0 and deploy(capsys, lab, v2, "board1")[0] == 0
    lock, owner = dead_deploys_lock(board, "at 2025-01-01T00:00:00Z")
    rc, out, err = run(capsys, "rollback", "toy", "board1", "-F", lab.config)
    assert rc == 0, err
    assert f"taking over the lock of a deploy that no longer runs ({owner})" in err
    assert "waiting up to" not in err and board.link("toy") == B.content_hash(v1) and not lock.exists()


@needs_ansible
def test_a_fleet_rollback_takes_over_a_killed_deploys_lock_too(lab, tmp_path, capsys):
    board = lab.start("board01")
    v1, v2 = make_bundle(tmp_path, "v1"), make_bundle(tmp_path, "v2")
    assert deploy(capsys, lab, v1, "board01")[0] == 0 and deploy(capsys, lab, v2, "board01")[0] == 0
    lock, _ = dead_deploys_lock(board, "at x")
    rc, out, err = run(capsys, "rollback", "toy", "-i", inventory(lab, ["board01"]), "-F", lab.config)
    assert rc == 0, out + err      # before: waited 120 s, then failed (the lock is not an hour old)
    assert board.link("toy") == B.content_hash(v1) and not lock.exists()


def test_a_lock_that_is_a_plain_file_is_one_clear_line(lab, tmp_path, capsys):
    board = lab.start("board1")
    v1 = make_bundle(tmp_path, "v1")
    board.bundle_dir("toy").mkdir(parents=True)
    (board.bundle_dir("toy") / ".lock").write_text("")
    rc, out, err = deploy(capsys, lab, v1, "board1")
    assert rc == 2
    lock = board.bundle_dir("toy") / ".lock"
    assert f"{lock} is a plain file, not the lock directory keras-edge makes; remove it if no deploy is running" in err
    assert "another deploy holds the lock" not in err
    rc, out, err = run(capsys, "rollback", "toy", "board1", "-F", lab.config)
    assert rc == 2 and "is a plain file, not the lock directory" in err


def test_a_real_folder_named_current_is_said_plainly(lab, tmp_path, capsys):
    board = lab.start("board1")
    v1 = make_bundle(tmp_path, "v1")
    (board.bundle_dir("toy") / "current").mkdir(parents=True)
    (board.bundle_dir("toy") / "current" / "mine.txt").write_text("someone's files")
    rc, out, err = deploy(capsys, lab, v1, "board1")
    assert rc == 2
    assert f"{board.bundle_dir('toy')}/current is a real folder, not the link keras-edge switches" in err
    assert "unset" not in err and (board.bundle_dir("toy") / "current" / "mine.txt").exists()


# --- item 9: a killed deploy's staging folder ---------------------------------------------------------------------

def test_a_killed_deploys_staging_folder_is_removed_by_the_next(lab, tmp_path, capsys, monkeypatch):
    board = lab.start("board1")
    big = make_bundle(tmp_path, "big", sizes={"fp32": 4 << 20, "int8": 1000})
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "keras_edge", "deploy", str(big), "board1", "-F", str(lab.config),
                             "--bwlimit", "256"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "TMPDIR": str(tmp)}, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not any(".partial-" in h for h in board.hidden("toy")):
            assert proc.poll() is None and time.monotonic() < deadline, "the deploy never started copying"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    left = [p.name for p in tmp.iterdir()]
    assert len(left) == 1 and left[0].startswith(f"keras-edge-deploy-{proc.pid}-"), left
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    rc, _, err = deploy(capsys, lab, big, "board1")
    assert rc == 0, err
    assert list(tmp.iterdir()) == [] and board.link("toy") == B.content_hash(big)


# --- item 14: a board's disk filling up mid-copy ------------------------------------------------------------------

def test_a_board_disk_filling_mid_copy_is_named_as_such(lab, tmp_path, capsys):
    board = lab.start("board1")
    bundles = board.home / "keras-edge" / "bundles"
    bundles.mkdir(parents=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(bundles)], capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    try:
        big = make_bundle(tmp_path, "big", sizes={"fp32": 3 << 20, "int8": 1000})
        proc = subprocess.Popen([sys.executable, "-m", "keras_edge", "deploy", str(big), "board1", "-F",
                                 str(lab.config), "--bwlimit", "512"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.monotonic() + 120
        while not any(".partial-" in h for h in board.hidden("toy")):   # the space check has passed
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        (bundles / "filler").write_bytes(b"\0" * (4 << 20))   # another program fills the disk (4 + 3 MiB > 6)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2
        assert "[board1] failed: copying to board1 failed: the board's disk is full; free space on the board" in err
        assert "Broken pipe" not in err and "resumes cleanly" not in err
        assert board.link("toy") is None
    finally:
        subprocess.run(["umount", str(bundles)], check=False)
