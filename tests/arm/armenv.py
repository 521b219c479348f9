"""An emulated 64-bit ARM board for the test suite: Debian bookworm arm64 under qemu user-mode emulation.

Raspberry Pi OS bookworm is Debian bookworm (Python 3.11, glibc 2.36), so its arm64 userland, run by
``qemu-aarch64-static``, proves the board side on aarch64 without a board. The layout under
``build/arm/`` (git-ignored):

    rootfs/          debootstrap --foreign minbase bookworm arm64, .debs unpacked with dpkg-deb (no second
                     stage, so no binfmt_misc); the device extra + pytest in its /usr/local dist-packages (arm64
                     wheels unpacked there by the host's pip).
                     Cached: rebuilt only when STAMP (suite, packages, requirements) changes.
    legacy/          pip --target dir: the device-legacy extra (tflite-runtime 2.14.0, numpy < 2), cached.
    legacy-app/      links to this project's package in rootfs/, for the legacy path (numpy 1 first).
    boards/pi4,pi5   what qemu sees as ``/``: symlinks into rootfs plus the board's own ``proc/cpuinfo``.

Two pitfalls of the emulator (not of real boards) shape this: LiteRT segfaults when it reads the
host's x86 ``/proc/cpuinfo``, so each board prefix carries a Raspberry-Pi cpuinfo (from
``tests/fixtures/<board>``); and qemu's default ``max`` CPU enables SME paths that change int8
results, so ``QEMU_CPU`` is always a real core (cortex-a72 for a Pi 4, cortex-a76 for a Pi 5).
Without binfmt_misc an emulated program cannot exec another aarch64 binary, so the emulated
Python's ``sys.executable`` is a small host launcher (``usr/bin/python3-emu``) that re-enters qemu:
``bench`` and the device tests start child Pythons exactly as they would on a board.

Command line (host Python): ``armenv.py check`` (exit 1 with the reason when this machine cannot run
it), ``armenv.py build``, ``armenv.py python BOARD [ARGS…]``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[2]
ARM_DIR = Path(os.environ.get("KERAS_EDGE_ARM") or REPO / "build" / "arm")
FIXTURES = REPO / "tests" / "fixtures"

FORMAT = 1                                  # bump to force a rebuild when this file's layout changes
SUITE = "bookworm"                          # = Raspberry Pi OS bookworm: Python 3.11, glibc 2.36
MIRROR = os.environ.get("KERAS_EDGE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
DEB_PACKAGES = ("python3", "python3-pip")
HOST_TOOLS = {"qemu-aarch64-static": "qemu-user-static", "debootstrap": "debootstrap", "dpkg-deb": "dpkg"}
TEST_REQUIREMENTS = ("pytest>=8",)
# what the emulated Python runs with pytest: tests/device and the unit tests that need no TensorFlow
DEVICE_TESTS = ("tests/device", "tests/unit/test_bundle.py", "tests/unit/test_pi_sysinfo.py",
                # the clone-root checks are about the repository's layout and a venv's console scripts, not the
                # CPU: test-device and test-device-legacy run them
                "--ignore=tests/device/test_from_the_clone.py")
# The device suite is Python over LiteRT: one emulated core runs it (the Pi 4's, the one without dotprod); the CLI
# tests, verify and the cross-architecture comparisons run on both, where the two cores' int8 kernels differ.
DEVICE_SUITE_BOARDS = ("pi4",)
PYTHON = "python3.11"
LAUNCHER = "python3-emu"
STAMP_FILE = ".keras-edge-stamp"
PROJECT_FILES = ("pyproject.toml", "README.md")
PROJECT_DIRS = ("face", "device", "host", "calibration")


@dataclass(frozen=True)
class Board:
    """An emulated board: the qemu CPU model and the fixture tree whose cpuinfo it shows."""

    name: str
    cpu: str
    title: str

    @property
    def prefix(self) -> Path:
        return ARM_DIR / "boards" / self.name


BOARDS = {b.name: b for b in (Board("pi4", "cortex-a72", "Raspberry Pi 4"),
                              Board("pi5", "cortex-a76", "Raspberry Pi 5"))}


class Unavailable(Exception):
    """This machine cannot run the emulated board; the message says why and what would fix it."""


def log(msg: str) -> None:
    print(f"test-arm: {msg}", file=sys.stderr, flush=True)


def extras() -> dict[str, list[str]]:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["optional-dependencies"]


def requirements() -> tuple[list[str], list[str]]:
    """(what the board env installs: the device extra + pytest, the legacy env: the device-legacy extra)."""
    ex = extras()
    return [*ex["device"], *TEST_REQUIREMENTS], list(ex["device-legacy"])


def stamp() -> str:
    """The cache key of rootfs/ and legacy/: everything that goes into them except this project's code."""
    modern, legacy = requirements()
    key = {"format": FORMAT, "suite": SUITE, "debs": DEB_PACKAGES, "device": modern, "legacy": legacy}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def rootfs() -> Path:
    return ARM_DIR / "rootfs"


