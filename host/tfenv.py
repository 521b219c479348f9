"""Importing TensorFlow quietly, and keeping its converter's pages of logs out of the user's way."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings
from typing import Iterator


def import_tf(verbose: bool = False):
    """Import TensorFlow with its C++ and Python logging turned down unless ``verbose``."""
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    try:
        with captured_output(enabled=not verbose):
            import tensorflow as tf
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in ("tensorflow", "keras"):
            from keras_edge.device.contract import EdgeError

            raise EdgeError("this command runs on the workstation and needs TensorFlow, which is not installed here",
                            "install it with: pip install 'keras-edge[host]'") from None
        raise
    if not verbose:
        tf.get_logger().setLevel(logging.ERROR)
        logging.getLogger("absl").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", module="tensorflow")
        warnings.filterwarnings("ignore", module="keras")
    return tf


class Captured:
    """Text that native code and Python printed while captured (for error messages)."""

    def __init__(self) -> None:
        self.text = ""


@contextlib.contextmanager
def captured_output(enabled: bool = True) -> Iterator[Captured]:
    """Redirect file descriptors 1 and 2 (native code logs there) to a temporary file.

    The captured text is kept so a failure can quote the converter's own reason.
    """
    cap = Captured()
    if not enabled:
        yield cap
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    py_out, py_err = sys.stdout, sys.stderr
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        sys.stdout = sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(tmp.fileno()), "wb"), write_through=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield cap
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stdout.close()
            sys.stdout, sys.stderr = py_out, py_err
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            tmp.seek(0)
            cap.text = tmp.read().decode("utf-8", "replace")
