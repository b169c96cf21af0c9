"""maskcls serve: the answers are classify's, batching batches, bad input is a 4xx and the server answers on,
SIGTERM lets requests in flight finish, and the photo page works in headless Chromium."""

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from maskcls.serve.export import export_run
from maskcls.serve.predict import classify_photos
from maskcls.training.fit import train
from conftest import headless_chrome, tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(synth_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("serve") / "run"
    train(tiny_config("train.epochs=1", "train.tensorboard=false", "data.folds=3"), synth_root, out,
          progress=False, log=lambda s: None)
    export_run(out)
    return out


@pytest.fixture(scope="module")
def photos(synth_root):
    return sorted((synth_root / "eval" / "images").iterdir())[:4]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "maskcls", "serve", *args, "--port", str(self.port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "OMP_NUM_THREADS": "1"})
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server ended: {self.proc.stderr.read()}")
            try:
                if requests.get(self.url + "/health", timeout=1).ok:
                    return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise AssertionError("the server did not start in 90 s")

    def stop(self) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, out, err

    def metric(self, name: str) -> float:
        text = requests.get(self.url + "/metrics", timeout=5).text
        return sum(float(m) for m in re.findall(rf"^{re.escape(name)} (\S+)$", text, re.M))


@pytest.fixture(scope="module")
def server(run):
    s = Server(str(run), "--max-wait-ms", "20")
    yield s
    s.stop()


def _read_reply(sock: socket.socket) -> bytes:
    """One HTTP reply whole: the head, then as many body bytes as its Content-Length says (they may come in
    another packet)."""
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = sock.recv(65536)
        if not chunk:
            return reply
        reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _without_photo(answer: dict) -> dict:
    return {k: v for k, v in answer.items() if k != "photo"}


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_predict_answers_what_classify_prints(run, photos, server, backend):
    s = server if backend == "torch" else Server(str(run / "model.onnx"), "--backend", "onnx")
    try:
        want = classify_photos(run if backend == "torch" else run / "model.onnx", photos, backend=backend)
        raw = requests.post(s.url + "/predict", data=photos[0].read_bytes(), headers={"Content-Type": "image/jpeg"})
        assert raw.status_code == 200
        assert _without_photo(raw.json()["predictions"][0]) == _without_photo(want[0])
        files = [("photo", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
        many = requests.post(s.url + "/predict", files=files).json()["predictions"]
        assert [a["photo"] for a in many] == [p.name for p in photos]  # in the order sent
        assert [_without_photo(a) for a in many] == [_without_photo(w) for w in want]
        health = requests.get(s.url + "/health").json()
        assert health["status"] == "ok" and health["backend"] == backend
    finally:
        if s is not server:
            s.stop()


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8000, 6000)).save(buf, format="PNG")  # 48 million pixels in ~50 KB
    return buf.getvalue()


def test_bad_input_is_a_4xx_json_answer_and_the_server_answers_on(server, photos):
    jpeg = photos[0].read_bytes()
    cases = {
        "not an image": (b"hello, this is text", "image/jpeg", 400, "does not decode"),
        "truncated": (jpeg[: len(jpeg) // 2], "image/jpeg", 400, "does not decode"),
        "bomb": (_bomb(), "image/png", 400, "over the 40,000,000-pixel limit"),
        "wrong type": (jpeg, "text/plain", 415, "content type text/plain"),
        "empty": (b"", "image/jpeg", 400, "body: empty"),
        "50 MB": (b"\0" * (50 * 1024 * 1024), "image/jpeg", 413, "over 20,971,520 bytes"),
    }
    for name, (body, kind, status, message) in cases.items():
        answer = requests.post(server.url + "/predict", data=body, headers={"Content-Type": kind})
        assert answer.status_code == status, name
        assert message in answer.json()["error"], (name, answer.json())
    assert requests.post(server.url + "/predict", files={"x": ("a.txt", b"")}).status_code == 400
    assert requests.post(server.url + "/predict", data=b"--x\r\nbroken", headers={
        "Content-Type": "multipart/form-data; boundary=x"}).status_code == 400
    # a client that leaves mid-upload: it promised a megabyte and sent a hundred bytes
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 1000000\r\n\r\n"
                     + jpeg[:100])
    time.sleep(0.3)
    ok = requests.post(server.url + "/predict", data=jpeg, headers={"Content-Type": "image/jpeg"})
    assert ok.status_code == 200 and requests.get(server.url + "/health").ok
    assert server.metric('maskcls_requests_total{endpoint="/predict",status="400"}') >= 5
    assert server.metric('maskcls_requests_total{endpoint="/predict",status="413"}') >= 1


def _concurrently(url: str, photo: Path, n: int) -> list[int]:
    codes: list[int] = []
    barrier = threading.Barrier(n)

    def one() -> None:
        barrier.wait()
        codes.append(requests.post(url + "/predict", data=photo.read_bytes(),
                                   headers={"Content-Type": "image/jpeg"}).status_code)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes


def test_requests_within_the_wait_run_as_one_batch_and_max_batch_1_turns_it_off(run, photos):
    for args, most in ((["--max-batch", "8", "--max-wait-ms", "1000"], 4), (["--max-batch", "1"], 8)):
        s = Server(str(run), *args)
        try:
            assert _concurrently(s.url, photos[0], 8) == [200] * 8
            batches = s.metric("maskcls_batch_size_count")
            assert s.metric("maskcls_batch_size_sum") == 8
            if most == 8:
                assert batches == 8  # no batching: one model call per photo
            else:
                assert batches <= most  # 8 requests within a second: a batch or two, not eight
        finally:
            s.stop()


def test_sigterm_lets_the_request_in_flight_finish(run, photos):
    """SIGTERM arrives while a client is half way through its upload: the upload finishes, the answer comes,
    then the server ends."""
    s = Server(str(run))
    jpeg = photos[0].read_bytes()
    with socket.create_connection(("127.0.0.1", s.port), timeout=30) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nConnection: close\r\n"
                     + f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg[:100])
        time.sleep(0.5)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)  # shutting down: no new connections, the open one goes on
        sock.sendall(jpeg[100:])
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), reply[:300]
    assert len(json.loads(body)["predictions"]) == 1
    code, _, err = s.stop()
    assert code == 0 and "Traceback" not in err, err  # a graceful stop is a clean exit