def cached() -> bool:
    f = rootfs() / STAMP_FILE
    return f.is_file() and f.read_text().strip() == stamp()


def purelib() -> Path:
    """Debian's posix_local scheme: where a plain ``pip install`` puts packages in the rootfs."""
    return rootfs() / "usr/local/lib" / PYTHON / "dist-packages"


def launcher(board: Board) -> Path:
    """The emulated Python of ``board`` (a host script; see the module docstring)."""
    return board.prefix / "usr/bin" / LAUNCHER


def script(board: Board, name: str) -> Path:
    """A console script pip installed into the rootfs (run it with the emulated Python)."""
    return board.prefix / "usr/local/bin" / name


def legacy_path() -> str:
    return os.pathsep.join(str(p) for p in (ARM_DIR / "legacy-app", ARM_DIR / "legacy"))


def env_for(board: Board, legacy: bool = False) -> dict[str, str]:
    """Environment for the emulated Python: the board's CPU model, no host Python settings."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONUSERBASE")}
    env["QEMU_CPU"] = board.cpu
    # the repository (its face/ is installed as keras_edge) must not shadow the installed wheel: no cwd on sys.path
    env["PYTHONSAFEPATH"] = "1"
    env.pop("QEMU_LD_PREFIX", None)  # the launcher passes -L itself
    if legacy:
        env["PYTHONPATH"] = legacy_path()  # with `python -S`: the legacy dirs and the stdlib, nothing else
    return env


def python_cmd(board: Board, *args: str, legacy: bool = False) -> list[str]:
    """Argument list running the board's emulated Python (``-S`` for the legacy tflite-runtime env)."""
    return [str(launcher(board)), *(["-S"] if legacy else []), *args]


# --- can this machine run it -------------------------------------------------------------------------

def missing_tools() -> list[str]:
    return [t for t in HOST_TOOLS if shutil.which(t) is None]


def check() -> None:
    """Raise Unavailable (with the reason and the fix) when this machine cannot build and run the board."""
    if sys.platform != "linux":
        raise Unavailable(f"qemu user-mode emulation needs Linux (this is {sys.platform})")
    missing = missing_tools()
    root = os.geteuid() == 0
    if missing and not root:
        pkgs = " ".join(sorted({HOST_TOOLS[t] for t in missing}))
        raise Unavailable(f"{', '.join(missing)} not installed and not root to install them; "
                          f"run: sudo apt-get install {pkgs}")
    if missing and shutil.which("apt-get") is None:
        raise Unavailable(f"{', '.join(missing)} not installed and there is no apt-get here")
    if not root and not cached() and shutil.which("fakeroot") is None:
        raise Unavailable("building the arm64 rootfs runs debootstrap, which needs root or fakeroot; "
                          "run `sudo make test-arm` once (later runs reuse build/arm) or install fakeroot")
    if ARM_DIR.exists() and not os.access(ARM_DIR, os.W_OK):
        raise Unavailable(f"{ARM_DIR} is not writable by this user")


