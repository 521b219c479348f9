"""``keras-edge serve``: a bundle behind a small HTTP server — the live page, ``POST /infer``, health and metrics.

One :class:`~..run.runner.Runner` does all the inference. A live source (a camera, or a video/folder that
loops) goes through :func:`~..run.runner.run` like ``run --realtime``, with a ``watch`` callback that counts
each result and offers its frame to the :class:`.stream.Broadcaster`; ``POST /infer`` requests feed their
bytes to the same runner (``from_bytes``/``from_arrays`` then ``infer``, which takes one invocation at a
time), so there is no second inference path.

The HTTP layer is the standard library's ``ThreadingHTTPServer``: measured in fresh interpreters it imports
in about 0.1 s and adds 8 MB of RSS, beside the runner's 0.5 s and 18 MB, and 42 MB more with MobileNetV2
loaded (``benchmarks/serve.py``); it needs no wheel for ARM, and a thread per connection is what MJPEG
streaming to a few viewers wants.
"""

from __future__ import annotations

import ipaddress
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..contract.checks import positive_int
from ..contract.errors import ConfigError, EdgeError
from ..engine.core import EngineOptions
from ..engine.runtime import default_threads
from ..run.runner import RunConfig, Runner, open_runner, run
from ..run.sources import holds_video, plan_sources
from ..run.types import Item, Result, StreamStats
from .limits import Limits, check_image, is_arrays, load_arrays
from .metrics import ServeStats
from .stream import Broadcaster

TOKEN_ENV = "KERAS_EDGE_TOKEN"
MIN_TOKEN = 16
Log = Callable[[str], None]


@dataclass(frozen=True)
class ServeConfig:
    """What to serve, where, and who may call it. A non-loopback ``host`` needs a ``token`` or ``insecure``."""

    target: str
    source: str | None = None       # a video file or a folder (images and videos), looped
    camera: int | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    insecure: bool = False
    variant: str | None = None
    top_k: int = 5
    engine: EngineOptions = EngineOptions()
    realtime: bool = True           # a video source is read at its own frame rate, like a camera (late frames dropped)
    loop: bool = True               # a source starts over when it ends
    limits: Limits = field(default_factory=Limits)
    jpeg_quality: int = 80
    stream_width: int = 640         # the live stream's frames are scaled down to this width at most
    stream_fps: float = 15.0        # and encoded this often at most, however fast inference goes

    def __post_init__(self) -> None:
        if self.source is not None and self.camera is not None:
            raise ConfigError("camera", "and a source are both given", "serve one live source: a camera or a video/folder")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError("port", f"is {self.port!r}", "give a TCP port from 1 to 65535 (0: any free port)")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError("jpeg_quality", f"is {self.jpeg_quality}", "give 1 to 100")
        positive_int("top_k", self.top_k, "1 or more classes")
        positive_int("stream_width", self.stream_width, "a width in pixels such as 640", minimum=16)
        if not 0 < self.stream_fps <= 120:
            raise ConfigError("stream_fps", f"is {self.stream_fps:g}", "give frames per second above 0, at most 120")
        self._check_host()
        if self.token is not None:
            t = self.token
            if len(t) < MIN_TOKEN or not t.isascii() or not t.isprintable() or any(c in t for c in " ;,\"'\\"):
                raise ConfigError("token", f"is {len(t)} characters" if len(t) < MIN_TOKEN else "has characters a URL "
                                  "or header cannot carry as they are", f"give {MIN_TOKEN} or more letters, digits, '-' "
                                  "or '_', e.g. from: python3 -c 'import secrets; print(secrets.token_urlsafe())'")
        elif not self.loopback and not self.insecure:
            raise ConfigError("host", f"is {self.host}, which other machines can reach, and no token is set",
                              f"set a token (or ${TOKEN_ENV}) that the page and API will ask for, or pass insecure "
                              "to serve without one")

    def _check_host(self) -> None:
        if self.host == "localhost":
            return
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            raise ConfigError("host", f"is {self.host!r}, not an IP address",
                              "give an address of this board such as 127.0.0.1, 0.0.0.0 or 192.168.1.20") from None

    @property
    def loopback(self) -> bool:
        return self.host == "localhost" or ipaddress.ip_address(self.host).is_loopback

    @property
    def run_config(self) -> RunConfig:
        """The runner's configuration: the live source read like ``run --realtime``."""
        live_video = self.source is not None and self.realtime and holds_video(self.source)
        return RunConfig(target=self.target, sources=(self.source,) if self.source else (), camera=self.camera,
                         variant=self.variant, top_k=self.top_k, engine=self.engine, realtime=live_video)

    @property
    def live(self) -> bool:
        return self.source is not None or self.camera is not None


class _Stopped(Exception):
    """Raised from the watch callback to end the live run when the server stops."""


