"""The bundle contract: the only module that reads, writes and validates ``manifest.json``.

Host and board both import this module and nothing else of each other. The manifest is plain
JSON (never pickle), versioned by ``"format": "keras-edge/1"``. Every variant records its file's
sha256 and size; the board refuses a mismatching checksum and any path that leaves the bundle.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Iterator

from .errors import BundleError, DataError
from .fields import check_manifest
from .files import read_json, read_text, replace_file
from .limits import limits, too_many
from .preprocess import PreprocessSpec
from .tasks import PostprocessSpec, Task
from .tolerances import gpu_slack

FORMAT = "keras-edge/1"
MANIFEST = "manifest.json"
# A bundle's name becomes a directory name on the board (deploy), so it keeps to a safe alphabet.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
REFERENCE = "reference.npz"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
class VariantStatus(StrEnum):
    OK = "ok"
    VALIDATION_FAILED = "validation_failed"
    CONVERSION_FAILED = "conversion_failed"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor of a model (shape uses -1 for a dynamic dimension)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float = 0.0
    zero_point: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0 and self.dtype in ("int8", "uint8", "int16")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TensorSpec":
        return cls(name=str(d["name"]), shape=tuple(d["shape"]), dtype=str(d["dtype"]),
                   scale=float(d.get("scale", 0.0)), zero_point=int(d.get("zero_point", 0)))


@dataclass(frozen=True)
class Tolerance:
    """How close a variant's outputs must stay to the Keras reference outputs in ``verify``."""

    max_abs: float
    min_agreement: float = 1.0  # top-1 agreement with the reference, classifiers only
    # on a GPU backend: GPU accelerators compute in fp16 by default, so outputs drift further from the
    # reference than on the CPU. None in manifests written before it existed (see :meth:`max_abs_on`).
    gpu_max_abs: float | None = None
    # per output (in the manifest's output order) for models with several outputs: each output is held to
    # its own bound, so a head with large values cannot hide another's error; () in older manifests
    output_max_abs: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "output_max_abs", tuple(float(b) for b in self.output_max_abs))

    def output_bound(self, j: int, gpu: bool, mode: str = "fp32") -> float:
        """The bound for manifest output ``j``: its own when recorded (plus the GPU slack on a GPU), else the overall one."""
        if j >= len(self.output_max_abs):
            return self.max_abs_on(gpu, mode)
        own = self.output_max_abs[j]
        if not gpu:
            return own
        extra = (self.gpu_max_abs - self.max_abs) if self.gpu_max_abs is not None else gpu_slack(mode)
        return own + max(extra, 0.0)

    def max_abs_on(self, gpu: bool, mode: str = "fp32") -> float:
        """The bound for a backend; a GPU without a recorded bound (an older manifest) gets the mode's slack."""
        if not gpu:
            return self.max_abs
        return self.gpu_max_abs if self.gpu_max_abs is not None else self.max_abs + gpu_slack(mode)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Tolerance":
        max_abs = float(d["max_abs"])
        gpu = d.get("gpu_max_abs")
        return cls(max_abs=max_abs, min_agreement=float(d.get("min_agreement", 1.0)),
                   gpu_max_abs=float(gpu) if gpu is not None else None,
                   output_max_abs=tuple(float(b) for b in d.get("output_max_abs", ())))