def ensure_tools() -> None:
    missing = missing_tools()
    if not missing:
        return
    pkgs = sorted({HOST_TOOLS[t] for t in missing})
    log(f"installing {' '.join(pkgs)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    sh(["apt-get", "update", "-qq"], env=env)
    sh(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *pkgs], env=env)
    if missing_tools():
        raise Unavailable(f"apt-get did not provide {', '.join(missing_tools())}")


# --- building ----------------------------------------------------------------------------------------

def sh(cmd: list[str], **kw) -> None:
    """Run a build step; on failure show its output and stop."""
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        tail = (r.stdout + r.stderr).strip().splitlines()[-25:]
        raise SystemExit(f"test-arm: `{' '.join(cmd[:6])} …` failed ({r.returncode}):\n" + "\n".join(tail))


@contextlib.contextmanager
def step(what: str) -> Iterator[None]:
    t = time.perf_counter()
    log(f"{what} …")
    yield
    log(f"{what}: {time.perf_counter() - t:.0f} s")


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """One builder at a time (two `make test-arm` runs share build/arm)."""
    ARM_DIR.mkdir(parents=True, exist_ok=True)
    with open(ARM_DIR / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def debootstrap(root: Path) -> None:
    cmd = ["debootstrap", "--arch=arm64", "--foreign", "--variant=minbase",
           f"--include={','.join(DEB_PACKAGES)}", SUITE, str(root), MIRROR]
    if os.geteuid() != 0:
        cmd = ["fakeroot", *cmd]
    sh(cmd)


def unpack_debs(root: Path) -> None:
    """What the second stage would do, minus maintainer scripts: extract every downloaded package."""
    debs = sorted((root / "var/cache/apt/archives").glob("*.deb"))
    if not debs:
        raise SystemExit(f"test-arm: debootstrap left no packages in {root}/var/cache/apt/archives")
    for deb in debs:
        dpkg = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        tar = subprocess.run(["tar", "--keep-directory-symlink", "-x", "-C", str(root)], stdin=dpkg.stdout,
                             capture_output=True, text=True)
        dpkg.stdout.close()
        if dpkg.wait() != 0 or tar.returncode != 0:
            raise SystemExit(f"test-arm: unpacking {deb.name} failed: {tar.stderr.strip()[-500:]}")
        deb.unlink()


def finish_rootfs(root: Path) -> None:
    """The bits maintainer scripts would have made, and an empty proc/ (debootstrap links it to the host's)."""
    proc = root / "proc"
    if proc.is_symlink() or proc.is_file():
        proc.unlink()
    proc.mkdir(exist_ok=True)
    # ca-certificates' postinst would build this bundle. The host's is what this machine trusts (it may
    # hold a site proxy's CA that pip needs), so it is copied; else the Mozilla set the rootfs ships.
    bundle, host_bundle = root / "etc/ssl/certs/ca-certificates.crt", Path("/etc/ssl/certs/ca-certificates.crt")
    bundle.parent.mkdir(parents=True, exist_ok=True)
    if host_bundle.is_file():
        shutil.copyfile(host_bundle, bundle)
    else:
        bundle.write_text("".join(c.read_text() for c in sorted((root / "usr/share/ca-certificates").rglob("*.crt"))))
    shutil.rmtree(root / "debootstrap", ignore_errors=True)
    if not (root / "usr/bin" / PYTHON).is_file():
        raise SystemExit(f"test-arm: the rootfs has no /usr/bin/{PYTHON}; debootstrap did not install python3")


def write_launcher(root: Path) -> None:
    """``usr/bin/python3-emu``: runs the rootfs' python under qemu with ``/`` = the prefix it was called in.

    ``-0 "$0"`` makes the emulated Python's sys.executable this launcher, so the children it starts
    (bench workers, subprocess tests) are emulated too. QEMU_CPU comes from the environment.
    """
    qemu = shutil.which("qemu-aarch64-static")
    text = ("#!/bin/sh\n"
            "# keras-edge test-arm: the emulated aarch64 Python (see tests/arm/armenv.py)\n"
            ': "${QEMU_CPU:?set QEMU_CPU to cortex-a72 (Pi 4) or cortex-a76 (Pi 5); qemu max changes int8 results}"\n'
            f'prefix="${{0%/usr/bin/{LAUNCHER}}}"\n'
            f'exec {qemu} -L "$prefix" -0 "$0" "$prefix/usr/bin/{PYTHON}" "$@"\n')
    path = root / "usr/bin" / LAUNCHER
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
        path.chmod(0o755)


def pip_cmd(args: list[str], prefix: Path) -> list[str]:
    return [str(prefix / "usr/bin" / LAUNCHER), "-m", "pip", "install", "--disable-pip-version-check",
            "--no-warn-script-location", "--root-user-action=ignore", "--break-system-packages",
            "--cache-dir", str(ARM_DIR / "cache" / "pip"), *args]


def pip_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, "QEMU_CPU": "cortex-a72"}  # any real core: pip only unpacks and byte-compiles


