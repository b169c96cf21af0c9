"""`maskcls serve`: a trained model behind an HTTP API, with dynamic batching and a photo page.

Built on FastAPI + uvicorn: a well-kept ASGI stack that parses multipart uploads (python-multipart), shuts
down gracefully on SIGTERM (requests in flight finish) and needs no extra process. Batching is ours and
small (``Batcher``): LitServe batches too, but it would bring its own worker processes and loading, where
maskcls already has one loader (``serve.predict.load_predictor``) and one answer format (``answer_record``).

    POST /predict   one photo as the raw body (image/* or application/octet-stream), or one or several as
                    multipart/form-data files -> {"predictions": [answer, ...]} in the order sent; each
                    answer is what `maskcls classify` prints for that photo, "photo" being the upload's
                    file name (or its position)
    GET  /health    {"status": "ok", "models": N, "backend": ...}
    GET  /metrics   Prometheus text: requests and errors by endpoint and status, batch sizes, latency
    GET  /          a page to drop or choose photos and see each answer with its probabilities

Bad input is a 4xx JSON answer ({"error": "..."}) and the server answers on: a body that is not a photo,
a truncated one, a decompression bomb (over photos.MAX_PIXELS, refused before decoding), a body over
``max_bytes`` (413), a wrong content type (415), an empty body (400), a client gone mid-upload.
"""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import TYPE_CHECKING, Any, Callable

from ..errors import UserError
from .backends import MAX_BYTES, MAX_PHOTOS, ServeOptions  # noqa: F401  (imported from here too)

if TYPE_CHECKING:  # the command line builds this command's parser at every start: nothing heavy at import
    import numpy as np


