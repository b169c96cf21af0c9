"""augment-preview writes a real grid image; bad presets are one clear message."""

from PIL import Image

from maskcls.cli import main


def test_augment_preview_writes_a_grid(synth_root, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["augment-preview", str(synth_root), "--preset", "hflip+vflip+contrast", "--out", str(out),
                 "--people", "3", "--draws", "4"]) == 0
    with Image.open(out) as im:
        w, h = im.size
    assert w > 500 and h > 400  # 3 rows x 5 columns
    assert "3 people" in capsys.readouterr().out


def test_augment_preview_with_facecrop_reports_fallbacks(synth_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MASKCLS_CACHE", str(tmp_path / "cache"))
    assert main(["augment-preview", str(synth_root), "--preset", "facecrop", "--out", str(tmp_path / "f.png"),
                 "--people", "2"]) == 0
    assert "no face found in" in capsys.readouterr().out
    assert (tmp_path / "cache" / "faces-v1.sqlite").is_file()  # the face cache every command shares


def test_augment_preview_takes_the_crop_from_the_config(synth_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MASKCLS_CACHE", str(tmp_path / "cache"))
    assert main(["augment-preview", str(synth_root), "--preset", "hflip", "--set", "data.crop=face",
                 "--out", str(tmp_path / "f.png"), "--people", "2"]) == 0
    assert "no face found in" in capsys.readouterr().out  # only a face crop reports its fallbacks
    assert main(["augment-preview", str(synth_root), "--preset", "hflip", "--out", str(tmp_path / "g.png"),
                 "--people", "2", "--set", "data.crop=none"]) == 0
    assert "no face found in" not in capsys.readouterr().out


def test_augment_preview_bad_preset(synth_root, tmp_path, capsys):
    assert main(["augment-preview", str(synth_root), "--preset", "hflip+warp", "--out", str(tmp_path / "g.png")]) == 2
    assert "unknown augmentation preset 'warp'" in capsys.readouterr().err
    assert not (tmp_path / "g.png").exists()


def test_preview_shows_every_mask_state_full_names_and_a_legend_for_its_colours(synth_root, tmp_path, monkeypatch):
    from maskcls.config import load_config
    from maskcls.reports.preview import BOX_COLOURS, augment_preview

    monkeypatch.setenv("MASKCLS_CACHE", str(tmp_path / "cache"))
    cfg = load_config("demo", ["data.size=48x64"])
    info = augment_preview(synth_root, "hflip", tmp_path / "g.png", cfg=cfg, people=3, draws=1)
    assert sorted(info["mask_states"]) == ["incorrect", "normal", "wear"]
    # folder names in full (wrapped, not cut)
    folders = (synth_root / "train" / "train.csv").read_text().split()[1:]
    folders = [line.split(",")[-1] for line in folders]
    assert all(any(f in t.replace("\n", "") for f in folders) for t in info["titles"])
    for crop in ("center", "face"):
        info = augment_preview(synth_root, "hflip", tmp_path / f"{crop}.png", cfg=load_config("demo", [f"data.crop={crop}"]),
                               people=2, draws=1)
        for colour in info["box_colours"]:
            word = next(text for c, text in BOX_COLOURS.values() if c == colour).split(":")[0]
            assert word in info["legend"]
        assert info["legend"]  # a box drawn is a box explained


def test_each_photo_draws_its_own_augmentation_and_ids_are_never_cut(synth_root, tmp_path, monkeypatch):
    """Every person got the same draw down a column (training seeds each photo separately), and ids
    wrapped mid-number ("s000031_female_Asian_2" / "4" read as age 2)."""
    from maskcls.data import transforms
    from maskcls.data.images import sample_seed
    from maskcls.reports.preview import wrap_name

    seen: list[tuple[str, int]] = []
    real = transforms.Transform.__call__

    def spy(self, image, seed=None, key=None, **kw):
        seen.append((key, seed))
        return real(self, image, seed, key, **kw)

    monkeypatch.setattr(transforms.Transform, "__call__", spy)
    assert main(["augment-preview", str(synth_root), "--preset", "hflip+vflip", "--out", str(tmp_path / "g.png"),
                 "--people", "3", "--draws", "2"]) == 0
    by_draw = {}
    for i, (key, seed) in enumerate(seen):
        by_draw.setdefault(i % 2, []).append(seed)
    for seeds in by_draw.values():  # one column: three photos, three seeds
        assert len(set(seeds)) == 3, seen
    assert all(0 <= s < 2**32 for _, s in seen) and sample_seed(1, 2) != sample_seed(1, 3)
    assert wrap_name("s000031_female_Asian_24", 22) == "s000031_female_Asian_\n24"
    assert wrap_name("s000031_female_Asian_24", 22).replace("\n", "") == "s000031_female_Asian_24"
    assert all(len(line) <= 23 for line in wrap_name("a" * 30 + "_b", 22).splitlines())
