"""Deploy bundles to boards over SSH: atomic, verified, reversible, many boards at once.

Per board: one ssh call prepares (tools, links, checks an existing copy), one copy (rsync, or a
tar stream when rsync is missing) goes into a hidden partial directory, and one ssh call verifies
that copy on the board, renames it into place and switches ``current`` with a single rename. A
killed deploy leaves only a partial directory that no link points to; the next deploy removes it.

This module imports no TensorFlow: deploy, rollback and remote benchmarks work from any
environment that has the OpenSSH client (and ideally rsync).
"""

from __future__ import annotations


import contextlib
import getpass
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from keras_edge.device.contract import bundle
from keras_edge.device.contract import positive_int
from keras_edge.device.contract import BundleError, ConfigError, EdgeError
from keras_edge.host.errors import RemoteError

from . import scripts
from .service import ServeSpec, serve_on_board
from .ssh import ScriptResult, SshOptions, Target, TransferStats, have_local_rsync, rsync_push, run_script, tar_push

SUMS = "SHA256SUMS"
_NAME = bundle.NAME
_VERSION = re.compile(r"[0-9a-f]{12}")

Events = Callable[[str, str], None]  # (host as given, one line of progress)


class Transport(StrEnum):
    AUTO = "auto"    # rsync when both sides have it, else tar over ssh
    RSYNC = "rsync"
    TAR = "tar"


class Outcome(StrEnum):
    DEPLOYED = "deployed"        # copied, verified on the board, made current
    REPAIRED = "repaired"        # the board's copy of this version was damaged and has been replaced
    SWITCHED = "switched"        # this version was already on the board (verified) and is now current
    UNCHANGED = "unchanged"      # already current and verified: nothing sent
    ROLLED_BACK = "rolled back"  # rollback, or a staged rollout undoing a failed batch
    SKIPPED = "skipped"          # a staged rollout stopped before this board's batch: untouched
    FAILED = "failed"


@dataclass(frozen=True)
class DeployConfig:
    """What to deploy and how; validated on construction."""

    bundle_dir: Path
    keep: int = 3
    transport: Transport = Transport.AUTO
    bwlimit_kbps: int | None = None
    install_runner: bool = False
    wheel: Path | None = None
    ssh: SshOptions = field(default_factory=SshOptions)
    jobs: int = 8
    lock_wait_s: int = 120      # how long a deploy waits for another one on the same board
    lock_stale_s: int = 3600    # a lock older than this is taken over (its deploy was killed)
    serve: ServeSpec | None = None   # also run `keras-edge serve` on the bundle as a systemd user unit

    def __post_init__(self) -> None:
        object.__setattr__(self, "bundle_dir", Path(self.bundle_dir))
        object.__setattr__(self, "transport", Transport(self.transport))
        positive_int("keep", self.keep, "at least 1 (0 would remove every version)")
        positive_int("jobs", self.jobs, "at least 1 board at once")
        positive_int("lock_stale_s", self.lock_stale_s, "a positive number of seconds")
        if not isinstance(self.lock_wait_s, int) or self.lock_wait_s < 0:
            raise ConfigError("lock_wait_s", f"{self.lock_wait_s!r} is not a number of seconds", "give 0 or more")
        if self.bwlimit_kbps is not None:
            positive_int("bwlimit_kbps", self.bwlimit_kbps, "a positive number of KiB/s")
        if self.wheel is not None:
            wheel = Path(self.wheel)
            if not wheel.is_file() or wheel.suffix != ".whl":
                raise ConfigError("wheel", f"{wheel} is not a wheel file", "give a .whl built from keras-edge, or leave it out")
            if not self.install_runner:
                raise ConfigError("wheel", "only makes sense when installing the runner", "add install_runner")


@dataclass(frozen=True)
class HostResult:
    """What happened on one board."""

    host: str
    outcome: Outcome
    version: str = ""
    previous: str = ""
    files_sent: int = 0
    bytes_sent: int = 0
    verified_by: str = ""
    board: str = ""
    runtime: str = ""
    pruned: tuple[str, ...] = ()
    seconds: float = 0.0
    error: str = ""
    batch: int = 0            # staged rollouts: 1 is the canary
    serve: str = ""           # deploy --serve: what became of the board's server

    @property
    def ok(self) -> bool:
        return self.outcome is not Outcome.FAILED

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["outcome"] = str(self.outcome)
        d["pruned"] = list(self.pruned)
        d["ok"] = self.ok
        return d


