"""One rule for an output folder (fileio.claim_folder), used by every command that writes one: never inside
the data, never a link or a file, a folder of other files refused (naming some), the command's own files
carried on from, a previous output replaced only with --force."""

import pytest

from maskcls.audit.run import audit
from maskcls.data.synth import make_dataset
from maskcls.errors import UserError
from maskcls.experiments.ablate import ablate
from maskcls.fileio import claim_folder
from maskcls.reports.eda import make_report
from maskcls.training.fit import train
from maskcls.training.folds import train_folds
from maskcls.training.lr_find import lr_find
from conftest import tiny_config


def test_the_rule(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    assert claim_folder(tmp_path / "new") == "new"
    (tmp_path / "empty").mkdir()
    assert claim_folder(tmp_path / "empty") == "new"
    with pytest.raises(UserError, match="is inside the data"):
        claim_folder(data / "out", data=data)
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(UserError, match="is a link; give a real folder"):
        claim_folder(tmp_path / "link")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="exists and is not a folder"):
        claim_folder(tmp_path / "file")
    full = tmp_path / "full"
    full.mkdir()
    for name in ("a.csv", "b.csv", "notes.txt", "z.png", ".hidden"):
        (full / name).write_text("x")
    with pytest.raises(UserError, match=r"holds files that are not an audit's \(notes.txt, z.png\)"):
        claim_folder(full, ours=lambda n: n.endswith(".csv"), owner="an audit's")
    assert claim_folder(full, ours=lambda n: True) == "ours"
    (full / "page.html").write_text("x")
    with pytest.raises(UserError, match="holds a previous page; --force replaces it"):
        claim_folder(full, replace="page.html", owner="page")
    assert claim_folder(full, replace="page.html", force=True) == "replace"


def test_every_writing_command_refuses_a_link_and_a_folder_of_other_files(synth_root, tmp_path):
    """Before any work: the same two refusals from each command that writes a folder."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    other = tmp_path / "other"
    other.mkdir()
    (other / "mine.txt").write_text("the user's")
    cfg = tiny_config("train.epochs=1")
    commands = {
        "train": lambda out: train(cfg, synth_root, out),
        "train --fold all": lambda out: train_folds(cfg, synth_root, out),
        "lr-find": lambda out: lr_find(cfg, synth_root, out),
        "audit": lambda out: audit(synth_root, out, config=None, overrides=tuple(f"{s}" for s in ["train.epochs=1"])),
        "ablate": lambda out: ablate(synth_root, out, ["none", "hflip"], config=None),
        "eda": lambda out: make_report(synth_root, out),
        "demo-data": lambda out: make_dataset(out, people=2, eval_people=0),
    }
    for name, run in commands.items():
        with pytest.raises(UserError, match="is a link"):
            run(tmp_path / "link")
        if name != "train":  # a run folder of other files is refused by the run's own rule (--resume)
            with pytest.raises(UserError, match=r"holds files.*mine\.txt"):
                run(other)
    assert (other / "mine.txt").read_text() == "the user's" and list((tmp_path / "real").iterdir()) == []