def emulated_pip(*installs: list[str], prefix: Path) -> None:
    """Run the emulated pip once per argument list, all at once (each is one busy host thread)."""
    logs = ARM_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    running = []
    for i, args in enumerate(installs):
        with open(logs / f"pip-{i}.log", "w") as out:
            running.append((subprocess.Popen(pip_cmd(args, prefix), env=pip_env(), stdout=out, stderr=subprocess.STDOUT),
                            logs / f"pip-{i}.log", args))
    results = [(proc.wait(), log, args) for proc, log, args in running]
    for code, log, args in results:
        if code != 0:
            tail = "\n".join(log.read_text().strip().splitlines()[-25:])
            raise SystemExit(f"test-arm: emulated `pip install {' '.join(args[-4:])}` failed ({code}):\n{tail}")


# Bookworm's glibc is 2.36: every manylinux tag up to it (pip does not widen a custom --platform itself).
ARM64_PLATFORMS = ("manylinux2014_aarch64", *(f"manylinux_2_{v}_aarch64" for v in range(17, 37)))


def host_pip_arm64(requirements: list[str], target: Path) -> None:
    """Install arm64 wheels into ``target`` with the host's pip: wheels are unpacked, not built, so no emulation
    is needed (an emulated pip took ~200 s of the build for the same files). Resolved for CPython 3.11 aarch64."""
    platforms = [a for p in ARM64_PLATFORMS for a in ("--platform", p)]
    sh([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-warn-script-location",
        "--target", str(target), "--only-binary=:all:", "--implementation", "cp", "--python-version", "3.11",
        "--abi", "cp311", *platforms, "--cache-dir", str(ARM_DIR / "cache" / "pip"), *requirements])


def build_cached() -> None:
    """rootfs/ and legacy/, from scratch (the caller checked the stamp)."""
    root, legacy = rootfs(), ARM_DIR / "legacy"
    for d in (root, legacy, ARM_DIR / "legacy-app", ARM_DIR / "boards"):
        shutil.rmtree(d, ignore_errors=True)
    modern, old = requirements()
    with step(f"debootstrap {SUITE} arm64 (first stage) into {root}"):
        debootstrap(root)
    with step("unpacking the downloaded .debs with dpkg-deb"):
        unpack_debs(root)
        finish_rootfs(root)
        write_launcher(root)
    with step(f"host pip for arm64 (wheels only): [{' '.join(modern)}], and into legacy/ [{' '.join(old)}]"):
        host_pip_arm64(modern, purelib())
        host_pip_arm64(old, legacy)
    (root / STAMP_FILE).write_text(stamp() + "\n")  # last: a partial build is never reused


