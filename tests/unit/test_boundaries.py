"""What crosses to boards and Ansible, checked on the workstation (host/deploy, host/report/contract)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keras_edge.device.contract import bundle as B
from keras_edge.device.contract.errors import BundleError, ConfigError
from keras_edge.device.inputs.preprocess import PreprocessSpec
from keras_edge.host.deploy.core import bundle_files, check_name
from keras_edge.host.deploy.fleet import as_data, no_template
from keras_edge.host.report.contract import BoardRun, bench_problem


def test_every_string_for_ansible_is_marked_unsafe_data():
    extra = {"name": "{{ lookup('pipe', 'id') }}", "n": 3, "args": ["--variant", "$(id)"], "plan": {"sums": ["ab", "x"]}}
    assert as_data(extra) == {"name": {"__ansible_unsafe": "{{ lookup('pipe', 'id') }}"}, "n": 3,
                              "args": [{"__ansible_unsafe": "--variant"}, {"__ansible_unsafe": "$(id)"}],
                              "plan": {"sums": [{"__ansible_unsafe": "ab"}, {"__ansible_unsafe": "x"}]}}
    assert json.loads(json.dumps(as_data(extra)))   # plain JSON for -e @vars.json


@pytest.mark.parametrize("value", ["{{ x }}", "pis:{% if 1 %}", "a{#b#}"])
def test_template_markers_are_refused_where_they_cannot_be_marked(value):
    with pytest.raises(ConfigError, match="holds a Jinja template marker"):
        no_template("limit", value)
    assert no_template("limit", "pis:!lab") == "pis:!lab"


@pytest.mark.parametrize("name", ["{{ x }}", "../x", "a b", "$(id)", "", "-rf", "x\ny"])
def test_bundle_names_keep_to_a_safe_alphabet(name):
    with pytest.raises(BundleError, match="is not a bundle name a board can take"):
        check_name(name)


def toy(root: Path) -> tuple[Path, B.Manifest]:
    (root / "fp32.tflite").write_bytes(b"TFL3")
    m = B.Manifest(name="toy", preprocess=PreprocessSpec(height=8, width=8, channels=1),
                   inputs=(B.TensorSpec("x", (1, 8, 8, 1), "float32"),), outputs=(B.TensorSpec("y", (1, 2), "float32"),),
                   variants=(B.Variant(name="fp32", mode="fp32", status="ok", file="fp32.tflite",
                                       sha256=B.sha256_file(root / "fp32.tflite"), bytes=4),))
    B.write_manifest(root, m)
    return root, m


def test_only_what_the_manifest_names_travels(tmp_path):
    root, m = toy(tmp_path)
    (root / "report.md").write_text("# r")
    (root / ".report.json.1.tmp").write_text("half")
    assert bundle_files(root, m) == ["fp32.tflite", "manifest.json", "report.md"]
    (root / "notes.txt").write_text("x")
    with pytest.raises(BundleError, match="holds notes.txt, which its manifest does not name"):
        bundle_files(root, m)
    (root / "notes.txt").unlink()
    (root / "report.png").symlink_to("/etc/hostname")
    with pytest.raises(BundleError, match="holds a symlink, report.png -> /etc/hostname"):
        bundle_files(root, m)


@pytest.mark.parametrize("result,problem", [
    ({"variant": "fp32", "median_ms": "fast"}, "results[0].median_ms is 'fast', not a measurement"),
    ({"variant": "fp32", "median_ms": float("nan")}, "results[0].median_ms is nan"),
    ({"variant": "fp32", "p90_ms": -1}, "results[0].p90_ms is -1"),
    ({"variant": "fp32", "threads": True}, "results[0].threads is True"),
    ({"median_ms": 1.0}, "results[0] names no variant"),
    ({"variant": "fp32", "notes": [1]}, "results[0].notes is not a list of text"),
])
def test_a_boards_bench_json_is_checked_before_anything_reads_it(result, problem):
    bench = {"environment": {}, "results": [result]}
    assert problem in bench_problem(bench)
    with pytest.raises(ValueError, match="board run"):
        BoardRun.from_dict({"host": "pi", "bench": bench})
    good = {"environment": {}, "results": [{"variant": "fp32", "threads": 1, "median_ms": 1.5, "notes": []}]}
    assert bench_problem(good) is None and BoardRun.from_dict({"bench": good}).latencies() == {"fp32": 1.5}


def test_an_ansible_core_older_than_2_19_is_refused(tmp_path):
    """2.19 tags what boards reply as untrusted; an older ansible-playbook (here a script that says it is one)
    is refused with one line before it runs anything."""
    from keras_edge.device.contract.errors import EdgeError
    from keras_edge.host.deploy.fleet import check_ansible_version

    old = tmp_path / "ansible-playbook"
    old.write_text('#!/bin/sh\necho "ansible-playbook [core 2.16.3]"\n')
    old.chmod(0o755)
    with pytest.raises(EdgeError, match=r"is ansible-core 2.16; keras-edge needs 2.19 or later"):
        check_ansible_version(str(old), "ansible-playbook")
    new = tmp_path / "new" / "ansible-playbook"
    new.parent.mkdir()
    new.write_text('#!/bin/sh\necho "ansible-playbook [core 2.19.14]"\n')
    new.chmod(0o755)
    assert check_ansible_version(str(new), "ansible-playbook") == str(new)
