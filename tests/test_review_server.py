"""`maskcls review`: the review page served on 127.0.0.1 writes every decision to disk; `u` undoes the
last decision wherever the cursor is; a rerun audit reads the decisions back; bad input (decisions of
other data, a port in use, a second server, a kill mid-way) gets a one-line error and loses nothing.

The browser tests drive headless Chromium (see test_review_page.py) against a server on a free port.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from maskcls.audit import decisions as dec
from maskcls.audit.rank import CORRECTION_COLUMNS, ISSUE_COLUMNS
from maskcls.audit.review import write_review
from maskcls.audit.server import LOCK_NAME, close_review, open_review, read_page
from maskcls.cli import main
from maskcls.config import dump, load_config
from maskcls.data import corrections
from maskcls.data.prepare import prepare
from maskcls.errors import UserError
from test_review_page import _photos, _states, _states_become, browser  # noqa: F401 - the fixture is used by name

DATA_ID = "0123456789abcdef"


def _six() -> pd.DataFrame:
    rows = [(f"00000{i}_female_Asian_45", "*", "gender", "female", "male", 0.9 - i / 100, i + 1, "*", "female",
             "male", "") for i in range(6)]
    return pd.DataFrame(rows, columns=ISSUE_COLUMNS)


def _audit(tmp_path: Path, *, photos: bool = False, data_id: str = DATA_ID) -> Path:
    issues = _six()
    paths = {p: _photos(tmp_path / "img", p, ["mask1", "normal"]) for p in issues["person"]} if photos else {}
    write_review(issues, paths, tmp_path / "audit", data_id=data_id)
    return tmp_path / "audit"


class Running:
    """A review server in a thread of this process, on a free port."""

    def __init__(self, audit: Path):
        self.server = open_review(audit, 0)
        self.url = self.server.url
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def post(self, path: str, body: dict, **headers) -> dict:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", **headers})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    def stop(self) -> None:
        self.server.shutdown()
        close_review(self.server)


@pytest.fixture
def running(tmp_path):
    servers: list[Running] = []

    def start(audit: Path) -> Running:
        servers.append(Running(audit))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def _press(driver, keys: str) -> None:
    from selenium.webdriver.common.by import By

    body = driver.find_element(By.TAG_NAME, "body")
    for k in keys:
        body.send_keys(k)


def _reload(driver) -> None:
    """Reload the page; the old page's marker is cleared first, so a wait on the marker below waits for
    the new page (on a loaded machine the old one may still answer right after refresh()).

    The pause first, and a wait for the cards after (``_states_become``): twice in a full suite, never
    alone, a page opened from disk came back from a reload with every decision gone. Our reading (not
    proved): Chromium hands localStorage writes to its storage service asynchronously, and the new page
    may read the service before the old page's writes arrive; the page now also follows the storage
    event, so late writes still reach it. A person never reloads within a second of a key press. A page
    opened from disk keeps its decisions in localStorage: the reload waits until the old page reads them back."""
    time.sleep(1.0)
    if driver.execute_script("return document.body.dataset.mode") == "local":
        _wait(lambda: driver.execute_script("return Object.keys(window.localStorage).length") > 0)
    driver.execute_script("document.body.dataset.mode = 'reloading'")
    driver.refresh()


def _wait(predicate, timeout: float = 20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def _log(audit: Path) -> list[tuple[str, str]]:
    return [(r["person"][:6], r["decision"]) for r in dec.read_log(audit / dec.FILE_NAME)]


def _accepted(audit: Path) -> list[str]:
    return [c.person for c in corrections.read(audit / dec.ACCEPTED_NAME)]


def _focused(driver) -> int:
    return int(driver.execute_script("return document.querySelector('.card.focused').dataset.index"))


# ---------------------------------------------------------------- the page, from disk and served


def test_undo_takes_back_the_last_decision_wherever_the_cursor_is_from_disk(browser, tmp_path):
    """The reported bug: r r a r a u left 2 accepted / 3 rejected (u cleared the card under the cursor,
    the sixth, which had no decision). u must take back the fifth card's accept."""
    driver, _ = browser
    driver.get((_audit(tmp_path) / "review.html").as_uri())
    _wait(lambda: driver.execute_script("return document.body.dataset.mode") == "local")
    _press(driver, "rrarau")
    states = _states(driver)
    assert (states.count("accept"), states.count("reject")) == (1, 3), states
    assert states == ["reject", "reject", "accept", "reject", "pending", "pending"]
    assert _focused(driver) == 4  # the undone card is shown
    # The undo stack survives a reload: u takes back the fourth card's reject next.
    _reload(driver)
    _wait(lambda: driver.execute_script("return document.body.dataset.mode") == "local")
    _states_become(driver, ["reject", "reject", "accept", "reject", "pending", "pending"])
    _press(driver, "ju")
    assert _states(driver) == ["reject", "reject", "accept", "pending", "pending", "pending"]
    assert _focused(driver) == 3