@dataclass(frozen=True)
class Variant:
    """One converted model file in the bundle and what is known about it."""

    name: str
    mode: str
    status: VariantStatus
    file: str | None = None
    sha256: str | None = None
    bytes: int = 0
    reason: str = ""
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    tolerance: Tolerance | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    # How the file's tensors map to the manifest's (Keras's) inputs and outputs: ``input_order[i]`` is the
    # manifest input that the file's input ``i`` takes, ``output_order[i]`` the manifest output that the
    # file's output ``i`` is. The converter orders and names tensors its own way (inputs sorted by name,
    # outputs ``StatefulPartitionedCall:1``…), so several inputs or outputs are matched by name, never by
    # position. () means the identity (single-input/-output models, and manifests written before it).
    input_order: tuple[int, ...] = ()
    output_order: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", VariantStatus(self.status))
        object.__setattr__(self, "input_order", tuple(int(i) for i in self.input_order))
        object.__setattr__(self, "output_order", tuple(int(i) for i in self.output_order))
        for what, order, tensors in (("input", self.input_order, self.inputs), ("output", self.output_order, self.outputs)):
            if order and (sorted(order) != list(range(len(order))) or (tensors and len(tensors) != len(order))):
                raise BundleError(f"variant {self.name!r} has an invalid {what}_order {list(order)}",
                                  "reconvert the bundle with `keras-edge convert`")
        if self.status is not VariantStatus.CONVERSION_FAILED and not self.file:
            raise BundleError(f"variant {self.name!r} has no file",
                              "reconvert the bundle with `keras-edge convert`")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Variant":
        tol = d.get("tolerance")
        return cls(name=str(d["name"]), mode=str(d["mode"]), status=VariantStatus(d["status"]),
                   file=d.get("file"), sha256=d.get("sha256"), bytes=int(d.get("bytes", 0)),
                   reason=str(d.get("reason", "")),
                   inputs=tuple(TensorSpec.from_dict(t) for t in d.get("inputs", [])),
                   outputs=tuple(TensorSpec.from_dict(t) for t in d.get("outputs", [])),
                   tolerance=Tolerance.from_dict(tol) if tol else None,
                   metrics=dict(d.get("metrics", {})),
                   input_order=tuple(d.get("input_order", ())), output_order=tuple(d.get("output_order", ())))

    def manifest_input(self, i: int) -> int:
        """The manifest input that the file's input ``i`` takes."""
        return self.input_order[i] if self.input_order else i

    def manifest_output(self, i: int) -> int:
        """The manifest output that the file's output ``i`` is."""
        return self.output_order[i] if self.output_order else i


