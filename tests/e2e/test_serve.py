"""``keras-edge serve`` for real: the session's digits bundle served by a real process on 127.0.0.1 with a video
of real digits as its live source, a real headless Chromium on the page, real HTTP clients, and a network
namespace (with a veth pair) for the non-loopback token checks.

Nothing here asserts a speed: ``benchmarks/serve.py`` measures serve against run.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from chromium import Chromium, chromium_path
from sshd import lab  # noqa: F401  (the fixture)
from tests.serving import ServerProcess, call, decode_jpeg, digits_video, metric, stream_frames

from keras_edge.cli import main

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def bundle(request) -> Path:
    """The session's digits bundle; the board-side fixture bundle instead when ``make fixtures`` made one."""
    fixtures = os.environ.get("KERAS_EDGE_FIXTURES")
    if fixtures and (Path(fixtures) / "bundles" / "digits" / "manifest.json").is_file():
        return Path(fixtures) / "bundles" / "digits"
    return request.getfixturevalue("digits_bundle").bundle


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    """The live video, three digit PNGs (a 3, a 5, an 8) and an .npy of a 7 in model units, from the last
    digits of scikit-learn's set (the video shows the first 40)."""
    import cv2

    from keras_edge.demo import digits_images

    root = tmp_path_factory.mktemp("serve-inputs")
    video, labels = digits_video(root / "digits.avi")
    imgs, digit = digits_images()
    last = {int(d): i for i, d in enumerate(digit)}          # the last image of each digit
    pngs = []
    for d in (3, 5, 8):
        pngs.append(root / str(d) / f"{last[d]:04d}.png")
        pngs[-1].parent.mkdir()
        assert cv2.imwrite(str(pngs[-1]), imgs[last[d]])
    npy = root / "seven.npy"
    np.save(npy, imgs[last[7]][None, :, :, None].astype(np.float32))   # raw pixels: the model rescales inside
    return {"video": video, "labels": labels, "pngs": pngs, "npy": npy}


@pytest.fixture(scope="module")
def server(bundle, inputs):
    s = ServerProcess([bundle, "--source", inputs["video"], "--port", "0", "--threads", "1", "--queue", "4"])
    yield s
    assert s.stop() == 0, "\n".join(s.lines)


def _without_timing(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("source", "timing_ms")}


def test_healthz_metrics_and_stats(server):
    health = call(server.url + "healthz")
    assert (health.status, health.json()) == (200, {"ready": True, "state": "ready"})
    text = call(server.url + "metrics")
    assert text.status == 200 and text.headers["content-type"].startswith("text/plain; version=0.0.4")
    body = text.body.decode()
    for name in ('keras_edge_inferences_total{source="live"}', 'keras_edge_inference_seconds_count{source="live"}',
                 "keras_edge_dropped_frames_total", "process_resident_memory_bytes", "keras_edge_ready"):
        assert metric(body, name) >= 0
    assert metric(body, "keras_edge_ready") == 1
    assert metric(body, "process_resident_memory_bytes") > 10 * 2**20
    # every sample line is NAME{labels} VALUE and every family has its TYPE
    samples = [line for line in body.splitlines() if line and not line.startswith("#")]
    assert all(len(line.rsplit(" ", 1)) == 2 and float(line.rsplit(" ", 1)[1]) >= 0 for line in samples)
    typed = {line.split()[2] for line in body.splitlines() if line.startswith("# TYPE")}
    assert {s.split("{")[0].split(" ")[0].removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
            for s in samples} <= typed
    deadline = time.monotonic() + 30
    while (stats := call(server.url + "stats.json").json())["last"] is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stats["variant"] and stats["backend"] == "cpu-xnnpack" and stats["source"] == "digits.avi"
    assert stats["last"]["ok"] and stats["last"]["top_k"][0]["label"] in [str(d) for d in range(10)]