class Batcher:
    """Dynamic batching: photos of requests arriving within ``max_wait_ms`` of a batch's first one run as
    one call of ``predict`` (up to ``max_batch`` photos; a request is never split). ``predict`` runs in
    one worker thread, so the event loop keeps accepting requests while a batch runs.

    A batch waits only while other requests are about to join it (``arriving``: bodies read in full and
    being decoded; a client still sending, or stalled, does not count): a lone client is answered at once
    instead of paying the wait on every request."""

    def __init__(self, predict: Callable[[list[np.ndarray]], np.ndarray], *, max_batch: int, max_wait_ms: float,
                 on_batch: Callable[[int], None] = lambda n: None) -> None:
        self.predict, self.max_batch, self.max_wait = predict, max_batch, max_wait_ms / 1000
        self.on_batch = on_batch
        self.queue: asyncio.Queue = asyncio.Queue()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="maskcls-predict")
        self.task: asyncio.Task | None = None
        self.arriving = 0  # requests read or decoded now, which may join the next batch

    def start(self) -> None:
        """Start the batching loop on the running event loop."""
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the loop and the worker thread (a batch running finishes first)."""
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        self.executor.shutdown(wait=True)

    async def submit(self, images: list[np.ndarray]) -> np.ndarray:
        """(len(images), 18) probabilities, once the batch holding these photos has run. A request of more
        than max_batch photos runs as several batches of at most max_batch (max_batch is a real cap)."""
        import numpy as np

        if len(images) > self.max_batch:
            parts = [images[i:i + self.max_batch] for i in range(0, len(images), self.max_batch)]
            return np.concatenate(await asyncio.gather(*(self.submit(part) for part in parts)))
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((images, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self.queue.get()]
            count = len(jobs[0][0])
            deadline = loop.time() + self.max_wait
            while count < self.max_batch:
                if self.queue.empty():
                    left = deadline - loop.time() if self.arriving else 0
                    if left <= 0:
                        break
                    try:
                        job = await asyncio.wait_for(self.queue.get(), left)
                    except asyncio.TimeoutError:
                        break
                else:
                    job = self.queue.get_nowait()
                if count + len(job[0]) > self.max_batch:  # not split: it starts the next batch
                    self.queue.put_nowait(job)
                    break
                jobs.append(job)
                count += len(job[0])
            images = [x for job in jobs for x in job[0]]
            self.on_batch(len(images))
            try:
                probs = await loop.run_in_executor(self.executor, self.predict, images)
            except Exception as exc:  # the batch's requests answer with it; the loop goes on
                for _, future in jobs:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for job_images, future in jobs:
                if not future.done():  # a client gone does not stop the others
                    future.set_result(probs[start:start + len(job_images)])
                start += len(job_images)


class Metrics:
    """The Prometheus counters and histograms of one app (its own registry, so several apps in one
    process, as in the tests, do not collide)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("maskcls_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
                                registry=self.registry)
        self.photos = Counter("maskcls_photos", "photos answered", registry=self.registry)
        self.batch = Histogram("maskcls_batch_size", "photos per model call", registry=self.registry,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128))
        self.latency = Histogram("maskcls_request_seconds", "request latency, arrival to answer", ["endpoint"],
                                 registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

    def text(self) -> bytes:
        """The metrics in Prometheus' text format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


def page() -> str:
    """The photo page (resources/pages/serve.html)."""
    return resources.files("maskcls").joinpath("resources/pages/serve.html").read_text(encoding="utf-8")


def create_app(predictor: Any, options: ServeOptions = ServeOptions()):
    """The FastAPI app serving ``predictor`` (``serve.predict.load_predictor``'s)."""
    from fastapi import FastAPI
    from starlette.exceptions import HTTPException as StarletteHTTPException

    service = _Service(predictor, options)

    async def lifespan(app):
        service.start()
        yield
        await service.batcher.stop()

    app = FastAPI(title="maskcls", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(StarletteHTTPException, service.http_error)
    # Starlette routes (the endpoint takes the Request itself): no FastAPI parameter injection, which would
    # read the annotations this module keeps as strings.
    for path, endpoint, methods in (("/predict", service.predict, ["POST"]), ("/health", service.health, ["GET"]),
                                    ("/metrics", service.prometheus, ["GET"]), ("/", service.index, ["GET"])):
        app.router.add_route(path, endpoint, methods=methods)
    return app


class _Service:
    """The endpoints of one app: the predictor, its batcher and the metrics they count."""

    def __init__(self, predictor: Any, options: ServeOptions) -> None:
        self.predictor, self.options, self.metrics = predictor, options, Metrics()
        self.batcher: Batcher | None = None

    def start(self) -> None:
        self.batcher = Batcher(lambda images: self.predictor.predict_proba(images), max_batch=self.options.max_batch,
                               max_wait_ms=self.options.max_wait_ms, on_batch=self.metrics.batch.observe)
        self.batcher.start()

    def error(self, status: int, message: str, endpoint: str = "/predict"):
        from fastapi.responses import JSONResponse

        self.metrics.requests.labels(endpoint, str(status)).inc()
        return JSONResponse({"error": message}, status_code=status)

    async def read_body(self, request) -> bytes:
        """The body, refused past max_bytes as it streams in (a client's Content-Length is not trusted)."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.options.max_bytes:
            raise _TooLarge()
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.options.max_bytes:
                raise _TooLarge()
            chunks.append(chunk)
        return b"".join(chunks)

    async def uploads(self, request) -> list[tuple[str, bytes]]:
        """(name, bytes) of each photo sent: the raw body ("body"), or each multipart file (its file name)."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            body = await self.read_body(request)  # the cap holds for multipart too
            form = await _form_of(request, body, self.options.max_photos + 1)  # one over: our 413 names the limit
            files = [(getattr(v, "filename", None) or key, await v.read()) for key, v in form.multi_items()
                     if hasattr(v, "read")]
            if not files:
                raise _BadRequest(400, "the multipart body holds no file; send photos as file fields")
            return files
        if kind.startswith("image/") or kind == "application/octet-stream":
            return [("body", await self.read_body(request))]
        raise _BadRequest(415, f"content type {kind or 'none'}: send a photo as image/* or "
                               "application/octet-stream, or photos as multipart/form-data")

    async def photos(self, request) -> tuple[list[tuple[str, bytes]], list]:
        """The request's photos, checked and decoded (in a worker thread: decoding takes the CPU, and the
        server answers others meanwhile); raises _TooLarge, _BadRequest, PhotoError or ClientDisconnect."""
        from ..photos import decode_bytes

        options = self.options
        try:
            files = await asyncio.wait_for(self.uploads(request), options.body_seconds)
        except asyncio.TimeoutError:
            raise _BadRequest(408, f"the body did not arrive within {options.body_seconds:g} s") from None
        if len(files) > options.max_photos:
            raise _BadRequest(413, f"{len(files)} photos in one request; at most {options.max_photos}")
        for name, data in files:
            if not data:
                raise _BadRequest(400, f"{name}: empty; send the photo's bytes")
        check_pixels(files)  # read from the headers: a request's photos are refused before any is decoded
        self.batcher.arriving += 1  # received in full: a batch may wait for these
        try:
            images = await asyncio.get_running_loop().run_in_executor(
                None, lambda: [decode_bytes(data, name) for name, data in files])
        finally:
            self.batcher.arriving -= 1
        return files, images

    async def predict(self, request):
        """POST /predict: each photo's answer, as `maskcls classify` prints it; a 4xx JSON for bad input."""
        from fastapi.responses import JSONResponse, Response
        from starlette.requests import ClientDisconnect

        from ..photos import PhotoError
        from .predict import answer_record

        start = time.perf_counter()
        try:
            files, images = await self.photos(request)
        except _TooLarge:
            return self.error(413, f"the body is over {self.options.max_bytes:,} bytes")
        except _BadRequest as exc:
            return self.error(exc.status, exc.message)
        except PhotoError as exc:
            return self.error(400, str(exc))
        except ClientDisconnect:  # the client left mid-upload: no one to answer
            self.metrics.requests.labels("/predict", "499").inc()
            return Response(status_code=499)
        try:
            probs = await self.batcher.submit(images)
        except UserError as exc:
            return self.error(400, str(exc))
        except Exception as exc:  # a model failure: the request fails, the server answers on
            return self.error(500, f"the model failed: {type(exc).__name__}: {exc}")
        cutoffs = self.predictor.cutoffs
        answers = [{"photo": name, **answer_record(row, cutoffs)} for (name, _), row in zip(files, probs)]
        self.metrics.photos.inc(len(answers))
        self.metrics.requests.labels("/predict", "200").inc()
        self.metrics.latency.labels("/predict").observe(time.perf_counter() - start)
        return JSONResponse({"predictions": answers})

    async def health(self, request):
        """GET /health."""
        from fastapi.responses import JSONResponse

        self.metrics.requests.labels("/health", "200").inc()
        return JSONResponse({"status": "ok", "models": self.predictor.n_models,
                             "backend": getattr(self.predictor, "backend", "torch"), "classes": 18,
                             "max_batch": self.options.max_batch, "max_wait_ms": self.options.max_wait_ms})

    async def prometheus(self, request):
        """GET /metrics, in Prometheus' text format."""
        from fastapi.responses import Response

        return Response(self.metrics.text(), media_type="text/plain; version=0.0.4")

    async def index(self, request):
        """GET /: the photo page."""
        from fastapi.responses import HTMLResponse

        self.metrics.requests.labels("/", "200").inc()
        return HTMLResponse(page())

    async def http_error(self, request, exc):
        """404, 405 ...: the same JSON shape as ours, counted."""
        return self.error(exc.status_code, str(exc.detail),
                          endpoint=request.url.path if exc.status_code != 404 else "other")


class _TooLarge(Exception):
    pass


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


async def _form_of(request, body: bytes, max_files: int):
    """The multipart form of a body already read (and capped); a malformed one is a 400."""
    from starlette.datastructures import Headers
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def stream():
        yield body

    try:
        return await MultiPartParser(Headers(raw=request.headers.raw), stream(), max_files=max_files,
                                     max_fields=max_files).parse()
    except MultiPartException as exc:
        if "Too many" in exc.message:
            raise _BadRequest(413, f"over {max_files - 1} photos in one request; send at most {max_files - 1}") from None
        raise _BadRequest(400, f"malformed multipart body: {exc.message}") from None


def check_pixels(files: list[tuple[str, bytes]]) -> None:
    """A request's photos hold at most photos.MAX_PIXELS pixels in all (read from their headers, nothing
    decoded): one request never decodes into gigabytes. A single photo over it is refused as training is."""
    import io

    from PIL import Image

    from ..photos import MAX_PIXELS

    total = 0
    for name, data in files:
        try:
            with Image.open(io.BytesIO(data)) as im:
                total += im.size[0] * im.size[1]
        except Exception:  # not an image: decode_bytes says so, naming it
            continue
    if total > MAX_PIXELS and len(files) > 1:
        raise _BadRequest(413, f"the {len(files)} photos hold {total:,} pixels in all, over the {MAX_PIXELS:,} a "
                               "request may hold; send fewer or smaller photos per request")


def serve(predictor: Any, *, host: str = "127.0.0.1", port: int = 8000, options: ServeOptions = ServeOptions(),
          sock=None, log: Callable[[str], None] = print) -> None:
    """Run the server until SIGTERM or Ctrl-C; requests in flight finish first, then it returns (exit 0).
    ``sock``: the socket ``check_address(host, port, keep=True)`` bound (bound here when not given)."""
    import logging

    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {host}: anyone who reaches this machine can use the model; there is no "
              "authentication (the default, 127.0.0.1, answers this machine only)", file=sys.stderr)
    # bound before the address is printed: the port printed is the one listened on (--port 0)
    sock = sock or check_address(host, port, keep=True)
    sock.listen(2048)  # from now (the model loaded), connections made once the address is printed wait in the backlog
    logging.getLogger("python_multipart").setLevel(logging.ERROR)  # a malformed body is the client's 400, not a log line
    app = create_app(predictor, options)
    url_host = f"[{host}]" if ":" in host else host
    log(f"serving {predictor.n_models} model(s) ({getattr(predictor, 'backend', 'torch')}) on "
        f"http://{url_host}:{sock.getsockname()[1]}/ (POST /predict, GET /health, GET /metrics); batches of up to "
        f"{options.max_batch} photos within {options.max_wait_ms:g} ms; Ctrl-C or SIGTERM stops it")
    config = uvicorn.Config(app, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=options.body_seconds + 30)
    _server(config).run(sockets=[sock])


def _server(config):
    """uvicorn's server, except that a graceful stop on SIGTERM or Ctrl-C returns: uvicorn raises the signal
    again once the requests are done, which ends the process with 143 after SIGTERM."""
    import contextlib
    import signal
    import threading

    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server(config)


def check_address(host: str, port: int, *, keep: bool = False):
    """Say in one line that the address cannot be listened on, before the model is served; with ``keep``
    return the bound socket, not yet listening (``serve`` listens on it once the model is loaded)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        why = "taken by another program? choose another --port" if exc.errno == 98 else exc.strerror
        raise UserError(f"cannot listen on {host}:{port} ({why})") from None
    if not keep:
        sock.close()
        return None
    return sock
