"""The `maskcls` command: each subcommand parses its arguments and calls one library function."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from pathlib import Path
from typing import Callable

from .errors import UserError, user_message

DATA_HELP = "a folder in the competition layout (train/train.csv, train/images/...) or a .csv manifest"
RUNS_HELP = ("a run folder, a --fold all run (all its fold models), or several runs: "
             "their probabilities are averaged (an ensemble)")
CORR_HELP = "label corrections: 'known' (the published list for the real data), 'none', or a CSV file"


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.out, overrides=tuple(args.set))
    return 0


def _cmd_demo_data(args: argparse.Namespace) -> int:
    from .config import parse_size
    from .data.synth import make_dataset

    info = make_dataset(args.out, people=args.people, eval_people=args.eval_people, noise=args.noise,
                        seed=args.seed, size=parse_size(args.size), workers=args.workers)
    print(f"wrote {info['photos']} training photos of {info['people']} people and {info['eval_photos']} eval "
          f"photos to {info['out']} ({info['size']}); {info['noisy_people']} people carry planted label noise "
          f"(see {Path(info['out']) / 'truth' / 'injected_noise.csv'})")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from .data.validate import validate

    result = validate(args.data, corrections=args.corrections, decode=not args.no_decode)
    for problem in result.problems:
        print(problem)
    if result.corrections is not None:
        for line in result.corrections.lines(verbose=args.verbose):
            print(f"correction: {line}")
        print(result.corrections.summary())
    checked = f"{result.photos} training photos" + (f" and {result.eval_photos} eval photos" if result.eval_photos else "")
    if result.problems:
        print(f"{len(result.problems)} problem(s) found in {args.data} ({checked} checked)", file=sys.stderr)
        return 2
    print(f"{args.data}: no problems ({checked} checked)")
    return 0


def at_least(low: int) -> Callable[[str], int]:
    """argparse type: a whole number >= low (seeds and worker counts take 0, counts of things 1)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


_nonneg = at_least(0)


def _cutoffs(args: argparse.Namespace):
    from .labels import AgeCutoffs

    try:
        return AgeCutoffs(args.age_young, args.age_old)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _cmd_summary(args: argparse.Namespace) -> int:
    from .data.summary import format_summary, summarize
    from .data.table import load_table

    cutoffs = _cutoffs(args)
    table, report = load_table(args.data, cutoffs=cutoffs, corrections=args.corrections)
    info = summarize(table, cutoffs)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        if args.corrections != "none":
            print(report.summary())
            for line in report.lines(verbose=args.verbose):
                print(f"correction: {line}")
        print(format_summary(info))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .config import load_config

    out = Path(args.out)
    all_folds = args.fold == "all"
    base = args.config
    if args.resume and base is None and (out / "config.yaml").is_file():
        base = out / "config.yaml"  # continue with the run's own settings unless told otherwise
    overrides = list(args.set)
    if args.corrections is not None:
        overrides.append(f"data.corrections={args.corrections}")
    if args.fold is not None and not all_folds:
        try:
            overrides.append(f"data.fold={int(args.fold)}")
        except ValueError:
            raise UserError(f"--fold must be a fold number or 'all', got {args.fold!r}") from None
    cfg = load_config(base or "default", overrides)
    if all_folds and args.resume:
        raise UserError("--fold all resumes by itself: rerun the same command without --resume")
    from .training.runtime import distributed_from_env

    try:
        with distributed_from_env():  # torchrun: join the process group; one process: nothing to do
            if all_folds:
                from .training.folds import train_folds

                train_folds(cfg, args.data, out)
            else:
                from .training.fit import train

                train(cfg, args.data, out, resume=args.resume)
    except KeyboardInterrupt:
        print(f"interrupted; continue with: maskcls train {args.data} --out {out} --resume", file=sys.stderr)
        return 130
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .serve.predict import evaluate_run

    result = evaluate_run(args.runs, args.data, split=args.split, tta=args.tta, device=args.device,
                          workers=args.workers, backend=args.backend)
    print(json.dumps(result, indent=2))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from .serve.predict import predict_submission

    info = predict_submission(args.runs, args.eval_dir, args.out, tta=args.tta, force=args.force,
                              probs_out=args.probs, device=args.device, workers=args.workers, backend=args.backend)
    models = f" (mean of {info['models']} models)" if info["models"] > 1 else ""
    print(f"wrote {info['rows']} predictions to {info['out']}{models}")
    return 0