def test_served_page_writes_decisions_to_disk(browser, tmp_path, running):
    from selenium.webdriver.common.by import By

    driver, _ = browser
    audit = _audit(tmp_path, photos=True)
    srv = running(audit)
    driver.get(srv.url)
    _wait(lambda: driver.execute_script("return document.body.dataset.mode") == "server")
    assert str(audit) in driver.find_element(By.ID, "where").text
    _press(driver, "rrarau")
    # Every decision reached the disk, the undo as a line of its own, before the page showed it.
    _wait(lambda: len(_log(audit)) == 6 and _states(driver)[4] == "pending")
    assert [d for _, d in _log(audit)] == ["reject", "reject", "accept", "reject", "accept", "undo"]
    _wait(lambda: _states(driver) == ["reject", "reject", "accept", "reject", "pending", "pending"])
    assert _focused(driver) == 4
    assert _accepted(audit) == ["000002_female_Asian_45"]
    expected = pd.DataFrame([srv.server.review.page["issues"][2]["correction"]], columns=CORRECTION_COLUMNS)
    got = pd.read_csv(audit / dec.ACCEPTED_NAME, dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(got, expected)
    # Thumbnails are served.
    _wait(lambda: driver.execute_script(
        "return [...document.images].length > 0 && [...document.images].every(i => i.complete && i.naturalWidth > 0)"))

    # A reload shows the server's state; the browser keeps nothing of its own.
    _reload(driver)
    _wait(lambda: driver.execute_script("return document.body.dataset.mode") == "server")
    assert _states(driver) == ["reject", "reject", "accept", "reject", "pending", "pending"]
    assert driver.execute_script("return window.localStorage.length") == 0
    # Undo after the reload takes back the last decision still standing (the fourth card's reject),
    # and a click decides too.
    _press(driver, "u")
    _wait(lambda: _states(driver)[3] == "pending")
    driver.find_elements(By.CSS_SELECTOR, ".card")[5].find_element(By.CSS_SELECTOR, "button[data-act=accept]").click()
    _wait(lambda: len(_log(audit)) == 8 and len(_accepted(audit)) == 2)
    assert _accepted(audit) == ["000002_female_Asian_45", "000005_female_Asian_45"]
    assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]

    # The server stopped, the page says a decision was not saved instead of pretending.
    srv.stop()
    srv.stop = lambda: None
    _press(driver, "a")
    _wait(lambda: "NOT SAVED" in driver.find_element(By.ID, "status").text)
    assert len(_log(audit)) == 8


# ---------------------------------------------------------------- the server alone


