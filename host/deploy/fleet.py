"""Fleets: deploy, roll back and benchmark through Ansible (``--inventory``), with staged rollouts.

keras-edge runs the playbooks shipped in ``ansible/`` with the user's own ``ansible-playbook``
(the optional ``fleet`` extra installs ansible-core). The board side is the same scripts as a
plain ``deploy HOST...`` (lock, free-space check, partial directory, sha256, on-board verify,
rename, atomic switch, --keep); the playbook adds batches (a canary, then ``serial``), a health
gate after each batch and the automatic rollback of a failing batch. The playbook writes one
JSON file per batch on the control node; this module reads them into the summary.

Nothing here imports Ansible: it is called as a program, so the small case (hosts on the
command line) never needs it, and a missing Ansible is one clear error.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from keras_edge.device.contract import bundle
from keras_edge.device.contract import ConfigError, EdgeError, positive_int
from keras_edge.device.contract.files import parse_json, read_json

from ..report.contract import BoardRun, Report, bench_problem, read_report, write_report_json
from .core import BundlePlan, HostResult, Outcome, board_fingerprint, check_name, lock_owner, plan_bundle, work_dir
from .service import ServeSpec
from .ssh import SshOptions

PLAYBOOKS = Path(__file__).resolve().parent / "ansible"
_SERIAL = re.compile(r"^([1-9][0-9]*)(%?)$")

Lines = Callable[[str], None]


@dataclass(frozen=True)
class Inventory:
    """An Ansible inventory and the host pattern to act on (``limit``, as ``ansible-playbook --limit``)."""

    inventory: Path
    limit: str | None = None
    forks: int = 16
    ssh: SshOptions = field(default_factory=SshOptions)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inventory", Path(self.inventory))
        no_template("inventory", str(self.inventory))
        if self.limit is not None:
            no_template("limit", self.limit)
        for opt in self.ssh.options:
            no_template("ssh_option", opt)
        if self.ssh.config is not None:
            no_template("ssh_config", str(self.ssh.config))
        if not self.inventory.exists():
            raise ConfigError("inventory", f"{self.inventory} does not exist", "give an Ansible inventory file or directory")
        if self.limit is not None and (not self.limit.strip() or self.limit.startswith("-")):
            raise ConfigError("limit", f"{self.limit!r} is not a host pattern", "give a group or host pattern, e.g. canary or 'pis:!lab'")
        positive_int("forks", self.forks, "at least 1 board at once")


@dataclass(frozen=True)
class FleetConfig:
    """A staged rollout of one bundle over an inventory; validated on construction."""

    bundle_dir: Path
    fleet: Inventory
    serial: str = "25%"                 # batch size after the canary: N boards or N% of them
    max_fail_percentage: int = 0        # a batch with more failed boards than this stops the rollout
    keep: int = 3
    latency_ceiling: float | None = None   # health gate: p50 <= this x the bundle's board benchmark
    lock_wait_s: int = 120
    lock_stale_s: int = 3600
    serve: ServeSpec | None = None      # also run `keras-edge serve` on each board (a systemd user unit)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bundle_dir", Path(self.bundle_dir))
        object.__setattr__(self, "serial", str(self.serial).strip())
        m = _SERIAL.match(self.serial)
        if not m or (m.group(2) and int(m.group(1)) > 100):
            raise ConfigError("serial", f"{self.serial!r} is not a batch size",
                              "give a number of boards (e.g. 4) or a percentage from 1% to 100% (e.g. 25%)")
        if not isinstance(self.max_fail_percentage, int) or not 0 <= self.max_fail_percentage <= 100:
            raise ConfigError("max_fail_percentage", f"{self.max_fail_percentage!r} is not a percentage", "give 0 to 100")
        positive_int("keep", self.keep, "at least 1 (0 would remove every version)")
        if self.latency_ceiling is not None and not self.latency_ceiling >= 1.0:
            raise ConfigError("latency_ceiling", f"{self.latency_ceiling!r} is below 1",
                              "give a factor of the board benchmark's p50 of at least 1, e.g. 1.5")
        positive_int("lock_stale_s", self.lock_stale_s, "a positive number of seconds")

    def planned_batches(self, hosts: int) -> int:
        """How many batches Ansible makes of ``hosts`` boards: the canary, then batches of ``serial``."""
        n = int(self.serial.rstrip("%"))
        size = max(1, int(hosts * n / 100)) if self.serial.endswith("%") else n
        return 1 + -(-(hosts - 1) // size) if hosts > 1 else hosts

    @property
    def batches(self) -> list[Any]:
        """Ansible's ``serial``: a canary board first, then batches of ``serial``."""
        n = int(self.serial.rstrip("%"))
        return [1, self.serial if self.serial.endswith("%") else n]


