"""``keras-edge serve``: parse → :class:`ServeConfig` → :func:`serve`. Board side, no TensorFlow."""

from __future__ import annotations

import click

from keras_edge.device.engine.core import EngineOptions
from keras_edge.options import engine_options


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("target", metavar="BUNDLE", type=click.Path())
@click.option("--camera", type=int, default=None, metavar="N", help="Live source: camera N (/dev/videoN).")
@click.option("--source", type=click.Path(), default=None, metavar="VIDEO|FOLDER",
              help="Live source: a video file or a folder of images/videos, played in a loop.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Any but a loopback address needs --token (or --insecure).")
@click.option("--port", default=8080, show_default=True, type=int, help="TCP port (0: any free port, printed).")
@click.option("--token", envvar="KERAS_EDGE_TOKEN", default=None, metavar="TOKEN",
              help="Secret the page and API ask for (Authorization: Bearer TOKEN, or /?token=TOKEN). "
                   "Default: $KERAS_EDGE_TOKEN, which keeps it out of the process list.")
@click.option("--insecure", is_flag=True, help="Allow a non-loopback --host without a token (prints a warning).")
@click.option("--variant", default=None, help="Bundle variant (default: the manifest's default).")
@click.option("--top-k", default=5, show_default=True, type=int, help="Classes per result.")
@click.option("--realtime/--no-realtime", default=True, show_default=True,
              help="Read a video --source at its own frame rate, like a camera (late frames dropped); "
                   "--no-realtime reads it as fast as the model goes.")
@click.option("--once", is_flag=True, help="Play --source once instead of looping (the server keeps serving).")
@click.option("--queue", default=8, show_default=True, type=int,
              help="POST /infer requests that may wait; one more is answered 503.")
@click.option("--max-body-mb", default=32.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Largest POST /infer body.")
@click.option("--max-megapixels", default=24.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Largest image POST /infer decodes (checked from its header first).")
@click.option("--stream-width", default=640, show_default=True, type=int,
              help="The live stream's frames are scaled down to this width (pixels) at most.")
@click.option("--stream-fps", default=15.0, show_default=True, type=float,
              help="The live stream is encoded this many times a second at most, however fast inference runs.")
@engine_options()
def serve(target, camera, source, host, port, token, insecure, variant, top_k, realtime, once, queue, max_body_mb,
          max_megapixels, stream_width, stream_fps, threads, accelerator, no_fallback, gpu_delegate, gpu_timeout) -> int:
    """Serve BUNDLE over HTTP: a live page (/), POST /infer, /healthz and /metrics."""
    from keras_edge.api import serve as run_server
    from keras_edge.device.serve.limits import Limits
    from keras_edge.device.serve.server import ServeConfig

    eng = EngineOptions(threads=threads, accelerator=accelerator, fallback=not no_fallback, gpu_delegate=gpu_delegate,
                        gpu_timeout=gpu_timeout)
    limits = Limits(max_body_bytes=int(max_body_mb * 2**20), max_pixels=int(max_megapixels * 1e6), queue=queue)
    cfg = ServeConfig(target=target, source=source, camera=camera, host=host, port=port, token=token or None,
                      insecure=insecure, variant=variant, top_k=top_k, engine=eng, realtime=realtime, loop=not once,
                      limits=limits, stream_width=stream_width, stream_fps=stream_fps)
    run_server(cfg, log=lambda line: click.echo(line, err=True))
    return 0
