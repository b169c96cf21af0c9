"""data.crop is its own setting: read by the config, the caches' key and the ablation runner; the old
spelling inside data.augment (centercrop+hflip) keeps loading, with a one-line note."""

import pytest

from maskcls import choices
from maskcls.config import Config, from_dict, load_config
from maskcls.data.prepare import preprocess_key
from maskcls.errors import UserError


@pytest.fixture(autouse=True)
def fresh_notes(monkeypatch):
    monkeypatch.setattr(choices, "_noted", set())


def test_the_old_spelling_moves_the_crop_with_one_note(capsys):
    cfg = load_config(None, ["data.augment=centercrop+hflip"])
    assert (cfg.data.crop, cfg.data.augment) == ("center", "hflip")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data.augment=centercrop+hflip spells a crop; read as data.crop=center" in err
    load_config(None, ["data.augment=centercrop+hflip"])
    assert capsys.readouterr().err == ""  # once per spelling and process
    cfg = load_config(None, ["data.augment=facecrop"])
    assert (cfg.data.crop, cfg.data.augment) == ("face", "none")


def test_an_old_runs_config_loads_with_its_crop(tmp_path):
    saved = Config().to_dict()
    del saved["data"]["crop"]  # a checkpoint written before data.crop
    saved["data"]["augment"] = "hflip+facecrop"
    cfg = from_dict(saved)
    assert (cfg.data.crop, cfg.data.augment) == ("face", "hflip")
    yaml_file = tmp_path / "old.yaml"
    yaml_file.write_text("data:\n  augment: centercrop+hflip\n")
    assert load_config(yaml_file).data.crop == "center"


def test_the_new_spelling_and_its_mistakes():
    assert load_config(None, ["data.crop=face", "data.augment=hflip"]).data.crop == "face"
    assert load_config("demo").data.crop == "center" and load_config("demo").data.augment == "hflip"
    with pytest.raises(UserError, match="data.crop: 'centre' is not one of none, center, face"):
        load_config(None, ["data.crop=centre"])
    with pytest.raises(UserError, match="spells the crop center and data.crop is face; set the crop once"):
        load_config(None, ["data.crop=face", "data.augment=centercrop+hflip"])
    with pytest.raises(UserError, match="two crops"):
        load_config(None, ["data.augment=centercrop+facecrop"])


def test_a_later_layer_sets_the_crop_whichever_way_it_is_spelled(tmp_path):
    # demo.yaml says crop: center; the command line's old spelling is the later word, as for any setting
    cfg = load_config("demo", ["data.augment=facecrop+hflip"])
    assert (cfg.data.crop, cfg.data.augment) == ("face", "hflip")
    assert load_config("demo", ["data.crop=none"]).data.crop == "none"
    assert load_config("demo", ["data.augment=hflip"]).data.crop == "center"  # not spelled: the config's stays
    old = tmp_path / "old.yaml"
    old.write_text("data:\n  augment: centercrop+hflip\n")
    assert load_config(old, ["data.crop=none"]).data.crop == "none"
    # one layer that says two crops is refused, in a file as on the command line
    both = tmp_path / "both.yaml"
    both.write_text("data:\n  crop: none\n  augment: facecrop+hflip\n")
    with pytest.raises(UserError, match="both.yaml: data.augment=facecrop\\+hflip spells the crop face and data.crop is none"):
        load_config(both)
    same = tmp_path / "same.yaml"
    same.write_text("data:\n  crop: face\n  augment: facecrop+hflip\n")
    assert load_config(same).data.crop == "face"


def test_the_crop_is_part_of_the_preprocessed_photos_key():
    none, center, face = (load_config(None, [f"data.crop={c}"]) for c in ("none", "center", "face"))
    assert len({preprocess_key(none), preprocess_key(center), preprocess_key(face)}) == 3
    assert preprocess_key(none) == ((384, 512), None, None)  # as caches written before data.crop keyed it
    assert preprocess_key(load_config(None, ["data.augment=hflip"])) == preprocess_key(none)  # augment is not