@dataclass(frozen=True)
class Manifest:
    """The contract between workstation and board."""

    name: str
    preprocess: PreprocessSpec | None   # None for non-image models fed from arrays
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    variants: tuple[Variant, ...]
    task: Task = Task.CLASSIFICATION
    labels: str | None = None
    default: str | None = None
    default_reason: str = ""
    reference: str | None = None
    source: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    created: str = ""
    format: str = FORMAT
    # what the outputs mean and how they become results; None in manifests written before it existed
    # (read as the task's plain default, see :attr:`postprocessing`)
    postprocess: PostprocessSpec | None = None
    # One preprocessing spec per input, in ``inputs`` order (None: that input is fed arrays), for models with
    # several inputs. () in single-input manifests and in those written before it: then ``preprocess`` is the
    # spec of input 0 and the only one (see :meth:`preprocess_for`). When set, ``preprocess`` equals the spec
    # of the first input that has one, so readers that know only ``preprocess`` still find an image spec.
    input_preprocess: tuple[PreprocessSpec | None, ...] = ()
    # what the default's speed comparison rests on: "board-measured", "board-predicted" or "workstation"
    # ("" in manifests written before it), and the board kind convert was told to target (convert --board)
    default_basis: str = ""
    target_board: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", Task(self.task))
        object.__setattr__(self, "input_preprocess", tuple(self.input_preprocess))
        if self.input_preprocess and len(self.input_preprocess) != len(self.inputs):
            raise BundleError(f"manifest has {len(self.input_preprocess)} input preprocessing spec(s) for "
                              f"{len(self.inputs)} input(s)", "reconvert the bundle")
        if self.postprocess is not None and self.postprocess.task is not self.task:
            raise BundleError(f"manifest task {self.task} does not match its postprocess spec ({self.postprocess.task})",
                              "reconvert the bundle")
        if self.format != FORMAT:
            raise BundleError(f"manifest format {self.format!r} is not supported (this keras-edge reads {FORMAT!r})",
                              "reconvert the model with this version of keras-edge, or upgrade keras-edge")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise BundleError(f"manifest lists a variant twice: {names}", "reconvert the bundle")
        if self.default is not None and self.default not in names:
            raise BundleError(f"default variant {self.default!r} is not in the manifest", "reconvert the bundle")

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise BundleError(f"bundle {self.name!r} has no variant {name!r}",
                          f"choose one of: {', '.join(v.name for v in self.variants)}")

    @property
    def usable(self) -> tuple[Variant, ...]:
        """Variants that converted and have a file (validation failures are still runnable)."""
        return tuple(v for v in self.variants if v.status is not VariantStatus.CONVERSION_FAILED)

    def preprocess_for(self, i: int) -> PreprocessSpec | None:
        """The preprocessing spec of manifest input ``i`` (None: it is fed arrays)."""
        if self.input_preprocess:
            return self.input_preprocess[i]
        return self.preprocess if i == 0 else None

    def input_index(self, key: str) -> int | None:
        """The manifest input named ``key`` (its Keras name) or ``input_<i>``; None when none is."""
        for i, t in enumerate(self.inputs):
            if key in (t.name, f"input_{i}"):
                return i
        return None

    @property
    def classes(self) -> int | None:
        """How many classes a classifier's single output scores (None: not a classifier, or not known)."""
        if self.task is not Task.CLASSIFICATION or len(self.outputs) != 1:
            return None
        n = 1
        for d in self.outputs[0].shape[1:]:
            if d < 1:
                return None
            n *= d
        return n if n > 1 else None

    @property
    def postprocessing(self) -> PostprocessSpec:
        """The postprocess spec, or the task's plain default for manifests that have none."""
        if self.postprocess is not None:
            return self.postprocess
        if self.task is Task.CLASSIFICATION:
            return PostprocessSpec.classification(self.outputs[0].shape[-1] if self.outputs else None)
        return PostprocessSpec(self.task)

    def to_dict(self) -> dict[str, Any]:
        d = jsonable(dataclasses.asdict(self))
        d["preprocess"] = self.preprocess.to_dict() if self.preprocess else None
        d["postprocess"] = self.postprocess.to_dict() if self.postprocess else None
        d["input_preprocess"] = [p.to_dict() if p else None for p in self.input_preprocess]
        if not self.input_preprocess:
            del d["input_preprocess"]   # single-input manifests stay as they were
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Manifest":
        if not isinstance(d, dict) or "format" not in d:
            raise BundleError("manifest.json has no \"format\" field: this is not a keras-edge bundle",
                              "point at a directory written by `keras-edge convert`")
        if d["format"] != FORMAT:
            raise BundleError(f"manifest format {d['format']!r} is not supported (this keras-edge reads {FORMAT!r})",
                              "reconvert the model with this version of keras-edge, or upgrade keras-edge")
        check_manifest(d)
        try:
            return cls(name=str(d["name"]), preprocess=PreprocessSpec.from_dict(d["preprocess"]) if d.get("preprocess") else None,
                       inputs=tuple(TensorSpec.from_dict(t) for t in d["inputs"]),
                       outputs=tuple(TensorSpec.from_dict(t) for t in d["outputs"]),
                       variants=tuple(Variant.from_dict(v) for v in d["variants"]),
                       task=Task(d.get("task", "classification")), labels=d.get("labels"),
                       default=d.get("default"), default_reason=str(d.get("default_reason", "")),
                       reference=d.get("reference"), source=dict(d.get("source", {})),
                       tools=dict(d.get("tools", {})), created=str(d.get("created", "")), format=d["format"],
                       postprocess=PostprocessSpec.from_dict(d["postprocess"]) if d.get("postprocess") else None,
                       input_preprocess=tuple(PreprocessSpec.from_dict(p) if p else None
                                              for p in d.get("input_preprocess", ())),
                       default_basis=str(d.get("default_basis") or ""), target_board=d.get("target_board"))
        except DataError as e:  # an invalid preprocessing spec is a broken manifest here, not bad user data
            raise BundleError(f"manifest.json is malformed (preprocess: {e.what})",
                              "reconvert the bundle with `keras-edge convert`") from None
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
            raise BundleError(f"manifest.json is malformed ({type(e).__name__}: {e})",
                              "reconvert the bundle with `keras-edge convert`") from None


def jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, StrEnum):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    return obj


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def inside(bundle_dir: str | os.PathLike, relpath: str) -> Path:
    """Resolve ``relpath`` inside ``bundle_dir``, refusing anything that leaves it."""
    root = Path(bundle_dir).resolve()
    if not relpath or os.path.isabs(relpath):
        raise BundleError(f"bundle path {relpath!r} is absolute or empty", "bundle paths must be relative to the bundle")
    target = (root / relpath).resolve()
    if target != root and root not in target.parents:
        raise BundleError(f"bundle path {relpath!r} leaves the bundle directory",
                          "refusing to read it; the manifest may have been tampered with")
    return target