def test_page_in_chromium_shows_a_drawn_frame_and_stats_that_update(server, tmp_path):
    if chromium_path() is None:
        pytest.fail("chromium is not installed: `make test-tools` installs it (apt-get install chromium)", pytrace=False)
    browser = Chromium(tmp_path / "profile")
    try:
        browser.open(server.url)
        assert browser.wait_for("document.getElementById('stream').naturalWidth") == 480
        first = browser.wait_for("+document.getElementById('frames').textContent.split(' / ')[0]")
        time.sleep(1.5)
        second = browser.evaluate("+document.getElementById('frames').textContent.split(' / ')[0]")
        assert second > first, "the page's frame counter did not move"
        fps = browser.evaluate("document.getElementById('processed_fps').textContent")
        assert fps.endswith(" /s") and float(fps.split()[0]) > 0
        assert browser.evaluate("document.getElementById('backend').textContent") == "cpu-xnnpack"
        last = browser.evaluate("document.getElementById('last').textContent")
        assert re.search(r"^\d  [01]\.\d{3}$", last, re.M), last         # the latest top-k: "7  0.998"
        rect = browser.evaluate("(() => { const r = document.getElementById('stream').getBoundingClientRect();"
                                " return [r.x, r.y, r.width, r.height]; })()")
        shot = browser.screenshot(tmp_path / "page.png")
    finally:
        browser.close()
    if os.environ.get("KERAS_EDGE_SERVE_SCREENSHOT"):
        shutil.copy(shot, os.environ["KERAS_EDGE_SERVE_SCREENSHOT"])
    import cv2

    page = cv2.imread(str(shot))
    x, y, w, h = (int(round(v)) for v in rect)
    frame = page[y:y + h, x:x + w]
    assert frame.shape[:2] == (480, 480)
    # run --draw's label at the top left: a dark grey box (40, 40, 40) with white text, on a digit whose
    # corner is black; without the drawing the corner is black
    box = frame[3:20, 3:60].astype(int)
    assert 25 <= np.median(box) <= 70 and box.max() > 180, np.median(box)
    assert frame[100:380, 100:380].max() > 200     # the digit itself


def test_infer_gives_what_run_json_prints(server, bundle, inputs, capsys):
    files = [*inputs["pngs"], inputs["npy"]]
    capsys.readouterr()
    assert main(["run", str(bundle), *map(str, files), "--json", "--threads", "1"]) == 0
    expected = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    got = []
    for f in files:
        r = call(server.url + f"infer?name={f.name}", f.read_bytes(), {"Content-Type": "application/octet-stream"})
        assert r.status == 200, r.body
        got.append(r.json())
    assert [_without_timing(g) for g in got] == [_without_timing(e) for e in expected]
    assert [g["top_k"][0]["index"] for g in got] == [3, 5, 8, 7]
    assert [g["source"] for g in got] == [f.name for f in files]