def test_decisions_replay_with_undo_and_rebuild_accepted(tmp_path, running):
    audit = _audit(tmp_path)
    srv = running(audit)
    ids = list(srv.server.review.cards)
    srv.post("api/decide", {"id": ids[0], "decision": "accept"})
    srv.post("api/decide", {"id": ids[0], "decision": "reject"})  # a change of mind on one card
    srv.post("api/decide", {"id": ids[1], "decision": "skip"})
    assert srv.post("api/undo", {})["undone"] == ids[1]
    state = srv.post("api/undo", {})  # back to the first decision on card 0
    assert state["undone"] == ids[0] and state["decisions"] == {ids[0]: "accept"}
    assert _accepted(audit) == ["000000_female_Asian_45"]
    # Bad requests change nothing.
    for body in ({"id": "nobody", "decision": "accept"}, {"id": ids[2], "decision": "maybe"}):
        with pytest.raises(urllib.error.HTTPError) as err:
            srv.post("api/decide", body)
        assert err.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as err:  # another site's page cannot decide
        srv.post("api/decide", {"id": ids[2], "decision": "accept"}, Origin="http://evil.example")
    assert err.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as err:  # nor can a DNS-rebound name
        srv.post("api/decide", {"id": ids[2], "decision": "accept"}, Host="evil.example")
    assert err.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as err:  # only review.html and thumbs/ are served
        urllib.request.urlopen(srv.url + "decisions.csv")
    assert err.value.code == 404
    srv.stop()
    srv.stop = lambda: None
    # A new server replays the log into the same state, undo stack included.
    state, history = dec.replay(dec.read_log(audit / dec.FILE_NAME))
    assert {dec.card_id(k): r["decision"] for k, r in state.items()} == {ids[0]: "accept"}
    assert len(history) == 1
    again = running(audit)
    assert again.post("api/undo", {})["decisions"] == {}
    assert _accepted(audit) == []


