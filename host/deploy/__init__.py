"""Deployment over SSH: copy a bundle to boards, verify it there, switch atomically, roll back.

No TensorFlow anywhere in this room: deploy, rollback and ``bench --on`` run on any machine with
OpenSSH. Rooms: :mod:`.core` (the flow), :mod:`.ssh` (argument lists for ssh/rsync/tar),
:mod:`.scripts` (the POSIX scripts run on the board), :mod:`.remote` (``bench --on``), :mod:`.cli`.
"""

from .core import DeployConfig, HostResult, Outcome, Transport, deploy_many, rollback_many
from .ssh import SshOptions

__all__ = ["DeployConfig", "HostResult", "Outcome", "SshOptions", "Transport", "deploy_many", "rollback_many"]
