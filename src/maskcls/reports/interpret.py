"""`maskcls interpret RUN [DATA] --out DIR`: what a trained model learned, on one static page.

The tables (top losses, most confused pairs, reliability and calibration error, per-task confusions)
are pure functions of labels and probabilities; ``interpret`` is the I/O edge: it loads the run, predicts
the photos, computes the activation maps (reports.cam) and writes DIR/interpret.html with its thumbnails,
figures and interpret.json.

Which photos: by default the run's own validation fold on the data it was trained on (for a
`--fold all` run every photo, each predicted and explained by the fold model that never saw its person).
Other labelled DATA: every labelled photo, predicted by the run (the mean of its fold models).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from .. import labels
from ..config import FACE_MODEL
from ..data.fingerprint import trained_on_count
from ..data.images import read_rgb
from ..data.prepare import prepare
from ..data.table import describe
from ..errors import UserError
from ..faces.features import face_descriptors
from ..fileio import atomic_dir, atomic_open, check_writable, claim_folder, refuse_output_inside, write_json, write_text
from ..labels import task_probs
from ..metrics import per_class_f1
from ..progress import bar
from . import cam, interpret_page

TOP_LOSSES = 12
CONFUSED_PAIRS = 6
EXAMPLES_PER_PAIR = 4
PER_STATE = 24  # photos per mask state averaged into the mean activation maps


# --------------------------------------------------------------------------- pure tables


def photo_losses(targets: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(N,) loss of each photo: -log p(given class) when all three labels are known, else the sum of
    -log p(given answer) over the tasks it has a label for (NaN when it has none).
    targets: (N, 3) task answers ordered as labels.TASKS, -1 unknown; probs: (N, 18)."""
    per_task = task_probs(probs)
    loss = np.zeros(len(targets))
    known_any = np.zeros(len(targets), bool)
    for j, t in enumerate(labels.TASKS):
        known = targets[:, j] >= 0
        p = per_task[t.name][np.flatnonzero(known), targets[known, j]]
        loss[known] += -np.log(np.clip(p, 1e-12, 1))
        known_any |= known
    loss[~known_any] = np.nan
    return loss


def most_confused(given: np.ndarray, predicted: np.ndarray, *, top: int = CONFUSED_PAIRS) -> list[dict]:
    """The class pairs most often confused: [{given, predicted, count, rows}] by count, then class order.
    given/predicted: (N,) class indices, given -1 where unknown (left out)."""
    wrong = (given >= 0) & (given != predicted)
    pairs: dict[tuple[int, int], list[int]] = {}
    for i in np.flatnonzero(wrong):
        pairs.setdefault((int(given[i]), int(predicted[i])), []).append(int(i))
    ranked = sorted(pairs.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:top]
    return [{"given": g, "predicted": p, "count": len(rows), "rows": rows} for (g, p), rows in ranked]


def reliability(confidence: np.ndarray, correct: np.ndarray, *, bins: int = 10) -> tuple[pd.DataFrame, float]:
    """Reliability table over equal-width confidence bins (lo, hi, photos, confidence, accuracy) and the
    expected calibration error: sum over bins of (photos share) x |accuracy - mean confidence|."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        sel = which == b
        rows.append({"lo": edges[b], "hi": edges[b + 1], "photos": int(sel.sum()),
                     "confidence": float(confidence[sel].mean()) if sel.any() else np.nan,
                     "accuracy": float(correct[sel].mean()) if sel.any() else np.nan})
    table = pd.DataFrame(rows)
    n = max(len(confidence), 1)
    filled = table[table["photos"] > 0]
    ece = float((filled["photos"] / n * (filled["accuracy"] - filled["confidence"]).abs()).sum())
    return table, ece


def task_confusion(given: np.ndarray, predicted: np.ndarray, size: int) -> np.ndarray:
    """(size, size) counts, rows given, columns predicted, over the photos with a label (given >= 0)."""
    known = given >= 0
    out = np.zeros((size, size), int)
    np.add.at(out, (given[known], predicted[known]), 1)
    return out


# --------------------------------------------------------------------------- the command (I/O edge)


def _members(run: Path) -> list[Path]:
    """Run folders of the models: the run itself, or a `--fold all` run's fold-K folders."""
    from ..training.runs import expand_runs, is_fold_parent

    if run.is_file():
        raise UserError(f"{run}: a file, not a run folder")
    if not run.is_dir():
        raise UserError(f"{run}: no such run folder")
    if is_fold_parent(run):
        return expand_runs(run)
    if not (run / "best.pt").is_file() and not (run / "last.pt").is_file():
        raise UserError(f"{run}: no checkpoint (best.pt or last.pt): the training stopped before its first epoch "
                        "ended, so there is no model to look at; train it again")
    return [run]


