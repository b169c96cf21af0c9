import numpy as np
import pytest

from maskcls.data.transforms import PRESETS, Transform, eval_transform, train_transform


@pytest.fixture
def photo():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (512, 384, 3), dtype=np.uint8)


def test_size_is_width_by_height_everywhere(photo):
    for preset in PRESETS:
        assert train_transform(preset, (96, 128))(photo, seed=1).shape == (128, 96, 3)
    assert eval_transform((96, 128))(photo).shape == (128, 96, 3)


def test_eval_never_augments(photo):
    t = eval_transform((96, 128))
    outs = [t(photo, seed=s) for s in range(5)]
    assert all(np.array_equal(outs[0], o) for o in outs)


def test_augmentation_is_a_function_of_the_seed(photo):
    t = train_transform("flips", (96, 128))
    base = eval_transform((96, 128))(photo)
    outs = {s: t(photo, seed=s) for s in range(16)}
    assert all(np.array_equal(t(photo, seed=s), o) for s, o in outs.items())
    kinds = set()
    for o in outs.values():
        for name, f in (("none", base), ("h", base[:, ::-1]), ("v", base[::-1]), ("hv", base[::-1, ::-1])):
            if np.array_equal(o, f):
                kinds.add(name)
    assert kinds == {"none", "h", "v", "hv"}


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown augmentation preset 'sharpen'"):
        train_transform("hflip+sharpen", (32, 32))
    # A crop is data.crop now: the transforms refuse the old spelling (the config moves it, see test_config)
    with pytest.raises(ValueError, match="'centercrop' is a crop, not an augmentation: set data.crop=center"):
        train_transform("centercrop+hflip", (32, 32))
    with pytest.raises(ValueError, match="unknown crop 'centercrop'"):
        eval_transform((32, 32), "centercrop")


RANDOM = [n for n, p in PRESETS.items() if p.ops is not None]


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_keeps_shape_dtype_and_labels(photo, preset):
    from maskcls.data.images import PhotoDataset

    t = train_transform(preset, (96, 128))
    out = t(photo, seed=3)
    assert out.shape == (128, 96, 3) and out.dtype == np.uint8
    targets = np.array([[2, 1, 0]])
    ds = PhotoDataset(["x"], targets, t, cache=photo[None])
    ds.cache = np.stack([eval_transform((96, 128))(photo)])  # the cache holds preprocessed photos
    image, target = ds[0]
    assert tuple(image.shape) == (3, 128, 96) and target.tolist() == [2, 1, 0]


@pytest.mark.parametrize("preset", RANDOM)
def test_random_presets_draw_differently_per_seed_and_eval_never_does(photo, preset):
    t = train_transform(preset, (96, 128))
    draws = [t(photo, seed=s) for s in range(12)]
    assert any(not np.array_equal(draws[0], d) for d in draws[1:]), f"{preset} ignores its seed"
    assert np.array_equal(t(photo, seed=5), draws[5])
    e = Transform(preset=preset, size=(96, 128), train=False)
    assert all(np.array_equal(e(photo, seed=s), e(photo, seed=0)) for s in range(5))
    assert np.array_equal(e(photo), eval_transform((96, 128))(photo))  # random presets never reach evaluation


def test_composed_presets_apply_both(photo):
    both = train_transform("hflip+contrast", (96, 128))
    flip_only = train_transform("hflip", (96, 128))
    assert any(not np.array_equal(both(photo, seed=s), flip_only(photo, seed=s)) for s in range(6))


def test_centercrop_crops_in_training_and_inference_alike(photo):
    from maskcls.data.images import resize
    from maskcls.data.crops import center_box

    assert center_box(384, 512) == (64, 96, 320, 416)  # 256 wide x 320 high, as the baseline's crop
    expected = resize(photo[96:416, 64:320], (96, 128))
    assert np.array_equal(eval_transform((96, 128), "center")(photo), expected)
    assert np.array_equal(train_transform("none", (96, 128), crop="center")(photo, seed=1), expected)
    assert not np.array_equal(eval_transform((96, 128))(photo), expected)  # the crop is not the default


def test_facecrop_finds_the_astronaut_and_falls_back_on_a_blank_photo(tmp_path):
    """data.crop=face on the face model's cascade: a real portrait's face, grown to keep hair and chin."""
    pytest.importorskip("dlib")
    skdata = pytest.importorskip("skimage.data")
    import cv2

    from maskcls.data import faces

    img = cv2.resize(skdata.astronaut()[20:420, 80:380], (384, 512), interpolation=cv2.INTER_AREA)
    boxes = faces.FaceBoxes(margin=0.5, size=(96, 128))
    x0, y0, x1, y1 = boxes.box_of(img)
    found = faces.detect(img, boxes.cascade)
    x, y, w, h = found.box
    assert 100 < x + w / 2 < 300 and 80 < y + h / 2 < 320  # the face in the upper middle of the portrait
    assert x0 <= x and y0 < y and x1 >= x + w and y1 > y + h  # hair and chin kept
    assert y0 >= 0 and y1 <= 512 and abs((x1 - x0) / (y1 - y0) - 0.75) < 0.02  # the model's aspect
    assert boxes.box_of(np.full((512, 384, 3), 200, np.uint8)) is None


def test_face_boxes_come_from_the_shared_face_cache(tmp_path):
    """The crop's boxes and `maskcls faces` share one cache: boxes computed for the crop are there for
    every other command, another margin reuses them, and changed content is computed again."""
    pytest.importorskip("dlib")
    import cv2

    from maskcls.data import faces
    from maskcls.faces.compute import cached_faces

    paths = []
    for i in range(2):
        p = tmp_path / f"{i}.png"
        cv2.imwrite(str(p), np.full((64, 48, 3), 100 + i, np.uint8))
        paths.append(str(p))
    first = faces.FaceBoxes(margin=0.5, size=(48, 64), cache_dir=tmp_path / "cache", workers=0)
    assert first.boxes(paths, progress=False) == {p: None for p in paths}
    assert first.detected == 2 and first.fallbacks == 2
    shared = cached_faces(paths, cache_dir=tmp_path / "cache")
    assert shared is not None and shared.missing == 0 and not shared.found.any()
    again = faces.FaceBoxes(margin=0.3, size=(48, 64), cache_dir=tmp_path / "cache", workers=0)
    again.boxes(paths, progress=False)
    assert again.detected == 0  # another margin, same photos: nothing detected again
    cv2.imwrite(paths[1], np.full((64, 48, 3), 7, np.uint8))  # changed content -> detected again
    third = faces.FaceBoxes(margin=0.5, size=(48, 64), cache_dir=tmp_path / "cache", workers=0)
    third.boxes(paths, progress=False)
    assert third.detected == 1
