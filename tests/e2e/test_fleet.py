"""Fleets through real Ansible: 16 sshd "boards" on loopback driven by the real ansible-playbook.

Each board is its own sshd (user, home, host key, port; see sshd.py). A few boards carry the
keras-edge runner (this test environment linked as ``~/keras-edge/venv``), so their health gate is
the real one: `keras-edge verify` plus a smoke `run` of the bundle's reference inputs. The others
check sha256 on the board, as a plain deploy does. One board can be rigged to fail verification:
its runner is a wrapper that answers `verify` with a failure while ``~/rig-verify-fail`` exists.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from sshd import lab  # noqa: F401  (the fixture)
from test_deploy import make_bundle

from keras_edge.cli import main
from keras_edge.device.contract import bundle as B

pytestmark = pytest.mark.skipif(shutil.which("ansible-playbook", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}") is None,
                                reason="needs ansible-core: pip install 'keras-edge[fleet]' (make setup installs it)")

TIMINGS = os.environ.get("KERAS_EDGE_FLEET_TIMINGS")   # `make bench` sets it: wall times of 1/4/16-board rollouts


def boards(lab, n: int, runners: dict[int, Path] = {}, prefix: str = "board") -> list[str]:
    names = [f"{prefix}{i:02d}" for i in range(1, n + 1)]
    for i, name in enumerate(names, start=1):
        lab.start(name, runner=runners.get(i))
    return names


def inventory(lab, groups: dict[str, list[str]]) -> Path:
    lines = ["all:", "  children:"]
    for group, hosts in groups.items():
        lines += [f"    {group}:", "      hosts:"] + [f"        {h}: {{}}" for h in hosts]
    path = lab.root / "hosts.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def rigged_runner(lab) -> Path:
    """A runner whose `verify` fails while the board's ~/rig-verify-fail exists (`run`: ~/rig-run-fail);
    otherwise the real one."""
    venv = lab.root / "rigged-venv"
    (venv / "bin").mkdir(parents=True)
    real = Path(sys.prefix) / "bin" / "keras-edge"
    script = venv / "bin" / "keras-edge"
    script.write_text("#!/bin/sh\n"
                      'if [ "$1" = verify ] && [ -e "$HOME/rig-verify-fail" ]; then\n'
                      '  echo "error: verify failed: int8: top-1 agreement 0.62 with the reference (needs 1.00)" >&2; exit 1\n'
                      "fi\n"
                      'if [ "$1" = run ] && [ -e "$HOME/rig-run-fail" ]; then\n'
                      '  echo "error: the interpreter crashed on input 3 (SIGILL)" >&2; exit 1\n'
                      "fi\n"
                      f'exec "{real}" "$@"\n')
    script.chmod(0o755)
    return venv


def fleet(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def rows(out: str) -> dict[str, list[str]]:
    return {ln.split()[0]: ln.split() for ln in out.splitlines()[1:] if ln.strip()}


@pytest.fixture
def digits_v1_v2(digits_bundle, tmp_path) -> tuple[Path, Path]:
    """The session's digits bundle, and a second version of it (another manifest, same model)."""
    v1 = tmp_path / "v1" / "digits"
    shutil.copytree(digits_bundle.bundle, v1)
    v2 = tmp_path / "v2" / "digits"
    shutil.copytree(digits_bundle.bundle, v2)
    B.write_manifest(v2, replace(B.read_manifest(v2), created="v2"))
    assert B.content_hash(v1) != B.content_hash(v2)
    return v1, v2