def _cmd_classify(args: argparse.Namespace) -> int:
    from .serve.predict import classify_photos, expand_photos

    photos = expand_photos(args.photos)
    for result in classify_photos([args.run, *args.add_run], photos, tta=args.tta, device=args.device,
                                  workers=args.workers, backend=args.backend):
        print(json.dumps(result), flush=True)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .serve.export import export_run

    info = export_run(args.run, args.out, force=args.force)
    models = f"the mean of {info['models']} models, " if info["models"] > 1 else ""
    print(f"wrote {info['out']} ({models}uint8 images 3x{info['size']} in, probs/mask/gender/age out); "
          f"max abs difference to PyTorch {info['max_abs_diff']:.2e}")
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    import yaml

    from .config import describe_settings, load_config

    cfg = load_config(args.config, list(args.set))
    rows = [(k, yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip(), h)
            for k, v, h in describe_settings(cfg)]
    width = max(len(k) + len(v) for k, v, _ in rows) + 3
    for key, value, help_text in rows:
        print(f"{key} = {value}".ljust(width) + f"  # {help_text}")
    return 0


def _cmd_eda(args: argparse.Namespace) -> int:
    from .reports.eda import make_report

    cutoffs = _cutoffs(args)
    info = make_report(args.data, args.out, corrections=args.corrections, cutoffs=cutoffs, workers=args.workers,
                       dup_threshold=args.dup_threshold, allow_outside=args.allow_outside,
                       progress=not args.quiet)
    print(f"wrote {Path(args.out) / 'report.html'} ({info.get('people', '?')} people, {info.get('photos', '?')} photos); "
          f"open it in a browser")
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from .audit.run import audit

    audit(args.data, args.out, run=args.run, folds=args.folds, config=args.config, overrides=tuple(args.set),
          truth=args.truth, progress=not args.quiet)
    return 0


def _cmd_ablate(args: argparse.Namespace) -> int:
    from .experiments.ablate import ablate

    variants = [v.strip() for v in args.variants.split(",")]
    if not all(variants) and any(variants):
        raise UserError(f"--variants {args.variants!r} has an empty entry between its commas")
    results = ablate(args.data, args.out, [v for v in variants if v], seeds=args.seeds, folds=args.folds,
                     config=args.config, overrides=tuple(args.set), key=args.key)
    print((Path(args.out) / "table.md").read_text(), end="")
    failed = results[results["status"] != "ok"]
    if len(failed):
        print(f"{len(failed)} of {len(results)} runs failed (first: {failed['variant'].iloc[0]}: "
              f"{failed['error'].iloc[0]}); see {Path(args.out) / 'results.csv'}. Rerun the same command to "
              "retry them.", file=sys.stderr)
        return 1
    return 0


def _add_improve_parser(sub) -> None:
    p = sub.add_parser("improve", help="what label corrections buy: paired runs without and with them, one answer key",
                       description="Train without and with the corrections FILE on every person-level fold x seed "
                                   "and score every run on ONE answer key (the labels with FILE applied, or --key), "
                                   "each on the held-out people of its fold with its last epoch (no checkpoint is "
                                   "chosen on them). Prints and writes OUT/table.md (gain in macro F1, accuracy and "
                                   "per task with 95% intervals), OUT/results.csv and OUT/improve.png. Re-running "
                                   "reuses finished runs.")
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--corrections", required=True, metavar="FILE",
                   help="the corrections to measure (a corrections CSV, e.g. AUDIT/accepted_corrections.csv); "
                        "rows naming people not in DATA are counted and ignored, a FILE that changes nothing is refused")
    p.add_argument("--out", required=True, help="folder for the results (re-use it to resume or add seeds)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per arm (default 3)")
    p.add_argument("--folds", type=int, default=3, help="person-level folds, all of them run (default 3)")
    p.add_argument("--key", default=None, metavar="FILE",
                   help="the answer key every run is scored on: an answer-key CSV (person,image,mask,gender,age; "
                        "demo-data writes DATA/truth/train_truth.csv) or corrections (known | none | CSV) applied "
                        "to DATA's labels (default: DATA's labels with FILE applied)")
    _config_args(p, default="demo", help="base config (default demo, CPU-sized)", set_help="a setting for both arms")
    p.set_defaults(func=_cmd_improve)


