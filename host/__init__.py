"""keras-edge workstation side: convert, prune, distill, evaluate, report, deploy (needs TensorFlow)."""