@dataclass(frozen=True)
class BundlePlan:
    """A bundle checked on the workstation, ready to send: name, version, files and checksums."""

    directory: Path
    name: str
    version: str
    files: tuple[tuple[Path, str], ...]   # (local path, name inside the bundle), SHA256SUMS included
    sums: tuple[tuple[str, str], ...]     # (sha256, name) that the board checks
    staging: Path                         # symlinks to `files`: one rsync source, nothing else in it

    @property
    def sums_args(self) -> list[str]:
        return [x for pair in self.sums for x in pair]

    @property
    def bytes(self) -> int:
        return sum(path.stat().st_size for path, _ in self.files)

    def kib_needed(self, copies: int = 1) -> int:
        """Free space a board needs for ``copies`` full copies, with 10% and 64 KiB to spare."""
        return int(copies * self.bytes * 1.1 / 1024) + 64


def lock_owner(what: str = "deploy") -> str:
    """Who holds a board's lock, as the board shows it to a second deploy: user, workstation, process."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return f"keras-edge {what} by {user}@{socket.gethostname()} pid {os.getpid()} at {stamp} ({os.urandom(3).hex()})"


_OWNER = re.compile(r"^keras-edge \S+ by \S+@(\S+) pid (\d+) ")


def owner_is_dead(owner: str) -> bool:
    """True when ``owner`` names a process on this workstation that no longer runs (a killed deploy)."""
    m = _OWNER.match(owner)
    if not m or m.group(1) != socket.gethostname():
        return False
    return _pid_dead(int(m.group(2)))


def lock_failure(result: ScriptResult, stale_s: int) -> RemoteError:
    return RemoteError(result.get("error") or "another deploy holds the board's lock",
                       f"wait for that deploy to end and run this one again; a lock left by a killed deploy is taken "
                       f"over after {stale_s}s, or at once by a deploy from the workstation that ran it")


# what travels besides the manifest and the files it names: the bundle's report, for people and `report`
REPORT_FILES = (bundle.REPORT_JSON, bundle.REPORT_MD, "report.png")
# a file name that means the same to rsync, tar, a board's shell and Ansible: no spaces, quotes, braces, `$`…
SAFE_PATH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*(/[A-Za-z0-9][A-Za-z0-9._+-]*)*")


def bundle_files(src: Path, manifest: bundle.Manifest) -> list[str]:
    """The files of a bundle that travel to a board: the manifest, the files it names, the report files.

    A bundle comes from anyone, so it is refused (one line) when it holds a symlink anywhere, a file
    or folder its manifest does not name, a named file that is not a regular file, or a name that
    rsync, tar, a shell or Ansible could read otherwise. Hidden entries (temporary files) never travel.
    """
    named = [bundle.MANIFEST, *(v.file for v in manifest.usable if v.file), manifest.labels, manifest.reference,
             *(manifest.postprocess.files if manifest.postprocess else ())]
    wanted = {n for n in named if n} | {n for n in REPORT_FILES if os.path.lexists(src / n)}
    for rel in sorted(wanted):
        if not SAFE_PATH.fullmatch(rel):
            raise BundleError(f"bundle file name {rel!r} has characters a board's shell or Ansible could misread",
                              "rename it to letters, digits, '.', '_', '+' and '-' (convert again)")
    parents = {str(Path(rel).parent) for rel in wanted} - {"."}
    parents |= {str(p) for rel in parents for p in Path(rel).parents if str(p) != "."}
    for path in _entries(src):
        rel = path.relative_to(src).as_posix()
        if path.is_symlink():
            raise BundleError(f"bundle {src} holds a symlink, {rel} -> {os.readlink(path)}; refusing to deploy it",
                              "a bundle is copied as it is, never through links: replace the link with the file or "
                              "remove it")
        if rel in wanted or rel in parents or rel == SUMS:
            continue
        raise BundleError(f"bundle {src} holds {rel}{'/' if path.is_dir() else ''}, which its manifest does not name; "
                          "refusing to deploy it", "move it out of the bundle: only the files the manifest names travel")
    for rel in sorted(wanted):
        if not (src / rel).is_file():
            raise BundleError(f"bundle file {rel} is missing or not a regular file", "copy the whole bundle again")
    return sorted(wanted)


def _entries(root: Path):
    """Every non-hidden entry under ``root``, symlinks reported and never followed."""
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as it:
            for e in sorted(it, key=lambda e: e.name):
                if e.name.startswith("."):
                    continue
                path = Path(e.path)
                yield path
                if e.is_dir(follow_symlinks=False):
                    stack.append(path)


def plan_bundle(bundle_dir: str | os.PathLike, workdir: Path) -> BundlePlan:
    """Check a bundle on the workstation and stage what goes to the boards (in ``workdir``).

    A bundle damaged here is refused before any board is touched, and so is one that holds anything
    but what its manifest names (:func:`bundle_files`). The checksum list holds the manifest (whose
    hash is the version), each variant's sha256 from the manifest, and every other file the runner
    reads (labels, reference, anchors, embeddings).
    """
    src = Path(bundle_dir)
    manifest = bundle.read_manifest(src)
    check_name(manifest.name)
    names = bundle_files(src, manifest)
    for variant in manifest.usable:
        bundle.check_variant(src, variant)
    version = bundle.content_hash(src)
    sums = [(bundle.sha256_file(src / bundle.MANIFEST), bundle.MANIFEST)]
    sums += [(v.sha256 or bundle.sha256_file(src / v.file), v.file) for v in manifest.usable if v.file]
    extras = [manifest.labels, manifest.reference, *(manifest.postprocess.files if manifest.postprocess else ())]
    for extra in dict.fromkeys(e for e in extras if e):
        sums.append((bundle.sha256_file(src / extra), extra))
    staging = workdir / "staging"
    staging.mkdir(parents=True)
    (staging / SUMS).write_text("".join(f"{h}  {n}\n" for h, n in sums), encoding="utf-8")
    files: list[tuple[Path, str]] = []
    for rel in names:
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).symlink_to((src / rel).resolve())   # a checked regular file of the bundle
        files.append((src / rel, rel))
    files.append((staging / SUMS, SUMS))
    return BundlePlan(src, manifest.name, version, tuple(files), tuple(sums), staging)


@contextlib.contextmanager
def work_dir(kind: str) -> Iterator[Path]:
    """A temporary folder for one run, named after this process; the folders of killed runs go first."""
    base = Path(tempfile.gettempdir())
    pattern = re.compile(rf"keras-edge-{kind}-(\d+)-[A-Za-z0-9_]+")
    for p in base.glob(f"keras-edge-{kind}-*"):
        m = pattern.fullmatch(p.name)
        try:
            mine = p.is_dir() and not p.is_symlink() and p.stat().st_uid == os.getuid()
        except OSError:
            continue
        if m and mine and _pid_dead(int(m.group(1))):
            shutil.rmtree(p, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=f"keras-edge-{kind}-{os.getpid()}-") as tmp:
        yield Path(tmp)


def _pid_dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def deploy_many(config: DeployConfig, hosts: Sequence[str], on_event: Events | None = None) -> list[HostResult]:
    """Deploy one bundle to several boards in parallel; one board failing does not stop the others."""
    hosts = list(dict.fromkeys(hosts))  # the same board twice would race with itself
    if not hosts:
        raise EdgeError("no host given", "name at least one board, e.g. pi@raspberrypi.local")
    for host in hosts:  # a misspelt destination is refused before any board is touched
        Target.parse(host)
    say = on_event or (lambda host, line: None)
    owner = lock_owner()
    with work_dir("deploy") as tmp:
        plan = plan_bundle(config.bundle_dir, tmp)
        wheel = None
        if config.install_runner:
            wheel = config.wheel or build_wheel(tmp / "wheel")
        with ThreadPoolExecutor(max_workers=min(config.jobs, len(hosts))) as pool:
            return list(pool.map(lambda h: deploy_host(plan, config, h, wheel, say, owner), hosts))


def deploy_host(plan: BundlePlan, config: DeployConfig, host: str, wheel: Path | None, say: Events,
                owner: str | None = None) -> HostResult:
    """Deploy a planned bundle to one board; failures come back as a FAILED result, not an exception."""
    start = time.perf_counter()
    try:
        return _deploy(plan, config, Target.parse(host), wheel, lambda line: say(host, line), start,
                       owner or lock_owner())
    except EdgeError as e:
        say(host, f"failed: {e}")
        return HostResult(host, Outcome.FAILED, version=plan.version, seconds=time.perf_counter() - start, error=str(e))


def prepare_locked(plan: BundlePlan, config: DeployConfig, target: Target, owner: str, need_kib: int,
                   say: Callable[[str], None]) -> ScriptResult:
    """Run the board's prepare script, which takes the board's lock for ``owner`` (waiting for another
    deploy); a lock whose owner is a dead process of this workstation is taken over at once."""
    def prepare(wait_s: int, break_owner: str = "") -> ScriptResult:
        return run_script(target, config.ssh, scripts.PREPARE,
                          [plan.name, plan.version, str(need_kib), owner, str(wait_s),
                           str(config.lock_stale_s), break_owner, *plan.sums_args])
    prep = prepare(0)
    if prep.returncode == 4 and owner_is_dead(prep.get("locked_by")):
        say(f"taking over the lock of a deploy that no longer runs ({prep.get('locked_by')})")
        prep = prepare(0, prep.get("locked_by"))
    elif prep.returncode == 4 and config.lock_wait_s:
        say(f"waiting up to {config.lock_wait_s}s for another deploy on this board ({prep.get('locked_by')})")
        prep = prepare(config.lock_wait_s)
    if prep.returncode == 4:
        raise lock_failure(prep, config.lock_stale_s)
    if prep.get("lock_waited"):
        say(f"waited {prep.get('lock_waited')}s for another deploy on this board ({prep.get('lock_waiting_for')})")
    if prep.returncode == 5:
        raise RemoteError(prep.get("error"), "free space on the board (old bundles: deploy with a smaller --keep), then deploy again")
    _check(prep, "preparing the board")
    return prep


def _deploy(plan: BundlePlan, config: DeployConfig, target: Target, wheel: Path | None,
            say: Callable[[str], None], start: float, owner: str) -> HostResult:
    ssh = config.ssh
    runtime = _install_runner(target, ssh, wheel, say) if wheel else ""
    prep = prepare_locked(plan, config, target, owner, plan.kib_needed(), say)
    try:
        return _deploy_locked(plan, config, target, prep, say, start, owner, runtime)
    except EdgeError:
        try:  # the activate script releases the lock itself; any earlier failure releases it here
            run_script(target, ssh, scripts.UNLOCK, [plan.name, owner])
        except EdgeError:
            pass
        raise


def _deploy_locked(plan: BundlePlan, config: DeployConfig, target: Target, prep: ScriptResult,
                   say: Callable[[str], None], start: float, owner: str, runtime: str) -> HostResult:
    ssh = config.ssh
    board = describe_board(prep.values)
    current = prep.get("current")
    say(f"connected: {board}; current {current or 'none'}")
    have = prep.get("have")
    sent, verified_by, outcome = TransferStats(0, 0), prep.get("verified_by"), Outcome.SWITCHED
    partial = ""
    if have == "valid":
        if current == plan.version:
            outcome = Outcome.UNCHANGED
        say(f"{plan.version} is already on the board and verified ({verified_by}); nothing to copy")
    else:
        if have == "damaged":
            say(f"the board's copy of {plan.version} is damaged ({prep.get('verify_error')}); copying it again")
        partial = prep.get("partial")
        sent = _copy(plan, config, target, prep, partial, say)
        outcome = Outcome.REPAIRED if have == "damaged" else Outcome.DEPLOYED
    act = run_script(target, ssh, scripts.ACTIVATE, [plan.name, plan.version, partial, str(config.keep), owner,
                                                      *plan.sums_args])
    if act.returncode != 0:
        # a real folder named current is refused by prepare, so an empty current here is truly unset
        raise RemoteError(act.failure(), "nothing was switched" + (f": current is still {current}" if current else ""))
    verified_by = act.get("verified_by") or verified_by
    pruned = tuple(v for k, v in _pairs(act.stdout) if k == "pruned")
    say(f"{outcome}: current -> {act.get('current')} (verified: {verified_by})"
        + (f"; removed {', '.join(pruned)}" if pruned else ""))
    served = ""
    if config.serve is not None:
        line = serve_on_board(target, ssh, plan.name, config.serve).describe()
        say(line)
        served = line.removeprefix("serve: ")
    return HostResult(target.spec, outcome, version=plan.version, previous=act.get("previous"),
                      files_sent=sent.files, bytes_sent=sent.bytes, verified_by=verified_by, board=board,
                      runtime=runtime, pruned=pruned, seconds=time.perf_counter() - start, serve=served)


def _copy(plan: BundlePlan, config: DeployConfig, target: Target, prep: ScriptResult, partial: str,
          say: Callable[[str], None]) -> TransferStats:
    if not partial:
        raise RemoteError("the board made no directory to copy into", "run the deploy again")
    transport = _transport(config.transport, prep)
    say(f"copying {plan.version} ({len(plan.files)} files) with {transport}")
    if transport is Transport.TAR:
        if config.bwlimit_kbps:
            say("--bwlimit applies to rsync only: this copy runs at full speed")
        return tar_push(target, config.ssh, plan.files, partial)
    bundle_dir = prep.get("dir")
    link = [f"{bundle_dir}/{v}" for v in dict.fromkeys([plan.version, prep.get("current"), prep.get("previous")])
            if _VERSION.fullmatch(v or "") and (v != plan.version or prep.get("have") == "damaged")]
    return rsync_push(target, config.ssh, [f"{plan.staging}/"], partial, link_dest=link,
                      bwlimit_kbps=config.bwlimit_kbps)


def _transport(wanted: Transport, prep: ScriptResult) -> Transport:
    board_rsync, board_tar = prep.get("has_rsync") == "yes", prep.get("has_tar") == "yes"
    if wanted is Transport.RSYNC and not (board_rsync and have_local_rsync()):
        where = "the board" if not board_rsync else "this workstation"
        raise RemoteError(f"rsync is not installed on {where}", "install rsync, or copy with the tar transport")
    if wanted is Transport.AUTO:
        wanted = Transport.RSYNC if board_rsync and have_local_rsync() else Transport.TAR
    if wanted is Transport.TAR and not board_tar:
        raise RemoteError("the board has neither rsync nor tar", "install rsync on the board")
    return wanted


def _check(result: ScriptResult, doing: str) -> None:
    if result.returncode != 0:
        raise RemoteError(f"{doing} failed: {result.failure()}")


def _pairs(stdout: str) -> list[tuple[str, str]]:
    return [tuple(line.split("=", 1)) for line in stdout.splitlines() if "=" in line]  # type: ignore[misc]


def describe_board(facts: dict[str, str]) -> str:
    """One short line for a board: model or CPU, architecture, OS."""
    what = facts.get("model") or facts.get("cpu") or facts.get("hostname") or "board"
    parts = [what, facts.get("arch", ""), facts.get("os", "")]
    return ", ".join(p for p in parts if p)


def board_fingerprint(facts: dict[str, str]) -> str:
    """A stable key for a kind of board: model (or CPU), architecture and OS release."""
    base = facts.get("model") or facts.get("cpu") or facts.get("hostname") or "board"
    text = " ".join(p for p in (base, facts.get("arch", ""), facts.get("os_id", "")) if p)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "board"


# ---------------------------------------------------------------- rollback

def check_name(name: str) -> str:
    """A bundle name as it becomes a folder on a board and a word to ssh, a shell and Ansible: a safe alphabet."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise BundleError(f"{name!r} is not a bundle name a board can take",
                          "bundle names are letters, digits, '.', '_' and '-' (convert again with --name)")
    return name