@dataclass(frozen=True)
class FleetRun:
    """What a fleet command did: a result per host (in inventory order), its batches, and the time."""

    results: list[HostResult]
    batches: list[list[str]]
    stopped: bool          # a batch failed: it was rolled back and later batches never started
    seconds: float
    planned: int = 0       # batches the rollout would have had

    def to_dict(self) -> dict[str, Any]:
        return {"stopped": self.stopped, "seconds": round(self.seconds, 2), "planned_batches": self.planned,
                "batches": self.batches,
                "hosts": [r.to_dict() for r in self.results]}


# ---------------------------------------------------------------- Ansible as a program

def ansible_program(name: str) -> str:
    """``ansible-playbook`` (or ``ansible``) beside this Python first, then on PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return check_ansible_version(str(here), name)
    found = shutil.which(name)
    if found is None:
        raise EdgeError("--inventory runs the rollout with Ansible, which is not installed here",
                        "pip install 'keras-edge[fleet]' (ansible-core), or name the boards on the command line instead")
    return check_ansible_version(found, name)


# ansible-core 2.19 tags what a module returns as untrusted, whatever filters it goes through: a board's reply
# can never become a template. Before it, registered output was marked unsafe, but some filters dropped the mark.
MIN_ANSIBLE = (2, 19)


@functools.lru_cache(maxsize=None)
def check_ansible_version(program: str, name: str) -> str:
    """``program``, after refusing (one line) an ``ansible-playbook`` older than :data:`MIN_ANSIBLE`: it is what
    runs the boards' replies through templates (``ansible --list-hosts`` reads only the inventory)."""
    if name != "ansible-playbook":
        return program
    proc = subprocess.run([program, "--version"], capture_output=True, text=True, env=_env())
    m = re.search(r"core (\d+)\.(\d+)", proc.stdout)
    if m and (int(m.group(1)), int(m.group(2))) < MIN_ANSIBLE:
        raise EdgeError(f"{program} is ansible-core {m.group(1)}.{m.group(2)}; keras-edge needs "
                        f"{'.'.join(map(str, MIN_ANSIBLE))} or later, which never templates what a board replies",
                        "pip install 'keras-edge[fleet]' (or pip install -U ansible-core)")
    return program


# ssh's ControlPath is a unix socket: its whole path must fit sun_path (108 bytes), and Ansible names it by a
# 40-character hash (%C) inside the directory
SOCKET_DIR_MAX = 108 - 1 - 41 - 8


@contextlib.contextmanager
def _control_dir(workdir: Path) -> Iterator[Path]:
    """Where this run's ssh masters live: the run's own folder, or (when its path is too long for a socket,
    as under a deep TMPDIR) a private folder in /tmp, removed afterwards."""
    if len(os.fsencode(workdir / "cp")) <= SOCKET_DIR_MAX:
        yield workdir / "cp"
        return
    base = "/tmp" if os.access("/tmp", os.W_OK | os.X_OK) else None
    short = Path(tempfile.mkdtemp(prefix="ke-cp-", dir=base))   # mode 700
    try:
        yield short
    finally:
        shutil.rmtree(short, ignore_errors=True)


