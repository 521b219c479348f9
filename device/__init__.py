"""keras-edge board side: bundle contract, preprocessing, runtime, run/bench/verify/doctor.

This package must import and work without TensorFlow, and names nothing above it (not the
workstation side, not the command line): see docs/ARCHITECTURE.md, "the import rule".
"""
