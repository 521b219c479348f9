"""Files are written new and renamed over the old name (convert's variants, manifests, reports): an interpreter
maps its model file shared."""

import mmap

from keras_edge.device.contract.files import replace_file


def _mapped(path):
    f = open(path, "rb")
    return f, mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)


def test_a_rewrite_leaves_a_live_mapping_alone(tmp_path):
    path = tmp_path / "int8.tflite"
    replace_file(path, b"A" * 4096)
    f, live = _mapped(path)   # as LiteRT holds a model loaded from a path
    try:
        replace_file(path, b"B" * 4096)   # the same variant made again
        assert live[:4] == b"AAAA"
        assert path.read_bytes() == b"B" * 4096
        assert [p.name for p in tmp_path.iterdir()] == ["int8.tflite"]   # no temporary file left beside it
    finally:
        live.close()
        f.close()


def test_an_in_place_rewrite_would_not(tmp_path):
    # the hazard the rename avoids: bytes written in place show through the mapping
    path = tmp_path / "int8.tflite"
    path.write_bytes(b"A" * 4096)
    f, live = _mapped(path)
    try:
        path.write_bytes(b"B" * 4096)
        assert live[:4] == b"BBBB"
    finally:
        live.close()
        f.close()
