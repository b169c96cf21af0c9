"""Tiny datasets built in tmp folders: synthetic ones from synth.py and hand-made (sometimes broken) ones."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from maskcls import labels
from maskcls.config import load_config
from maskcls.data.synth import make_dataset

# torch's threads when the test process started (OMP_NUM_THREADS honoured): a test of the thread choice
# starts from it, whatever a module's fixture that trained on a busy machine lowered them to since.
START_THREADS = torch.get_num_threads()

# The shrunken training settings every test that trains starts from (timm's test_resnet at 48x64, CPU):
# test modules take them with `from conftest import TINY, tiny_config`.
TINY = ["model.name=test_resnet", "data.size=48x64", "train.batch_size=16", "train.epochs=3", "data.folds=4",
        "train.lr=0.003", "train.log_every=2"]


def tiny_config(*extra: str):
    """The demo config shrunk by TINY, then ``extra`` overrides (key=value)."""
    return load_config("demo", TINY + list(extra))


def write_photo(path: Path, colour: int = 128, size: tuple[int, int] = (24, 32)) -> Path:
    """A small real image file (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((size[1], size[0], 3), colour, np.uint8)
    assert cv2.imwrite(str(path), img)
    return path


def write_person(images: Path, folder: str, suffix: str = ".jpg", stems=labels.PHOTO_STEMS) -> Path:
    for i, stem in enumerate(stems):
        write_photo(images / folder / f"{stem}{suffix}", colour=20 * i)
    return images / folder


def write_competition(root: Path, people: list[tuple[str, str, int, str]], suffix: str = ".jpg") -> Path:
    """people: (id, gender, age, folder) rows; writes train.csv and all 7 photos per person."""
    images = root / "train" / "images"
    lines = ["id,gender,race,age,path"]
    for pid, gender, age, folder in people:
        lines.append(f"{pid},{gender},Asian,{age},{folder}")
        write_person(images, folder, suffix)
    (root / "train" / "train.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """24 people + 4 eval people at 48x64, 10% of people with planted noise. Do not modify."""
    out = tmp_path_factory.mktemp("synth") / "data"
    make_dataset(out, people=24, eval_people=4, noise=0.1, seed=3, size=(48, 64), workers=2)
    return out


def browser_paths(what: str) -> tuple[str, str]:
    """(chromium, chromedriver) for the HTML page tests. Missing ones skip the test with the reason on a
    user's machine, but fail it under CI, which must run it (`make test` installs them where it can)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    problem = None
    try:
        import selenium  # noqa: F401
    except ImportError:
        problem = "selenium is not installed (pip install -e '.[test]')"
    if problem is None and not (chromium and driver):
        problem = "chromium and chromedriver not found (apt-get install chromium chromium-driver, or make test)"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"{what} browser test cannot run under CI: {problem}")
        pytest.skip(problem)
    return chromium, driver


def headless_chrome(what: str, profile: Path, *, prefs: dict | None = None):
    """A headless Chromium driver for the HTML page tests (skipped or failed as ``browser_paths`` says),
    with its own profile folder and the browser console log kept for the no-errors checks."""
    chromium, driver_path = browser_paths(what)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1200,900", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    if prefs:
        opts.add_experimental_option("prefs", prefs)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)


def broken_images(driver) -> list[str]:
    """Wait until every image of the page has loaded or failed, then the src of each that did not decode."""
    driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        Promise.all([...document.images].map(i => i.complete ? 0 : new Promise(r => { i.onload = i.onerror = r; })))
          .then(() => done());""")
    return driver.execute_script(
        "return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'))")


@pytest.fixture(autouse=True, scope="session")
def _own_cache(tmp_path_factory):
    """Every test's caches (faces, preprocessed photos) in a folder of the session, never ~/.cache."""
    folder = tmp_path_factory.mktemp("maskcls-cache")
    before = os.environ.get("MASKCLS_CACHE")
    os.environ["MASKCLS_CACHE"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("MASKCLS_CACHE", None)
    else:
        os.environ["MASKCLS_CACHE"] = before



@pytest.fixture(autouse=True)
def _own_threads():
    """Each test starts with the process's torch threads and no remembered busy-core measurement: a command
    that found the machine busy lowers both for the rest of its process (training/threads.py), which must
    not carry into the next test (test_threads measures from a fresh start)."""
    import torch

    from maskcls.training import threads

    before, busy = torch.get_num_threads(), list(threads._busy)
    yield
    torch.set_num_threads(before)
    threads._busy[:] = busy

@pytest.fixture
def read_only_dir(tmp_path):
    """An empty folder this process cannot write: a read-only bind mount where we are root (root writes
    through permissions), else a chmod 555 folder. CI runs as root and can mount; elsewhere without
    either the test is skipped with the reason."""
    import subprocess

    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    src = tmp_path / "read-only-source"
    src.mkdir()
    done = subprocess.run(["mount", "--bind", "-o", "ro", str(src), str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot make a read-only folder as root here (mount: {done.stderr.strip()})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)
