"""``keras-edge serve``: the live page, ``POST /infer``, ``/healthz`` and ``/metrics`` on the standard library's HTTP server."""
