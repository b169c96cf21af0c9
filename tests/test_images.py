"""The one decoder: what decodes, what is refused, and that validate uses exactly it."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from maskcls.data.images import PhotoError, PhotoStore, read_rgb
from maskcls.data.transforms import Preprocess
from maskcls.data.validate import validate
from conftest import write_competition


def _jpeg_bytes(h=64, w=48) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def test_truncated_jpeg_is_an_error_naming_the_file(tmp_path):
    full = tmp_path / "full.jpg"
    full.write_bytes(_jpeg_bytes())
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(_jpeg_bytes()[: len(_jpeg_bytes()) // 2])
    assert read_rgb(full).shape == (64, 48, 3)
    # OpenCV would hand back a half-grey image here; the policy is an error that names the file.
    assert cv2.imread(str(cut)) is not None
    with pytest.raises(PhotoError, match=rf"{cut}: photo does not decode"):
        read_rgb(cut)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_every_mode_comes_back_as_8bit_rgb(tmp_path, mode):
    arr = np.linspace(0, 255, 24 * 32).reshape(32, 24).astype(np.uint8)
    path = tmp_path / "p.png"
    if mode == "I;16":  # a 16-bit greyscale PNG
        assert cv2.imwrite(str(path), arr.astype(np.uint16) * 257)
        img = None
    elif mode == "RGBA":
        img = Image.fromarray(np.dstack([arr, arr, arr, np.full_like(arr, 255)]), "RGBA")
    else:
        img = Image.fromarray(arr, "L").convert(mode)
    if img is not None:
        img.save(path)
    out = read_rgb(path)
    assert out.shape == (32, 24, 3) and out.dtype == np.uint8
    assert abs(int(out[..., 0].max()) - 255) <= 1 and int(out[..., 0].min()) <= 1  # full range kept


def test_decompression_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 300)).save(path)
    from maskcls import photos

    monkeypatch.setattr(photos, "MAX_PIXELS", 200 * 200)  # the decoder's home (data.images hands its names on)
    with pytest.raises(PhotoError, match="300x300 pixels, over the"):
        read_rgb(path)


def test_validate_reports_what_training_cannot_read(tmp_path):
    root = write_competition(tmp_path / "d", [("000001", "male", 25, "000001_male_Asian_25")])
    victim = root / "train" / "images" / "000001_male_Asian_25" / "mask2.jpg"
    victim.write_bytes(_jpeg_bytes()[:300])
    problems = [str(p) for p in validate(root, progress=False).problems]
    assert len(problems) == 1 and problems[0].startswith(f"{victim.resolve()}: photo does not decode")
    with pytest.raises(PhotoError):
        read_rgb(victim)


def test_store_decodes_each_photo_once_per_size(tmp_path):
    paths = []
    for i in range(3):
        p = tmp_path / f"{i}.jpg"
        p.write_bytes(_jpeg_bytes())
        paths.append(str(p))
    store = PhotoStore(paths, workers=2)
    small, tiny = Preprocess(size=(24, 32)), Preprocess(size=(12, 16), crop="center")
    a = store.arrays(small, ("small",), progress=False)
    b = store.arrays(small, ("small",), progress=False)
    assert a is b and a.shape == (3, 32, 24, 3) and store.decoded == 3
    assert np.array_equal(a[1], small(read_rgb(paths[1])))
    assert store.arrays(tiny, ("tiny",), progress=False).shape == (3, 16, 12, 3)
    assert store.decoded == 6