def read_manifest(bundle_dir: str | os.PathLike) -> Manifest:
    """Read and validate ``manifest.json`` (format, structure, paths); checksums via :func:`check_variant`."""
    path = Path(bundle_dir) / MANIFEST
    if not Path(bundle_dir).is_dir():
        raise BundleError(f"{bundle_dir} is not a directory", "give a bundle directory written by `keras-edge convert`")
    if not path.is_file():
        raise BundleError(f"{bundle_dir} has no {MANIFEST}", "give a bundle directory written by `keras-edge convert`")
    data = read_json(path, str(path), "reconvert the bundle", BundleError)   # bounded: size, nesting, regular file
    manifest = Manifest.from_dict(data)
    extra = list(manifest.postprocess.files) if manifest.postprocess else []
    for rel in [v.file for v in manifest.usable] + [manifest.labels, manifest.reference] + extra:
        if rel:
            inside(bundle_dir, rel)
    return manifest


def check_variant(bundle_dir: str | os.PathLike, variant: Variant) -> Path:
    """Return the variant's file path after checking that it exists and matches its sha256."""
    if variant.status is VariantStatus.CONVERSION_FAILED or not variant.file:
        raise BundleError(f"variant {variant.name!r} failed to convert ({variant.reason or 'no reason recorded'})",
                          "choose another variant")
    path = inside(bundle_dir, variant.file)
    if not path.is_file():
        raise BundleError(f"variant {variant.name!r}: file {variant.file} is missing from the bundle",
                          "copy the whole bundle again")
    if not variant.sha256:   # nothing to compare with: "checksum ok" would be a lie
        raise BundleError(f"variant {variant.name!r}: the manifest records no sha256 for {variant.file}, so the file "
                          "cannot be checked", "reconvert the bundle with `keras-edge convert`")
    digest = sha256_file(path)
    if digest != variant.sha256:
        raise BundleError(f"variant {variant.name!r}: {variant.file} does not match its checksum "
                          f"(sha256 {digest[:12]}… expected {variant.sha256[:12]}…)",
                          "the file was changed or damaged; copy the bundle again")
    return path


def read_labels(bundle_dir: str | os.PathLike, manifest: Manifest) -> list[str] | None:
    """The bundle's class names, bounded and counted against the model's classes."""
    if not manifest.labels:
        return None
    path = inside(bundle_dir, manifest.labels)
    if not path.exists():
        raise BundleError(f"labels file {manifest.labels} is missing from the bundle", "copy the whole bundle again")
    names = parse_labels(path, BundleError)
    classes = manifest.classes
    if classes is not None and len(names) != classes:
        raise BundleError(f"{manifest.labels} in the bundle has {len(names)} name(s) but the model has {classes} classes",
                          "the bundle was changed after convert; copy it again or reconvert with the right --labels")
    return names


def parse_labels(path: str | os.PathLike, error: type[BundleError] | type[DataError] = DataError) -> list[str]:
    """One class name per non-empty line of a UTF-8 file, within the labels limits (size, lines, line length)."""
    lim = limits()
    text = read_text(path, lim.max_labels_bytes, "max_labels_bytes", error)
    names = [line.rstrip("\r\n") for line in text.splitlines() if line.strip()]
    if len(names) > lim.max_labels:
        raise error(*too_many(f"{path} has", len(names), "max_labels", "lines"))
    longest = max((len(n) for n in names), default=0)
    if longest > lim.max_label_chars:
        raise error(*too_many(f"{path} has a line of", longest, "max_label_chars", "characters"))
    return names


def write_manifest(directory: str | os.PathLike, manifest: Manifest) -> Path:
    """Write ``manifest.json`` into a directory that is being built (not an atomic bundle swap)."""
    return replace_file(Path(directory) / MANIFEST, json.dumps(manifest.to_dict(), indent=2, sort_keys=False) + "\n")


def content_hash(bundle_dir: str | os.PathLike) -> str:
    """A short version id for a bundle: sha256 of its manifest (which pins every variant's sha256)."""
    return sha256_file(Path(bundle_dir) / MANIFEST)[:12]


