"""Representative data: image folders or arrays → preprocessed, sampled batches.

Images go through ``keras_edge.device.inputs.preprocess`` — the code the board runs — so calibration
sees exactly what the board will feed the model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from keras_edge.device.inputs import images
from keras_edge.device.contract import ConfigError, DataError
from keras_edge.device.contract.files import check_arrays
from keras_edge.device.inputs.preprocess import PreprocessSpec, preprocess

ARRAY_EXTENSIONS = (".npy", ".npz")
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Record:
    path: Path
    label: int | None


@dataclass(frozen=True)
class FolderIndex:
    """Image files under a folder; class subfolders (ImageFolder style) give labels."""

    root: Path
    records: tuple[Record, ...]
    class_names: tuple[str, ...] | None

    @property
    def labeled(self) -> bool:
        return self.class_names is not None


@dataclass(frozen=True)
class Dataset:
    """Preprocessed float32 inputs (N, H, W, C), optional integer labels, and what was skipped."""

    x: np.ndarray
    y: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None
    sources: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = field(default=())
    # every input of a model with several inputs, in the model's input order (``x`` is the first); () for one
    xs: tuple[np.ndarray, ...] = ()

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def inputs(self) -> list[np.ndarray]:
        """One array per model input, in the model's input order."""
        return list(self.xs) if self.xs else [self.x]

    def take(self, idx: np.ndarray) -> "Dataset":
        """The samples at ``idx`` (every input, labels and sources alike)."""
        xs = tuple(a[idx] for a in self.xs)
        return Dataset(self.x[idx], None if self.y is None else self.y[idx], self.class_names,
                       tuple(self.sources[i] for i in idx) if self.sources else (), self.skipped, xs)


def check_source(path: str | os.PathLike) -> Path:
    """The cheap checks of a data source (an image folder, or a .npy/.npz file), made before anything slow:
    commands call it before TensorFlow is imported, so a wrong path fails in milliseconds."""
    path = Path(path)
    if path.suffix.lower() in ARRAY_EXTENSIONS:
        if not path.is_file():
            raise DataError(f"{path}: no such file", "pass a .npy/.npz file or an image folder")
        return path
    _check_folder(path)
    if next(iter(images.iter_images(path)), None) is None:
        raise _no_images(path)
    return path


def _check_folder(root: Path) -> None:
    if not root.exists():
        raise DataError(f"{root}: no such folder", "pass a folder of images (class subfolders give labels)")
    if not root.is_dir():
        what = "one image" if root.suffix.lower() in images.IMAGE_EXTENSIONS else "a file"
        raise DataError(f"{root} is not a folder ({what})", "pass a folder of images (class subfolders give labels), "
                        "or a .npy/.npz file")
    if not os.access(root, os.R_OK | os.X_OK):  # os.walk would silently find nothing
        raise DataError(f"{root}: permission denied", "make the folder readable, or copy the images elsewhere")


def _no_images(root: Path) -> DataError:
    return DataError(f"{root} contains no images ({', '.join(sorted(images.IMAGE_EXTENSIONS))})",
                     "point it at a folder of images (class subfolders give labels)")


def scan_folder(root: str | os.PathLike, labels: Sequence[str] | None = None) -> FolderIndex:
    """Index images under ``root``. Labels exist when every image sits in a first-level subfolder.

    A folder's label is its position in ``labels`` (the model's output order) when given, else in the
    sorted folder names; a folder that ``labels`` does not name is an error, never a guess.
    """
    root = Path(root)
    _check_folder(root)
    paths = list(images.iter_images(root))
    if not paths:
        raise _no_images(root)
    rel_parts = [p.relative_to(root).parts for p in paths]
    if all(len(parts) >= 2 for parts in rel_parts):
        folders = sorted({parts[0] for parts in rel_parts})
        class_names = tuple(labels) if labels is not None else tuple(folders)
        index = {name: i for i, name in enumerate(class_names)}
        missing = [name for name in folders if name not in index]
        if missing:
            raise ConfigError("labels", f"has no line for the class folder {missing[0]!r} (in {root})"
                              + (f" nor for {len(missing) - 1} other(s)" if len(missing) > 1 else ""),
                              "add each class name on the line of its output position, or remove the folder")
        records = tuple(Record(p, index[parts[0]]) for p, parts in zip(paths, rel_parts))
        return FolderIndex(root, records, class_names)
    return FolderIndex(root, tuple(Record(p, None) for p in paths), None)