def test_twenty_concurrent_clients_get_results_or_documented_503s(server, inputs):
    """8 clients post images, 6 watch the stream, 2 open it and never read, 4 poll stats and metrics: 4 s."""
    before = call(server.url + "metrics").body.decode()
    images = [(p.read_bytes(), int(p.parent.name)) for p in inputs["pngs"]]
    outcomes: Counter = Counter()
    wrong: list = []
    frames: list[int] = []
    stalled: list[socket.socket] = []
    errors: list[str] = []
    deadline = time.monotonic() + 4.0
    lock = threading.Lock()

    def poster(k: int) -> None:
        i = k
        while time.monotonic() < deadline:
            data, label = images[i % len(images)]
            r = call(server.url + "infer", data)
            with lock:
                outcomes[r.status] += 1
                if r.status == 200 and r.json()["top_k"][0]["index"] != label:
                    wrong.append(r.json())
                if r.status == 503 and not (r.headers.get("retry-after") == "1" and "busy" in r.json()["error"]):
                    errors.append(f"undocumented 503: {r.body[:200]}")
                if r.status not in (200, 503):
                    errors.append(f"{r.status}: {r.body[:200]}")
            i += 1

    def viewer() -> None:
        got = stream_frames(server.url + "stream.mjpg", 10_000, deadline)
        with lock:
            frames.append(len(got))
            if got and decode_jpeg(got[-1]).shape != (480, 480, 3):
                errors.append("a stream frame is not the video's size")

    def staller() -> None:
        s = socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1].strip("/"))))
        s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")   # and never read
        with lock:
            stalled.append(s)

    def poller() -> None:
        while time.monotonic() < deadline:
            for path in ("stats.json", "metrics"):
                r = call(server.url + path)
                if r.status != 200:
                    with lock:
                        errors.append(f"{path}: {r.status}")
            time.sleep(0.05)

    threads = ([threading.Thread(target=poster, args=(k,)) for k in range(8)]
               + [threading.Thread(target=viewer) for _ in range(6)]
               + [threading.Thread(target=staller) for _ in range(2)]
               + [threading.Thread(target=poller) for _ in range(4)])
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    after = call(server.url + "metrics").body.decode()
    for s in stalled:
        s.close()
    print(f"20 clients for 4 s: /infer answers {dict(outcomes)}, stream frames per viewer {frames}")
    assert not errors, errors[:5]
    assert not wrong, wrong[:2]
    assert outcomes[200] > 0 and set(outcomes) <= {200, 503}
    api = 'keras_edge_inferences_total{source="api"}'
    assert metric(after, api) - metric(before, api) == outcomes[200]      # every 200 is one inference, no more
    busy = 'keras_edge_rejected_total{reason="busy"}'
    assert metric(after, busy, 0) - metric(before, busy, 0) == outcomes[503]   # every 503 counted as busy
    live = 'keras_edge_inferences_total{source="live"}'
    assert metric(after, live) > metric(before, live), "the live source stopped while clients were served"
    assert len(frames) == 6 and min(frames) >= 1, frames
    assert call(server.url + "healthz").status == 200