def _refuse_training_photos(run: Path, members: list, digests: np.ndarray, trained_on: str) -> None:
    """Other DATA that holds photos the run learnt from (a copy of its data, by content) would show the
    model at its best on what it memorised: refused, as evaluate refuses to score them."""
    seen = trained_on_count(digests, members)
    if seen:
        own = ("" if any(m.config.data.fold is None for m in members) else
               f", or the data it trained on by its own path ({trained_on}) to look at its validation fold")
        raise UserError(f"{seen} of the {len(digests)} labelled photos are photos {run} trained on (the same files, "
                        f"found by content); interpret looks at photos the model has not seen: give other labelled "
                        f"DATA{own}")


def interpret(run: str | Path, data: str | Path | None, out: str | Path, *, layer: str | None = None,
              top: int = TOP_LOSSES, per_state: int = PER_STATE, device: str = "cpu", force: bool = False,
              progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Write OUT/interpret.html (+ thumbs/, reliability.png, per_class_f1.png, interpret.json); return the
    summary written to interpret.json."""
    run, out = Path(run), Path(out)
    claim_folder(out, replace="interpret.html", force=force, owner="interpret page")
    check_writable(out)  # said before the photos are predicted, not after
    predictors, data, layer_name, dev = _open_runs(run, data, out, device, layer)
    members = [p.members[0] for p in predictors]
    cfg, trained_on = members[0].config, members[0].data
    same = describe(data) == trained_on
    prepared, rows, member_of, what = _photos_to_look_at(run, members, cfg, data, trained_on, same)
    targets = prepared.score_targets[rows]
    paths = prepared.table["path"].to_numpy()[rows].tolist()
    probs = _predict(predictors, paths, member_of, same, progress)
    per_task = task_probs(probs)
    pred_task = {t.name: per_task[t.name].argmax(1) for t in labels.TASKS}
    given_class = np.where((targets >= 0).all(1), labels.encode_targets(np.clip(targets, 0, None)), -1)
    pred_class = probs.argmax(1)
    losses = photo_losses(targets, probs)
    top_rows, confused, state_rows, shown = _pick_photos(targets, losses, given_class, pred_class, pred_task,
                                                         top=top, per_state=per_state)
    images = _model_inputs(predictors, paths, shown, member_of, progress=progress)
    maps = _activation_maps(members, images, shown, member_of, targets, pred_task, paths, layer_name, dev)

    names = labels.class_names(cfg.score_cutoffs)
    calibration = _calibration(targets, per_task, pred_task)
    confusions = {t.name: task_confusion(targets[:, j], pred_task[t.name], t.size) for j, t in enumerate(labels.TASKS)}
    full = (targets >= 0).all(1)
    f1, support = per_class_f1(targets, probs) if full.any() else (None, None)

    summary = _summary(run, data, cfg, what, layer_name, calibration, confusions, names, paths, losses, probs,
                       given_class, pred_class, top_rows, confused, f1, support, n_photos=len(rows))
    with atomic_dir(out) if not out.is_dir() or not any(out.iterdir()) else _replace_dir(out) as tmp:
        thumbs = _write_images(tmp / "thumbs", images, maps, shown)
        means = _write_mean_maps(tmp / "thumbs", images, maps, state_rows)
        plots = interpret_page.write_plots(tmp, calibration, f1, support, names)
        page = interpret_page.render(summary, paths=paths, targets=targets, probs=probs, names=names,
                                     cutoffs=cfg.score_cutoffs, top_rows=top_rows, losses=losses,
                                     confused=confused, thumbs=thumbs, means=means, plots=plots,
                                     calibration=calibration, confusions=confusions, f1=f1, support=support,
                                     examples=EXAMPLES_PER_PAIR)
        write_text(tmp / "interpret.html", page)
        write_json(tmp / "interpret.json", summary)
    log(f"wrote {out / 'interpret.html'} ({len(rows)} photos; activation maps of {layer_name})")
    return summary


def _open_runs(run: Path, data, out: Path, device: str, layer: str | None) -> tuple[list, object, str, object]:
    """Load each run once (its predictor serves the probabilities, its model the activation maps) and check
    what can be checked before any photo is read: the data (the run's own when none is given), the output
    folder's place, the model kind, the layer. Returns (predictors, data, layer name, torch device)."""
    from ..serve.predictor import Predictor
    from ..training.runtime import resolve_device

    dev = resolve_device(device)
    predictors = [Predictor(r, device=dev.type) for r in _members(run)]
    first = predictors[0].members[0]
    cfg, trained_on = first.config, first.data
    if data is None:
        if not trained_on or not Path(str(trained_on)).exists():
            raise UserError(f"{run} was trained on {trained_on or 'data it does not name'}, which is not here; "
                            "give the labelled DATA to look at")
        data = trained_on
    refuse_output_inside(data, out)
    if cfg.model.name == FACE_MODEL:
        raise UserError(f"{run} is model.name={FACE_MODEL}: heads on the face descriptor, with no CNN whose "
                        "activation maps interpret could show; score it with `maskcls evaluate`")
    # The layer first: a --layer that names nothing fails before any photo is read or predicted.
    layer_name = cam.find_cam_layer(first.model, cfg.size, layer)
    return predictors, data, layer_name, dev


def _predict(predictors: list, paths: list[str], member_of: np.ndarray, same: bool, progress: bool) -> np.ndarray:
    """Class probabilities: each photo from its own fold's model (the run's own data), else the models' mean."""
    probs = np.zeros((len(paths), labels.NUM_CLASSES), np.float32)
    if same:
        for k, pred in enumerate(predictors):
            sel = np.flatnonzero(member_of == k)
            if len(sel):
                probs[sel] = pred.predict_proba([paths[i] for i in sel], progress=progress)
    else:
        probs[:] = np.mean([p.predict_proba(paths, progress=progress) for p in predictors], axis=0)
    return probs


def _pick_photos(targets: np.ndarray, losses: np.ndarray, given_class: np.ndarray, pred_class: np.ndarray,
                 pred_task: dict, *, top: int, per_state: int) -> tuple[list[int], list[dict], dict, list[int]]:
    """The photos the page shows: the ``top`` losses, examples of the most confused pairs, and ``per_state``
    photos of each mask state for the mean maps (the given state, the predicted one where unknown).
    Returns (top rows, confused pairs, rows per state, every row shown)."""
    order = np.argsort(-np.nan_to_num(losses, nan=-1), kind="stable")
    top_rows = order[:top].tolist()
    confused = most_confused(given_class, pred_class)
    state = np.where(targets[:, 0] >= 0, targets[:, 0], pred_task["mask"])
    rng = np.random.default_rng(0)
    state_rows = {s: sorted(rng.permutation(np.flatnonzero(state == s))[:per_state].tolist()) for s in range(3)}
    shown = sorted(set(top_rows) | {i for p in confused for i in p["rows"][:EXAMPLES_PER_PAIR]}
                   | {i for r in state_rows.values() for i in r})
    return top_rows, confused, state_rows, shown


def _summary(run: Path, data, cfg, what: str, layer_name: str, calibration: dict, confusions: dict, names: list[str],
             paths: list[str], losses: np.ndarray, probs: np.ndarray, given_class: np.ndarray, pred_class: np.ndarray,
             top_rows: list[int], confused: list[dict], f1, support, *, n_photos: int) -> dict:
    """interpret.json's content: what was looked at and how, calibration, the top losses, the most confused
    pairs, the confusions and the per-class F1."""
    return {"run": str(run), "data": describe(data), "photos": what, "n_photos": n_photos,
               "model": cfg.model.name, "heads": cfg.model.heads, "size": cfg.data.size, "layer": layer_name,
               "method": "Grad-CAM (grad-cam library) of each task answer's log-probability"
                         + ("; the gender and age answers also read the face descriptor (model.face_features), "
                            "whose share no map can show: the maps show where the CNN's share looked"
                            if cfg.model.face_features else ""),
               "face_features": cfg.model.face_features,
               "ece": {k: v["ece"] for k, v in calibration.items()},
               "top_losses": [{"path": paths[i], "loss": round(float(losses[i]), 4),
                               "given": names[given_class[i]] if given_class[i] >= 0 else None,
                               "predicted": names[pred_class[i]],
                               "p_given": round(float(probs[i, given_class[i]]), 4) if given_class[i] >= 0 else None}
                              for i in top_rows],
               "most_confused": [{"given": names[p["given"]], "predicted": names[p["predicted"]], "count": p["count"]}
                                 for p in confused],
               "confusion": {k: v.tolist() for k, v in confusions.items()},
               "per_class_f1": ({n: {"f1": round(float(a), 4), "support": int(b)} for n, a, b in zip(names, f1, support)}
                                if f1 is not None else None)}


def _photos_to_look_at(run: Path, members: list, cfg, data, trained_on: str, same: bool):
    """(prepared data, its rows to look at, each row's fold model, what they are in words): on the data the
    models trained on, the photos none of them trained on (a fold run's validation fold, a --fold all run's
    out-of-fold photos); on other data, every labelled photo, refused where the run trained on any of them."""
    if same and len(members) == 1 and cfg.data.fold is None:
        raise UserError(f"{run} trained on every person of {trained_on} (--fold none): none of its photos is unseen; "
                        "give other labelled DATA to look at")
    prepared = prepare(cfg, data, log=lambda s: None, folds=same)
    table = prepared.table
    if same:  # photos the models never trained on: the validation fold(s)
        rows = np.flatnonzero(prepared.folds == cfg.data.fold) if len(members) == 1 else np.arange(len(table))
        member_of = np.zeros(len(rows), int) if len(members) == 1 else prepared.folds[rows]
        what = (f"validation fold {cfg.data.fold} of {trained_on}" if len(members) == 1
                else f"out-of-fold predictions of {len(members)} fold models on {trained_on}")
    else:
        rows = np.flatnonzero((prepared.score_targets >= 0).any(1))
        _refuse_training_photos(run, members, prepared.photo_digests()[rows], trained_on)
        member_of = np.zeros(len(rows), int)
        what = f"every labelled photo of {describe(data)}" + (f" (mean of {len(members)} models)" if len(members) > 1 else "")
    if not len(rows):
        raise UserError(f"{describe(data)}: no labelled photo to look at")
    return prepared, rows, member_of, what


def _activation_maps(members: list, images: dict, shown: list[int], member_of: np.ndarray, targets: np.ndarray,
                     pred_task: dict, paths: list[str], layer_name: str, dev) -> dict[int, dict[str, np.ndarray]]:
    """Grad-CAM maps of the photos shown, each by its own fold model: per task the predicted and the given
    answer (the predicted where the label is unknown), keyed '<task>_pred' / '<task>_given'."""
    maps: dict[int, dict[str, np.ndarray]] = {}
    groups = {k: [i for i in shown if member_of[i] == k] for k in range(len(members))}
    for k, idx in groups.items():
        if not idx:
            continue
        model = members[k].model
        batch = torch.from_numpy(np.stack([images[i] for i in idx]).transpose(0, 3, 1, 2).copy()).to(dev)
        cols = []
        for t in labels.TASKS:
            j = [tt.name for tt in labels.TASKS].index(t.name)
            given = targets[idx, j]
            cols.append(cam.TASK_OFFSET[t.name] + pred_task[t.name][idx])
            cols.append(cam.TASK_OFFSET[t.name] + np.where(given >= 0, given, pred_task[t.name][idx]))
        faces = None
        if members[k].config.model.face_features:  # the descriptors the model answered with
            mcfg = members[k].config
            faces = torch.from_numpy(face_descriptors([paths[i] for i in idx], cache_dir=mcfg.data.cache_dir or None,
                                                      cascade=mcfg.data.face_detectors))
        heat = cam.activation_maps(model, batch, cols, layer_name, faces=faces)
        for n, i in enumerate(idx):
            maps[i] = {f"{t.name}_{kind}": heat[2 * j + (kind == "given"), n]
                       for j, t in enumerate(labels.TASKS) for kind in ("pred", "given")}
    return maps


def _calibration(targets: np.ndarray, per_task: dict, pred_task: dict) -> dict:
    """Per task with labels: the expected calibration error and its reliability bins."""
    calibration = {}
    for j, t in enumerate(labels.TASKS):
        known = targets[:, j] >= 0
        if known.any():
            conf = per_task[t.name][known].max(1)
            table_j, ece = reliability(conf, pred_task[t.name][known] == targets[known, j])
            calibration[t.name] = {"ece": round(ece, 4), "photos": int(known.sum()), "bins": table_j}
    return calibration


def _replace_dir(out: Path):
    """--force over a previous page: empty the folder, then build into it as into a new one."""
    import shutil

    for p in out.iterdir():
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    return atomic_dir(out)


def _model_inputs(predictors, paths: list[str], shown: list[int], member_of: np.ndarray, *,
                  progress: bool) -> dict[int, np.ndarray]:
    """Row -> the (H, W, 3) uint8 image its model sees: the run's own crop and resize, no augmentation."""
    out = {}
    for i in bar(shown, desc="photos", unit="photo", disable=not progress, leave=False):
        pred = predictors[member_of[i]]
        transform = pred._transform(pred.config, [paths[i]], progress=False)  # the run's preprocessing
        out[i] = transform(read_rgb(paths[i]), seed=0, key=paths[i])
    return out


def _save_jpg(path: Path, rgb: np.ndarray) -> None:
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:
        raise UserError(f"could not encode {path.name}")
    with atomic_open(path, "wb") as fh:
        fh.write(buf.tobytes())


def _write_images(folder: Path, images: dict[int, np.ndarray], maps: dict[int, dict[str, np.ndarray]],
                  shown: list[int]) -> dict[int, dict[str, str]]:
    """Row -> {'photo': path, '<task>_pred'/'<task>_given': overlay path}, relative to the page. Names come
    from row numbers, never from a user's file names."""
    out = {}
    for i in shown:
        entry = {"photo": f"thumbs/{i:06d}.jpg"}
        _save_jpg(folder / f"{i:06d}.jpg", images[i])
        for key, heat in maps.get(i, {}).items():
            entry[key] = f"thumbs/{i:06d}_{key}.jpg"
            _save_jpg(folder / f"{i:06d}_{key}.jpg", cam.overlay(images[i], heat))
        out[i] = entry
    return out


def _write_mean_maps(folder: Path, images: dict[int, np.ndarray], maps: dict[int, dict[str, np.ndarray]],
                     state_rows: dict[int, list[int]]) -> dict[tuple[int, str], dict]:
    """(mask state, task) -> {'path', 'photos'}: the mean map of the predicted answer over the state's
    photos, drawn over their mean photo."""
    out = {}
    for s, idx in state_rows.items():
        if not idx:
            continue
        mean_photo = np.mean([images[i] for i in idx], axis=0).astype(np.uint8)
        for t in labels.TASKS:
            heat = np.mean([maps[i][f"{t.name}_pred"] for i in idx], axis=0)
            heat = heat / heat.max() if heat.max() > 0 else heat
            name = f"mean_{labels.task_names('mask')[s]}_{t.name}.jpg".replace(" ", "_")
            _save_jpg(folder / name, cam.overlay(mean_photo, heat))
            out[(s, t.name)] = {"path": f"thumbs/{name}", "photos": len(idx)}
    return out