class Service:
    """The runner, the live source's thread, the picture and the numbers; the HTTP handler calls into it."""

    def __init__(self, config: ServeConfig, log: Log = lambda s: None):
        self.config, self.log = config, log
        self.stats = ServeStats()
        self.runner: Runner | None = None
        self.broadcaster: Broadcaster | None = None
        self.stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(config.limits.queue)
        # requests are decoded and run on a fixed pool, not on their connection's thread: a decoded image costs up
        # to ~70 MB (24 megapixels), and glibc keeps freed memory per thread arena, so a frame decoded on each of
        # 20 connection threads would stay resident 20 times over
        self._pool = ThreadPoolExecutor(max(1, min(2, default_threads() // 2)), thread_name_prefix="keras-edge-infer")
        self._live_thread: threading.Thread | None = None

    # ---- start and stop
    def check(self) -> None:
        """Refuse a live source that is not there (a missing file, an empty folder, no such camera) before binding."""
        if self.config.live:
            run_cfg = self.config.run_config
            plan_sources(run_cfg.sources, run_cfg.camera)

    def load(self) -> None:
        """Open the model, run a warm-up, start the live source; ready (``/healthz``) after the warm-up."""
        cfg = self.config
        runner = open_runner(cfg.run_config)
        if cfg.live:   # frames are kept (and decoded at least stream_width wide) only while someone watches
            self.broadcaster = Broadcaster(runner.target.labels, cfg.jpeg_quality, cfg.stream_width, cfg.stream_fps,
                                           on_watch=lambda on: runner.keep_images(on, cfg.stream_width))
        self.runner = runner
        variant = runner.target.variant
        self.stats.context = runner.context
        self.stats.info = {**runner.context, "variant": variant.name if variant else None,
                           "task": str(runner.target.task) if runner.target.task else None,
                           "source": self._source_name()}
        for note in runner.notes:
            self.log(f"note: {note}")
        self._warm_up()
        self.stats.ready, self.stats.state = True, "ready"
        if cfg.live:
            self._live_thread = threading.Thread(target=self._live, name="keras-edge-live", daemon=True)
            self._live_thread.start()

    def _source_name(self) -> str | None:
        if self.config.camera is not None:
            return f"camera {self.config.camera}"
        return Path(self.config.source).name if self.config.source else None

    def _warm_up(self) -> None:
        """One inference on zeros: the first invocation's one-off costs are paid before /healthz says ready."""
        ins = self.runner.engine.inputs
        tensors = [np.zeros(tuple(max(1, d) for d in t.shape), np.dtype(t.dtype)) for t in ins]
        res = self.runner.infer(Item("warm-up", tensors))
        if not res.ok:
            raise EdgeError(f"the warm-up inference failed: {res.error}", "check the bundle with keras-edge verify")

    def close(self) -> None:
        self.stopping.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.broadcaster is not None:
            self.broadcaster.close()
        if self._live_thread is not None:
            self._live_thread.join(timeout=10)

    # ---- the live source
    def _live(self) -> None:
        cfg = self.config
        passes = 0
        while not self.stopping.is_set():
            if passes:
                self.stats.new_pass()
            try:
                summary = run(cfg.run_config, lambda r: None, self.runner, watch=self._watch)
            except _Stopped:
                return
            except EdgeError as e:
                self.log(f"live source: {e}")
                self.stats.state = f"live source failed: {e}"
                if cfg.camera is None:
                    return
                self.stopping.wait(2.0)   # a camera that went away may come back
                continue
            passes += 1
            if summary.inputs == 0 or not cfg.loop or cfg.camera is not None:
                self.stats.state = "ready (the live source ended)"
                self.log(f"live source ended after {summary.inputs} input(s)")
                return

    def _watch(self, item: Item, res: Result, stream: StreamStats) -> None:
        if self.stopping.is_set():
            raise _Stopped
        latency = (time.perf_counter_ns() - item.captured_ns) / 1e6 if item.captured_ns is not None else None
        self.stats.result("live", res.ok, res.infer_ms, latency, stream.frames, stream.dropped, res)
        if item.image is not None and res.ok:
            self.broadcaster.offer(item.image, res, item.image_hw)

    # ---- POST /infer
    @contextmanager
    def slot(self) -> Iterator[bool]:
        """A place among the waiting requests: False when the queue is full (the caller answers 503)."""
        got = self._slots.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                self._slots.release()

    def infer(self, data: bytes, name: str) -> list[dict[str, Any]]:
        """Run a request body (an image file's bytes, or an .npy/.npz) and give what ``run --json`` prints for it."""
        return self._pool.submit(self._infer, data, name).result()

    def _infer(self, data: bytes, name: str) -> list[dict[str, Any]]:
        runner, limits = self.runner, self.config.limits
        if is_arrays(data):
            items = runner.from_arrays(name, load_arrays(data, limits))
        else:
            check_image(data, limits)
            item = runner.from_bytes(data, name)
            item.image = None                       # kept for the live frames' drawing; not needed here
            items = [item]
        out = []
        for it in items:
            res = runner.infer(it)
            self.stats.result("api", res.ok, res.infer_ms)
            out.append(res.to_dict(runner.context))
        return out


def serve(config: ServeConfig, log: Log = print, started: Callable[[str], None] | None = None) -> None:
    """Bind, load the model, serve until SIGINT/SIGTERM (or ``Service.stopping`` is set). ``started`` gets the URL."""
    from .handler import make_server

    service = Service(config, log)
    service.check()
    httpd = make_server(service)
    port = httpd.server_address[1]
    host = f"[{config.host}]" if ":" in config.host else config.host
    url = f"http://{host}:{port}/"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="keras-edge-http",
                              daemon=True)
    thread.start()
    restore = _on_sigterm(service.stopping)
    try:
        if not config.loopback and config.token is None:
            log(f"warning: serving {url} to the network with no token (insecure): anyone who can reach this "
                "board can watch the camera and call the model")
        log(f"listening on {url} (loading the model)")
        service.load()
        auth = "token required: Authorization: Bearer TOKEN, or ?token=TOKEN on the page" if config.token else "no token"
        log(f"serving {service.stats.info['target']} on {url} ({auth})")
        if started is not None:
            started(url)
        while not service.stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        restore()
        service.close()
        httpd.shutdown()
        httpd.server_close()


def _on_sigterm(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM (systemd's stop) ends the server like Ctrl-C; only possible from the main thread."""
    try:
        old = signal.signal(signal.SIGTERM, lambda *a: stop.set())
    except ValueError:
        return lambda: None
    return lambda: signal.signal(signal.SIGTERM, old)
