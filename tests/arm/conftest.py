"""Fixtures for the emulated aarch64 suite (`make test-arm`).

`make test-arm` builds build/arm (tests/arm/armenv.py) and the host-made fixtures, then runs this
directory with KERAS_EDGE_ARM and KERAS_EDGE_FIXTURES set. Run any other way, the suite is skipped
and says why; run by `make test-arm` with something missing, it fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import armenv  # noqa: E402

TRANSCRIPTS = armenv.ARM_DIR / "transcripts"


@dataclass(frozen=True)
class Emulated:
    """One emulated board: run its Python (or an installed console script) on argument lists."""

    board: armenv.Board

    def python(self, *args: str, legacy: bool = False, env_extra: dict[str, str] | None = None,
               timeout: float = 900) -> subprocess.CompletedProcess:
        env = {**armenv.env_for(self.board, legacy), **(env_extra or {})}
        return subprocess.run(armenv.python_cmd(self.board, *args, legacy=legacy), env=env, cwd=armenv.REPO,
                              capture_output=True, text=True, timeout=timeout)

    def keras_edge(self, *args: str | Path, legacy: bool = False) -> subprocess.CompletedProcess:
        return self.python(str(armenv.script(self.board, "keras-edge")), *map(str, args), legacy=legacy)

    def transcript(self, name: str, argv: list[str], r: subprocess.CompletedProcess) -> Path:
        """Keep what a command printed (build/arm/transcripts/), labelled as emulated."""
        TRANSCRIPTS.mkdir(parents=True, exist_ok=True)
        path = TRANSCRIPTS / f"{self.board.name}-{name}.txt"
        path.write_text(f"# EMULATED: qemu-aarch64 -cpu {self.board.cpu} with a {self.board.title} /proc/cpuinfo on an "
                        f"x86 host; timings are the emulator's, not a board's\n$ keras-edge {' '.join(argv)}\n"
                        f"{r.stdout}{r.stderr}# " + (f"killed by {signal.Signals(-r.returncode).name}" if r.returncode < 0
                                                     else f"exit status {r.returncode}") + "\n")
        return path


def _fail_or_skip(reason: str):
    if os.environ.get("KERAS_EDGE_ARM"):
        pytest.fail(f"{reason} (run `make test-arm`)", pytrace=False)
    pytest.skip(f"emulated aarch64 suite: {reason}; it runs under `make test-arm`")


@pytest.fixture(scope="session")
def fixtures() -> Path:
    root = os.environ.get("KERAS_EDGE_FIXTURES")
    if not root or not (Path(root) / "bundles/digits/manifest.json").is_file():
        _fail_or_skip("KERAS_EDGE_FIXTURES does not point at the demo fixtures")
    return Path(root)


@pytest.fixture(scope="session")
def bundle(fixtures) -> Path:
    return fixtures / "bundles" / "digits"


@pytest.fixture(scope="session")
def arm_ready() -> None:
    if not os.environ.get("KERAS_EDGE_ARM"):
        _fail_or_skip("KERAS_EDGE_ARM is not set")
    if not armenv.cached() or not all(armenv.launcher(b).is_file() for b in armenv.BOARDS.values()):
        _fail_or_skip(f"no built arm64 rootfs in {armenv.ARM_DIR}")


DEVICE_TEST_NAME = "test_device_tests_pass_under_emulated_python"


@pytest.fixture(scope="session")
def device_suites(request, arm_ready, fixtures, tmp_path_factory) -> Iterator[dict[str, tuple[subprocess.Popen, Path]]]:
    """The device tests under each emulated board, started together in the background.

    They are the longest part (each emulated Python is one busy host thread), so they run while the
    CLI tests run; the test named DEVICE_TEST_NAME waits for its board's result.
    """
    wanted = {item.callspec.params.get("suite_board") for item in request.session.items
              if item.originalname == DEVICE_TEST_NAME and hasattr(item, "callspec")}
    logs = tmp_path_factory.mktemp("device-tests")
    procs: dict[str, tuple[subprocess.Popen, Path]] = {}
    for name in sorted(wanted & set(armenv.BOARDS)):
        b, log = armenv.BOARDS[name], logs / f"{name}.log"
        with open(log, "w") as out:
            procs[name] = (subprocess.Popen(
                armenv.python_cmd(b, "-m", "pytest", "-q", "-p", "no:cacheprovider", *armenv.DEVICE_TESTS),
                env={**armenv.env_for(b), "KERAS_EDGE_FIXTURES": str(fixtures)}, cwd=armenv.REPO,
                stdout=out, stderr=subprocess.STDOUT), log)
    yield procs
    for proc, _ in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module", params=sorted(armenv.BOARDS), ids=lambda n: f"{n}-{armenv.BOARDS[n].cpu}")
def board(request, arm_ready, device_suites) -> Emulated:
    return Emulated(armenv.BOARDS[request.param])