def rollback_many(name: str, hosts: Sequence[str], ssh: SshOptions | None = None, jobs: int = 8,
                  on_event: Events | None = None) -> list[HostResult]:
    """Switch each board's ``current`` back to its ``previous`` version, after verifying it there."""
    if not _NAME.fullmatch(name):
        raise EdgeError(f"{name!r} is not a bundle name", "give the name from the bundle's manifest, e.g. digits")
    hosts = list(dict.fromkeys(hosts))
    if not hosts:
        raise EdgeError("no host given", "name at least one board")
    for host in hosts:
        Target.parse(host)
    say = on_event or (lambda host, line: None)
    ssh = ssh or SshOptions()
    with ThreadPoolExecutor(max_workers=min(jobs, len(hosts))) as pool:
        return list(pool.map(lambda h: rollback_host(name, h, ssh, say), hosts))


def rollback_host(name: str, host: str, ssh: SshOptions, say: Events) -> HostResult:
    start = time.perf_counter()
    target, owner = Target.parse(host), lock_owner("rollback")

    def rollback(wait_s: int, break_owner: str = "") -> ScriptResult:
        return run_script(target, ssh, scripts.ROLLBACK, [name, owner, str(wait_s), "3600", break_owner])
    try:
        result = rollback(0)
        held = result.get("locked_by")
        if result.returncode == 4 and owner_is_dead(held):   # a killed deploy's: take it over, as deploy does
            say(host, f"taking over the lock of a deploy that no longer runs ({held})")
            result = rollback(0, held)
        elif result.returncode == 4:
            say(host, f"waiting up to 120s for another deploy on this board ({held})")
            result = rollback(120)
        if result.returncode == 4:
            raise lock_failure(result, 3600)
        if result.returncode != 0:
            raise RemoteError(result.failure(), "nothing was switched")
    except EdgeError as e:
        say(host, f"failed: {e}")
        return HostResult(host, Outcome.FAILED, seconds=time.perf_counter() - start, error=str(e))
    say(host, f"rolled back: current -> {result.get('current')} (was {result.get('previous')}; "
              f"verified: {result.get('verified_by')})")
    return HostResult(host, Outcome.ROLLED_BACK, version=result.get("current"), previous=result.get("previous"),
                      verified_by=result.get("verified_by"), seconds=time.perf_counter() - start)


