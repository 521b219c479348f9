"""Deploy over real SSH: real sshd processes on 127.0.0.1, the real ssh client, real rsync.

The bundles here are small but valid (a manifest whose variant files carry correct sha256
entries): deploy only moves and verifies files, so they exercise everything but the runner,
which test_deploy_runner.py covers with the real converted digits bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from sshd import lab  # noqa: F401  (the fixture)

from keras_edge.device.contract import bundle as B
from keras_edge.cli import main
from keras_edge.device.inputs.preprocess import PreprocessSpec


def make_bundle(root: Path, tag: str, name: str = "toy", sizes: dict[str, int] | None = None) -> Path:
    """A valid bundle whose variant files are deterministic bytes derived from ``tag``."""
    out = root / f"{name}-{tag}" / name
    out.mkdir(parents=True)
    variants = []
    for vname, size in (sizes or {"fp32": 3000, "int8": 1000}).items():
        path = out / f"{vname}.tflite"
        seed = hashlib.sha256(f"{tag}/{vname}".encode()).digest()
        path.write_bytes((seed * (size // len(seed) + 1))[:size])
        variants.append(B.Variant(name=vname, mode=vname, status="ok", file=path.name,
                                  sha256=B.sha256_file(path), bytes=size))
    (out / "labels.txt").write_text("zero\none\n")
    manifest = B.Manifest(name=name, preprocess=PreprocessSpec(height=8, width=8, channels=1),
                          inputs=(B.TensorSpec("x", (1, 8, 8, 1), "float32"),),
                          outputs=(B.TensorSpec("y", (1, 2), "float32"),),
                          variants=tuple(variants), labels="labels.txt", default=variants[0].name,
                          created=tag)
    B.write_manifest(out, manifest)
    return out


def run(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def deploy(capsys, lab, bundle, *hosts, extra=()) -> tuple[int, str, str]:
    return run(capsys, "deploy", bundle, *hosts, "-F", lab.config, *extra)


def same_files(local: Path, remote: Path) -> bool:
    names = sorted(p.name for p in local.iterdir())
    return all(B.sha256_file(local / n) == B.sha256_file(remote / n) for n in names)


def test_first_deploy_then_redeploy_sends_nothing(lab, tmp_path, capsys):
    board = lab.start("board1")
    v1 = make_bundle(tmp_path, "v1")
    version = B.content_hash(v1)

    rc, out, err = deploy(capsys, lab, v1, "board1")
    assert rc == 0, err
    assert f"[board1] deployed: current -> {version} (verified: sha256)" in err
    row = out.splitlines()[1].split()
    assert row[:3] == ["board1", "deployed", version]
    assert board.link("toy") == version
    remote = board.bundle_dir("toy") / "current"
    assert same_files(v1, remote)
    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=remote).returncode == 0
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(remote.stat().st_mode) == 0o777 & ~umask  # not mktemp's private 0700

    rc, out, err = deploy(capsys, lab, v1, "board1")
    assert rc == 0, err
    assert "already on the board and verified (sha256); nothing to copy" in err
    assert out.splitlines()[1].split()[:5] == ["board1", "unchanged", version, "-", "nothing"]
    assert board.versions("toy") == [version]


def test_new_version_then_rollback_and_forward_again(lab, tmp_path, capsys):
    board = lab.start("board1")
    v1, v2 = make_bundle(tmp_path, "v1"), make_bundle(tmp_path, "v2")
    h1, h2 = B.content_hash(v1), B.content_hash(v2)
    assert deploy(capsys, lab, v1, "board1")[0] == 0
    rc, out, err = deploy(capsys, lab, v2, "board1", extra=["--json"])
    assert rc == 0, err
    [result] = json.loads(out)
    assert (result["outcome"], result["version"], result["previous"]) == ("deployed", h2, h1)
    assert (board.link("toy"), board.link("toy", "previous")) == (h2, h1)

    rc, out, err = run(capsys, "rollback", "toy", "board1", "-F", lab.config)
    assert rc == 0, err
    assert f"[board1] rolled back: current -> {h1} (was {h2}; verified: sha256)" in err
    assert (board.link("toy"), board.link("toy", "previous")) == (h1, h2)
    assert same_files(v1, board.bundle_dir("toy") / "current")

    rc, _, err = run(capsys, "rollback", "toy", "board1", "-F", lab.config)
    assert rc == 0, err
    assert board.link("toy") == h2


def test_rollback_without_a_previous_version_says_so(lab, tmp_path, capsys):
    board = lab.start("board1")
    v1 = make_bundle(tmp_path, "v1")
    assert deploy(capsys, lab, v1, "board1")[0] == 0
    rc, out, err = run(capsys, "rollback", "toy", "board1", "-F", lab.config)
    assert rc == 2
    assert "[board1] failed: toy has no previous version on this board; nothing was switched" in err
    assert err.rstrip().splitlines()[-1] == "error: 1 of 1 boards failed: board1; the table above says why"
    assert board.link("toy") == B.content_hash(v1)
    rc, _, err = run(capsys, "rollback", "nosuch", "board1", "-F", lab.config)
    assert rc == 2 and "no bundle named nosuch is deployed on this board" in err


def test_keep_prunes_old_versions_but_never_current_or_previous(lab, tmp_path, capsys):
    board = lab.start("board1")
    bundles = [make_bundle(tmp_path, f"v{i}") for i in range(1, 5)]
    hashes = [B.content_hash(b) for b in bundles]
    for b in bundles:
        assert deploy(capsys, lab, b, "board1")[0] == 0
    assert board.versions("toy") == sorted(hashes[1:])  # default --keep 3

    rc, out, err = deploy(capsys, lab, bundles[3], "board1", extra=["--keep", "1"])
    assert rc == 0, err
    assert f"removed {hashes[1]}" in err
    # keep 1 still leaves the previous version, so that rollback always has somewhere to go
    assert board.versions("toy") == sorted(hashes[2:])
    assert (board.link("toy"), board.link("toy", "previous")) == (hashes[3], hashes[2])
    assert (board.bundle_dir("toy") / "history").read_text().split() == hashes[2:]


def test_killed_transfer_leaves_current_on_the_previous_valid_version(lab, tmp_path, capsys):
    board = lab.start("board1")
    v1 = make_bundle(tmp_path, "v1")
    big = make_bundle(tmp_path, "big", sizes={"fp32": 8 << 20, "int8": 1000})
    h1, h2 = B.content_hash(v1), B.content_hash(big)
    assert deploy(capsys, lab, v1, "board1")[0] == 0

    # a throttled copy of 8 MiB takes about 8 s: kill the whole deploy once the big file is arriving
    proc = subprocess.Popen([sys.executable, "-m", "keras_edge.cli", "deploy", str(big), "board1",
                             "-F", str(lab.config), "--bwlimit", "1024"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        arriving = _wait_for_partial_bytes(board.bundle_dir("toy"), proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert arriving, "the copy never started"
    assert board.link("toy") == h1
    assert board.versions("toy") == [h1]  # the half copy is only in a hidden partial directory
    assert any(".partial-" in name for name in board.hidden("toy"))
    assert same_files(v1, board.bundle_dir("toy") / "current")

    rc, out, err = deploy(capsys, lab, big, "board1")
    assert rc == 0, err
    assert (board.link("toy"), board.link("toy", "previous")) == (h2, h1)
    assert same_files(big, board.bundle_dir("toy") / "current")
    assert board.hidden("toy") == []  # the leftover partial is cleaned up


def _wait_for_partial_bytes(bundle_dir: Path, proc: subprocess.Popen, limit_s: float = 60) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and proc.poll() is None:
        for root, _, files in os.walk(bundle_dir):
            if ".partial-" in root and any(os.path.getsize(os.path.join(root, f)) > 64 << 10 for f in files
                                           if os.path.exists(os.path.join(root, f))):
                return True
        time.sleep(0.05)
    return False


def test_tampered_copy_on_the_board_is_never_switched_to_and_redeploy_repairs_it(lab, tmp_path, capsys):
    board = lab.start("board1")
    v1, v2 = make_bundle(tmp_path, "v1"), make_bundle(tmp_path, "v2")
    h1, h2 = B.content_hash(v1), B.content_hash(v2)
    assert deploy(capsys, lab, v1, "board1")[0] == 0
    assert deploy(capsys, lab, v2, "board1")[0] == 0
    victim = board.bundle_dir("toy") / h1 / "fp32.tflite"
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF  # same size, one byte flipped
    victim.write_bytes(bytes(data))

    rc, out, err = run(capsys, "rollback", "toy", "board1", "-F", lab.config)
    assert rc == 2
    assert "checksum mismatch on the board: fp32.tflite: FAILED" in err
    assert board.link("toy") == h2

    rc, out, err = deploy(capsys, lab, v1, "board1")
    assert rc == 0, err
    assert f"the board's copy of {h1} is damaged" in err
    assert out.splitlines()[1].split()[:3] == ["board1", "repaired", h1]
    assert (board.link("toy"), board.link("toy", "previous")) == (h1, h2)
    assert same_files(v1, board.bundle_dir("toy") / "current")


def test_a_bundle_damaged_on_the_workstation_is_refused_before_any_board(lab, tmp_path, capsys):
    board = lab.start("board1")
    v1 = make_bundle(tmp_path, "v1")
    (v1 / "int8.tflite").write_bytes(b"not the converted model")
    rc, out, err = deploy(capsys, lab, v1, "board1")
    assert rc == 2
    assert err.startswith("error: variant 'int8': int8.tflite does not match its checksum")
    assert out == "" and not (board.home / "keras-edge").exists()


def test_unreachable_board_wrong_key_and_unknown_host_key_fail_with_one_line_each(lab, tmp_path, capsys):
    board = lab.start("board1")
    v1 = make_bundle(tmp_path, "v1")
    unknown = f"{lab.user}@localhost:{board.port}"  # known_hosts only knows [127.0.0.1]:port
    rc, out, err = deploy(capsys, lab, v1, "nowhere", "wrongkey", unknown, "board1")
    assert rc == 2
    failures = [line for line in err.splitlines() if line.startswith("[") and " failed: " in line]
    assert sorted(failures) == sorted([
        "[nowhere] failed: cannot reach nowhere: connection refused; "
        "check that the board is on, sshd is running and the port is right",
        "[wrongkey] failed: wrongkey refused the login (permission denied: wrong user or key); "
        "install your public key on the board with `ssh-copy-id wrongkey`, or check the user name",
        f"[{unknown}] failed: the host key of {unknown} is not known (or does not match); "
        f"connect once with `ssh -p {board.port} {lab.user}@localhost` to check and accept it",
    ])
    assert err.rstrip().splitlines()[-1] == (f"error: 3 of 4 boards failed: nowhere, wrongkey, {unknown}; "
                                             "the table above says why; the rest were deployed")
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}
    assert rows == {"nowhere": "FAILED", "wrongkey": "FAILED", unknown: "FAILED", "board1": "deployed"}
    assert board.link("toy") == B.content_hash(v1)


def test_two_boards_deployed_in_parallel(lab, tmp_path, capsys):
    one, two = lab.start("board1"), lab.start("board2")
    v1 = make_bundle(tmp_path, "v1")
    h1 = B.content_hash(v1)
    by_address = f"{lab.user}@127.0.0.1:{two.port}"  # user@host:port form, no alias
    rc, out, err = deploy(capsys, lab, v1, "board1", by_address)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["host", "result", "version", "previous"]
    assert [ln.split()[:3] for ln in lines[1:]] == [["board1", "deployed", h1], [by_address, "deployed", h1]]
    for board in (one, two):
        assert board.link("toy") == h1
        assert same_files(v1, board.bundle_dir("toy") / "current")


def test_tar_transport_for_boards_without_rsync(lab, tmp_path, capsys):
    board = lab.start("board1")
    v1, v2 = make_bundle(tmp_path, "v1"), make_bundle(tmp_path, "v2")
    for b in (v1, v2):
        rc, out, err = deploy(capsys, lab, b, "board1", extra=["--transport", "tar"])
        assert rc == 0, err
        assert "with tar" in err
    assert (board.link("toy"), board.link("toy", "previous")) == (B.content_hash(v2), B.content_hash(v1))
    assert same_files(v2, board.bundle_dir("toy") / "current")


def test_bad_arguments_are_one_line_errors(lab, tmp_path, capsys):
    v1 = make_bundle(tmp_path, "v1")
    rc, _, err = run(capsys, "deploy", v1, "-F", lab.config, "--", "-oProxyCommand=touch /tmp/x")
    assert rc == 2 and err.startswith("error: host '-oProxyCommand=touch /tmp/x' is not a valid ssh destination")
    rc, _, err = deploy(capsys, lab, v1, "board1", extra=["--ssh-option", "ProxyCommand"])
    assert rc == 2 and err.startswith("error: ssh option 'ProxyCommand' is not of the form Key=Value")
    rc, _, err = run(capsys, "deploy", tmp_path, "board1")
    assert rc == 2 and err.startswith(f"error: {tmp_path} has no manifest.json")


def test_deploy_and_rollback_work_without_tensorflow(lab, tmp_path):
    """The board-facing commands must run where the host extra is missing: block TensorFlow and Keras."""
    board = lab.start("board1")
    v1, v2 = make_bundle(tmp_path, "v1"), make_bundle(tmp_path, "v2")
    blocked = ("import sys; sys.modules.update(tensorflow=None, keras=None); "
               "from keras_edge.cli import main; rc = main(sys.argv[1:]); "
               "assert not any(m.startswith(('tensorflow', 'keras.')) for m in sys.modules if sys.modules[m]); sys.exit(rc)")
    for args in (["deploy", v1, "board1"], ["deploy", v2, "board1"], ["rollback", "toy", "board1"]):
        proc = subprocess.run([sys.executable, "-c", blocked, *map(str, args), "-F", str(lab.config)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    assert (board.link("toy"), board.link("toy", "previous")) == (B.content_hash(v1), B.content_hash(v2))
