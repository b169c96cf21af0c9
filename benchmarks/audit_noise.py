"""How well does the audit rank planted label errors, next to plain cleanlab on the same out-of-fold
probabilities? Prints, per kind and over seeds, precision and recall at k = the number planted
(never asserts): demo data with planted noise, a CPU-sized model, out-of-fold scores.

    python benchmarks/audit_noise.py [--people 240] [--noise 0.05] [--folds 3] [--epochs 6] [--seeds 3] [--repeats 1] [--jobs 1] [--out DIR]

Each seed makes its own demo data (seed s: other people, other planted errors), trains the audit's
`--fold all` run with train.seed = data.split_seed = s, and ranks people per kind:
  maskcls             the audit's ranking (rank.find_issues as the audit calls it: pooled per person,
                      swaps as one issue, hflip TTA, and in-sample training margins for masks), over
                      the --repeats fold draws
  maskcls, 1 repeat   with --repeats R > 1: the same on the first fold draw alone (what repeats buy)
  maskcls, probs only the same, on oof_probs.csv alone (no TTA, no margins): the structure's share
  maskcls, +...       the same with these signals in every field (what chose rank.DEFAULT_SIGNALS)
  cleanlab filter     cleanlab.filter.find_label_issues(labels, pred_probs,
                      return_indices_ranked_by="self_confidence") per photo
  cleanlab quality    cleanlab.rank.get_label_quality_scores(labels, pred_probs) per photo, lowest first
cleanlab gets oof_probs.csv's per-task probabilities (p_gender_*, p_mask_*), the same table the
audit reads. A photo ranking becomes a person ranking by each person's first appearance; a person
is a hit for a kind when an error of that kind was planted on them. For swaps, maskcls's ranking is
its swap issues, and cleanlab's is given the same hint: only incorrect_mask and normal photos are
ranked (the only photos a swap can touch), and one flagged photo of a swapped person counts as a
hit although it names only half the fix. At k = planted, precision equals recall unless a method
lists fewer than k people (cleanlab filter may).
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from _cli import check_folds, out_folder, parser_for, positive, run, stamp_of
from maskcls import labels
from maskcls.audit.rank import find_issues, layout_people, proposals, score_against_truth
from maskcls.audit.run import audit, load_evidence
from maskcls.config import load_config
from maskcls.data.prepare import prepare
from maskcls.data.synth import make_dataset, person_id, train_people
from maskcls.errors import UserError

KINDS = {"gender": ("gender", "gender"), "mask_swap": ("mask", "mask")}  # kind -> (field, label column)


def main() -> None:
    parser = parser_for(__doc__, people=240, folds=3, epochs=6, what="folds of the out-of-fold scores")
    parser.add_argument("--noise", type=float, default=0.05,
                        help="fraction of people given a planted label error (default: %(default)s)")
    parser.add_argument("--seeds", type=positive, default=3, help="datasets and trainings to average over (default: %(default)s)")
    parser.add_argument("--repeats", type=positive, default=1,
                        help="out-of-fold runs per seed, each with other fold draws, averaged as `audit --repeats` "
                             "does (default: %(default)s); an --out folder of fewer repeats is reused and grown")
    parser.add_argument("--jobs", type=positive, default=1, help="seeds trained at once, one process each "
                                                                 "(default: %(default)s)")
    args = parser.parse_args()
    if not 0 < args.noise < 1:
        raise UserError(f"--noise must be a fraction between 0 and 1, got {args.noise}")
    check_folds(args)
    cfg = load_config(args.config, [f"train.epochs={args.epochs}", *args.set])  # a bad --config or --set ends here
    results: dict[str, dict[str, list[tuple[float, float]]]] = {}
    proposed_rows, hair_rows = [], []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = out_folder(args.out, stamp_of(args, cfg), tmp)
        if args.jobs > 1:  # the training, seeds side by side; the loop below then reuses every fold
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(min(args.jobs, args.seeds), mp_context=mp.get_context("spawn")) as pool:
                list(pool.map(_audit_seed, [(root, seed, args) for seed in range(args.seeds)]))
        for seed in range(args.seeds):
            data = root / f"data-{seed}"
            summary = _audit_seed((root, seed, args))
            overrides = _overrides(seed, args)
            noise = pd.read_csv(data / "truth" / "injected_noise.csv", dtype=str, keep_default_na=False)
            run_cfg = load_config(args.config, [*overrides, f"data.folds={args.folds}"])
            prepared = prepare(run_cfg, data, log=lambda s: None)
            runs = [Path(r) for r in summary["runs"]]
            oof = load_evidence(runs, prepared, data)
            ranked = rankings(oof, run_cfg)
            if len(runs) > 1:
                first = rankings(load_evidence(runs[:1], prepared, data), run_cfg)["maskcls"]
                ranked = {"maskcls": ranked["maskcls"], "maskcls, 1 repeat": first,
                          **{k: v for k, v in ranked.items() if k != "maskcls"}}
            for method, ranking in ranked.items():
                for kind, persons in ranking.items():
                    planted = set(noise.loc[noise["field"] == KINDS[kind][0], "person"])
                    results.setdefault(method, {}).setdefault(kind, []).append(at_k(persons, planted))
            hair_rows.append(f"  seed {seed}: {hair_line(ranked['maskcls']['gender'], noise, args.people, seed)}")
            fields = summary["fields"]
            gate = ", ".join(f"{f} {v['quality']:.2f}" if v["quality"] is not None else f"{f} n/a"
                             for f, v in fields.items())
            all_issues = find_issues(oof, cutoffs=run_cfg.cutoffs)
            audited = all_issues[all_issues["field"].isin([f for f, v in fields.items() if v["audited"]])]
            quality = pd.read_csv(root / f"audit-{seed}" / "field_quality.csv")
            prop = proposals(audited, quality=quality, layout=layout_people(oof))
            t = score_against_truth(prop, noise)["all"]
            precision = "n/a" if t["precision"] is None else f"{t['precision']:.2f}"
            proposed_rows.append(f"  seed {seed}: gate quality {gate}; proposed {t['flagged']}, of which "
                                 f"{t['found']} planted (precision {precision})")
    minutes = (time.perf_counter() - start) / 60
    print(f"{args.people} people, {args.noise:.0%} planted noise, {args.folds} folds x {args.epochs} epochs "
          f"x {args.repeats} repeat(s) "
          f"({args.config} config {' '.join(args.set)}), seeds 0..{args.seeds - 1}: {minutes:.1f} min")
    print("precision at k / recall at k, k = people planted with that kind of error; mean over seeds "
          "(per seed in brackets)")
    print(f"| method | {' | '.join(f'{k} P@k' for k in KINDS)} | {' | '.join(f'{k} R@k' for k in KINDS)} |")
    print("|---|" + "---|" * (2 * len(KINDS)))
    for method, kinds in results.items():
        cells = []
        for i in (0, 1):
            for kind in KINDS:
                values = [v[i] for v in kinds[kind]]
                cells.append(f"{np.mean(values):.2f} ({' '.join(f'{v:.2f}' for v in values)})")
        print(f"| {method} | {' | '.join(cells)} |")
    print("proposed_corrections.csv (gated, score threshold):")
    print("\n".join(proposed_rows))
    print("maskcls's gender top k against the people's hidden hair (demo people: 85% of women and 10% of men "
          "have long hair):")
    print("\n".join(hair_rows))


def _overrides(seed: int, args) -> tuple[str, ...]:
    return (f"train.epochs={args.epochs}", f"train.seed={seed}", f"data.split_seed={seed}", *args.set)


def _audit_seed(job: tuple) -> dict:
    """Seed ``seed``'s demo data and audit (trained folds are reused when already there)."""
    root, seed, args = job
    data = root / f"data-{seed}"
    if not (data / "train" / "train.csv").is_file():
        make_dataset(data, people=args.people, eval_people=0, noise=args.noise, seed=seed, size=(96, 128), workers=1)
    return audit(data, root / f"audit-{seed}", folds=args.folds, config=args.config, overrides=_overrides(seed, args),
                 repeats=args.repeats, truth=data / "truth" / "injected_noise.csv", progress=False, log=lambda s: None)


