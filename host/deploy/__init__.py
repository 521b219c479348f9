"""Deployment over SSH: copy a bundle to boards, verify it there, switch atomically, roll back.

No TensorFlow anywhere in this room: deploy, rollback and ``bench --on`` run on any machine with
OpenSSH. Rooms: :mod:`.core` (the flow), :mod:`.ssh` (argument lists for ssh/rsync/tar),
:mod:`.scripts` (the POSIX scripts run on the board, kept in ``ansible/roles/keras_edge/files``),
:mod:`.remote` (``bench --on``), :mod:`.fleet` (``--inventory``: the shipped Ansible playbooks), :mod:`.cli`.
"""

from .core import DeployConfig, HostResult, Outcome, Transport, deploy_many, rollback_many
from .fleet import FleetConfig, FleetRun, Inventory, bench_fleet, deploy_fleet, rollback_fleet
from .ssh import SshOptions

__all__ = ["DeployConfig", "FleetConfig", "FleetRun", "HostResult", "Inventory", "Outcome", "SshOptions", "Transport",
           "bench_fleet", "deploy_fleet", "deploy_many", "rollback_fleet", "rollback_many"]