def test_staged_rollout_of_16_boards_then_a_rigged_failure_in_the_second_batch(lab, digits_v1_v2, capsys):
    v1, v2 = digits_v1_v2
    h1, h2 = B.content_hash(v1), B.content_hash(v2)
    runner = Path(sys.prefix)
    names = boards(lab, 16, runners={1: runner, 3: runner, 4: rigged_runner(lab), 9: runner})
    inv = inventory(lab, {"pis": names})

    started = time.perf_counter()
    rc, out, err = fleet(capsys, "deploy", v1, "--inventory", inv, "--serial", "25%", "-F", lab.config)
    wall = time.perf_counter() - started
    assert rc == 0, err + out
    table = rows(out)
    assert [table[n][1:3] for n in names] == [[b, "deployed"] for b in ["1"] + ["2"] * 4 + ["3"] * 4 + ["4"] * 4 + ["5"] * 3]
    assert all(lab.boards[n].link("digits") == h1 for n in names)
    assert "verify + smoke run" in table["board01"][-1] or "verify + smoke run" in out.splitlines()[1]
    assert all(lab.boards[n].hidden("digits") == [] for n in names)   # no lock, no partial left
    _record_timing("16, 4 with the runner (verify + smoke-run gate)", wall, 5)

    (lab.boards["board04"].home / "rig-verify-fail").write_text("")
    rc, out, err = fleet(capsys, "deploy", v2, "--inventory", inv, "--serial", "25%", "-F", lab.config)
    print(err + out)  # the transcript (pytest -rP shows it)
    assert rc == 2
    table = rows(out)
    assert table["board01"][1:4] == ["1", "deployed", h2]
    assert table["board04"][1:3] == ["2", "FAILED"]
    assert "top-1 agreement 0.62" in out
    for n in ("board02", "board03", "board05"):
        assert table[n][1:3] == ["2", "rolled"], out
        assert lab.boards[n].link("digits") == h1 and lab.boards[n].link("digits", "previous") == h2
    assert lab.boards["board04"].link("digits") == h1 and h2 not in lab.boards["board04"].versions("digits")
    for n in names[5:]:   # later batches: untouched, not even a copy of v2
        assert table[n][1:3] == ["-", "skipped"]
        assert lab.boards[n].link("digits") == h1 and lab.boards[n].versions("digits") == [h1]
    assert lab.boards["board01"].link("digits") == h2   # the canary passed; it stays on v2
    last = err.rstrip().splitlines()[-1]
    assert last.startswith("error: rollout stopped at batch 2") and "board04 (" in last
    assert "3 boards rolled back, 11 untouched" in last


def test_a_board_failing_its_health_gate_after_the_switch_is_switched_back(lab, digits_v1_v2, capsys):
    v1, v2 = digits_v1_v2
    h1, h2 = B.content_hash(v1), B.content_hash(v2)
    names = boards(lab, 2, runners={1: Path(sys.prefix), 2: rigged_runner(lab)})
    inv = inventory(lab, {"pis": names})
    assert fleet(capsys, "deploy", v1, "-i", inv, "-F", lab.config)[0] == 0
    (lab.boards["board02"].home / "rig-run-fail").write_text("")
    rc, out, err = fleet(capsys, "deploy", v2, "-i", inv, "-F", lab.config)
    assert rc == 2
    table = rows(out)
    assert table["board01"][1:4] == ["1", "deployed", h2]
    assert table["board02"][1:3] == ["2", "FAILED"]
    assert f"health gate: smoke run of the reference inputs: the interpreter crashed on input 3 (SIGILL) (switched back to {h1})" in out
    assert lab.boards["board02"].link("digits") == h1 and lab.boards["board02"].link("digits", "previous") == h2
    assert err.rstrip().splitlines()[-1].startswith("error: rollout stopped at batch 2 of 2: board02 (health gate: smoke run")


