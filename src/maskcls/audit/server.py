"""`maskcls review AUDIT`: serve an audit's review page on 127.0.0.1 and write each decision to disk.

The server is the standard library's ``http.server.ThreadingHTTPServer``: the page needs three small
JSON calls and its own static files, for one person on one machine, so a framework (Flask, aiohttp)
would add a dependency and buy nothing; http.server ships with Python, is maintained with it, and
binding to 127.0.0.1 only keeps it off the network. It serves nothing but review.html and its
thumbnails (not the rest of AUDIT), answers only requests addressed to 127.0.0.1/localhost (a DNS
rebinding page cannot reach it), and takes decisions only as JSON (a page of another origin cannot
send that without a CORS preflight, which is never granted).

API (the page's script uses it; everything else is 404):
    GET  /api/state    {"audit", "folder", "decisions": {card id: accept|reject|skip}}
    POST /api/decide   {"id": card id, "decision": accept|reject|skip} -> the new state
    POST /api/undo     {} -> the new state and "undone": the card id whose last decision was taken back

Each decision is appended to AUDIT/decisions.csv (fsynced before the answer) and
AUDIT/accepted_corrections.csv is rewritten atomically, so a kill at any moment loses nothing the
page showed as saved. AUDIT/.review.lock (holding the server's pid) keeps a second server off the
same audit; a lock whose process is gone is taken over.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator

from ..errors import UserError
from ..fileio import PidLock, write_csv
from . import decisions as dec

LOCK_NAME = ".review.lock"
HOST = "127.0.0.1"
_THUMB = re.compile(r"^/thumbs/[0-9a-f]{20}\.jpg$")
_DATA = re.compile(r'<script type="application/json" id="audit-data">(.*?)</script>', re.S)
MAX_BODY = 64 * 1024


def read_page(audit: Path) -> dict:
    """The issues JSON embedded in AUDIT/review.html (the cards the page shows, with their ids)."""
    page = audit / "review.html"
    if not page.is_file():
        raise UserError(f"{audit}: no review.html; give the folder of a `maskcls audit DATA --out AUDIT`")
    found = _DATA.search(page.read_text(encoding="utf-8", errors="replace"))
    try:
        data = json.loads(found.group(1)) if found else None
    except ValueError:
        data = None
    if not isinstance(data, dict) or "issues" not in data:
        raise UserError(f"{page}: not a review page written by maskcls audit")
    if not data.get("data"):
        raise UserError(f"{page}: written by an older maskcls that did not record which data it audited; "
                        "rerun the same `maskcls audit` (it reuses AUDIT/cv) and review again")
    return data


class Review:
    """The state of one review: the page's cards, the decisions log, and the lock. Thread-safe."""

    def __init__(self, audit: str | Path):
        self.audit = Path(audit)
        if not self.audit.is_dir():
            raise UserError(f"{self.audit}: no such audit folder")
        self.page = read_page(self.audit)
        self.cards = {c["id"]: c for c in self.page["issues"]}
        self.log_path = self.audit / dec.FILE_NAME
        self.accepted_path = self.audit / dec.ACCEPTED_NAME
        self._mutex = threading.Lock()
        self.closed = False
        # One review server per audit; a lock whose process is gone (killed, crashed) is taken over.
        self.lock = PidLock(self.audit / LOCK_NAME, target=self.audit, busy=
                            lambda pid, host: f"{self.audit}: another maskcls review (pid {pid} on {host}) is serving "
                                              f"this audit; use that one or stop it (if none runs, delete "
                                              f"{self.audit / LOCK_NAME})")
        self.lock.acquire()
        try:
            # Checked before anything is written: a log of other data is refused, not repaired.
            log = dec.read_log(self.log_path) if self.log_path.exists() else []
            dec.check_log(log, self.log_path, data_id=self.page["data"])
            dec.prepare_log(self.log_path)
            self.state, self.history = dec.replay(log)
            self._write_accepted()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop taking decisions; waits for one being written."""
        with self._mutex:  # waits for a decision being written; none is taken after this
            self.closed = True
            self.lock.release()

    def snapshot(self) -> dict:
        """The page's state: every card's decision, the counts and what undo would undo."""
        with self._mutex:
            return self._snapshot()

    def _snapshot(self) -> dict:
        return {"audit": self.page["audit"], "folder": str(self.audit),
                "decisions": {dec.card_id(k): r["decision"] for k, r in self.state.items()}}

    def decide(self, card: str, decision: str) -> dict:
        """Record ``decision`` (accept, reject or skip) for ``card``, on disk before it answers; returns the new state."""
        if decision not in ("accept", "reject", "skip"):
            raise ValueError(f"unknown decision {decision!r}")
        c = self.cards.get(card)
        if c is None:
            raise ValueError("no such card on this page")
        key = tuple(card.split("\t"))
        fix = dict(zip(self.page["columns"], c["correction"]))
        rec = {"time": dec.now(), "person": c["person"], "field": c["field"], "photos": c["photos"],
               "given": c["given"], "suggestion": c["suggested"], "decision": decision, "image": fix["image"],
               "from": fix["from"], "to": fix["to"], "note": fix["note"], "data": self.page["data"]}
        with self._mutex:
            self._check_open()
            with self._all_or_nothing():
                dec.append(self.log_path, rec)
                self.history.append((key, self.state.get(key)))  # type: ignore[arg-type]
                self.state[key] = rec  # type: ignore[index]
                self._write_accepted()
            return self._snapshot()

    def undo(self) -> dict:
        """Take back the last decision, on disk; returns the new state."""
        with self._mutex:
            self._check_open()
            if not self.history:
                return {**self._snapshot(), "undone": None}
            key, prev = self.history[-1]
            undone = self.state.get(key) or prev or {}
            rec = {**{c: "" for c in dec.COLUMNS}, **{k: v for k, v in undone.items() if k in dec.COLUMNS},
                   "time": dec.now(), "decision": "undo", "data": self.page["data"]}
            with self._all_or_nothing():
                dec.append(self.log_path, rec)
                self.history.pop()
                if prev is None:
                    self.state.pop(key, None)
                else:
                    self.state[key] = prev
                self._write_accepted()
            return {**self._snapshot(), "undone": dec.card_id(key)}

    @contextlib.contextmanager
    def _all_or_nothing(self) -> Iterator[None]:
        """A decision is saved whole or not at all: when any step fails (a full disk while rewriting
        accepted_corrections.csv, after the log line went in), the log is cut back to where it was and
        the state restored, so the page's NOT SAVED is true and a retry logs the decision once."""
        size = self.log_path.stat().st_size
        state, history = dict(self.state), list(self.history)
        try:
            yield
        except BaseException:
            self.state, self.history = state, history
            try:
                os.truncate(self.log_path, size)
            except OSError:
                pass  # nothing more can be done; the next start replays what the log holds
            raise

    def _check_open(self) -> None:
        if self.closed:
            raise OSError(0, "the review has stopped")

    def thumbnail(self, path: str) -> bytes | None:
        """The bytes of AUDIT/thumbs/<name>, or None: only a regular file whose real path lies inside
        AUDIT is served (a link planted in thumbs/ pointing elsewhere is not found), as the data
        folder's outside-link rule."""
        file = self.audit / path.lstrip("/")
        try:
            real = file.resolve(strict=True)
            if not real.is_relative_to(self.audit.resolve()) or not real.is_file():
                return None
            return real.read_bytes()
        except (OSError, RuntimeError):  # missing, unreadable, a link loop
            return None

    def _write_accepted(self) -> None:
        write_csv(self.accepted_path, dec.accepted_corrections(self.state, self.page["issues"]))