# ---------------------------------------------------------------- the runner on the board

def project_root() -> Path:
    """The source tree this keras-edge runs from (needed to build a wheel of it)."""
    root = Path(__file__).resolve().parents[2]   # host/deploy/core.py → the repository
    if not (root / "pyproject.toml").is_file() or not (root / "face" / "cli.py").is_file():
        raise ConfigError("wheel", "is needed: this keras-edge is not installed from a source tree, so no wheel "
                          "can be built here", "give a keras-edge wheel file")
    return root


def build_wheel(out_dir: Path) -> Path:
    """Build a wheel of this project into ``out_dir`` (offline: no build isolation, no dependencies).

    The sources are copied to a temporary directory first, so the build leaves nothing in the tree.
    """
    root = project_root()
    out_dir.mkdir(parents=True, exist_ok=True)
    with work_dir("wheel") as tmp:
        src = tmp / "src"
        src.mkdir()
        for name in os.listdir(root):
            if name in ("pyproject.toml", "setup.cfg", "MANIFEST.in") or name.startswith(("README", "LICENSE")):
                shutil.copy2(root / name, src / name)
        for pkg in ("face", "host", "device", "calibration"):
            shutil.copytree(root / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                "--disable-pip-version-check", "-q", "-w", str(out_dir), str(src)]
        proc = subprocess.run(argv, capture_output=True, text=True)
    wheels = sorted(out_dir.glob("keras_edge-*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no wheel was written"])[-1]
        raise EdgeError(f"building the keras-edge wheel failed: {last}",
                        "install the build tools (pip install setuptools wheel) or pass --wheel FILE")
    return wheels[-1]


