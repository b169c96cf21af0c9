"""maskcls interpret: the pure tables, the activation maps, the page (in headless Chromium) and bad input."""

import json

import shutil

import numpy as np
import pytest
import torch
from torch import nn

from maskcls.cli import main
from maskcls.errors import UserError
from maskcls.reports import cam
from maskcls.reports.interpret import interpret, most_confused, photo_losses, reliability, task_confusion
from maskcls.training.fit import train
from maskcls.training.model import MaskNet

from conftest import broken_images, headless_chrome, tiny_config

# --------------------------------------------------------------------------- pure tables


def test_reliability_and_ece_by_hand():
    conf = np.array([0.95, 0.95, 0.95, 0.95, 0.55, 0.55])
    correct = np.array([1, 1, 0, 0, 1, 0], bool)
    table, ece = reliability(conf, correct, bins=10)
    assert table["photos"].tolist() == [0, 0, 0, 0, 0, 2, 0, 0, 0, 4]
    # 4/6 * |0.5 - 0.95| + 2/6 * |0.5 - 0.55|
    assert ece == pytest.approx(4 / 6 * 0.45 + 2 / 6 * 0.05)
    _, perfect = reliability(np.array([1.0, 1.0]), np.array([True, True]))
    assert perfect == pytest.approx(0)


def test_most_confused_and_task_confusion():
    given = np.array([0, 0, 0, 5, 5, -1, 3])
    pred = np.array([1, 1, 0, 1, 0, 2, 4])
    pairs = most_confused(given, pred, top=2)
    assert [(p["given"], p["predicted"], p["count"], p["rows"]) for p in pairs] == [(0, 1, 2, [0, 1]), (3, 4, 1, [6])]
    cm = task_confusion(np.array([0, 1, -1, 1]), np.array([0, 0, 1, 1]), 2)
    assert cm.tolist() == [[1, 0], [1, 1]]


def test_photo_losses_use_known_labels_only():
    probs = np.full((2, 18), 1 / 18)
    probs[0] = 0.0
    probs[0, 7] = 1.0  # class 7 = mask 1, gender 0, age 1
    targets = np.array([[1, 0, 1], [-1, -1, -1]])
    losses = photo_losses(targets, probs)
    assert losses[0] == pytest.approx(0, abs=1e-6) and np.isnan(losses[1])
    assert photo_losses(np.array([[1, 0, 0]]), probs[:1])[0] > 20  # age 0 had probability 0


# --------------------------------------------------------------------------- activation maps


class RegionOnly(nn.Module):
    """A backbone that sees only the box (x0, y0, x1, y1) of the photo: everything else is zeroed before
    bias-free convolutions, so nothing outside the box (bar the kernels' reach) can move an answer."""

    def __init__(self, box: tuple[int, int, int, int] | None) -> None:
        super().__init__()
        self.box = box
        self.stage1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.ReLU())
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x):
        if self.box is not None:
            keep = torch.zeros_like(x[:, :1])
            x0, y0, x1, y1 = self.box
            keep[:, :, y0:y1, x0:x1] = 1
            x = x * keep
        return self.pool(self.stage2(self.stage1(x)))


def _region_model(box):
    torch.manual_seed(0)
    return MaskNet(RegionOnly(box), 16, "multi", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)).eval()


def test_maps_concentrate_where_the_model_looks():
    box = (0, 0, 16, 20)  # top-left corner of a 48 wide x 64 high photo
    images = torch.randint(0, 256, (6, 3, 64, 48), dtype=torch.uint8)
    model = _region_model(box)
    layer = cam.find_cam_layer(model, (48, 64))
    assert layer == "backbone.stage2"
    # the gender head's "female" answer (column 4) and the age head's "<30" answer (column 5)
    heat = cam.activation_maps(model, images, [np.full(6, 4), np.full(6, 5)], layer)
    assert heat.shape == (2, 6, 64, 48)
    grown = (0, 0, 18, 22)  # the box plus the reach of two 3x3 kernels
    shares = [cam.mass_inside(h, grown) for h in heat.reshape(-1, 64, 48)]
    assert min(shares) > 0.95, shares
    # The same network seeing the whole photo spreads its maps: the check above can fail.
    heat = cam.activation_maps(_region_model(None), images, [np.full(6, 4)], "backbone.stage2")
    assert np.mean([cam.mass_inside(h, (0, 0, 18, 22)) for h in heat[0]]) < 0.5


def test_layer_override_and_layer_not_found():
    model = _region_model(None)
    assert cam.find_cam_layer(model, (48, 64), "stage1") == "backbone.stage1"
    with pytest.raises(UserError, match="--layer nope: .*are stage2, "):
        cam.find_cam_layer(model, (48, 64), "nope")
    with pytest.raises(UserError, match="--layer pool: .*not a feature map"):
        cam.find_cam_layer(model, (48, 64), "pool")
    flat = MaskNet(nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 48, 8)), 8, "multi", (0.5,) * 3, (0.25,) * 3)
    with pytest.raises(UserError, match="--layer NAME"):
        cam.find_cam_layer(flat, (48, 64))