def _cmd_improve(args: argparse.Namespace) -> int:
    from .experiments.improve import improve

    table = improve(args.data, args.corrections, args.out, seeds=args.seeds, folds=args.folds, key=args.key,
                    config=args.config, overrides=tuple(args.set))
    print((Path(args.out) / "table.md").read_text(), end="")
    if int(table["failed"].max()):
        print(f"some runs failed; see {Path(args.out) / 'results.csv'}. Rerun the same command to retry them.",
              file=sys.stderr)
        return 1
    return 0


def _cmd_augment_preview(args: argparse.Namespace) -> int:
    from .config import load_config
    from .reports.preview import augment_preview

    cfg = load_config(args.config, list(args.set))
    info = augment_preview(args.data, args.preset, args.out, cfg=cfg, people=args.people, draws=args.draws,
                           seed=args.seed, force=args.force)
    extra = f"; no face found in {info['fallbacks']} of {info['people']} photos" if info["fallbacks"] is not None else ""
    print(f"wrote {info['out']} ({info['people']} people){extra}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .config import load_config
    from .experiments.bench import bench

    overrides = list(args.set)
    for key, value in (("model.name", args.model), ("data.size", args.size), ("train.batch_size", args.batch),
                       ("train.device", args.device), ("data.workers", args.workers)):
        if value is not None:
            overrides.append(f"{key}={value}")
    cfg = load_config(args.config, overrides + ["model.weights=none"])
    print(json.dumps(bench(cfg, args.data, steps=args.steps, repeats=args.repeats, progress=not args.quiet), indent=2))
    return 0


def _preset_help() -> str:
    from .data.transforms import PRESETS

    return "; ".join(f"{name}: {p.help}" for name, p in PRESETS.items())


def _cutoff_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--age-young", type=int, default=30, help="first age of the middle group (default 30)")
    p.add_argument("--age-old", type=int, default=60, help="first age of the old group (default 60; teams used 57-59)")


def _config_args(p: argparse.ArgumentParser, *, default: str, help: str, set_help: str = "override a setting") -> None:
    """--config (a YAML file or built-in name) and repeatable --set KEY=VALUE, as load_config takes them."""
    p.add_argument("--config", default=default, help=help)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)


