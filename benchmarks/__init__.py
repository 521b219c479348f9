"""keras-edge benchmarks against what users do today (``make bench`` → ``python -m benchmarks.run``)."""