def make_boards() -> None:
    """boards/<name>/: every top-level entry of rootfs as a symlink, except the board's own proc/ and sys/.

    qemu -L looks a path up in the prefix first and falls back to the host's, so what the prefix
    lacks (/dev, /tmp, /sys files not given here) is the host's.
    """
    for board in BOARDS.values():
        tmp = board.prefix.with_name(board.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for entry in sorted(rootfs().iterdir()):
            if entry.name not in ("proc", "sys", "dev", "tmp", "run", STAMP_FILE):
                (tmp / entry.name).symlink_to(Path("../../rootfs") / entry.name)
        fx = FIXTURES / board.name
        (tmp / "proc").mkdir()
        shutil.copy(fx / "proc/cpuinfo", tmp / "proc/cpuinfo")
        # the board name doctor shows: the truth (an emulator), not the fixture's "Raspberry Pi …"
        (tmp / "proc/device-tree").mkdir()
        (tmp / "proc/device-tree/model").write_text(
            f"qemu-aarch64 {board.cpu} with a {board.title} /proc/cpuinfo (keras-edge test-arm)\0")
        cpu = tmp / "sys/devices/system/cpu"
        cpu.mkdir(parents=True)
        for f in ("possible", "present"):  # match the 4 cores of the cpuinfo LiteRT reads
            shutil.copy(fx / "sys/devices/system/cpu" / f, cpu / f)
        shutil.rmtree(board.prefix, ignore_errors=True)
        tmp.rename(board.prefix)


def project_hash() -> str:
    h = hashlib.sha256()
    files = [REPO / f for f in PROJECT_FILES]
    for d in PROJECT_DIRS:
        files += sorted(p for p in (REPO / d).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for f in files:
        h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def install_project() -> None:
    """This project's wheel, built on the host from a clean copy, installed by the emulated pip."""
    stamp_file, want = ARM_DIR / "project.stamp", project_hash()
    if stamp_file.is_file() and stamp_file.read_text().strip() == want:
        log("keras-edge in the rootfs is current")
        return
    src, wheels, app = ARM_DIR / "src", ARM_DIR / "wheel", ARM_DIR / "legacy-app"
    for d in (src, wheels, app):
        shutil.rmtree(d, ignore_errors=True)
    with step("building the keras-edge wheel on the host"):
        src.mkdir(parents=True)
        for f in PROJECT_FILES:
            shutil.copy2(REPO / f, src / f)
        for d in PROJECT_DIRS:
            shutil.copytree(REPO / d, src / d, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        # a copy, so no stale build/lib of the repository ends up in the wheel
        sh([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
            str(src)])
        wheel = next(wheels.glob("keras_edge-*.whl"))
    with step("emulated pip: installing the wheel"):
        emulated_pip(["--no-deps", "--force-reinstall", str(wheel)], prefix=rootfs())
    # the legacy env sees the same installed package (not numpy 2 beside it): links, not a second install
    app.mkdir()
    for entry in sorted(purelib().glob("keras_edge*")):
        (app / entry.name).symlink_to(Path("../rootfs") / entry.relative_to(rootfs()))
    shutil.rmtree(src, ignore_errors=True)
    stamp_file.write_text(want + "\n")


def build() -> None:
    """Build or reuse everything; cheap when nothing changed."""
    check()
    with locked():
        ensure_tools()
        if cached():
            log(f"reusing the cached arm64 rootfs ({rootfs()}, stamp {stamp()})")
        else:
            t = time.perf_counter()
            (ARM_DIR / "project.stamp").unlink(missing_ok=True)
            build_cached()
            log(f"arm64 rootfs built in {time.perf_counter() - t:.0f} s")
        write_launcher(rootfs())
        make_boards()
        install_project()


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "build"
    try:
        if cmd == "check":
            check()
        elif cmd == "build":
            build()
        elif cmd == "python" and len(argv) >= 2 and argv[1] in BOARDS:
            board = BOARDS[argv[1]]
            return subprocess.run(python_cmd(board, *argv[2:]), env=env_for(board)).returncode
        else:
            print(f"usage: armenv.py check | build | python {{{','.join(BOARDS)}}} [ARGS…]", file=sys.stderr)
            return 2
    except Unavailable as e:
        log(f"skipped: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