def _env(control_dir: Path | None = None) -> dict[str, str]:
    # ssh connections are shared within one run only: a master kept from an earlier run could reach
    # whatever answered on that address then, not the board the inventory names now
    cp = {"ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir)} if control_dir else {}
    return {**os.environ, **cp, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_PIPELINING": "1",
            "ANSIBLE_PYTHON_INTERPRETER": "auto_silent", "ANSIBLE_DEPRECATION_WARNINGS": "0",
            "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            "ANSIBLE_DISPLAY_SKIPPED_HOSTS": "0", "ANSIBLE_ROLES_PATH": str(PLAYBOOKS / "roles"), "LC_ALL": "C.UTF-8"}


def _ssh_args(fleet: Inventory) -> list[str]:
    common = ([f"-F {shlex.quote(str(fleet.ssh.config))}"] if fleet.ssh.config else []) + \
             [f"-o {shlex.quote(o)}" for o in fleet.ssh.options]
    return ([f"--ssh-common-args={' '.join(common)}"] if common else []) + ["--timeout", str(fleet.ssh.connect_timeout)]


def list_hosts(fleet: Inventory, pattern: str = "all:!localhost") -> list[str]:
    """The hosts ``pattern`` (narrowed by the limit) names in the inventory, as Ansible resolves them."""
    no_template("hosts", pattern)
    argv = [ansible_program("ansible"), pattern, "-i", str(fleet.inventory), "--list-hosts"]
    if fleet.limit:
        argv += ["--limit", fleet.limit]
    proc = subprocess.run(argv, capture_output=True, text=True, env=_env())
    if "leaves us with no hosts" in proc.stdout + proc.stderr or (proc.returncode == 0 and not proc.stdout.strip()):
        proc = subprocess.CompletedProcess(argv, 0, "  hosts (0):\n", proc.stderr)
    if proc.returncode != 0:
        raise ConfigError("inventory", f"Ansible cannot read {fleet.inventory}: {_last_error(proc.stdout + proc.stderr)}",
                          "check the inventory with `ansible-inventory -i INVENTORY --graph`")
    if "Unable to parse" in proc.stderr or "No inventory was parsed" in proc.stderr:
        raise ConfigError("inventory", f"Ansible cannot parse {fleet.inventory} as an inventory",
                          "check it with `ansible-inventory -i INVENTORY --graph`")
    hosts = [ln.strip() for ln in proc.stdout.splitlines()[1:] if ln.strip()]
    if not hosts:
        if fleet.limit:
            raise ConfigError("limit", f"{fleet.limit!r} matches no host of {pattern} in {fleet.inventory}",
                              "check the pattern with `ansible-inventory -i INVENTORY --graph`")
        raise ConfigError("inventory", f"{fleet.inventory} has no host in {pattern}", "add boards to the inventory")
    return hosts


def _last_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errs = [ln for ln in lines if "ERROR" in ln or "error" in ln.lower()]
    return re.sub(r"^\[?ERROR\]?:?\s*", "", (errs or lines or ["no output"])[-1])


# Lines of ansible-playbook worth showing while it runs (the full log is long at 16+ boards).
_SHOW = re.compile(r"^(PLAY \[|PLAY RECAP|fatal:|failed:|\S+\s+: ok=|ERROR|\[ERROR\]|\[WARNING\]: .*unreachable)")


TEMPLATE_MARKS = ("{{", "{%", "{#")


def no_template(field: str, value: str) -> str:
    """Refuse a string that Ansible could read as a template, where keras-edge cannot mark it as data."""
    if any(m in value for m in TEMPLATE_MARKS):
        raise ConfigError(field, f"{value!r} holds a Jinja template marker ({'/'.join(TEMPLATE_MARKS)})",
                          "keras-edge never lets Ansible evaluate a name; give a plain name or pattern")
    return value


def as_data(value: Any) -> Any:
    """``value`` with every string wrapped as Ansible's ``__ansible_unsafe``: never templated, whatever it holds.

    Ansible templates variables when they are used, so a bundle named ``{{ lookup('pipe', '…') }}`` would run
    a command on this workstation. Extra vars are written as JSON, whose decoder turns the wrapper into an
    unsafe string (the ``!unsafe`` tag of YAML).
    """
    if isinstance(value, str):
        return {"__ansible_unsafe": value}
    if isinstance(value, dict):
        return {k: as_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_data(v) for v in value]
    return value


def run_playbook(playbook: str, fleet: Inventory, extra: dict[str, Any], workdir: Path,
                 on_line: Lines | None = None) -> int:
    """Run a shipped playbook with ``extra`` vars (passed as data, see :func:`as_data`); its interesting lines
    go to ``on_line``."""
    vars_file = workdir / "vars.json"
    vars_file.write_text(json.dumps(as_data(extra)), encoding="utf-8")
    argv = [ansible_program("ansible-playbook"), "-i", str(fleet.inventory), str(PLAYBOOKS / playbook),
            "-e", f"@{vars_file}", "--forks", str(fleet.forks), *_ssh_args(fleet)]
    if fleet.limit:
        argv += ["--limit", fleet.limit]
    log = (workdir / "ansible.log").open("w", encoding="utf-8")
    with _control_dir(workdir) as cp, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                       text=True, env=_env(cp), stdin=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if on_line and _SHOW.match(line):
                on_line(line.rstrip())
    log.close()
    if os.environ.get("KERAS_EDGE_ANSIBLE_LOG"):  # keep the whole ansible-playbook output (debugging a rollout)
        with open(os.environ["KERAS_EDGE_ANSIBLE_LOG"], "a", encoding="utf-8") as f:
            f.write((workdir / "ansible.log").read_text(encoding="utf-8"))
    return proc.returncode


def _read_batches(results_dir: Path, stem: str = "batch-") -> list[dict[str, Any]]:
    out = []
    for path in sorted(results_dir.glob(f"{stem}*.json")):
        # written by the playbook, but full of what the boards replied: bounded like any untrusted JSON
        data = read_json(path, f"the playbook's results {path.name}", "run it again")
        if isinstance(data, dict):
            out.append(data)
    return out


def _playbook_failure(rc: int, workdir: Path) -> EdgeError:
    text = (workdir / "ansible.log").read_text(encoding="utf-8", errors="replace")
    return EdgeError(f"ansible-playbook failed before any board reported (exit {rc}): {_last_error(text)}",
                     "run it again with the same arguments; check the inventory and ssh settings")


# ---------------------------------------------------------------- deploy

def write_plan(plan: BundlePlan, out_dir: Path) -> dict[str, Any]:
    """What the playbook needs: name, version, checksums, space needed, and one tar of the bundle."""
    tar = out_dir / "bundle.tar"
    with tarfile.open(tar, "w", dereference=True) as t:
        for path, name in plan.files:
            t.add(str(path), arcname=name, recursive=False)
    data = {"name": plan.name, "version": plan.version, "sums": plan.sums_args, "tar": str(tar),
            "kib_needed": plan.kib_needed(copies=2)}   # the tar and the unpacked copy side by side
    (out_dir / "plan.json").write_text(json.dumps(data), encoding="utf-8")
    return data


def latency_ceiling_ms(bundle_dir: Path, factor: float) -> float:
    """``factor`` x the median p50 of the default variant over the bundle's board benchmarks."""
    report = read_report(bundle_dir)
    default = bundle.read_manifest(bundle_dir).default
    p50s = sorted(v for run in (report.boards.values() if report else ())
                  for k, v in run.latencies().items() if k == default)
    if not p50s:
        raise ConfigError("latency_ceiling", f"the bundle has no board benchmark of its default variant {default!r}",
                          "measure one first with `keras-edge bench BUNDLE --on BOARD`, or leave the ceiling out")
    return round(factor * _median(p50s), 3)


def deploy_fleet(config: FleetConfig, on_line: Lines | None = None) -> FleetRun:
    """Roll a bundle out over an inventory: a canary, then batches, each behind a health gate."""
    start = time.perf_counter()
    hosts = list_hosts(config.fleet)
    ceiling = latency_ceiling_ms(config.bundle_dir, config.latency_ceiling) if config.latency_ceiling else None
    with work_dir("fleet") as work:
        plan = plan_bundle(config.bundle_dir, work)
        plan_data = write_plan(plan, work)
        results_dir = work / "results"
        results_dir.mkdir()
        extra = {"keras_edge_plan_data": plan_data, "keras_edge_results_dir": str(results_dir),
                 "keras_edge_batches": config.batches, "keras_edge_max_fail_percentage": config.max_fail_percentage,
                 "keras_edge_keep": config.keep, "keras_edge_lock_owner": lock_owner(),
                 "keras_edge_lock_wait_s": config.lock_wait_s, "keras_edge_lock_stale_s": config.lock_stale_s,
                 "keras_edge_latency_ceiling_ms": "" if ceiling is None else str(ceiling),
                 "keras_edge_serve": config.serve.args if config.serve else []}
        rc = run_playbook("keras_edge_deploy.yml", config.fleet, extra, work, on_line)
        batches = _read_batches(results_dir)
        if not batches and rc != 0:
            raise _playbook_failure(rc, work)
    by_host: dict[str, HostResult] = {}
    stopped = False
    for i, batch in enumerate(batches, start=1):
        for host in batch["hosts"]:
            r = (batch.get("results") or {}).get(host) or {}
            by_host[host] = _host_result(host, r, plan_data["version"], i)
        stopped = stopped or bool(batch.get("failed"))
    why = "the rollout stopped before this batch" if stopped else "not reached (ansible-playbook ended early)"
    results = [by_host.get(h) or HostResult(h, Outcome.SKIPPED, version=plan_data["version"], error=why) for h in hosts]
    return FleetRun(results, [list(b["hosts"]) for b in batches], stopped, time.perf_counter() - start,
                    config.planned_batches(len(hosts)))


def _host_result(host: str, r: dict[str, Any], version: str, batch: int) -> HostResult:
    try:
        outcome = Outcome(r.get("outcome") or "failed")
    except ValueError:
        outcome = Outcome.FAILED
    facts = r.get("facts") or {}
    previous = r.get("previous") or ""
    if outcome is Outcome.ROLLED_BACK:   # as the board's links are now: back on the old version
        version, previous = previous, version
    return HostResult(host, outcome, version=version, previous=previous,
                      verified_by=r.get("verified_by") or "", board=facts.get("model") or facts.get("cpu") or "",
                      runtime=r.get("health") or "", error=r.get("why") or "", batch=batch, serve=r.get("serve") or "")


# ---------------------------------------------------------------- rollback

def rollback_fleet(name: str, fleet: Inventory, on_line: Lines | None = None) -> FleetRun:
    """Switch bundle ``name`` back to its previous version on every host the inventory pattern names."""
    check_name(name)
    start = time.perf_counter()
    hosts = list_hosts(fleet)
    with work_dir("fleet") as work:
        (work / "results").mkdir()
        extra = {"keras_edge_name": name, "keras_edge_results_dir": str(work / "results"),
                 "keras_edge_lock_owner": lock_owner("rollback")}
        rc = run_playbook("keras_edge_rollback.yml", fleet, extra, work, on_line)
        batches = _read_batches(work / "results", "rollback")
        if not batches:
            raise _playbook_failure(rc, work)
    got = batches[0].get("results") or {}
    results = []
    for h in hosts:
        r = got.get(h) or {"outcome": "failed", "why": "no result from the board"}
        ok = r.get("outcome") == "rolled back"
        results.append(HostResult(h, Outcome.ROLLED_BACK if ok else Outcome.FAILED, version=r.get("current") or "",
                                  previous=r.get("previous") or "", error="" if ok else (r.get("why") or "failed")))
    return FleetRun(results, [hosts], False, time.perf_counter() - start)


# ---------------------------------------------------------------- bench

def bench_fleet(bundle_dir: str | os.PathLike, fleet: Inventory, group: str, args: Sequence[str] = (),
                on_line: Lines | None = None) -> tuple[list[BoardRun], list[HostResult]]:
    """Run the board benchmark on every host of ``group``; store each run (keyed by host and board)
    in the bundle's report, which aggregates them per board model."""
    src = Path(bundle_dir)
    manifest = bundle.read_manifest(src)
    check_name(manifest.name)
    version = bundle.content_hash(src)
    hosts = list_hosts(fleet, group)
    with work_dir("fleet") as work:
        (work / "results").mkdir()
        extra = {"keras_edge_name": manifest.name, "keras_edge_version": version, "keras_edge_hosts": group,
                 "keras_edge_bench_args": list(args), "keras_edge_results_dir": str(work / "results")}
        rc = run_playbook("keras_edge_bench.yml", fleet, extra, work, on_line)
        batches = _read_batches(work / "results", "bench")
        if not batches:
            raise _playbook_failure(rc, work)
    got = batches[0].get("results") or {}
    runs, failures = [], []
    measured = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    for host in hosts:
        r = got.get(host) or {"outcome": "failed", "why": "no result from the board"}
        run = _board_run(host, r, version, measured) if r.get("outcome") == "measured" else None
        if not isinstance(run, BoardRun):
            failures.append(HostResult(host, Outcome.FAILED, version=version,
                                       error=str(r.get("why") or run or "the board printed no benchmark JSON")))
        else:
            runs.append(run)
    if runs:
        report = read_report(src) or Report(name=manifest.name)
        for run in runs:
            report = report.with_board(run)
        write_report_json(src, report)
    return runs, failures


def _board_run(host: str, r: dict[str, Any], version: str, measured: str) -> BoardRun | str:
    """The board's bench run, or why its reply is not one (a board's reply is data from anyone)."""
    head, marker, body = str(r.get("stdout") or "").partition("json-follows\n")
    if not marker:
        return "the board printed no benchmark JSON"
    try:
        bench = parse_json(body, "its bench JSON", "")
    except EdgeError as e:
        return e.what
    problem = bench_problem(bench)
    if problem:
        return f"its bench JSON is malformed: {problem}"
    values = dict(ln.split("=", 1) for ln in head.splitlines() if "=" in ln)
    facts = {k: values.get(k, "") for k in ("model", "cpu", "arch", "os", "os_id", "kernel", "hostname", "cores")}
    return BoardRun(fingerprint=board_fingerprint(facts), host=host, board=facts, version=version,
                    measured=measured, bench=bench)


def _median(values: Sequence[float]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


# ---------------------------------------------------------------- `python -m keras_edge.host.deploy.fleet plan BUNDLE`

def main(argv: Sequence[str]) -> int:
    """For the playbook run from the user's own Ansible: check and pack the bundle, print the plan."""
    if len(argv) != 2 or argv[0] != "plan":
        print("usage: python -m keras_edge.host.deploy.fleet plan BUNDLE", file=sys.stderr)
        return 2
    try:
        version = bundle.content_hash(argv[1])
        out = Path(tempfile.gettempdir()) / f"keras-edge-plan-{os.getuid()}-{version}"
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        print(json.dumps(write_plan(plan_bundle(argv[1], out), out)))
    except (EdgeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