def _inference_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tta", default="none", choices=("none", "hflip"),
                   help="test-time augmentation: hflip averages the photo and its mirror image")
    p.add_argument("--device", default="auto", help="auto (GPU when there is one), cpu or cuda")
    p.add_argument("--workers", type=_nonneg, default=0, help="photo-loading processes (default 0: load in this one)")
    p.add_argument("--backend", default="torch", choices=("torch", "onnx"),
                   help="onnx: run RUN/model.onnx (or a .onnx file given as RUN) with onnxruntime on the CPU")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maskcls",
        description="Train and serve a mask / gender / age classifier for face photos (18 classes, macro F1).",
        epilog="Quick start: `maskcls demo`. On your data: `maskcls validate DATA`, then "
               "`maskcls train DATA --out RUN` (GPU recipe) or `--config demo` (CPU-sized), then "
               "`maskcls predict RUN DATA/eval --out submission.csv`. `maskcls COMMAND --help` for details.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"maskcls {__version__}")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars (messages and results still print)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("config", help="print every setting with its value and one line of help",
                       description="Print every setting of a config (default: the built-in default) with its "
                                   "value and one line of help; --set shows the effect of overrides.")
    _config_args(p, default="default", help="YAML file or built-in name: default, demo, plain, gpu-resnet50")
    p.set_defaults(func=_cmd_config)

    p = sub.add_parser("demo", help="the main job on built-in synthetic data, end to end, CPU-sized",
                       description="Generate synthetic demo data, validate it, train, predict and report.")
    p.add_argument("--out", default="demo-output", help="folder for the demo data and run (default demo-output)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting of configs/demo.yaml, e.g. --set train.epochs=2")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("demo-data", help="write synthetic face photos in the competition layout",
                       description="Write synthetic face photos in the competition layout, with the true labels "
                                   "in OUT/truth/ and a list of the label errors planted at rate --noise.")
    p.add_argument("out", metavar="OUT", help="folder to create (must not exist or be empty)")
    p.add_argument("--people", type=int, default=2700, help="training people, 7 photos each (default 2700)")
    p.add_argument("--eval-people", type=int, default=1800, help="eval people, 7 photos each (default 1800)")
    p.add_argument("--noise", type=float, default=0.01, help="fraction of people given a wrong label (default 0.01)")
    p.add_argument("--seed", type=_nonneg, default=0, help="random seed; the same seed gives the same bytes")
    p.add_argument("--size", default="384x512", help="photo size WIDTHxHEIGHT (default 384x512, as the real set)")
    p.add_argument("--workers", type=int, default=None, help="rendering processes (default: up to 4)")
    p.set_defaults(func=_cmd_demo_data)

    p = sub.add_parser("validate", help="check a dataset and list every problem",
                       description="Check the whole dataset: CSV rows, folder names, missing or extra photos, that "
                                   "every photo decodes, and eval rows without images. Exit 0 when clean, 2 otherwise.")
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--corrections", default=None, help=CORR_HELP + "; lists what would change")
    p.add_argument("--no-decode", action="store_true", help="skip decoding the photos (fast structural check)")
    p.add_argument("--verbose", action="store_true", help="list every correction naming a person not in the data")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("eda", help="a report on a dataset: counts, ages, sizes, duplicates, samples",
                       description="Write DIR/report.html (opens from disk) with PNG plots beside it and "
                                   "DIR/summary.json: people, photos, counts per mask / gender / age group / class "
                                   "and the imbalance, the age histogram with the cut-offs, photos that do not "
                                   "decode, near-duplicate photos across different people, sample photos per "
                                   "class, the mean face per mask state, and what corrections change.")
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--out", required=True, metavar="DIR", help="folder to create (must not exist or be empty)")
    p.add_argument("--corrections", default="none", help=CORR_HELP + " (default none)")
    p.add_argument("--workers", type=int, default=4, help="decoding threads (default 4)")
    p.add_argument("--dup-threshold", type=int, default=8,
                   help="near-duplicate distance in bits of a 256-bit perceptual hash (default 8)")
    p.add_argument("--allow-outside", action="store_true", help="accept manifest paths outside its folder")
    _cutoff_args(p)
    p.set_defaults(func=_cmd_eda)

    p = sub.add_parser("summary", help="count people, photos and labels",
                       description="People, photos and counts per mask, gender, age group and class.")
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--corrections", default="none", help=CORR_HELP + " (default none)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--verbose", action="store_true", help="list every correction naming a person not in the data")
    _cutoff_args(p)
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("train", help="train a model; writes a run folder",
                       description="Train on DATA with a person-level validation fold. RUN/ receives config.yaml, "
                                   "best.pt (best validation macro F1), last.pt, metrics.csv, summary.json, "
                                   "curves.png, per_class_f1.png, confusion.png, val_predictions.csv, val_probs.csv and "
                                   "tb/ (TensorBoard). --fold all trains every fold into RUN/fold-K and writes "
                                   "RUN/oof_probs.csv and RUN/cv_summary.json.")
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--out", required=True, metavar="RUN", help="run folder to create (or continue with --resume)")
    p.add_argument("--config", default=None,
                   help="YAML file or built-in name: default (ResNet50 GPU recipe), demo (CPU-sized), plain (the "
                        "common baseline loop, for comparisons), gpu-resnet50")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set train.epochs=5 --set model.name=convnext_tiny")
    p.add_argument("--corrections", default=None, help=CORR_HELP + " (default: the config's, 'known')")
    p.add_argument("--fold", default=None, metavar="K|all",
                   help="which person-level fold to hold out (default: data.fold, 0); 'all' trains every fold into "
                        "RUN/fold-K and writes RUN/oof_probs.csv (out-of-fold probabilities) and RUN/cv_summary.json")
    p.add_argument("--resume", action="store_true", help="continue RUN from last.pt")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="metrics of a run on its validation fold or a labelled set",
                       description="Print the metrics JSON of RUN's best model: on its validation fold when DATA is "
                                   "the data it trained on, otherwise on every labelled photo of DATA.")
    p.add_argument("runs", metavar="RUN", nargs="+", help=RUNS_HELP)
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--split", default="auto", choices=("auto", "val", "all"),
                   help="val: the run's own validation fold (DATA must be its training data); all: every "
                        "labelled photo of DATA; auto (default): val on the training data, else all")
    _inference_args(p)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("predict", help="write a submission for an eval folder",
                       description="Predict every photo of EVAL_DIR/info.csv and write ImageID,ans in the same order.")
    p.add_argument("runs", metavar="RUN", nargs="+", help=RUNS_HELP)
    p.add_argument("eval_dir", metavar="EVAL_DIR", help="folder with info.csv and images/ (or the dataset root)")
    p.add_argument("--out", required=True, help="submission CSV to write")
    p.add_argument("--force", action="store_true", help="overwrite --out (and --probs) if they exist")
    p.add_argument("--probs", default=None, metavar="FILE", help="also write the 18 class probabilities per image")
    _inference_args(p)
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("classify", help="classify photos; one JSON line each",
                       description="Print one JSON line per photo: mask, gender, age group, class and probabilities.")
    p.add_argument("run", metavar="RUN", help="a run folder or a --fold all run (all its folds)")
    p.add_argument("photos", metavar="PHOTO", nargs="+",
                   help="photo files, folders (every photo inside) or quoted globs like 'shots/*.jpg'")
    p.add_argument("--add-run", action="append", default=[], metavar="RUN",
                   help="another run to average with RUN (an ensemble); repeat for more")
    _inference_args(p)
    p.set_defaults(func=_cmd_classify)

    p = sub.add_parser("audit", help="find likely mislabeled photos; a review page writes the corrections",
                       description="Score every photo with a model that never saw its person (a --fold all run "
                                   "given as --run, or trained here into DIR/cv), rank likely label errors with "
                                   "cleanlab (gender and age per person, incorrect/normal swaps as one issue) and "
                                   "write DIR/label_issues.csv, DIR/proposed_corrections.csv (train with "
                                   "--corrections on it once a person has looked) and DIR/review.html.")
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the audit (re-use it to resume)")
    p.add_argument("--run", default=None, help="a `maskcls train DATA --out RUN --fold all` run to take its "
                                               "out-of-fold probabilities from (nothing is trained)")
    p.add_argument("--folds", type=int, default=5, help="folds to train when no --run is given (default 5)")
    _config_args(p, default="demo", help="config for that training (default demo, CPU-sized)")
    p.add_argument("--truth", default=None, metavar="FILE",
                   help="demo data's truth/injected_noise.csv: print precision and recall per kind")
    p.set_defaults(func=_cmd_audit)

    p = sub.add_parser("augment-preview", help="a grid of augmented photos: see a preset before training on it",
                       description="Each row one person: the original photo (with the crop box when the preset "
                                   "crops) beside several augmented draws. Presets: " + _preset_help())
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--preset", required=True, help="preset names joined by +, e.g. hflip+vflip+contrast")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--people", type=int, default=4, help="rows (default 4)")
    p.add_argument("--draws", type=int, default=5, help="augmented draws per person (default 5)")
    p.add_argument("--seed", type=_nonneg, default=0, help="which people and draws (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    _config_args(p, default="demo", help="config giving data.size and data.face_margin (default demo)")
    p.set_defaults(func=_cmd_augment_preview)

    p = sub.add_parser("export", help="export a run (or a k-fold run's ensemble) to ONNX",
                       description="Write an ONNX model: uint8 images (N, 3, H, W) at the run's size in, the 18 "
                                   "class probabilities and the per-task ones out, normalisation inside, dynamic "
                                   "batch; checked against PyTorch with onnxruntime (the max abs difference is "
                                   "printed). predict and classify run it with --backend onnx.")
    p.add_argument("run", metavar="RUN", help="a run folder or a --fold all run (exported as one averaged graph)")
    p.add_argument("--out", default=None, help="the .onnx file (default RUN/model.onnx)")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("bench", help="throughput of the data pipeline, the model and the real steps, as JSON",
                       description="Print one JSON object: loader_img_s (the data pipeline alone, with the photo "
                                   "cache), model_img_s (forward+backward on random tensors: the ceiling), "
                                   "train_img_s (the real training step), train_ratio = train/model, the same for "
                                   "prediction, the loader without the cache and a reference loader written the "
                                   "common baseline's way (PIL + torchvision per photo). Medians of --repeats.")
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--model", default=None, help="model name (default: the config's)")
    p.add_argument("--size", default=None, help="WIDTHxHEIGHT (default: the config's)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: the config's)")
    p.add_argument("--steps", type=int, default=20, help="steps per timing (default 20)")
    p.add_argument("--repeats", type=int, default=3, help="timings per figure; the median is printed (default 3)")
    p.add_argument("--device", default=None, help="auto, cpu or cuda (default: the config's)")
    p.add_argument("--workers", type=int, default=None, help="loader processes (default: the config's)")
    _config_args(p, default="demo", help="base config (default demo)")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("ablate", help="train variants on the same folds and seeds; report paired deltas",
                       description="Train every variant x seed x fold from one prepared dataset and write "
                                   "OUT/results.csv, OUT/table.md (mean +- std, paired delta and ratio to the "
                                   "first variant with 95% intervals) and OUT/ablation.png. Every run keeps its "
                                   "last epoch and is scored on its held-out fold against one answer key (--key). A variant is preset "
                                   "names and/or key=value settings joined by +, e.g. hflip+vflip or "
                                   "data.corrections=none. Re-running skips finished runs.")
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--out", required=True, help="folder for results (re-use it to add runs)")
    p.add_argument("--variants", required=True, help="comma-separated variants; the first is the baseline")
    p.add_argument("--seeds", type=int, default=3, help="seeds per variant (default 3)")
    p.add_argument("--folds", type=int, default=None,
                   help="how many of the config's person-level folds to run (default: all data.folds)")
    p.add_argument("--key", default=None, metavar="FILE",
                   help="the answer key every run is scored on: corrections (known | none | CSV) applied to DATA's "
                        "labels, or an answer-key CSV (person,image,mask,gender,age); needed when variants differ "
                        "in data.corrections (default: the labels the variants share)")
    _config_args(p, default="demo", help="base config (default demo, CPU-sized)", set_help="a setting for every variant")
    p.set_defaults(func=_cmd_ablate)
    _add_improve_parser(sub)
    # -q works after the command too (`maskcls train -q ...`); SUPPRESS keeps the one given before it.
    for command in sub.choices.values():
        command.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                             help="no progress bars (messages and results still print)")
    return parser


# errno values that are the user's environment, not a bug: a read-only or full disk, no permission.
USER_OS_ERRORS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR,
                  errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.EEXIST}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .progress import set_quiet

    set_quiet(args.quiet)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"maskcls {args.command}: error: {user_message(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `maskcls classify ... | head`: the reader left; end quietly, as other command-line tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        if exc.errno not in USER_OS_ERRORS:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        print(f"maskcls {args.command}: error: cannot write or read{where}: {exc.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"maskcls {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