class _Handler(BaseHTTPRequestHandler):
    server: "ReviewServer"
    # HTTP/1.0: one request per connection, so no kept-alive connection outlives a stopped server
    # (on localhost a new connection costs nothing).
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass  # one line per thumbnail is noise; decisions are on disk, errors reach the page

    def _host_ok(self) -> bool:
        host = (self.headers.get("Host") or "").strip().lower()
        port = self.server.server_address[1]
        return host in (f"{HOST}:{port}", f"localhost:{port}")

    def _send(self, status: int, body: bytes, kind: str, *, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: dict, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if not self._host_ok():
            return self._json({"error": "wrong host"}, HTTPStatus.FORBIDDEN)
        path = self.path.split("?", 1)[0]
        review = self.server.review
        if path in ("/", "/review.html"):
            return self._send(200, (review.audit / "review.html").read_bytes(), "text/html; charset=utf-8")
        if path == "/api/state":
            return self._json(review.snapshot())
        thumb = review.thumbnail(path) if _THUMB.match(path) else None
        if thumb is not None:
            return self._send(200, thumb, "image/jpeg", cache=True)
        self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        origin = self.headers.get("Origin")
        port = self.server.server_address[1]
        if not self._host_ok() or (origin and origin not in (f"http://{HOST}:{port}", f"http://localhost:{port}")):
            return self._json({"error": "wrong host or origin"}, HTTPStatus.FORBIDDEN)
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            return self._json({"error": "send JSON"}, HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 <= length <= MAX_BODY:
                raise ValueError("body too large")
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
        except RecursionError:  # thousands of nested brackets: malformed like any other body
            return self._json({"error": "bad request: JSON nested too deeply"}, HTTPStatus.BAD_REQUEST)
        except ValueError as exc:
            return self._json({"error": f"bad request: {exc}"}, HTTPStatus.BAD_REQUEST)
        review = self.server.review
        try:
            if self.path == "/api/decide":
                return self._json(review.decide(str(body.get("id", "")), str(body.get("decision", ""))))
            if self.path == "/api/undo":
                return self._json(review.undo())
        except ValueError as exc:
            return self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)
        except OSError as exc:  # a full or read-only disk: the page says NOT SAVED
            return self._json({"error": f"cannot write {exc.filename or ''}: {exc.strerror}"},
                              HTTPStatus.INTERNAL_SERVER_ERROR)
        except UserError as exc:  # fileio's full-disk message: nothing was saved (see _all_or_nothing)
            return self._json({"error": str(exc)}, HTTPStatus.INTERNAL_SERVER_ERROR)
        self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)


class ReviewServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_port = False  # never share a port with another server (Python 3.14 turns it on)

    def __init__(self, review: Review, port: int):
        self.review = review
        try:
            super().__init__((HOST, port), _Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UserError(f"port {port} on {HOST} is in use; give another with --port "
                                "(--port 0 picks a free one)") from None
            if exc.errno == errno.EACCES:
                raise UserError(f"port {port} needs privileges; give one above 1023 with --port") from None
            raise

    @property
    def url(self) -> str:
        """The page's address."""
        return f"http://{HOST}:{self.server_address[1]}/"


def open_review(audit: str | Path, port: int) -> ReviewServer:
    """Check AUDIT, take its lock and bind the port; the caller runs ``serve_forever`` and then
    ``close_review``. Raises UserError (nothing written but the lock, released again) when it cannot."""
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be between 0 and 65535, got {port}")
    # The review writes its two files when it opens; a server that then cannot start leaves none of
    # them behind that were not there before.
    made = [p for p in (Path(audit) / dec.FILE_NAME, Path(audit) / dec.ACCEPTED_NAME) if not p.exists()]
    review = Review(audit)
    try:
        return ReviewServer(review, port)
    except BaseException:
        review.close()
        for p in made:
            p.unlink(missing_ok=True)
        raise


def close_review(server: ReviewServer) -> None:
    """Stop serving and close the review's files."""
    server.server_close()
    server.review.close()


def serve(audit: str | Path, *, port: int = 8765, log: Callable[[str], None] = print) -> None:
    """Serve AUDIT's review page until Ctrl-C (or SIGTERM)."""
    import signal

    server = open_review(audit, port)
    review = server.review
    # SIGTERM ends the server as Ctrl-C does, so the lock is released; SIGKILL leaves a stale lock,
    # which the next start takes over.
    def stop(*_) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        log(f"reviewing {len(review.cards)} suspect(s) of {review.audit} at {server.url} "
            f"(a accept, r reject, s skip, u undo); decisions go to {review.log_path} as you make them. "
            "Ctrl-C to stop.")
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        close_review(server)
    log(f"decisions in {review.log_path}; train with --corrections {review.accepted_path}")