def _install_runner(target: Target, ssh: SshOptions, wheel: Path, say: Callable[[str], None]) -> str:
    say(f"installing the runner ({wheel.name})")
    prep = run_script(target, ssh, scripts.RUNNER_DIR, [])
    _check(prep, "preparing the runner install")
    if not prep.get("python"):
        raise RemoteError("python3 is not installed on the board",
                          "install it there: sudo apt-get install python3 python3-venv")
    wheels = prep.get("wheels")
    if prep.get("has_rsync") == "yes" and have_local_rsync():
        rsync_push(target, ssh, [wheel], wheels)
    else:
        tar_push(target, ssh, [(wheel, wheel.name)], wheels)
    result = run_script(target, ssh, scripts.INSTALL_RUNNER, [f"{wheels}/{wheel.name}"])
    _check(result, "installing the runner")
    runtime = summarize_doctor(result)
    if result.get("doctor_status") != "0":
        raise RemoteError(f"the runner is installed but `keras-edge doctor` finds no usable runtime there ({runtime})",
                          "see ~/keras-edge/doctor.json on the board")
    say(f"runner {result.get('version')} installed; {runtime}")
    return runtime


def summarize_doctor(result: ScriptResult) -> str:
    """The runtime the board's runner selected, from what `keras-edge doctor --json` printed there."""
    try:
        doc = json.loads(result.get("doctor_json"))
    except json.JSONDecodeError:
        return ""
    runtime = doc.get("selected_runtime") if isinstance(doc, dict) else None
    return f"runtime {runtime}" if runtime else "no usable runtime"