def test_kill_mid_review_loses_nothing_and_the_stale_lock_is_taken_over(tmp_path):
    audit = _audit(tmp_path)
    ids = [c["id"] for c in read_page(audit)["issues"]]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def start() -> tuple[subprocess.Popen, str]:
        proc = subprocess.Popen([sys.executable, "-m", "maskcls", "review", str(audit), "--port", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line + proc.stderr.read()
        return proc, line.split(" at ")[1].split()[0]

    def post(url: str, path: str, body: dict) -> dict:
        req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    proc, url = start()
    try:
        for i, d in enumerate(["accept", "reject", "accept"]):
            post(url, "api/decide", {"id": ids[i], "decision": d})
        assert (audit / LOCK_NAME).read_text().split()[0] == str(proc.pid)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert [d for _, d in _log(audit)] == ["accept", "reject", "accept"]
    assert _accepted(audit) == ["000000_female_Asian_45", "000002_female_Asian_45"]
    assert (audit / LOCK_NAME).exists()  # SIGKILL leaves the lock; its pid is gone
    # A line torn by a power cut is dropped, never misread, and cut off before the next append.
    with open(audit / dec.FILE_NAME, "a") as fh:
        fh.write("2026-01-01T00:00:00+00:00,000003_female_Asian_45,gender,*,fem")
    proc, url = start()
    try:
        state = post(url, "api/undo", {})
        assert state["undone"] == ids[2] and state["decisions"] == {ids[0]: "accept", ids[1]: "reject"}
    finally:
        proc.send_signal(signal.SIGTERM)  # ends like Ctrl-C: the lock is released
        assert proc.wait(timeout=20) == 0
    assert not (audit / LOCK_NAME).exists()
    assert [d for _, d in _log(audit)] == ["accept", "reject", "accept", "undo"]
    assert _accepted(audit) == ["000000_female_Asian_45"]


def _exit(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def test_bad_input_one_line_errors_nothing_lost(tmp_path, capsys, running):
    audit = _audit(tmp_path)
    # A second server on the same audit.
    first = running(audit)
    code, err = _exit(["review", str(audit), "--port", "0"], capsys)
    assert code == 2 and "another maskcls review (pid" in err and "\n" not in err
    first.post("api/decide", {"id": list(first.server.review.cards)[0], "decision": "reject"})
    first.stop()
    first.stop = lambda: None
    assert not (audit / LOCK_NAME).exists()
    before = (audit / dec.FILE_NAME).read_bytes()

    # A port in use: refused, the lock released again, nothing written.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, err = _exit(["review", str(audit), "--port", str(busy.getsockname()[1])], capsys)
    assert code == 2 and "is in use" in err and "\n" not in err
    assert not (audit / LOCK_NAME).exists() and (audit / dec.FILE_NAME).read_bytes() == before

    # A decisions file of other data (another audit's copied in): refused, left as it was.
    other = _audit(tmp_path / "o", data_id="fedcba9876543210")
    (other / dec.FILE_NAME).write_bytes(before)
    code, err = _exit(["review", str(other), "--port", "0"], capsys)
    assert code == 2 and "made on other data" in err and "\n" not in err
    assert (other / dec.FILE_NAME).read_bytes() == before and not (other / LOCK_NAME).exists()

    # Not a decisions file at all; not an audit; a page without a data id.
    (other / dec.FILE_NAME).write_text("person,field\nx,y\n")
    code, err = _exit(["review", str(other), "--port", "0"], capsys)
    assert code == 2 and "not a maskcls decisions file" in err
    code, err = _exit(["review", str(tmp_path / "nothing"), "--port", "0"], capsys)
    assert code == 2 and "no such audit folder" in err
    write_review(_six(), {}, tmp_path / "old")
    code, err = _exit(["review", str(tmp_path / "old"), "--port", "0"], capsys)
    assert code == 2 and "older maskcls" in err

    # A stale lock (its process gone) is taken over.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (audit / LOCK_NAME).write_text(f"{dead.pid}\n")
    again = running(audit)
    assert again.post("api/undo", {})["undone"] is not None


# ---------------------------------------------------------------- a rerun audit reads the decisions


def _fake_run(data: Path, run: Path, flipped: list[str]) -> pd.DataFrame:
    """A --fold all run whose out-of-fold model agrees with every label but the gender of ``flipped``."""
    cfg = load_config("demo", ["data.corrections=none"])
    table = prepare(cfg, data, log=lambda s: None).table
    rows = []
    for rec in table.to_dict("records"):
        g = int(rec["gender"]) if rec["person"] not in flipped else 1 - int(rec["gender"])
        row = {"path": rec["path"], "person": rec["person"], "gender": rec["gender"], "mask": rec["mask"],
               "age_group": rec["age_group"]}
        row.update({f"p_gender_{k}": 0.95 if k == g else 0.05 for k in range(2)})
        row.update({f"p_mask_{k}": 0.9 if k == rec["mask"] else 0.05 for k in range(3)})
        row.update({f"p_age_{k}": 0.9 if k == rec["age_group"] else 0.05 for k in range(3)})
        rows.append(row)
    (run / "fold-0").mkdir(parents=True)
    (run / "fold-0" / "config.yaml").write_text(dump(cfg))
    pd.DataFrame(rows).to_csv(run / "oof_probs.csv", index=False)
    return table


def test_rerun_audit_does_not_raise_rejected_and_marks_accepted(synth_root, tmp_path, capsys):
    people = sorted(pd.read_csv(synth_root / "train" / "train.csv", dtype=str)["path"])
    flipped = people[3:6]
    run = tmp_path / "run"
    table = _fake_run(synth_root, run, flipped)
    out = tmp_path / "audit"
    assert main(["--quiet", "audit", str(synth_root), "--out", str(out), "--run", str(run)]) == 0
    first = pd.read_csv(out / "label_issues.csv", dtype=str)
    assert sorted(first[first["field"] == "gender"]["person"]) == flipped
    assert "reviewed" not in first.columns
    assert read_page(out)["data"] == dec.data_fingerprint(table)

    # Review: reject the first flipped person's suggestion, accept the second, skip the third.
    review = open_review(out, 0)
    try:
        by_person = {c["person"]: c["id"] for c in review.review.page["issues"] if c["field"] == "gender"}
        review.review.decide(by_person[flipped[0]], "reject")
        review.review.decide(by_person[flipped[1]], "accept")
        review.review.decide(by_person[flipped[2]], "skip")
    finally:
        close_review(review)
    capsys.readouterr()

    # The same audit again (default: OUT/decisions.csv): the rejected one is gone, the accepted one marked.
    assert main(["--quiet", "audit", str(synth_root), "--out", str(out), "--run", str(run)]) == 0
    assert "1 rejected suggestion(s) not raised again, 1 accepted" in capsys.readouterr().out
    again = pd.read_csv(out / "label_issues.csv", dtype=str, keep_default_na=False)
    gender = again[again["field"] == "gender"].set_index("person")["reviewed"].to_dict()
    assert gender == {flipped[1]: "accepted", flipped[2]: ""}
    assert again["rank"].astype(int).tolist() == list(range(1, len(again) + 1))
    cards = {c["person"]: c for c in read_page(out)["issues"] if c["field"] == "gender"}
    assert cards[flipped[1]]["earlier"] == "accept" and cards[flipped[2]]["earlier"] == ""
    summary = json.loads((out / "summary.json").read_text())
    assert summary["decisions"]["rejected_not_raised"] == 1
    # The decisions survived the rerun, and the review continues on them.
    assert [d for _, d in _log(out)] == ["reject", "accept", "skip"]

    # --decisions FILE into another folder does the same.
    elsewhere = tmp_path / "elsewhere"
    assert main(["--quiet", "audit", str(synth_root), "--out", str(elsewhere), "--run", str(run),
                 "--decisions", str(out / dec.FILE_NAME)]) == 0
    assert (pd.read_csv(elsewhere / "label_issues.csv", dtype=str)["person"] != flipped[0]).all()
    capsys.readouterr()

    # Decisions of other data: refused with one line, and nothing of the audit is (re)written.
    log = (out / dec.FILE_NAME).read_text()
    foreign = tmp_path / "foreign.csv"
    foreign.write_text(log.replace(dec.data_fingerprint(table), "ffffffffffffffff"))
    code, err = _exit(["--quiet", "audit", str(synth_root), "--out", str(tmp_path / "f"), "--run", str(run),
                       "--decisions", str(foreign)], capsys)
    assert code == 2 and "made on other data" in err and "\n" not in err
    assert not (tmp_path / "f").exists()
    # Same data id but a person this data does not have (a hand-edited or mixed file).
    foreign.write_text(log.replace(flipped[0], "999999_male_Asian_20"))
    code, err = _exit(["--quiet", "audit", str(synth_root), "--out", str(tmp_path / "f"), "--run", str(run),
                       "--decisions", str(foreign)], capsys)
    assert code == 2 and "is not in the data" in err
    code, err = _exit(["--quiet", "audit", str(synth_root), "--out", str(tmp_path / "f"), "--run", str(run),
                       "--decisions", str(tmp_path / "missing.csv")], capsys)
    assert code == 2 and "no such decisions file" in err
    assert np.all([p.name != "f" for p in tmp_path.iterdir()])


def test_a_server_that_cannot_start_writes_nothing(tmp_path, capsys):
    """`review A --port 99999` was a traceback; a busy port left header-only decision files behind."""
    audit = _audit(tmp_path)
    code, err = _exit(["review", str(audit), "--port", "99999"], capsys)
    assert code == 2 and "between 0 and 65535" in err and "\n" not in err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, err = _exit(["review", str(audit), "--port", str(busy.getsockname()[1])], capsys)
    assert code == 2 and "is in use" in err
    assert not (audit / dec.FILE_NAME).exists() and not (audit / dec.ACCEPTED_NAME).exists()
    assert not (audit / LOCK_NAME).exists()


# ---------------------------------------------------------------- an attacker's and a full disk's requests


def _raw(url: str, path: str, *, body: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url + path, data=body,
                                 headers={"Content-Type": "application/json"} if body is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_a_link_in_thumbs_pointing_outside_the_audit_is_not_served(tmp_path, running):
    """`ln -s /etc/passwd AUDIT/thumbs/<20 hex>.jpg` served /etc/passwd as image/jpeg."""
    audit = _audit(tmp_path, photos=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    real = sorted((audit / "thumbs").glob("*.jpg"))[0]
    (audit / "thumbs" / ("a" * 20 + ".jpg")).symlink_to(secret)
    (audit / "thumbs" / ("b" * 20 + ".jpg")).symlink_to(real)  # a link inside AUDIT is fine
    (audit / "thumbs" / ("c" * 20 + ".jpg")).symlink_to(audit / "thumbs" / ("c" * 20 + ".jpg"))  # a loop
    server = running(audit)
    status, body = _raw(server.url, f"thumbs/{'a' * 20}.jpg")
    assert status == 404 and b"root:x" not in body
    assert _raw(server.url, f"thumbs/{'c' * 20}.jpg")[0] == 404
    assert _raw(server.url, f"thumbs/{'b' * 20}.jpg") == (200, real.read_bytes())
    assert _raw(server.url, f"thumbs/{real.name}") == (200, real.read_bytes())


def test_deeply_nested_json_gets_a_400_and_the_server_answers_on(tmp_path, running):
    """60,000 '[' to /api/decide raised an uncaught RecursionError: no reply."""
    server = running(_audit(tmp_path))
    status, body = _raw(server.url, "api/decide", body=b"[" * 60_000)
    assert status == 400 and "nested too deeply" in json.loads(body)["error"]
    assert _raw(server.url, "api/state")[0] == 200


def test_a_full_disk_during_review_answers_not_saved_and_saves_nothing_half(tmp_path, running, monkeypatch):
    """The decision line reached decisions.csv, then rewriting accepted_corrections.csv raised: a
    traceback and no reply, and a retry after freeing space logged the decision twice."""
    import errno as errno_mod

    from maskcls import fileio

    audit = _audit(tmp_path)
    server = running(audit)
    cards = list(server.server.review.cards)
    server.post("api/decide", {"id": cards[0], "decision": "accept"})
    log_before = (audit / dec.FILE_NAME).read_bytes()
    accepted_before = (audit / dec.ACCEPTED_NAME).read_bytes()

    real_mkstemp = fileio.tempfile.mkstemp

    def full(*args, **kwargs):
        raise OSError(errno_mod.ENOSPC, os.strerror(errno_mod.ENOSPC))

    monkeypatch.setattr(fileio.tempfile, "mkstemp", full)
    for path, body in (("api/decide", {"id": cards[1], "decision": "accept"}), ("api/undo", {})):
        status, answer = _raw(server.url, path, body=json.dumps(body).encode())
        assert status == 500 and "No space left" in json.loads(answer)["error"]
        assert (audit / dec.FILE_NAME).read_bytes() == log_before  # no half-saved decision
        assert (audit / dec.ACCEPTED_NAME).read_bytes() == accepted_before
        assert json.loads(_raw(server.url, "api/state")[1])["decisions"] == {cards[0]: "accept"}

    monkeypatch.setattr(fileio.tempfile, "mkstemp", real_mkstemp)  # space freed: the retry logs it once
    server.post("api/decide", {"id": cards[1], "decision": "accept"})
    assert _log(audit) == [(cards[0][:6], "accept"), (cards[1][:6], "accept")]
    assert len(_accepted(audit)) == 2


@pytest.mark.parametrize("content", ["random", "huge field"])
def test_a_decisions_file_csv_cannot_read_is_one_line(tmp_path, capsys, content):
    """A decisions.csv of random bytes, or with a 200 KB field, ended `review` and `audit --decisions`
    in a _csv.Error traceback."""
    audit = _audit(tmp_path)
    if content == "random":
        raw = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
        raw = b",".join(dec.COLUMNS[i].encode() for i in range(len(dec.COLUMNS))) + b"\n" + raw + b"\n"
    else:
        raw = (",".join(dec.COLUMNS) + "\n" + '"' + "x" * 200_000 + '"' + ",a" * 11 + "\n").encode()
    (audit / dec.FILE_NAME).write_bytes(raw)
    code, err = _exit(["review", str(audit), "--port", "0"], capsys)
    assert code == 2 and str(audit / dec.FILE_NAME) in err and "\n" not in err, err
    assert (audit / dec.FILE_NAME).read_bytes() == raw and not (audit / LOCK_NAME).exists()
    data = tmp_path / "data"
    data.mkdir()
    code, err = _exit(["audit", str(data), "--out", str(tmp_path / "a2"), "--decisions",
                       str(audit / dec.FILE_NAME)], capsys)
    assert code == 2 and str(audit / dec.FILE_NAME) in err and "\n" not in err, err
