import numpy as np
import pytest

from maskcls.data.transforms import PRESETS, eval_transform, train_transform


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
    with pytest.raises(ValueError, match="unknown augmentation preset 'contrast'"):
        train_transform("contrast", (32, 32))