def test_unreachable_board_within_max_fail_percentage_and_a_group_rollback(lab, tmp_path, capsys):
    names = boards(lab, 4)
    v1, v2 = make_bundle(tmp_path, "v1"), make_bundle(tmp_path, "v2")
    h1, h2 = B.content_hash(v1), B.content_hash(v2)
    inv = inventory(lab, {"a": [names[0], names[1], "nowhere"], "b": names[2:]})
    rc, out, err = fleet(capsys, "deploy", v1, "-i", inv, "--serial", "2", "--max-fail-percentage", "50", "-F", lab.config)
    assert rc == 2
    table = rows(out)
    assert table["nowhere"][2] == "FAILED" and "unreachable" in out
    assert [table[n][2] for n in names] == ["deployed"] * 4
    assert err.rstrip().splitlines()[-1].startswith("error: 1 of 5 boards failed: nowhere")

    # the same outage with no tolerance: its batch is rolled back and the rollout stops there
    rc, out, err = fleet(capsys, "deploy", v2, "-i", inv, "--serial", "2", "-F", lab.config, "--json")
    assert rc == 2
    run, end = json.JSONDecoder().raw_decode(out)   # then, as on every error with --json, {"error", "exit_code"}
    assert json.loads(out[end:])["exit_code"] == rc
    got = {h["host"]: (h["batch"], h["outcome"]) for h in run["hosts"]}
    assert got == {"board01": (1, "deployed"), "board02": (2, "rolled back"), "nowhere": (2, "failed"),
                   "board03": (0, "skipped"), "board04": (0, "skipped")} and run["stopped"]

    rc, out, err = fleet(capsys, "deploy", v2, "-i", inv, "--limit", "b:board02", "-F", lab.config)
    assert rc == 0, err
    assert [lab.boards[n].link("toy") for n in names] == [h2, h2, h2, h2]
    rc, out, err = fleet(capsys, "rollback", "toy", "-i", inv, "--limit", "b", "-F", lab.config)
    assert rc == 0, err
    assert [lab.boards[n].link("toy") for n in names] == [h2, h2, h1, h1]
    assert rows(out)["board03"][1:3] == ["rolled", "back"]


