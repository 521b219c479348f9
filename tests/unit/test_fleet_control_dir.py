"""ssh's control sockets must fit a unix socket path (108 bytes): a deep work folder moves them to /tmp."""

from __future__ import annotations

import os

from keras_edge.host.deploy.fleet import SOCKET_DIR_MAX, _control_dir, _env


def test_a_short_work_folder_keeps_its_own_control_dir(tmp_path):
    work = tmp_path / "w"
    if len(os.fsencode(work / "cp")) > SOCKET_DIR_MAX:
        work = type(tmp_path)("/tmp/kew")
    with _control_dir(work) as cp:
        assert cp == work / "cp"
        assert _env(cp)["ANSIBLE_SSH_CONTROL_PATH_DIR"] == str(cp)


def test_a_deep_work_folder_gets_a_private_short_one_that_is_removed(tmp_path):
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 6)
    deep.mkdir(parents=True)
    with _control_dir(deep) as cp:
        assert cp.is_dir() and not cp.is_relative_to(deep)
        # ansible adds /<40-character %C hash>; the socket's path must fit sun_path with its terminating NUL
        assert len(os.fsencode(cp)) + 1 + 40 + 8 < 108
        assert (cp.stat().st_mode & 0o777) == 0o700
    assert not cp.exists()
