"""A bounded load test of `maskcls serve` on localhost: requests/s, p50 and p99 latency, errors and the
server's memory, at several concurrency levels, with batching on and off, for the torch and ONNX backends,
in one run. Prints a table and the batching gain at the highest level; never asserts.

    python benchmarks/serve_load.py [--requests 5000] [--levels 1,8,32] [--backends torch,onnx] [--out DIR]

The model is the demo recipe trained one epoch on 8 synthetic people at 96x128 (its quality does not
matter here), exported to ONNX; every request posts the same 96x128 JPEG as the raw body. Each server
is a fresh `maskcls serve` process (batching on: --max-batch 32 --max-wait-ms 5; off: --max-batch 1),
warmed with 200 requests at the highest level. The client is this process: one thread per concurrent client, each with its own
keep-alive connection, so client and server share the machine's cores (say so with the figures).
Memory is the server's resident set (VmRSS) before the first level and after each.
"""

from __future__ import annotations

import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _cli import positive, run

from maskcls.cli.common import CommandParser
from maskcls.config import load_config
from maskcls.data.synth import make_dataset
from maskcls.errors import UserError
from maskcls.serve.export import export_run
from maskcls.training.fit import train

MODES = {"on": ["--max-batch", "32", "--max-wait-ms", "5"], "off": ["--max-batch", "1", "--max-wait-ms", "0"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(model: Path, backend: str, mode: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "maskcls", "serve", str(model), "--backend", backend,
                             "--port", str(port), *MODES[mode]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server ended: {proc.stderr.read().decode()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            time.sleep(0.3)
    raise SystemExit("the server did not start in 120 s")


def load(port: int, body: bytes, total: int, concurrency: int) -> dict:
    """``total`` requests from ``concurrency`` clients at once; latencies in seconds and the error count."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    share = [total // concurrency + (1 if i < total % concurrency else 0) for i in range(concurrency)]

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine, bad = [], 0
        for _ in range(n):
            start = time.perf_counter()
            try:
                conn.request("POST", "/predict", body=body, headers={"Content-Type": "image/jpeg"})
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            mine.append(time.perf_counter() - start)
            bad += not ok
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=client, args=(n,)) for n in share if n]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    latencies.sort()
    return {"rps": len(latencies) / seconds, "p50": statistics.median(latencies) * 1000,
            "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000, "errors": errors[0]}


def main() -> None:
    parser = CommandParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--requests", type=positive, default=5000, help="requests per level (default: %(default)s)")
    parser.add_argument("--levels", default="1,8,32", help="concurrent clients per level (default: %(default)s)")
    parser.add_argument("--backends", default="torch,onnx", help="torch, onnx or both (default: %(default)s)")
    parser.add_argument("--out", default=None, help="keep the data, run and export here (default: a temp folder)")
    args = parser.parse_args()
    try:
        levels = [int(x) for x in args.levels.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--levels: expected numbers joined by commas, got {args.levels!r}") from None
    if not levels or min(levels) < 1:
        raise UserError("--levels: give at least one level, each at least 1")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends or set(backends) - {"torch", "onnx"}:
        raise UserError(f"--backends: torch, onnx or both, got {args.backends!r}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        data, model = root / "data", root / "run"
        if not (data / "train" / "train.csv").is_file():
            make_dataset(data, people=8, eval_people=2, seed=0, size=(96, 128))
        if not (model / "best.pt").is_file():
            cfg = load_config("demo", ["train.epochs=1", "train.trackers=none", "data.folds=2"])
            train(cfg, data, model, progress=False, log=lambda s: None)
        if not (model / "model.onnx").is_file():
            export_run(model)
        body = sorted((data / "eval" / "images").iterdir())[0].read_bytes()
        rows = []
        for backend in backends:
            for mode in MODES:
                target = model if backend == "torch" else model / "model.onnx"
                proc, port = start_server(target, backend, mode)
                try:
                    load(port, body, 200, max(levels))  # warm-up at the highest level: the largest batches
                    # are allocated before the memory is first read
                    before = rss_mb(proc.pid)
                    for level in levels:
                        result = load(port, body, args.requests, level)
                        rows.append({"backend": backend, "batching": mode, "clients": level, **result,
                                     "rss_before": before, "rss_after": rss_mb(proc.pid)})
                        r = rows[-1]
                        print(f"{backend:5} batching {mode:3} x{level:<3} {r['rps']:7.1f} req/s  p50 {r['p50']:7.1f} ms  "
                              f"p99 {r['p99']:7.1f} ms  errors {r['errors']}  RSS {r['rss_before']:.0f} -> "
                              f"{r['rss_after']:.0f} MB", flush=True)
                finally:
                    proc.terminate()
                    proc.wait(timeout=60)
    print(f"\n{args.requests} requests per level, one {len(body) // 1024} KB 96x128 JPEG each; client and server on "
          f"this machine ({os.cpu_count()} cores)")
    print("| backend | batching | clients | req/s | p50 ms | p99 ms | errors | server RSS MB (before -> after) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['batching']} | {r['clients']} | {r['rps']:.1f} | {r['p50']:.1f} | {r['p99']:.1f} | "
              f"{r['errors']} | {r['rss_before']:.0f} -> {r['rss_after']:.0f} |")
    top = max(levels)
    for backend in backends:
        on = next(r for r in rows if r["backend"] == backend and r["batching"] == "on" and r["clients"] == top)
        off = next(r for r in rows if r["backend"] == backend and r["batching"] == "off" and r["clients"] == top)
        print(f"{backend}: batching at {top} clients gives {on['rps'] / off['rps']:.2f}x the requests/s of no batching")


if __name__ == "__main__":
    run(main)
