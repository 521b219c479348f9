"""The contract between workstation and board: the bundle's manifest (its tensors, preprocessing and postprocessing
specs, variants with checksums and tolerances), the errors every command speaks, and the field checks configs use.
Both sides read and write bundles through this room only."""

from . import bundle
from .bundle import MANIFEST, REFERENCE, REPORT_JSON, REPORT_MD, Manifest, TensorSpec, Tolerance, Variant, read_manifest
from .checks import choice, in_range, positive_float, positive_int
from .errors import BundleError, ConfigError, DataError, EdgeError, ModelError, RuntimeUnavailable
from .preprocess import PRESETS, ColorOrder, Interpolation, PreprocessSpec, ResizeMode
from .tasks import BoxUnits, PostprocessSpec, ScoreKind, Task
from .tolerances import MODES, gpu_slack

__all__ = ["MANIFEST", "MODES", "PRESETS", "REFERENCE", "REPORT_JSON", "REPORT_MD", "BoxUnits", "BundleError",
           "ColorOrder", "ConfigError", "DataError", "EdgeError", "Interpolation", "Manifest", "ModelError",
           "PostprocessSpec", "PreprocessSpec", "ResizeMode", "RuntimeUnavailable", "ScoreKind", "Task", "TensorSpec",
           "Tolerance", "Variant", "bundle", "choice", "gpu_slack", "in_range", "positive_float", "positive_int",
           "read_manifest"]