def test_two_deploys_to_one_board_take_turns(lab, tmp_path):
    board = lab.start("board01")
    v1 = make_bundle(tmp_path, "v1", sizes={"fp32": 20 << 20, "int8": 1000})
    v2 = make_bundle(tmp_path, "v2", sizes={"fp32": 20 << 20, "int8": 1000})
    inv = inventory(lab, {"pis": ["board01"]})
    cmd = [sys.executable, "-m", "keras_edge.cli", "deploy"]
    # one through Ansible; while it holds the board's lock, one over plain ssh: the second waits its turn
    a = subprocess.Popen([*cmd, str(v1), "-i", str(inv), "-F", str(lab.config)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while ".lock" not in board.hidden("toy") and time.monotonic() < deadline and a.poll() is None:
        time.sleep(0.01)
    b = subprocess.Popen([*cmd, str(v2), "board01", "-F", str(lab.config)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    (_, err_a), (_, err_b) = a.communicate(timeout=300), b.communicate(timeout=300)
    assert a.returncode == 0, err_a
    assert b.returncode == 0, err_b
    assert "[board01] waiting up to 120s for another deploy on this board (keras-edge deploy by " in err_b
    assert (board.link("toy"), board.link("toy", "previous")) == (B.content_hash(v2), B.content_hash(v1))
    assert board.hidden("toy") == []


def test_killed_transfer_leaves_current_alone_and_the_next_deploy_takes_over_the_lock(lab, tmp_path, capsys):
    board = lab.start("board01")
    v1 = make_bundle(tmp_path, "v1")
    big = make_bundle(tmp_path, "big", sizes={"fp32": 96 << 20, "int8": 1000})
    inv = inventory(lab, {"pis": ["board01"]})
    assert fleet(capsys, "deploy", v1, "-i", inv, "-F", lab.config)[0] == 0
    proc = subprocess.Popen([sys.executable, "-m", "keras_edge.cli", "deploy", str(big), "-i", str(inv), "-F", str(lab.config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if any(".partial-" in p for p in board.hidden("toy")):
                break
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    hidden = board.hidden("toy")
    assert ".lock" in hidden and any(".partial-" in p for p in hidden), hidden
    assert board.link("toy") == B.content_hash(v1) and board.versions("toy") == [B.content_hash(v1)]

    rc, out, err = fleet(capsys, "deploy", big, "-i", inv, "-F", lab.config)
    assert rc == 0, err + out
    assert board.link("toy") == B.content_hash(big) and board.hidden("toy") == []


def test_a_board_without_room_fails_before_copying_with_the_numbers(lab, tmp_path, capsys):
    board = lab.start("board01")
    bundles = board.home / "keras-edge" / "bundles"
    bundles.mkdir(parents=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(bundles)], capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    try:
        big = make_bundle(tmp_path, "big", sizes={"fp32": 2 << 20, "int8": 1000})
        inv = inventory(lab, {"pis": ["board01"]})
        rc, out, err = fleet(capsys, "deploy", big, "-i", inv, "-F", lab.config)
        assert rc == 2
        assert "not enough disk space on the board: this bundle needs " in out and "KiB are free" in out
        rc, out, err = fleet(capsys, "deploy", big, "board01", "-F", lab.config)
        assert rc == 2 and re.search(r"needs \d+ KiB in \S+, only (\d+) KiB are free", err), err
        assert int(re.search(r"only (\d+) KiB", err).group(1)) <= 512
        assert board.versions("toy") == [] and board.hidden("toy") == []
    finally:
        subprocess.run(["umount", str(bundles)], check=False)


def test_fleet_bench_is_kept_per_host_and_aggregated_per_board_kind(lab, digits_v1_v2, capsys):
    v1, _ = digits_v1_v2
    names = boards(lab, 2, runners={1: Path(sys.prefix), 2: Path(sys.prefix)})
    inv = inventory(lab, {"pis": names})
    assert fleet(capsys, "deploy", v1, "-i", inv, "-F", lab.config)[0] == 0
    rc, out, err = fleet(capsys, "bench", v1, "--on", "pis", "--inventory", inv, "-F", lab.config,
                         "--runs", "5", "--warmup", "1", "--min-seconds", "0", "--threads", "1")
    assert rc == 0, err
    report = json.loads((v1 / B.REPORT_JSON).read_text())
    keys = sorted(report["boards"])
    assert len(keys) == 2 and keys[0].endswith("@board01") and keys[1].endswith("@board02")
    [(kind, agg)] = report["fleet"].items()
    assert agg["boards"] == 2 and agg["hosts"] == names
    default = B.read_manifest(v1).default
    stats = agg["variants"][default]
    assert stats["boards"] == 2 and stats["min_p50_ms"] <= stats["median_p50_ms"] <= stats["max_p50_ms"]
    assert f"{kind}: 2 boards" in out

    # the health gate's latency ceiling against that benchmark (a generous factor passes)
    rc, out, err = fleet(capsys, "deploy", v1, "-i", inv, "-F", lab.config, "--latency-ceiling", "50")
    assert rc == 0, err + out
    assert "ms <= " in out


def test_the_small_case_needs_no_ansible(lab, tmp_path):
    board = lab.start("board01")
    v1 = make_bundle(tmp_path, "v1")
    inv = inventory(lab, {"pis": ["board01"]})
    hide = ("import sys; sys.executable = '/nonexistent/python'; sys.modules['ansible'] = None; "
            "from keras_edge.cli import main; sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    assert shutil.which("ansible-playbook", path=env["PATH"]) is None
    proc = subprocess.run([sys.executable, "-c", hide, "deploy", str(v1), "board01", "-F", str(lab.config)],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert board.link("toy") == B.content_hash(v1)
    proc = subprocess.run([sys.executable, "-c", hide, "deploy", str(v1), "-i", str(inv), "-F", str(lab.config)],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --inventory runs the rollout with Ansible, which is not installed here; "
        "pip install 'keras-edge[fleet]' (ansible-core), or name the boards on the command line instead"]


def test_the_playbook_runs_from_the_users_own_ansible(lab, tmp_path):
    """`ansible-playbook -i hosts.yml keras_edge_deploy.yml -e bundle=...`, as the docs say, without keras-edge's CLI."""
    from keras_edge.host.deploy.fleet import PLAYBOOKS

    board = lab.start("board01")
    v1 = make_bundle(tmp_path, "v1")
    inv = inventory(lab, {"pis": ["board01"]})
    playbook = Path(sys.executable).parent / "ansible-playbook"
    proc = subprocess.run([str(playbook), "-i", str(inv), str(PLAYBOOKS / "keras_edge_deploy.yml"), "-e", f"bundle={v1}",
                           f"--ssh-common-args=-F {lab.config}"], capture_output=True, text=True,
                          env={**os.environ, "ANSIBLE_PYTHON_INTERPRETER": "auto_silent"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert "board01                    : ok=" in proc.stdout and "failed=0" in proc.stdout
    assert board.link("toy") == B.content_hash(v1) and board.hidden("toy") == []


def test_repairing_the_version_current_points_at_never_leaves_current_dangling(lab, tmp_path, capsys):
    board = lab.start("board01")
    v1 = make_bundle(tmp_path, "v1")
    h1 = B.content_hash(v1)
    assert fleet(capsys, "deploy", v1, "board01", "-F", lab.config)[0] == 0
    victim = board.bundle_dir("toy") / h1 / "int8.tflite"
    victim.write_bytes(b"x" * victim.stat().st_size)   # damaged in place, current still points at it
    # watch the link while the repair runs: it must always resolve to a directory
    seen, stop = [], False
    import threading

    def watch():
        link = board.bundle_dir("toy") / "current"
        while not stop:
            target = os.readlink(link) if link.is_symlink() else None
            seen.append((target, link.is_dir()))
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        rc, out, err = fleet(capsys, "deploy", v1, "board01", "-F", lab.config)
    finally:
        stop = True
        watcher.join()
    assert rc == 0, err
    assert out.splitlines()[1].split()[:3] == ["board01", "repaired", h1]
    assert seen and all(is_dir for _, is_dir in seen), [s for s in seen if not s[1]][:3]
    assert board.link("toy") == h1 and board.hidden("toy") == []
    assert B.sha256_file(victim) == B.sha256_file(v1 / "int8.tflite")


def _record_timing(n: int | str, seconds: float, batches: int = 0) -> None:
    if TIMINGS:
        path = Path(TIMINGS)
        data = json.loads(path.read_text()) if path.is_file() else {
            "what": "wall time of `keras-edge deploy BUNDLE --inventory` (--serial 25%) to N sshd boards on loopback",
            "cpu_cores": os.cpu_count(), "runs": {}}
        data["runs"][str(n)] = {"seconds": round(seconds, 2), "batches": batches,
                                "loadavg_1m": round(os.getloadavg()[0], 2)}
        path.write_text(json.dumps(data, indent=2) + "\n")


@pytest.mark.skipif(not TIMINGS, reason="a measurement for `make bench-fleet` (KERAS_EDGE_FLEET_TIMINGS=FILE), not a check")
@pytest.mark.parametrize("n", [1, 4, 16])
def test_timings(lab, tmp_path, capsys, n):
    """Wall time of a full staged rollout (--serial 25%, checksum gate) of a 1 MiB bundle to n boards."""
    names = boards(lab, n)
    inv = inventory(lab, {"pis": names})
    v1 = make_bundle(tmp_path, "v1", sizes={"fp32": 1 << 20, "int8": 256 << 10})
    started = time.perf_counter()
    rc, out, err = fleet(capsys, "deploy", v1, "-i", inv, "--serial", "25%", "-F", lab.config, "--json")
    assert rc == 0, err
    _record_timing(n, time.perf_counter() - started, len(json.loads(out)["batches"]))
