"""maskcls serve: a trained model behind an HTTP API (POST /predict, /health, /metrics) and a photo page."""

from __future__ import annotations

import argparse

from .common import at_least, device_arg, runs_args, runs_of


def _number_in(low: float, high: float, unit: str):
    """argparse type: a number of ``unit`` between low and high."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {unit}, got {text!r}") from None
        if not low <= value <= high:  # NaN fails too
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g} {unit}, got {value:g}")
        return value
    return parse


_wait = _number_in(0, 10_000, "ms")
_seconds = _number_in(0.1, 3600, "seconds")


def _port(text: str) -> int:
    value = at_least(0)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, got {value}")
    return value


def add_parser(sub) -> None:
    """Add `maskcls serve` to the command line: its options and their help."""
    from ..serve.backends import BACKENDS, TTA_CHOICES
    from ..serve.backends import MAX_BYTES, MAX_PHOTOS, ServeOptions

    defaults = ServeOptions()
    p = sub.add_parser(
        "serve", help="serve a trained model over HTTP (JSON API, metrics, a photo page)",
        description="Serve RUN (and --add-run runs, averaged) over HTTP until Ctrl-C or SIGTERM, which lets the "
                    "requests in flight finish. POST /predict takes one photo as the raw body (image/* or "
                    "application/octet-stream) or several as multipart/form-data files, and answers JSON: per "
                    "photo what `maskcls classify` prints. GET /health, GET /metrics (Prometheus text), and a "
                    "photo page at /. Requests arriving within --max-wait-ms run as one batch of up to "
                    "--max-batch photos. Bad input is a 4xx JSON answer; the server answers on.")
    runs_args(p)
    p.add_argument("--backend", default="torch", choices=tuple(BACKENDS),
                   help="; ".join(f"{name}: {b.help}" for name, b in BACKENDS.items()))
    p.add_argument("--tta", default="none", choices=TTA_CHOICES,
                   help="test-time augmentation: hflip averages the photo and its mirror image")
    device_arg(p, default="auto", help="auto (GPU when there is one), cpu or cuda (--backend torch)")
    p.add_argument("--host", default="127.0.0.1",
                   help="the address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 opens it to "
                        "the network, with a warning: there is no authentication)")
    p.add_argument("--port", type=_port, default=8000, help="the port (default: %(default)s; 0: any free one)")
    p.add_argument("--max-batch", type=at_least(1), default=defaults.max_batch,
                   help="photos run as one batch at most (default: %(default)s; 1 turns batching off)")
    p.add_argument("--max-wait-ms", type=_wait, default=defaults.max_wait_ms,
                   help="how long a batch's first photo waits for others, in ms (default: %(default)s)")
    p.add_argument("--max-mb", type=at_least(1), default=MAX_BYTES // (1024 * 1024),
                   help="the largest request body in MB; larger ones get 413 (default: %(default)s). A request "
                        f"holds at most {MAX_PHOTOS} photos and 40 million pixels in all")
    p.add_argument("--body-timeout", type=_seconds, default=defaults.body_seconds, metavar="S",
                   help="a body not received in full within S seconds gets 408, so a stalled client never "
                        "holds the server (default: %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`maskcls serve` with the parsed arguments; returns the exit status (errors raise UserError)."""
    from ..serve.predict import load_predictor
    from ..serve.server import ServeOptions, check_address, serve

    sock = check_address(args.host, args.port, keep=True)  # bound before the model loads: a taken port is said first
    predictor = load_predictor(runs_of(args), device=args.device, tta=args.tta, workers=0, backend=args.backend)
    options = ServeOptions(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                           max_bytes=args.max_mb * 1024 * 1024, body_seconds=args.body_timeout)
    serve(predictor, host=args.host, port=args.port, options=options, sock=sock)
    return 0
