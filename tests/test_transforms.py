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
    from maskcls.data.transforms import center_box

    assert center_box(384, 512) == (64, 96, 320, 416)  # 256 wide x 320 high, as the baseline's crop
    expected = resize(photo[96:416, 64:320], (96, 128))
    assert np.array_equal(eval_transform((96, 128), "center")(photo), expected)
    assert np.array_equal(train_transform("none", (96, 128), crop="center")(photo, seed=1), expected)
    assert not np.array_equal(eval_transform((96, 128))(photo), expected)  # the crop is not the default


def test_facecrop_finds_a_synthetic_face_and_falls_back_on_a_blank_photo(tmp_path):
    from maskcls.data import faces
    from maskcls.data.synth import render, sample_people

    rng = np.random.default_rng(0)
    found = None
    for person in sample_people(12, rng):
        img = render(person, 2, "none", np.random.default_rng(1), (384, 512))[..., ::-1].copy()  # BGR -> RGB; unmasked
        box = faces.detect_face(img)
        if box is not None:
            found = (img, box)
            break
    assert found is not None, "the Haar cascades found no face in 12 unmasked synthetic people"
    img, (x, y, w, h) = found
    assert 80 < x + w / 2 < 300 and 60 < y + h / 2 < 400  # a face in the middle of the portrait
    grown = faces.grow_box((x, y, w, h), (384, 512), margin=0.5, aspect=0.75)
    assert grown[0] <= x and grown[1] < y and grown[2] >= x + w and grown[3] > y + h  # hair and chin kept
    assert grown[1] >= 0 and grown[3] <= 512
    assert faces.detect_face(np.full((512, 384, 3), 200, np.uint8)) is None


def test_face_boxes_are_cached_on_disk_by_content(tmp_path):
    import cv2

    from maskcls.data import faces

    paths = []
    for i in range(2):
        p = tmp_path / f"{i}.png"
        cv2.imwrite(str(p), np.full((64, 48, 3), 100 + i, np.uint8))
        paths.append(str(p))
    first = faces.FaceBoxes(margin=0.5, size=(48, 64), cache_dir=tmp_path / "cache")
    assert first.boxes(paths, progress=False) == {p: None for p in paths}
    assert first.detected == 2 and first.fallbacks == 2 and (tmp_path / "cache" / faces.CACHE_NAME).is_file()
    again = faces.FaceBoxes(margin=0.3, size=(48, 64), cache_dir=tmp_path / "cache")
    again.boxes(paths, progress=False)
    assert again.detected == 0  # another margin, same photos: nothing detected again
    cv2.imwrite(paths[1], np.full((64, 48, 3), 7, np.uint8))  # changed content -> detected again
    third = faces.FaceBoxes(margin=0.5, size=(48, 64), cache_dir=tmp_path / "cache")
    third.boxes(paths, progress=False)
    assert third.detected == 1