def check_replaceable(target: str | os.PathLike) -> None:
    """Refuse an output path that is a file, or a non-empty directory that is not a bundle.

    What a killed build left beside ``target`` is cleaned up first, and a previous bundle it had moved
    aside is put back (:func:`recover_stale`), so the check sees what the user last had.
    """
    target = Path(target)
    recover_stale(target.resolve())
    if target.exists() and not target.is_dir():
        raise BundleError(f"{target} exists and is not a directory", "choose another output path")
    if target.is_dir() and not (target / MANIFEST).is_file() and any(target.iterdir()):
        # replacing it would delete whatever the user keeps there (think `-o ~/Documents`)
        raise BundleError(f"{target} is a non-empty directory that is not a keras-edge bundle; refusing to replace it",
                          "choose a new output path, or an existing bundle to overwrite")


@contextlib.contextmanager
def staged_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Build a directory in a temporary sibling and rename it into place only on success.

    An interrupted or failed build leaves the previous ``target`` intact and removes the partial one.
    An existing ``target`` is replaced only when it is a bundle (has a manifest) or empty. What a
    killed build left beside ``target`` is cleaned up first (see :func:`recover_stale`).
    """
    target = Path(target).resolve()
    check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-{_owner()}-", dir=target.parent))
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private; a bundle follows the umask like mkdir
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, target)


def current_umask() -> int:
    """The process umask (read by setting and restoring it; there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _owner() -> str:
    """This process as it names its temporary siblings: pid@host, so a later run can tell if it still runs."""
    host = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:64] or "host"
    return f"{os.getpid()}@{host}"


_STALE = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|old)-(?P<pid>\d+)@(?P<host>[A-Za-z0-9._]+)-[^-]+$")


def _dead(pid: int, host: str) -> bool:
    """True when pid@host is a process of this machine that no longer runs."""
    if host != _owner().partition("@")[2]:
        return False   # another machine's (a shared folder): it may still be working
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def recover_stale(target: Path) -> list[Path]:
    """Clean up what a killed build of ``target`` left beside it; returns what was removed or restored.

    A ``.NAME.partial-*`` of a dead process is removed. A ``.NAME.old-*`` of a dead process holds the
    previous bundle of a swap that was killed between its two renames: when ``target`` is missing it is
    renamed back into place (the newest, if there are several), otherwise removed. Siblings of a
    process that still runs, or of another machine, are left alone.
    """
    parent = target.parent
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    stale = []
    for n in names:
        m = _STALE.match(n)
        if m and m["name"] == target.name and _dead(int(m["pid"]), m["host"]):
            stale.append((m["kind"], parent / n))
    done = []
    olds = sorted((p for k, p in stale if k == "old" and (p / MANIFEST).is_file()),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    if olds and not os.path.lexists(target):
        os.rename(olds[0], target)
        done.append(target)
        stale = [(k, p) for k, p in stale if p != olds[0]]
    for _, p in stale:
        shutil.rmtree(p, ignore_errors=True)
        done.append(p)
    return done


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directory entries in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    libc = _libc()
    fn = getattr(libc, "renameat2", None) if libc is not None else None
    if fn is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    return False   # EINVAL (a filesystem without exchange), ENOSYS (an old kernel): two renames instead


def _libc():
    if not hasattr(_libc, "handle"):
        try:
            import ctypes
            import ctypes.util

            _libc.handle = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        except (OSError, AttributeError):
            _libc.handle = None
    return _libc.handle


def replace_dir(src: Path, target: Path) -> None:
    """Move ``src`` to ``target``, swapping out an existing ``target``.

    Where the kernel can, the swap is one exchange of the two names, so ``target`` always exists;
    otherwise two renames, and a build killed between them leaves the previous bundle in a
    ``.NAME.old-*`` sibling that the next build puts back (:func:`recover_stale`).
    """
    if target.exists():
        if not target.is_dir():
            shutil.rmtree(src, ignore_errors=True)
            raise BundleError(f"{target} exists and is not a directory", "choose another output path")
        if _exchange(src, target):
            shutil.rmtree(src, ignore_errors=True)   # now the previous bundle
            return
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-{_owner()}-", dir=target.parent))
        os.rmdir(old)
        os.rename(target, old)
        os.rename(src, target)
        shutil.rmtree(old, ignore_errors=True)
        return
    os.rename(src, target)