# --------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def run(synth_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("interp") / "run"
    train(tiny_config("train.epochs=1", "train.trackers=none"), synth_root, out, progress=False, log=lambda s: None)
    return out


@pytest.fixture(scope="module")
def page(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("page") / "interp"
    summary = interpret(run, None, out, top=5, per_state=4, progress=False, log=lambda s: None)
    return out, summary


@pytest.mark.slow
def test_page_files_and_summary(page, run):
    out, summary = page
    assert summary["layer"].startswith("backbone.") and summary["n_photos"] > 0
    assert set(summary["ece"]) == {"mask", "gender", "age"}
    assert len(summary["top_losses"]) == 5
    losses = [r["loss"] for r in summary["top_losses"]]
    assert losses == sorted(losses, reverse=True)
    assert json.loads((out / "interpret.json").read_text())["layer"] == summary["layer"]
    html = (out / "interpret.html").read_text()
    for section in ("top-losses", "confused", "calibration", "per-class", "confusions", "mean-maps"):
        assert f'id="{section}"' in html
    assert (out / "reliability.png").is_file() and (out / "per_class_f1.png").is_file()
    assert len(list((out / "thumbs").glob("*_mask_pred.jpg"))) >= 5
    assert len(list((out / "thumbs").glob("mean_*.jpg"))) == 9
    cm = summary["confusion"]["mask"]
    assert sum(map(sum, cm)) == summary["n_photos"]  # every photo has a mask label in the synthetic data


@pytest.mark.slow
def test_page_renders_in_chromium(page, tmp_path):
    out, _ = page
    driver = headless_chrome("interpret page", tmp_path / "profile")
    try:
        driver.get((out / "interpret.html").as_uri())
        broken = broken_images(driver)
        n_images = driver.execute_script("return document.images.length")
        sections = driver.execute_script("return [...document.querySelectorAll('section')].map(s => s.id)")
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()
    assert broken == []
    assert n_images >= 5 * 4 + 9 + 2
    assert sections == ["top-losses", "confused", "calibration", "per-class", "confusions", "mean-maps"]
    assert not errors, errors


@pytest.mark.slow
def test_bad_input(run, tmp_path, capsys, synth_root):
    (tmp_path / "killed").mkdir()  # what a run stopped in its first epoch leaves at most
    assert main(["interpret", str(tmp_path / "killed"), "--out", str(tmp_path / "o")]) == 2
    assert "stopped before its first epoch" in capsys.readouterr().err
    assert main(["interpret", str(run), "--out", str(tmp_path / "o2"), "--layer", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--layer nope" in err and err.count("\n") == 1
    assert not (tmp_path / "o2").exists()
    bad = tmp_path / "bad.csv"  # other classes than mask/gender/age
    bad.write_text("path,person_id,mask,gender,age\nx.jpg,p1,cat,male,30\n")
    assert main(["interpret", str(run), str(bad), "--out", str(tmp_path / "o3")]) == 2
    assert not (tmp_path / "o3").exists()
    data = tmp_path / "data"  # an output inside the data is refused, as by every command that writes
    shutil.copytree(synth_root, data)
    capsys.readouterr()
    assert main(["interpret", str(run), str(data), "--out", str(data / "INT")]) == 2
    assert "inside the data" in capsys.readouterr().err and not (data / "INT").exists()
    # a folder holding a previous page names --force, which the user needs; a folder of other files does not
    previous = tmp_path / "prev"
    previous.mkdir()
    (previous / "interpret.html").write_text("<html></html>")
    assert main(["interpret", str(run), "--out", str(previous)]) == 2
    assert "holds a previous interpret page; --force replaces it" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert main(["interpret", str(run), "--out", str(tmp_path / "other")]) == 2
    assert "--force" not in capsys.readouterr().err


@pytest.mark.slow
def test_other_data_at_another_size(run, tmp_path):
    """A labelled manifest of photos at another size: every photo is scored, resized as the run resizes."""
    import cv2

    lines = ["path,person_id,mask,gender,age"]
    rng = np.random.default_rng(0)
    for k in range(6):
        img = rng.integers(0, 255, (90, 70, 3), np.uint8)
        cv2.imwrite(str(tmp_path / f"p{k}.jpg"), img)
        lines.append(f"p{k}.jpg,person{k},{['wear', 'incorrect', 'normal'][k % 3]},{['male', 'female'][k % 2]},{20 + 9 * k}")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    summary = interpret(run, tmp_path / "m.csv", tmp_path / "o", top=3, per_state=2, progress=False, log=lambda s: None)
    assert summary["n_photos"] == 6 and summary["photos"].startswith("every labelled photo")
    assert (tmp_path / "o" / "interpret.html").is_file()
