"""Health: ``verify`` (a bundle's checksums and reference outputs, on this board's backend) and ``doctor``
(runtimes, CPU features, cameras and the GPU path found here, each missing piece with its fix)."""

from .doctor import diagnose
from .verify import Verdict, VerifyReport, verify_bundle

__all__ = ["Verdict", "VerifyReport", "diagnose", "verify_bundle"]
