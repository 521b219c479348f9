"""Variant files are written new and renamed over the old name: an interpreter maps its model file shared."""

import mmap

from keras_edge.host.convert.core import write_new


def _mapped(path):
    f = open(path, "rb")
    return f, mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)


def test_a_rewrite_leaves_a_live_mapping_alone(tmp_path):
    path = tmp_path / "int8.tflite"
    write_new(path, b"A" * 4096)
    f, live = _mapped(path)   # as LiteRT holds a model loaded from a path
    try:
        write_new(path, b"B" * 4096)   # the same variant made again
        assert live[:4] == b"AAAA"
        assert path.read_bytes() == b"B" * 4096
        assert not list(tmp_path.glob("*.part"))
    finally:
        live.close()
        f.close()


def test_an_in_place_rewrite_would_not(tmp_path):
    # the hazard the rename avoids: the same bytes, written in place, show through the mapping
    path = tmp_path / "int8.tflite"
    path.write_bytes(b"A" * 4096)
    f, live = _mapped(path)
    try:
        path.write_bytes(b"B" * 4096)
        assert live[:4] == b"BBBB"
    finally:
        live.close()
        f.close()