def _png_claiming(width: int, height: int) -> bytes:
    """A real 1-bit grey PNG of ``width`` x ``height`` zeros: ~110 kB that would decode to 900 MB at 30000²."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (width + 7) // 8)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _raw(url: str, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send a hand-made request (its headers may lie about the body); the status and body of the answer."""
    host, port = url.split("//")[1].strip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(head + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


def test_oversized_bodies_and_decompression_bombs_get_4xx_and_the_server_keeps_serving(server, inputs):
    bomb = _png_claiming(30000, 30000)
    assert len(bomb) < 200_000
    r = call(server.url + "infer", bomb)
    assert r.status == 413 and "30000x30000 (900 megapixels)" in r.json()["error"]

    # a body larger than the limit is refused from its Content-Length, before it is read
    status, body = _raw(server.url, b"POST /infer HTTP/1.1\r\nHost: x\r\nContent-Length: 40000000\r\n\r\n", b"x" * 1000)
    assert status == 413 and b"above this server's limit" in body
    status, _ = _raw(server.url, b"POST /infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", b"5\r\nhello\r\n0\r\n\r\n")
    assert status == 411

    # an .npz whose member claims 2 GiB when inflated is refused from its declared size
    buf = io.BytesIO()
    np.savez_compressed(buf, input_0=np.zeros((1, 32, 32, 1), np.float32))
    raw = bytearray(buf.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as z:
        info = z.infolist()[0]
    struct.pack_into("<I", raw, info.header_offset + 22, 2**31)          # local header: uncompressed size
    cd = raw.rfind(b"PK\x01\x02")
    struct.pack_into("<I", raw, cd + 24, 2**31)                          # central directory: uncompressed size
    r = call(server.url + "infer", bytes(raw))
    assert r.status == 413 and "MiB of arrays" in r.json()["error"]

    # pickled arrays are never loaded; text is not an image
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    r = call(server.url + "infer", pickled.getvalue())
    assert r.status == 400 and "no pickled objects" in r.json()["error"]
    r = call(server.url + "infer", b"just some text, not an image")
    assert r.status == 415
    # paths in a request are labels, never files
    r = call(server.url + "infer?name=/etc/passwd", inputs["pngs"][0].read_bytes())
    assert r.status == 200 and r.json()["source"] == "/etc/passwd" and r.json()["top_k"][0]["index"] == 3
    assert call(server.url + "../../etc/passwd").status == 404

    # still serving
    assert call(server.url + "healthz").status == 200
    assert call(server.url + "infer", inputs["pngs"][1].read_bytes()).json()["top_k"][0]["index"] == 5
    assert metric(call(server.url + "metrics").body.decode(), 'keras_edge_rejected_total{reason="too_large"}') >= 3


# ---------------------------------------------------------------- a non-loopback address, in a network namespace

@pytest.fixture
def netns():
    """A network namespace joined to this one by a veth pair: the server listens on 10.213.x.2 inside it."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("the token test needs root and iproute2 (ip netns) to make a network namespace")
    tag = f"ke{os.getpid() % 100000}"
    ns, outer, inner = f"{tag}-ns", f"{tag}a", f"{tag}b"
    octet = os.getpid() % 250 + 1
    near, far = f"10.213.{octet}.1", f"10.213.{octet}.2"
    steps = [["ip", "netns", "add", ns], ["ip", "link", "add", outer, "type", "veth", "peer", "name", inner],
             ["ip", "link", "set", inner, "netns", ns], ["ip", "addr", "add", f"{near}/30", "dev", outer],
             ["ip", "link", "set", outer, "up"], ["ip", "-n", ns, "addr", "add", f"{far}/30", "dev", inner],
             ["ip", "-n", ns, "link", "set", inner, "up"], ["ip", "-n", ns, "link", "set", "lo", "up"]]
    try:
        for step in steps:
            p = subprocess.run(step, capture_output=True, text=True)
            if p.returncode != 0:
                pytest.skip(f"cannot make a network namespace here ({' '.join(step[:3])}: {p.stderr.strip()})")
        yield {"exec": ["ip", "netns", "exec", ns], "address": far}
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)   # removes the veth pair with it
        subprocess.run(["ip", "link", "del", outer], capture_output=True)


def test_a_non_loopback_address_needs_the_token(bundle, inputs, netns):
    png = inputs["pngs"][0].read_bytes()
    env = {**os.environ, "KERAS_EDGE_TOKEN": TOKEN}
    s = ServerProcess([bundle, "--host", netns["address"], "--port", "8080"], env=env, prefix=netns["exec"])
    try:
        base = s.url
        assert base == f"http://{netns['address']}:8080/"
        for path in ("", "stats.json", "metrics", "frame.jpg", "stream.mjpg"):
            r = call(base + path)
            assert r.status == 401 and r.headers["www-authenticate"] == "Bearer", path
        assert call(base + "infer", png).status == 401
        assert call(base + "infer", png, {"Authorization": "Bearer " + TOKEN[:-1] + "x"}).status == 401
        assert call(base + "infer?token=nope", png).status == 401
        assert call(base + "healthz").status == 200        # readiness only, for health checks
        r = call(base + "infer", png, {"Authorization": f"Bearer {TOKEN}"})
        assert r.status == 200 and r.json()["top_k"][0]["index"] == 3
        page = call(base + f"?token={TOKEN}")
        assert page.status == 200 and b"keras-edge serve" in page.body
        assert page.headers["set-cookie"].startswith(f"keras_edge_token={TOKEN}; Path=/; HttpOnly")
        assert call(base + "stats.json", headers={"Cookie": f"keras_edge_token={TOKEN}"}).status == 200
        assert call(base + "metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status == 200
        assert call(base + "frame.jpg", headers={"Authorization": f"Bearer {TOKEN}"}).status == 404   # no live source
    finally:
        assert s.stop() == 0

    # no token: refused before binding, one error line
    no_token = {k: v for k, v in os.environ.items() if k != "KERAS_EDGE_TOKEN"}
    p = subprocess.run([*netns["exec"], sys.executable, "-m", "keras_edge.cli", "serve", str(bundle), "--host",
                        netns["address"]], capture_output=True, text=True, env=no_token)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1].startswith(f"error: --host is {netns['address']}, which other machines "
                                                        "can reach, and no token is set")
    # --insecure: served without a token, with a warning
    s = ServerProcess([bundle, "--host", netns["address"], "--port", "8080", "--insecure"], prefix=netns["exec"],
                      env=no_token)
    try:
        assert call(s.url + "stats.json").status == 200
        assert any(line.startswith("warning: serving") and "no token" in line for line in s.lines)
    finally:
        s.stop()


# ---------------------------------------------------------------- deploy --serve on an sshd board

def _deploy(capsys, lab, bundle, *extra) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["deploy", str(bundle), "board1", "-F", str(lab.config), *map(str, extra)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_deploy_serve_writes_the_unit_and_says_why_it_was_not_started(lab, bundle, capsys):
    """The sshd board has the runner (this environment) but no systemd user manager: the unit is written and
    the start is skipped with one line. Off loopback the board makes a private token file once."""
    board = lab.start("board1", runner=Path(sys.prefix))
    rc, out, err = _deploy(capsys, lab, bundle, "--serve", "--serve-camera", "0")
    assert rc == 0, err
    unit = board.home / ".config" / "systemd" / "user" / "keras-edge-serve-digits.service"
    assert f"[board1] serve: unit written to {unit}; not started: no systemd user manager answers here " \
           "(systemctl --user)" in err
    assert unit.read_text() == (
        "[Unit]\nDescription=keras-edge serve digits\nAfter=network-online.target\n\n"
        "[Service]\nEnvironmentFile=-%h/keras-edge/serve/digits.env\n"
        "ExecStart=%h/keras-edge/venv/bin/keras-edge serve %h/keras-edge/bundles/digits/current "
        "--host 127.0.0.1 --port 8080 --camera 0\n"
        "Restart=on-failure\nRestartSec=5\n\n[Install]\nWantedBy=default.target\n")
    assert not (board.home / "keras-edge" / "serve" / "digits.env").exists()    # loopback: no token

    rc, out, err = _deploy(capsys, lab, bundle, "--serve", "--serve-host", "0.0.0.0", "--serve-port", "8090", "--json")
    assert rc == 0, err
    [result] = json.loads(out)
    assert result["outcome"] == "unchanged" and result["serve"].startswith("unit written to ")
    assert "--host 0.0.0.0 --port 8090\n" in unit.read_text()
    env = board.home / "keras-edge" / "serve" / "digits.env"
    assert oct(env.stat().st_mode & 0o777) == "0o600"
    token = env.read_text()
    assert len(token.strip().split("=", 1)[1]) == 48 and token.startswith("KERAS_EDGE_TOKEN=")
    assert _deploy(capsys, lab, bundle, "--serve", "--serve-host", "0.0.0.0")[0] == 0
    assert env.read_text() == token            # made once, kept across deploys


@pytest.mark.skipif(shutil.which("ansible-playbook", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}") is None,
                    reason="needs ansible-core: pip install 'keras-edge[fleet]' (make setup installs it)")
def test_fleet_deploy_serve_runs_the_same_board_script_through_ansible(lab, bundle, capsys):
    board = lab.start("board1", runner=Path(sys.prefix))
    inv = lab.root / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    board1: {}\n")
    capsys.readouterr()
    rc = main(["deploy", str(bundle), "-i", str(inv), "-F", str(lab.config), "--serve", "--serve-port", "8091", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    [host] = json.loads(out)["hosts"]
    assert host["outcome"] == "deployed"
    assert host["serve"] == "unit written; not started: no systemd user manager answers here (systemctl --user)"
    unit = board.home / ".config" / "systemd" / "user" / "keras-edge-serve-digits.service"
    assert "--host 127.0.0.1 --port 8091\n" in unit.read_text()
