import numpy as np
import pytest

from maskcls import labels


def test_all_18_classes_round_trip():
    seen = set()
    for m in range(3):
        for g in range(2):
            for a in range(3):
                c = labels.encode(m, g, a)
                assert labels.decode(c) == (m, g, a)
                seen.add(c)
    assert seen == set(range(labels.NUM_CLASSES))
    arr = np.arange(18)
    assert np.array_equal(labels.encode(*labels.decode(arr)), arr)
    assert labels.CLASS_MASK.tolist() == [0] * 6 + [1] * 6 + [2] * 6


def test_class_names_follow_cutoffs():
    names = labels.class_names(labels.AgeCutoffs(30, 58))
    assert len(set(names)) == 18
    assert names[0] == "wear/male/<30"
    assert names[5] == "wear/female/>=58"
    assert names[16] == "normal/female/30-57"


def test_age_cutoffs():
    c = labels.AgeCutoffs()
    assert [c.group(a) for a in (18, 29, 30, 59, 60)] == [0, 0, 1, 1, 2]
    assert labels.AgeCutoffs(30, 57).groups(np.array([29, 56, 57, 60])).tolist() == [0, 1, 2, 2]
    with pytest.raises(ValueError):
        labels.AgeCutoffs(60, 30)


@pytest.mark.parametrize("value,expected", [("wear", 0), ("Incorrect", 1), ("normal", 2), ("2", 2)])
def test_parse_mask(value, expected):
    assert labels.parse_mask(value) == expected


def test_parse_rejects_bad_values():
    with pytest.raises(ValueError, match="mask must be"):
        labels.parse_mask("worn")
    with pytest.raises(ValueError, match="gender"):
        labels.parse_gender("f")
    with pytest.raises(ValueError, match="whole number"):
        labels.parse_age("45.5")
