"""The Python API takes what people have: paths, PIL images, uint8 or float arrays, greyscale or RGBA,
one or a batch; dir(maskcls) lists the API; maskcls.train is silent unless asked."""

import numpy as np
import pytest
from PIL import Image

import maskcls
from maskcls.data.images import read_rgb
from maskcls.errors import UserError
from maskcls.serve.inputs import normalise_items


def _rgba(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (20, 16, 4), dtype=np.uint8)
    path = tmp_path / "rgba.png"
    Image.fromarray(pixels, "RGBA").save(path)
    return pixels, path


def test_every_kind_of_input_becomes_what_training_reads(tmp_path):
    pixels, path = _rgba(tmp_path)
    from_disk = read_rgb(path)
    items, names = normalise_items([path, Image.open(path), pixels, pixels[:, :, :3].astype(np.float32) / 255])
    assert names == [str(path), 1, 2, 3] and items[0] == path
    for got in items[1:]:
        np.testing.assert_array_equal(got, from_disk)  # RGBA: alpha dropped, as a photo on disk
    grey = pixels[:, :, 0]
    Image.fromarray(grey, "L").save(tmp_path / "grey.png")
    (from_grey,), _ = normalise_items(grey)
    np.testing.assert_array_equal(from_grey, read_rgb(tmp_path / "grey.png"))
    (scaled,), _ = normalise_items(grey.astype(np.float64))  # floats above 1: already 0..255
    np.testing.assert_array_equal(scaled, from_grey)


def test_batches_and_single_items():
    batch = np.zeros((5, 12, 10, 3), np.uint8)
    items, names = normalise_items(batch)
    assert len(items) == 5 and names == [0, 1, 2, 3, 4]
    items, _ = normalise_items(np.zeros((5, 12, 10), np.float32))  # a batch of greyscale images
    assert len(items) == 5 and items[0].shape == (12, 10, 3)
    items, _ = normalise_items(list(np.zeros((4, 12, 10), np.float32)))  # 3 or 4 of them: as a list (see below)
    assert len(items) == 4
    items, _ = normalise_items(np.zeros((12, 10, 3), np.uint8))
    assert len(items) == 1
    with pytest.raises(UserError, match="expected an image of shape"):
        normalise_items([np.zeros((8, 8, 2), np.uint8)])
    with pytest.raises(UserError, match="NaN"):
        normalise_items([np.full((8, 8), np.nan)])
    with pytest.raises(UserError, match="no such photo"):
        normalise_items(["nowhere.jpg"])


def test_dir_lists_the_public_api():
    names = dir(maskcls)
    assert {"train", "train_folds", "Predictor", "load_config", "score_submission", "__version__"} <= set(names)
    public = [n for n in names if not n.startswith("_")]
    assert public == sorted(maskcls.__all__), public  # no Any, annotations or import_module


@pytest.mark.slow
def test_train_is_silent_unless_asked(synth_root, tmp_path, capsys):
    from conftest import tiny_config

    maskcls.train(tiny_config("train.epochs=1", "train.tensorboard=false", "data.folds=3"), synth_root, tmp_path / "r")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    predictor = maskcls.Predictor(tmp_path / "r")
    photo = next((synth_root / "eval" / "images").iterdir())
    frame = predictor.predict([photo, Image.open(photo), read_rgb(photo).astype(np.float32) / 255,
                               np.dstack([read_rgb(photo), np.full(read_rgb(photo).shape[:2], 255, np.uint8)])])
    assert frame["input"].tolist() == [str(photo), 1, 2, 3]
    probs = frame[[f"p{i}" for i in range(18)]].to_numpy()
    assert np.abs(probs - probs[0]).max() < 1e-5
    single = predictor.predict(photo)
    assert len(single) == 1 and single["input"].iloc[0] == str(photo)


def test_a_16_bit_array_is_scaled_as_a_16_bit_file_not_clipped_white(tmp_path):
    """Predictor.predict(array of uint16) clipped the pixels at 255: the photo became white."""
    rng = np.random.default_rng(1)
    grey16 = rng.integers(0, 65536, (20, 16), dtype=np.uint16)
    Image.fromarray(grey16).save(tmp_path / "grey16.png")  # mode I;16
    from_file = read_rgb(tmp_path / "grey16.png")
    assert from_file.std() > 20  # the file's photo is not white
    (got,), _ = normalise_items(grey16)
    np.testing.assert_array_equal(got, from_file)
    rgb16 = np.stack([grey16] * 3, axis=2)
    (got,), _ = normalise_items(rgb16)
    np.testing.assert_array_equal(got, from_file)
    (small,), _ = normalise_items(grey16 // 257)  # 8-bit values in a 16-bit array are kept, as in a file
    np.testing.assert_array_equal(small[:, :, 0], (grey16 // 257).astype(np.uint8))
    # Another integer type beyond 0..255 is refused (its range is unknown), within 0..255 it is taken.
    with pytest.raises(UserError, match=r"image 0: int32 pixels from .* give uint8"):
        normalise_items([grey16.astype(np.int32)])
    with pytest.raises(UserError, match="int16 pixels from -1"):
        normalise_items([np.full((8, 8), -1, np.int16)])
    (ok,), _ = normalise_items(np.full((8, 8), 200, np.int64))
    assert (ok == 200).all()


def test_arrays_predict_cannot_read_right_are_refused_not_misread():
    """(64, 48, 2) gave 64 rows (48x2 greyscale images), a channels-first (3, 64, 48) gave 3 rows, and a
    normalised float image (-1..1) was clipped at 0: each without a word."""
    with pytest.raises(UserError, match=r"2x48 pixels is not a photo"):
        normalise_items(np.zeros((64, 48, 2), np.uint8))
    with pytest.raises(UserError, match=r"looks channels-first \(C, H, W\)"):
        normalise_items(np.zeros((3, 64, 48), np.uint8))
    with pytest.raises(UserError, match=r"float pixels from -1 to 1; give 0..1 or 0..255"):
        normalise_items([np.linspace(-1, 1, 64 * 48 * 3).reshape(64, 48, 3)])
    with pytest.raises(UserError, match="expected uint8, uint16, integer or float pixels, got bool"):
        normalise_items([np.zeros((16, 16), bool)])
    items, _ = normalise_items(np.zeros((5, 64, 48), np.uint8))  # a batch of greyscale photos still works
    assert len(items) == 5 and items[0].shape == (64, 48, 3)
