"""keras-edge board side: bundle contract, preprocessing, runtime, run/bench/verify/doctor.

This package must import and work without TensorFlow (see DESIGN.md, "the import rule").
"""

__version__ = "0.1.0"
