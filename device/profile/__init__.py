"""device/profile: a per-op profile of a model on the machine that runs it, and latency predicted for board kinds.

Public face: :func:`profile` with :class:`ProfileConfig` → :class:`Profile` (:mod:`.core`).
"""

from .core import OpRow, Profile, ProfileConfig, profile

__all__ = ["OpRow", "Profile", "ProfileConfig", "profile"]