def rankings(oof: pd.DataFrame, cfg) -> dict[str, dict[str, list[str]]]:
    """method -> kind -> people in ranked order (first appearance)."""
    out = {}
    for method, signals in (("maskcls", None), ("maskcls, probs only", ()), ("maskcls, +hflip", ("hflip",)),
                            ("maskcls, +margins", ("margin",)), ("maskcls, +hflip +margins", ("hflip", "margin"))):
        issues = find_issues(oof, cutoffs=cfg.cutoffs, fields=("gender", "mask"), signals=signals)
        swaps = issues["fix_to"].astype(str) == "swap"
        out[method] = {"gender": _first(issues.loc[issues["field"] == "gender", "person"].astype(str)),
                       "mask_swap": _first(issues.loc[(issues["field"] == "mask") & swaps, "person"].astype(str))}
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    filt, qual = {}, {}
    for kind, (field, column) in KINDS.items():
        rows = oof if kind == "gender" else oof[oof["image"].astype(str).isin(["incorrect_mask", "normal"])]
        y = rows[column].to_numpy(dtype=int)
        p = rows[labels.task_prob_columns(labels.by_field(field))].to_numpy(dtype=float)
        p = p / p.sum(1, keepdims=True)
        persons = rows["person"].astype(str).to_numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ranked = find_label_issues(y, p, return_indices_ranked_by="self_confidence", n_jobs=1)
            quality = get_label_quality_scores(y, p)
        filt[kind] = _first(persons[ranked])
        qual[kind] = _first(persons[np.argsort(quality, kind="stable")])
    out["cleanlab filter"], out["cleanlab quality"] = filt, qual
    return out


def hair_line(persons: list[str], noise: pd.DataFrame, people: int, seed: int) -> str:
    """Who the gender ranking's top k are, by the hidden trait the demo generator gives gender most
    visibly: hair length. A clean person whose hair is unlike their gender's, or a planted one whose
    hair is like the gender recorded, looks mislabeled to a model that reads gender from the hair."""
    long_hair = {person_id(p.index): p.long_hair for p in train_people(people, seed)[0]}
    planted = set(noise.loc[noise["field"] == "gender", "person"])
    k = len(planted)
    top = persons[:k]

    def unlike(person: str) -> bool:  # hair unlike the gender in the folder name (the recorded one)
        pid, recorded = person.split("_")[:2]
        return long_hair[pid] != (recorded == "female")

    clean = [p for p in top if p not in planted]
    missed = [p for p in planted if p not in top]
    return (f"top {k}: {k - len(clean)} planted; clean people with hair unlike their gender: "
            f"{sum(map(unlike, clean))} of {len(clean)}; planted people missed whose hair is like the gender "
            f"recorded: {sum(not unlike(p) for p in missed)} of {len(missed)}")


def at_k(persons: list[str], planted: set[str]) -> tuple[float, float]:
    """(precision, recall) of the first k = len(planted) people (precision over those listed, if fewer)."""
    k = len(planted)
    top = persons[:k]
    hits = sum(p in planted for p in top)
    return (hits / len(top) if top else 0.0), (hits / k if k else float("nan"))


def _first(persons) -> list[str]:
    return list(dict.fromkeys(persons))


if __name__ == "__main__":
    run(main)