def test_listening_beyond_this_machine_warns_and_a_taken_port_is_one_line(run):
    s = Server(str(run), "--host", "0.0.0.0")
    _, _, err = s.stop()
    assert "warning: listening on 0.0.0.0" in err and "no authentication" in err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "maskcls", "serve", str(run), "--port", str(port)],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_the_photo_page_shows_each_answer_in_headless_chromium(server, photos, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = headless_chrome("serve page", tmp_path / "profile")
    try:
        driver.get(server.url + "/")
        chooser = driver.find_element(By.ID, "files")
        chooser.send_keys("\n".join(str(p) for p in photos[:2]))
        WebDriverWait(driver, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".answer")) == 2)
        rows = driver.find_elements(By.CSS_SELECTOR, ".answer")
        want = {a["photo"]: a for a in requests.post(server.url + "/predict", files=[
            ("photo", (p.name, p.read_bytes(), "image/jpeg")) for p in photos[:2]]).json()["predictions"]}
        for row in rows:
            answer = want[row.get_attribute("data-photo")]
            verdict = row.find_element(By.CSS_SELECTOR, ".verdict").text
            assert verdict.startswith(f"{answer['mask']} · {answer['gender']} · {answer['age']}")
            assert f"class {answer['class']}" in verdict
            assert len(row.find_elements(By.CSS_SELECTOR, ".bar")) == 3 + 2 + 3
        WebDriverWait(driver, 10).until(lambda d: "done: 2 photo(s)" in d.find_element(By.ID, "status").text)
    finally:
        driver.quit()


def test_what_a_new_user_tried_against_the_server(run, photos):
    """From a new user's walk-through: --port 0 printed port 0; 65 files were 'malformed'; --max-batch was
    no cap for a large request; a stalled upload was never timed out; 404 and 405 were not JSON; many large
    photos in one request decoded into gigabytes."""
    proc = subprocess.Popen([sys.executable, "-m", "maskcls", "serve", str(run), "--port", "0", "--max-batch", "8",
                             "--body-timeout", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        line = proc.stdout.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", line).group(1))
        assert port != 0
        url = f"http://127.0.0.1:{port}"
        jpeg = photos[0].read_bytes()
        many = requests.post(url + "/predict", files=[("photo", (f"{i}.jpg", jpeg, "image/jpeg")) for i in range(65)])
        assert many.status_code == 413 and "at most 64" in many.json()["error"]
        forty = requests.post(url + "/predict", files=[("photo", (f"{i}.jpg", jpeg, "image/jpeg")) for i in range(20)])
        assert forty.status_code == 200 and len(forty.json()["predictions"]) == 20
        metrics = requests.get(url + "/metrics").text
        assert re.search(r'^maskcls_batch_size_bucket\{le="8.0"\} (\S+)$', metrics, re.M).group(1) == \
            re.search(r"^maskcls_batch_size_count (\S+)$", metrics, re.M).group(1)  # every model call <= 8 photos
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:  # stalls after 100 bytes
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                         + f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg[:100])
            reply = _read_reply(sock)
        assert reply.startswith(b"HTTP/1.1 408") and b"did not arrive within 1 s" in reply
        for method, path, status in (("get", "/nope", 404), ("get", "/predict", 405)):
            answer = getattr(requests, method)(url + path)
            assert answer.status_code == status and "error" in answer.json()
        big = io.BytesIO()
        Image.new("L", (5000, 5000)).save(big, format="PNG")  # 25 million pixels: one is fine, two are not
        two = requests.post(url + "/predict", files=[("photo", (f"{i}.png", big.getvalue(), "image/png")) for i in range(2)])
        assert two.status_code == 413 and "50,000,000 pixels in all" in two.json()["error"]
        assert requests.get(url + "/health").ok
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.mark.parametrize("args, says", [
    (["--max-wait-ms", "-1"], "--max-wait-ms: must be between 0 and 10000 ms"),
    (["--max-wait-ms", "nan"], "--max-wait-ms: must be between 0 and 10000 ms"),
    (["--body-timeout", "0"], "--body-timeout: must be between 0.1 and 3600 seconds"),
    (["--port", "70000"], "a port is 0..65535"),
    (["--max-batch", "0"], "--max-batch: must be at least 1"),
])
def test_bad_options_are_one_line_before_any_model_loads(tmp_path, capsys, args, says):
    from maskcls.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["serve", str(tmp_path / "no-run"), *args])
    assert stop.value.code == 2 and says in capsys.readouterr().err
