"""`maskcls demo`: the main job end to end on built-in synthetic data, sized for a CPU.

demo data -> validate -> train (configs/demo.yaml) -> predict the eval folder -> score the submission
against the synthetic truth, which a real competition keeps hidden.
"""

from __future__ import annotations

import shutil
from pathlib import Path


from .config import describe_config, load_config, parse_size
from .errors import UserError
from .fileio import read_json, write_json
from .data.synth import make_dataset
from .data.validate import validate
from .metrics import format_scores
from .serve.predict import predict_submission
from .serve.score import score_submission
from .training.fit import train

DEMO_PEOPLE, DEMO_EVAL_PEOPLE, DEMO_SIZE = 240, 30, (96, 128)
STAMP = ".demo.json"  # in OUT/data: what the data was made with (hidden: scans skip dot files)


def _made_with(stamp: Path) -> dict | None:
    """What existing demo data was made with; data from before the stamp was made with the defaults."""
    if not stamp.is_file():
        return {"people": DEMO_PEOPLE, "eval_people": DEMO_EVAL_PEOPLE, "size": list(DEMO_SIZE)}
    try:
        return read_json(stamp)
    except UserError:
        return None


def run_demo(out: str | Path = "demo-output", *, overrides: tuple[str, ...] = (), progress: bool = True,
             people: int = DEMO_PEOPLE, eval_people: int = DEMO_EVAL_PEOPLE) -> dict:
    """Run the whole job in OUT (data is made once and reused; the run and submission are redone)."""
    out = Path(out)
    cfg = load_config("demo", list(overrides))  # checked before anything is written
    print(describe_config("demo", overrides, cfg))
    data_dir = out / "data"
    # The photos are generated at the size the model reads (data.size: --size), so a smaller demo decodes
    # and resizes less; the data is reused only when it was made with the same people and size.
    size = parse_size(cfg.data.size)
    made = {"people": people, "eval_people": eval_people, "size": list(size)}
    stamp = data_dir / STAMP
    if (data_dir / "train" / "train.csv").is_file() and _made_with(stamp) == made:
        print(f"[1/5] reusing demo data in {data_dir}")
    else:
        if data_dir.exists():
            print(f"      replacing the demo data in {data_dir} (made with other --people, --eval-people or --size)")
            shutil.rmtree(data_dir)  # the demo owns this folder, as it owns the run
        print(f"[1/5] writing demo data: {people} + {eval_people} people at {size[0]}x{size[1]} to {data_dir}")
        make_dataset(data_dir, people=people, eval_people=eval_people, noise=0.02, seed=0, size=size)
        write_json(stamp, made)
    print("[2/5] validating the data")
    checked = validate(data_dir, progress=progress)
    if checked.problems:
        raise UserError(f"{data_dir}: the demo data has {len(checked.problems)} problem(s); delete it and rerun")
    run_dir = out / "run"
    if run_dir.exists():
        print(f"      replacing the previous demo run in {run_dir} (the demo owns this folder; train into "
              "another folder to keep a run)")
        shutil.rmtree(run_dir)  # the demo owns this folder: each demo is a fresh run
    print(f"[3/5] training {cfg.model.name} at {cfg.data.size} for {cfg.train.epochs} epochs into {run_dir}")
    summary = train(cfg, data_dir, run_dir, progress=progress, log=print)
    submission, plain = out / "submission.csv", out / "submission-no-tta.csv"
    print(f"[4/5] predicting {data_dir / 'eval'} (with and without hflip test-time augmentation)")
    predict_submission(run_dir, data_dir / "eval", plain, force=True, progress=progress)
    predict_submission(run_dir, data_dir / "eval", submission, tta="hflip", force=True, progress=progress)
    truth = data_dir / "truth" / "eval_truth.csv"
    scored, scored_plain = score_submission(submission, truth), score_submission(plain, truth)
    print("[5/5] results")
    print(f"  validation ({summary['val_people']} held-out people, {summary['val_photos']} photos): "
          + format_scores(summary))
    print(f"  eval set scored against the synthetic truth ({scored['photos']} photos), with hflip TTA: "
          + format_scores(scored, ("macro_f1", "accuracy")))
    print(f"  without TTA: macro F1 {scored_plain['macro_f1']:.4f}, accuracy {scored_plain['accuracy']:.4f}  "
          f"(`maskcls score {submission} {truth}` shows every figure)")
    print(f"  submission: {submission}   run: {run_dir}")
    print(stronger_submission(data_dir, out, tuple(overrides), cfg.data.folds))
    return {"summary": summary, "eval": scored, "eval_no_tta": scored_plain, "submission": str(submission),
            "run": str(run_dir)}


def stronger_submission(data_dir: Path, out: Path, overrides: tuple[str, ...] = (), folds: int = 5) -> str:
    """The demo's closing lines: its model learnt from (k-1)/k of the people; how to make the stronger
    submission (docs/training.md, "The submission model"), as commands on the demo's own data and settings."""
    import shlex

    q = lambda p: shlex.quote(str(p))  # noqa: E731 - paths with spaces still paste
    cv, final = out / "cv", out / "final"
    sets = "".join(f" --set {q(o)}" for o in overrides)
    return (f"  a stronger submission: this model learnt from {folds - 1}/{folds} of the people and chose its epoch on "
            f"the other 1/{folds}. Train every fold ({folds}x this training), then one model on every person (at most "
            f"{folds / (folds - 1):.2f}x: the median of the folds' best epochs, on {folds}/{folds - 1} the photos):\n"
            f"    maskcls train {q(data_dir)} --out {q(cv)} --config demo{sets} --fold all\n"
            f"    maskcls train {q(data_dir)} --out {q(final)} --fold none --epochs-from {q(cv)}\n"
            f"    maskcls predict {q(final)} {q(data_dir / 'eval')} --out {q(out / 'submission-final.csv')} --tta hflip\n"
            f"  (or predict with {q(cv)} itself: the {folds}-fold ensemble; docs/training.md, 'The submission model')")
