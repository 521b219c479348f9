"""The fixed shell scripts that deploy runs on a board (POSIX sh, GNU or BusyBox userland).

They live as files in the Ansible role (``ansible/roles/keras_edge/files``), so that `deploy HOST...`
over plain ssh and a fleet rollout through Ansible run the very same text on the board.

They are constants: values arrive only as positional arguments (quoted on the workstation) and
the scripts answer with `key=value` lines. The whole script is one function called on the last
line with stdin from /dev/null, so nothing it runs can read the rest of the script.

Board layout, all under ``$HOME/keras-edge``:

    bundles/<name>/<version>/          one verified copy per version (version = manifest hash)
    bundles/<name>/current -> <version> switched with rename(2) only after verification
    bundles/<name>/previous -> <version> what `rollback` switches back to
    bundles/<name>/history             versions in the order they were made current (for --keep)
    bundles/<name>/.<version>.partial-XXXXXX   a copy in progress; never a link target
    bundles/<name>/.lock/{owner,since}  held by one deploy or rollback at a time (see take_lock)
    venv/bin/keras-edge                the runner, when installed with --install-runner
"""

from pathlib import Path

FILES = Path(__file__).resolve().parent / "ansible" / "roles" / "keras_edge" / "files"


def load(name: str) -> str:
    """The board script ``name`` (``prepare``, ``activate``...) with the common functions in front."""
    return (FILES / "common.sh").read_text(encoding="utf-8") + "\n" + (FILES / f"{name}.sh").read_text(encoding="utf-8")


PREPARE = load("prepare")
ACTIVATE = load("activate")
ROLLBACK = load("rollback")
UNLOCK = load("unlock")
HEALTH = load("health")
RUNNER_DIR = load("runner_dir")
INSTALL_RUNNER = load("install_runner")
BENCH = load("bench")
SERVE = load("serve")
PROFILE = load("profile")