def sample(records: Sequence[Record], n: int, seed: int) -> list[Record]:
    """Seeded sample of ``n`` records, stratified over labels when they exist (order is stable)."""
    if n >= len(records):
        return list(records)
    rng = np.random.default_rng(seed)
    labels = [r.label for r in records]
    if any(lbl is None for lbl in labels):
        idx = np.sort(rng.choice(len(records), size=n, replace=False))
        return [records[i] for i in idx]
    by_class: dict[int, list[int]] = {}
    for i, lbl in enumerate(labels):
        by_class.setdefault(lbl, []).append(i)
    # proportional allocation, largest remainders first, so every class gets its share
    total = len(records)
    quotas = {c: n * len(ix) / total for c, ix in by_class.items()}
    alloc = {c: int(q) for c, q in quotas.items()}
    for c in sorted(quotas, key=lambda c: (alloc[c] - quotas[c], c))[: n - sum(alloc.values())]:
        alloc[c] += 1
    chosen: list[int] = []
    for c, ix in sorted(by_class.items()):
        chosen.extend(rng.choice(ix, size=min(alloc[c], len(ix)), replace=False).tolist())
    return [records[i] for i in sorted(chosen)]


def split(records: Sequence[Record], n_calib: int, n_eval: int | None, seed: int) -> tuple[list[Record], list[Record]]:
    """Disjoint calibration and evaluation samples from one folder (evaluation never reuses calibration);
    ``n_eval`` None holds out a fifth."""
    records = list(records)
    n_eval = min(n_eval or len(records), max(1, len(records) // 5)) if len(records) > 1 else 0
    eval_part = sample(records, n_eval, seed + 1) if n_eval else []
    taken = {r.path for r in eval_part}
    rest = [r for r in records if r.path not in taken]
    return sample(rest, n_calib, seed), eval_part


def load_records(records: Sequence[Record], spec: PreprocessSpec, class_names: tuple[str, ...] | None = None,
                 progress: Progress | None = None) -> Dataset:
    """Decode and preprocess images; undecodable files are skipped and counted, not fatal."""
    xs, ys, sources, skipped = [], [], [], []
    for i, rec in enumerate(records):
        try:
            xs.append(preprocess(images.load(rec.path), spec))
            ys.append(rec.label)
            sources.append(str(rec.path))
        except DataError as e:
            skipped.append((str(rec.path), e.what))
        if progress:
            progress(i + 1, len(records))
    if not xs:
        raise DataError(f"none of the {len(records)} images could be decoded "
                        f"(first: {_why(skipped[0])})" if skipped else "no images to load",
                        "check the folder's image files")
    x = np.stack(xs).astype(np.float32)
    y = np.asarray(ys, np.int64) if class_names is not None else None
    return Dataset(x, y, class_names, tuple(sources), tuple(skipped))


def _why(skip: tuple[str, str]) -> str:
    path, why = skip
    return why if path in why else f"{path}: {why}"


def load_arrays(path: str | os.PathLike, limit: int | None = None, seed: int = 0) -> Dataset:
    """Inputs from a .npy array or a .npz with ``x`` (and optional ``y``) — for non-image models."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file", "pass a .npy/.npz file or an image folder")
    check_arrays(path, str(path))
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise DataError(f"{path} is not a readable NumPy file ({e})", "save it with numpy.save/savez") from None
    if isinstance(data, np.ndarray):
        x, y = data, None
    else:
        keys = list(data.keys())
        xk = "x" if "x" in keys else keys[0] if keys else None
        if xk is None:
            raise DataError(f"{path} holds no arrays", "save inputs under the key 'x' (labels under 'y')")
        try:  # .npz members load lazily: an object (pickled) array fails only here
            x, y = data[xk], (data["y"] if "y" in keys else None)
        except (ValueError, OSError) as e:
            raise DataError(f"{path} is not a readable NumPy file ({e})", "save it with numpy.save/savez") from None
    if x.ndim < 2 or len(x) == 0:
        raise DataError(f"{path}: expected a batch of inputs (N, ...), got shape {x.shape}", "add a batch dimension")
    if y is not None and (y.ndim != 1 or len(y) != len(x)):
        raise DataError(f"{path} has {len(x)} inputs but {y.size} labels (shape {y.shape})",
                        "save one integer label per input under 'y'")
    idx = np.arange(len(x))
    if limit is not None and limit < len(x):
        idx = np.sort(np.random.default_rng(seed).choice(len(x), size=limit, replace=False))
    return Dataset(x[idx].astype(np.float32), None if y is None else np.asarray(y)[idx].astype(np.int64))


def load_input_arrays(path: str | os.PathLike, names: Sequence[str], shapes: Sequence[tuple[int, ...]]) -> Dataset:
    """The inputs of a model with several inputs from one ``.npz``: an array per input, keyed by the input's
    Keras name or ``input_<i>`` (labels, optional, under ``y``); shapes are checked against the model's."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file", "pass an .npz with one array per input")
    if path.suffix.lower() != ".npz":
        raise DataError(f"{path} is a single array, but the model has {len(names)} inputs ({', '.join(names)})",
                        "save an .npz with one array per input, keyed by input name (numpy.savez(path, name=array, …))")
    check_arrays(path, str(path))
    try:
        data = np.load(path, allow_pickle=False)
        keys = sorted(data.keys())
        xs = []
        for i, (name, shape) in enumerate(zip(names, shapes)):
            key = name if name in keys else f"input_{i}" if f"input_{i}" in keys else None
            if key is None:
                raise DataError(f"{path} has no array for input {name!r} (its keys: {', '.join(keys) or 'none'})",
                                f"save one array per input under its name ({', '.join(names)}) or as "
                                f"input_0..input_{len(names) - 1}")
            a = data[key]
            if a.ndim < 1 or tuple(a.shape[1:]) != tuple(shape):
                raise DataError(f"{path}: array {key!r} has shape {tuple(a.shape)}, but input {name!r} takes "
                                f"(N, {', '.join(map(str, shape))})", "save a batch of inputs shaped like the model's input")
            xs.append(a.astype(np.float32))
        y = data["y"] if "y" in keys else None
    except (ValueError, OSError) as e:   # .npz members load lazily: an object (pickled) array fails only here
        raise DataError(f"{path} is not a readable NumPy file ({str(e).splitlines()[0][:120]})",
                        "save it with numpy.savez") from None
    n = {len(a) for a in xs}
    if len(n) != 1 or not len(xs[0]):
        raise DataError(f"{path}: the inputs' arrays have different or zero lengths "
                        f"({', '.join(f'{k}: {len(a)}' for k, a in zip(names, xs))})", "give one sample count for every input")
    if y is not None and (y.ndim != 1 or len(y) != len(xs[0])):
        raise DataError(f"{path} has {len(xs[0])} inputs but {y.size} labels (shape {y.shape})",
                        "save one integer label per input under 'y'")
    return Dataset(xs[0], None if y is None else np.asarray(y).astype(np.int64), xs=tuple(xs))


def input_sets(calib: str | os.PathLike, names: Sequence[str], shapes: Sequence[tuple[int, ...]],
               eval_path: str | os.PathLike | None = None, calib_samples: int = 200, eval_samples: int | None = None,
               seed: int = 0) -> DataSplit:
    """Calibration and evaluation sets of a model with several inputs, from ``.npz`` files keyed by input name;
    a held-out fifth of ``calib`` evaluates when no ``eval_path`` is given (as for single-input arrays)."""
    full = load_input_arrays(calib, names, shapes)
    notes: list[str] = []
    n_eval = 0 if eval_path or len(full) < 2 else min(eval_samples or len(full), max(1, len(full) // 5))
    perm = np.random.default_rng(seed).permutation(len(full))
    cal = full.take(np.sort(perm[n_eval:][:calib_samples]))
    if eval_path:
        evs = load_input_arrays(eval_path, names, shapes)
        if eval_samples and eval_samples < len(evs):
            evs = evs.take(np.sort(np.random.default_rng(seed + 1).choice(len(evs), eval_samples, replace=False)))
    else:
        evs = full.take(np.sort(perm[:n_eval]))
    return _array_split(cal, evs, calib, calib_samples, notes, None)


def load_labeled(root: str | os.PathLike, spec: PreprocessSpec, limit: int | None = None, seed: int = 0,
                 progress: Progress | None = None, labels: Sequence[str] | None = None) -> Dataset:
    """A labeled image folder (class subfolders) as a Dataset; for fine-tuning and evaluation.
    ``labels``: class names in output order (default: the sorted folder names)."""
    index = scan_folder(root, labels)
    if not index.labeled:
        raise DataError(f"{root} has no class subfolders, so its images have no labels",
                        "arrange images as ROOT/<class name>/<image>")
    records = sample(index.records, limit, seed) if limit else list(index.records)
    return load_records(records, spec, index.class_names, progress)


@dataclass(frozen=True)
class DataSplit:
    calib: Dataset
    eval: Dataset
    notes: tuple[str, ...] = ()
    spec: PreprocessSpec | None = None   # how the images were preprocessed (None for arrays)

    def labels_fit(self, classes: int) -> "DataSplit":
        """This split with its folder labels dropped, and a note, when their count is not ``classes``.

        A folder with one subfolder of images (or 3 class folders for a 7-class model) is not a labelled
        set for this model: scoring against such labels gives a meaningless accuracy.
        """
        names = self.calib.class_names or self.eval.class_names
        if not names or len(names) == classes:
            return self
        unlabel = lambda d: Dataset(d.x, None, None, d.sources, d.skipped, d.xs)  # noqa: E731
        note = (f"the data has {len(names)} class folder(s) ({', '.join(names[:5])}{', …' if len(names) > 5 else ''}) "
                f"but the model has {classes} outputs, so the folders are not used as labels: accuracy is not "
                "reported and the budget uses agreement with Keras")
        return DataSplit(unlabel(self.calib), unlabel(self.eval), (*self.notes, note), self.spec)


def calibration_sets(calib: str | os.PathLike, spec: PreprocessSpec | None, eval_dir: str | os.PathLike | None = None,
                     calib_samples: int = 200, eval_samples: int | None = None, seed: int = 0,
                     progress: Progress | None = None, labels: Sequence[str] | None = None) -> DataSplit:
    """Calibration and evaluation data: seeded, stratified, disjoint when they come from one folder.

    ``eval_samples`` caps the evaluation set; None evaluates on every image not used for calibration
    (all of ``eval_dir``, or a fifth of ``calib`` held out). ``labels`` (class names in the model's output
    order) maps class folders to outputs by name; without it they are taken in sorted order.
    """
    notes: list[str] = []
    if Path(calib).suffix.lower() in ARRAY_EXTENSIONS:
        full = load_arrays(calib)
        n_eval = 0 if eval_dir or len(full) < 2 else min(eval_samples or len(full), max(1, len(full) // 5))
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(full))
        ev, ca = perm[:n_eval], np.sort(perm[n_eval:][:calib_samples])
        cal = Dataset(full.x[ca], None if full.y is None else full.y[ca])
        evs = load_arrays(eval_dir) if eval_dir else Dataset(full.x[np.sort(ev)], None if full.y is None else full.y[np.sort(ev)])
        return _array_split(cal, evs, calib, calib_samples, notes, spec)
    if spec is None:
        raise ConfigError("input_shape", "is needed: image calibration data needs the model's input size",
                          "give H,W,C such as 224,224,3")
    index = scan_folder(calib, labels)
    if eval_dir:
        eval_index = scan_folder(eval_dir, labels)
        cal_recs = sample(index.records, calib_samples, seed)
        ev_recs = sample(eval_index.records, eval_samples or len(eval_index.records), seed + 1)
        # by name, with labels: an evaluation folder may hold a subset of the classes
        class_names = index.class_names if index.class_names == eval_index.class_names else None
        if index.labeled and eval_index.labeled and class_names is None:
            notes.append(f"class folders differ between {calib} and {eval_dir}; accuracy is not reported")
    else:
        cal_recs, ev_recs = split(index.records, calib_samples, eval_samples, seed)
        class_names = index.class_names
        notes.append(f"evaluating on {len(ev_recs)} held-out images of {calib} (not used for calibration)")
    if len(cal_recs) < calib_samples:
        notes.append(f"{calib} has only {len(cal_recs)} calibration images (asked for {calib_samples}); using them all")
    cal = load_records(cal_recs, spec, class_names, progress)
    evs = load_records(ev_recs, spec, class_names, progress) if ev_recs else cal
    if not ev_recs:
        notes.append("too few images for a held-out evaluation split; evaluating on the calibration images")
    n_skipped = len(cal.skipped) + (len(evs.skipped) if evs is not cal else 0)
    if n_skipped:
        first = (cal.skipped or evs.skipped)[0]
        notes.append(f"skipped {n_skipped} image(s) that failed to decode (first: {_why(first)})")
    return DataSplit(cal, evs, tuple(notes), spec)


def _array_split(cal: Dataset, evs: Dataset, calib, calib_samples: int, notes: list[str],
                 spec: PreprocessSpec | None) -> "DataSplit":
    """Calibration and evaluation sets from arrays, with the notes on what fell short."""
    if not len(evs):
        evs = cal
        notes.append("too few samples for a held-out evaluation split; evaluating on the calibration samples")
    if len(cal) < calib_samples:
        notes.append(f"{calib} gave {len(cal)} calibration samples (asked for {calib_samples}); using them all")
    return DataSplit(cal, evs, tuple(notes), spec)
