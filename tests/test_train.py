"""Training on CPU with tiny synthetic data and a tiny model (timm's test_resnet at 48x64)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from maskcls import labels
from maskcls.errors import UserError
from maskcls.training import fit as train_mod
from maskcls.training import loaders, losses, optim
from maskcls.training.fit import train
from maskcls.training.runs import load_checkpoint

from conftest import TINY, tiny_config  # noqa: F401 - shared with the other test modules

# Tests that train a model are marked slow one by one (`pytest -m "not slow"` skips them); the
# loss, sampler and optimizer-group tests below train nothing and stay in the fast selection.

RUN_FILES = {"config.yaml", "best.pt", "last.pt", "metrics.csv", "summary.json", "confusion.png",
             "val_predictions.csv", "tb", "train_margins.csv"}


@pytest.fixture(scope="module")
def trained_run(synth_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    summary = train(tiny_config(), synth_root, out, progress=False, log=lambda s: None)
    return out, summary


@pytest.mark.slow
def test_run_folder_and_summary(trained_run):
    out, summary = trained_run
    assert RUN_FILES <= {p.name for p in out.iterdir()}
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == summary
    import yaml
    saved = yaml.safe_load((out / "config.yaml").read_text())
    import timm
    pretrained = timm.create_model("test_resnet").pretrained_cfg  # the backbone's own data config
    assert saved["data"]["mean"] == list(pretrained["mean"]) and saved["data"]["std"] == list(pretrained["std"])
    for key in ("macro_f1", "accuracy", "mask_f1", "gender_f1", "age_f1", "best_epoch", "epochs"):
        assert key in summary
    assert summary["epochs"] == 3 and summary["val_people"] == 6
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics["epoch"].tolist() == [1, 2, 3]
    # best.pt is the first epoch with the highest macro F1, and the summary re-measures exactly it.
    best = int(metrics["macro_f1"].idxmax()) + 1
    assert summary["best_epoch"] == best
    assert load_checkpoint(out / "best.pt")["epoch"] == best
    assert summary["macro_f1"] == pytest.approx(metrics.loc[best - 1, "macro_f1"], abs=1e-6)
    assert any((out / "tb").iterdir())
    preds = pd.read_csv(out / "val_predictions.csv")
    assert len(preds) == summary["val_photos"] and preds["pred"].between(0, 17).all()


@pytest.mark.slow
def test_best_checkpoint_follows_macro_f1_not_accuracy(synth_root, tmp_path, monkeypatch):
    scripted = iter([
        {"macro_f1": 0.20, "accuracy": 0.90, "mask_f1": 0.5, "gender_f1": 0.5, "age_f1": 0.5},
        {"macro_f1": 0.60, "accuracy": 0.40, "mask_f1": 0.5, "gender_f1": 0.5, "age_f1": 0.5},
        {"macro_f1": 0.30, "accuracy": 0.95, "mask_f1": 0.5, "gender_f1": 0.5, "age_f1": 0.5},
    ])
    real = train_mod.compute_metrics
    monkeypatch.setattr(train_mod, "compute_metrics", lambda t, p: next(scripted, None) or real(t, p))
    summary = train(tiny_config("train.tensorboard=false"), synth_root, tmp_path / "r", progress=False, log=lambda s: None)
    assert summary["best_epoch"] == 2
    assert load_checkpoint(tmp_path / "r" / "best.pt")["epoch"] == 2


@pytest.mark.slow
def test_early_stopping(synth_root, tmp_path, monkeypatch):
    scripted = iter([{"macro_f1": f, "accuracy": 0.5, "mask_f1": 0.5, "gender_f1": 0.5, "age_f1": 0.5}
                     for f in (0.5, 0.4, 0.3, 0.2)])
    real = train_mod.compute_metrics
    monkeypatch.setattr(train_mod, "compute_metrics", lambda t, p: next(scripted, None) or real(t, p))
    summary = train(tiny_config("train.epochs=4", "train.patience=2", "train.tensorboard=false"), synth_root,
                    tmp_path / "r", progress=False, log=lambda s: None)
    assert summary["epochs"] == 3 and summary["planned_epochs"] == 4 and summary["best_epoch"] == 1


@pytest.mark.slow
def test_resume_gives_the_same_metrics(synth_root, tmp_path, trained_run):
    out, _ = trained_run
    cfg = tiny_config()
    stopped = train(cfg, synth_root, tmp_path / "r", stop_after_epoch=1, progress=False, log=lambda s: None)
    assert stopped == {"stopped_after_epoch": 1}
    assert len(pd.read_csv(tmp_path / "r" / "metrics.csv")) == 1
    train(cfg, synth_root, tmp_path / "r", resume=True, progress=False, log=lambda s: None)
    cols = ["epoch", "train_loss", "val_loss", "macro_f1", "accuracy", "mask_f1", "gender_f1", "age_f1", "lr"]
    resumed = pd.read_csv(tmp_path / "r" / "metrics.csv")[cols]
    straight = pd.read_csv(out / "metrics.csv")[cols]
    pd.testing.assert_frame_equal(resumed, straight, check_exact=False, rtol=1e-5)
    # the training margins carry over the interruption: the same means over the same 3 epochs
    margins = pd.read_csv(tmp_path / "r" / "train_margins.csv")
    pd.testing.assert_frame_equal(margins, pd.read_csv(out / "train_margins.csv"), check_exact=False, atol=1e-4)
    assert margins["epochs"].max() == 3 and margins["margin_gender"].dropna().between(-1, 1).all()


@pytest.mark.slow
def test_run_folder_guards(synth_root, trained_run, tmp_path):
    out, _ = trained_run
    with pytest.raises(UserError, match="already holds files"):
        train(tiny_config(), synth_root, out, progress=False)
    with pytest.raises(UserError, match="nothing to resume"):
        train(tiny_config(), synth_root, tmp_path / "new", resume=True, progress=False)
    with pytest.raises(UserError, match=r"model.heads \(multi -> single\)"):
        train(tiny_config("model.heads=single"), synth_root, out, resume=True, progress=False)


def test_masked_loss_ignores_unknown_labels():
    torch.manual_seed(0)
    logits = torch.randn(6, 3, requires_grad=True)
    target = torch.tensor([0, 2, -1, 1, -1, 2])
    loss = losses.masked_cross_entropy(logits, target)
    known = target >= 0
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits[known], target[known]).item())
    loss.backward()
    assert (logits.grad[~known] == 0).all() and (logits.grad[known] != 0).any()
    none = losses.masked_cross_entropy(torch.randn(2, 3), torch.tensor([-1, -1]))
    assert none.item() == 0.0


@pytest.mark.slow
def test_multi_head_trains_on_partial_manifests(synth_root, tmp_path):
    """A mask-only set and a gender/age-only set train one multi-head model together."""
    truth = pd.read_csv(synth_root / "truth" / "train_truth.csv")
    rows = []
    for r in truth.itertuples():
        mask_only = int(r.person[1:7]) % 2 == 0  # odd ids: gender/age set; even ids: mask set
        rows.append({"path": str(synth_root / r.path), "person_id": r.person,
                     "mask": ["wear", "incorrect", "normal"][r.mask] if mask_only else "",
                     "gender": "" if mask_only else ["male", "female"][r.gender],
                     "age": "" if mask_only else r.age})
    manifest = tmp_path / "mixed.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    seen = {}
    real_loss = losses.MultiTaskLoss.__call__

    def spy(self, outputs, targets):
        seen.setdefault("unknown", 0)
        seen["unknown"] += int((targets < 0).sum())
        loss = real_loss(self, outputs, targets)
        assert torch.isfinite(loss)
        return loss

    losses.MultiTaskLoss.__call__ = spy
    try:
        # the manifest lies in tmp_path, the photos in synth_root: outside its folder, so allowed explicitly
        summary = train(tiny_config("train.epochs=2", "train.tensorboard=false", "data.allow_outside=true"), manifest,
                        tmp_path / "r", progress=False, log=lambda s: None)
    finally:
        losses.MultiTaskLoss.__call__ = real_loss
    assert seen["unknown"] > 0
    assert summary["macro_f1"] is None and summary["selected_by"] == "mean_task_f1"
    assert summary["mask_f1"] is not None and summary["gender_f1"] is not None


@pytest.mark.slow
def test_single_head_and_focal_weighted_options(synth_root, tmp_path, monkeypatch):
    """Each option changes what a real training does: the loss it calls, the draws it makes, the heads it saves."""
    calls = []
    real_loss = losses.MultiTaskLoss.__call__

    def loss_spy(self, outputs, targets):
        weights = {k: v.clone() for k, v in self.weights.items()}
        calls.append({"gamma": self.gamma, "heads": set(outputs), "weights": weights})
        return real_loss(self, outputs, targets)

    train_loaders = []
    real_make_loader = loaders.make_loader

    def loader_spy(ds, **kwargs):
        loader = real_make_loader(ds, **kwargs)
        if kwargs["train"]:
            train_loaders.append((loader, ds.targets.numpy()))
        return loader

    monkeypatch.setattr(losses.MultiTaskLoss, "__call__", loss_spy)
    monkeypatch.setattr(loaders, "make_loader", loader_spy)
    cfg = tiny_config("model.heads=single", "train.loss=focal", "train.focal_gamma=1.5", "train.sampler=weighted",
                      "train.class_weights=true", "train.epochs=1", "train.tensorboard=false",
                      "model.freeze_epochs=1", "train.optimizer=sgd")
    summary = train(cfg, synth_root, tmp_path / "r", progress=False, log=lambda s: None)
    assert summary["heads"] == "single" and 0 <= summary["macro_f1"] <= 1
    assert calls and train_loaders
    train_targets = train_loaders[-1][1]
    # focal: every loss the steps computed used the configured gamma (plain cross-entropy has 0)
    assert {c["gamma"] for c in calls} == {1.5}
    # single head: the loss saw one 18-way output, weighted by the inverse frequency of the training classes
    assert all(c["heads"] == {"class"} for c in calls)
    weights = calls[0]["weights"]
    assert set(weights) == {"class"}
    torch.testing.assert_close(weights["class"], losses.balanced_weights(train_targets, "single")["class"])
    assert weights["class"].max() > 1.5 * weights["class"].min()  # uneven: the synthetic classes are not balanced
    # weighted sampler: the epoch's loader draws with the per-photo weights of sample_weights, not a shuffle
    sampler = train_loaders[-1][0].sampler
    assert type(sampler) is torch.utils.data.WeightedRandomSampler
    np.testing.assert_allclose(sampler.weights.numpy(), loaders.sample_weights(train_targets))
    assert sampler.weights.max() > 1.5 * sampler.weights.min()
    # single head in the checkpoint predict and classify load
    state = load_checkpoint(tmp_path / "r" / "best.pt")["model"]
    assert {k.split(".")[1] for k in state if k.startswith("heads.")} == {"class"}
    assert state["heads.class.weight"].shape[0] == labels.NUM_CLASSES and state["heads.class.bias"].shape == (18,)


@pytest.mark.slow
def test_freezing_leaves_backbone_untouched(synth_root, tmp_path):
    cfg = tiny_config("model.freeze_epochs=1", "train.epochs=1", "train.tensorboard=false")
    from maskcls.training.model import build_model
    torch.manual_seed(cfg.train.seed)
    initial = build_model(cfg.model.name, cfg.model.heads, "none", drop_rate=cfg.model.drop_rate).state_dict()
    train(cfg, synth_root, tmp_path / "r", progress=False, log=lambda s: None)
    after = load_checkpoint(tmp_path / "r" / "last.pt")["model"]
    backbone = [k for k in initial if k.startswith("backbone.") and initial[k].dtype.is_floating_point]
    heads = [k for k in initial if k.startswith("heads.")]
    assert all(torch.equal(initial[k], after[k]) for k in backbone)
    assert not all(torch.equal(initial[k], after[k]) for k in heads)


def test_sample_weights_favour_rare_classes():
    targets = np.array([[0, 0, 0]] * 9 + [[0, 0, 2]])
    w = loaders.sample_weights(targets)
    assert w[-1] == pytest.approx(9 * w[0])


def _confident_common_logits(n: int) -> dict[str, torch.Tensor]:
    """Every head confidently answers 0: right (easy) on the common rows, wrong on the rare last row."""
    out = {}
    for t in labels.TASKS:
        logits = torch.zeros(n, t.size)
        logits[:, 0] = 3.0
        out[t.name] = logits
    return out


def test_focal_loss_is_chosen_by_config_and_downweights_easy_rows():
    targets = np.array([[0, 0, 0]] * 9 + [[2, 1, 2]])
    cpu = torch.device("cpu")
    plain = losses.build_loss(tiny_config("train.class_weights=false"), targets, cpu)
    focal = losses.build_loss(tiny_config("train.class_weights=false", "train.loss=focal", "train.focal_gamma=1.5"),
                             targets, cpu)
    assert plain.gamma == 0.0 and focal.gamma == 1.5
    assert losses.build_loss(tiny_config("train.focal_gamma=1.5"), targets, cpu).gamma == 0.0  # gamma alone: still CE
    outputs, t = _confident_common_logits(10), torch.as_tensor(targets)
    assert focal(outputs, t).item() < 0.9 * plain(outputs, t).item()
    # per row: an easy row (p = 0.91 right) loses far more of its loss than a hard one (p = 0.05 right)
    easy = losses.masked_cross_entropy(outputs["mask"][:1], t[:1, 0], gamma=2.0) / \
        losses.masked_cross_entropy(outputs["mask"][:1], t[:1, 0])
    hard = losses.masked_cross_entropy(outputs["mask"][-1:], t[-1:, 0], gamma=2.0) / \
        losses.masked_cross_entropy(outputs["mask"][-1:], t[-1:, 0])
    assert easy.item() < 0.05 and hard.item() > 0.8


def test_class_weights_favour_rare_classes_and_change_the_loss():
    targets = np.array([[0, 0, 0]] * 9 + [[2, 1, 2]])
    cpu, t = torch.device("cpu"), torch.as_tensor(targets)
    assert losses.build_loss(tiny_config("train.class_weights=false", "train.label_smoothing=0"), targets, cpu).weights == {}
    multi = losses.build_loss(tiny_config("train.class_weights=true", "train.label_smoothing=0"), targets, cpu)
    assert set(multi.weights) == {"mask", "gender", "age"}
    for name, rare in (("mask", 2), ("gender", 1), ("age", 2)):
        assert multi.weights[name][rare].item() == pytest.approx(9 * multi.weights[name][0].item())
    outputs = _confident_common_logits(10)
    unweighted = losses.build_loss(tiny_config("train.class_weights=false", "train.label_smoothing=0"), targets, cpu)(outputs, t)
    # the wrong rare row now counts as much as the nine easy ones together
    assert multi(outputs, t).item() > 2 * unweighted.item()
    single = losses.build_loss(tiny_config("model.heads=single", "train.class_weights=true", "train.label_smoothing=0"), targets, cpu)
    w = single.weights["class"]
    rare_class = int(labels.encode(2, 1, 2))
    assert w.shape == (18,) and w[rare_class].item() == pytest.approx(9 * w[0].item())
    logits = torch.zeros(10, 18)
    logits[:, 0] = 3.0
    plain_single = losses.build_loss(tiny_config("model.heads=single", "train.class_weights=false", "train.label_smoothing=0"), targets, cpu)
    assert single({"class": logits}, t).item() > 2 * plain_single({"class": logits}, t).item()


class _Rows(torch.utils.data.Dataset):
    """Yields its own index, so a loader's batches tell which rows were drawn."""

    def __init__(self, targets: np.ndarray) -> None:
        self.targets = torch.as_tensor(targets)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return i, self.targets[i]


@pytest.mark.parametrize("sampler,rare_share", [("weighted", (0.4, 0.6)), ("none", (0.05, 0.05))])
def test_weighted_sampler_draws_the_rare_class_as_often_as_the_common_one(sampler, rare_share):
    ds = _Rows(np.array([[0, 0, 0]] * 95 + [[0, 0, 2]] * 5))  # 5% rare (60+) photos
    cfg = tiny_config(f"train.sampler={sampler}", "train.batch_size=10", "data.workers=0")
    loader = loaders.loader_for(ds, cfg, torch.device("cpu"), train=True, generator=torch.Generator().manual_seed(0))
    drawn = torch.cat([idx for _ in range(20) for idx, _ in loader])
    assert len(drawn) == 20 * len(ds)
    share = (drawn >= 95).double().mean().item()
    assert rare_share[0] - 1e-9 <= share <= rare_share[1] + 1e-9


def test_backbone_learns_slower_than_the_heads():
    from maskcls.training.model import build_model
    cfg = tiny_config("model.backbone_lr_mult=0.1", "train.lr=0.01")
    model = build_model(cfg.model.name, cfg.model.heads, "none")
    groups = optim.param_groups(model, cfg)
    backbone_ids = {id(p) for p in model.backbone.parameters()}
    for g in groups:
        in_backbone = {id(p) in backbone_ids for p in g["params"]}
        assert len(in_backbone) == 1
        assert g["lr"] == pytest.approx(0.001 if in_backbone.pop() else 0.01)
        assert g["weight_decay"] == (0.0 if all(p.ndim <= 1 for p in g["params"]) else cfg.train.weight_decay)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


@pytest.mark.slow
@pytest.mark.parametrize("amp,dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_mixed_precision_paths_run(synth_root, tmp_path, monkeypatch, amp, dtype):
    """The GPU recipe's autocast (and fp16's GradScaler) code, exercised on the CPU."""
    scalers = []

    class RecordingScaler(torch.amp.GradScaler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            scalers.append(self)

    seen = []
    real_loss = losses.MultiTaskLoss.__call__

    def loss_spy(self, outputs, targets):
        seen.append({v.dtype for v in outputs.values()})
        return real_loss(self, outputs, targets)

    monkeypatch.setattr(train_mod.torch.amp, "GradScaler", RecordingScaler)
    monkeypatch.setattr(losses.MultiTaskLoss, "__call__", loss_spy)
    summary = train(tiny_config(f"train.amp={amp}", "train.epochs=1", "train.tensorboard=false"), synth_root,
                    tmp_path / "r", progress=False, log=lambda s: None)
    metrics = pd.read_csv(tmp_path / "r" / "metrics.csv")
    assert np.isfinite(metrics["train_loss"]).all() and 0 <= summary["macro_f1"] <= 1
    # autocast ran the forward pass in the asked dtype (without it the heads give float32)
    assert seen and all(s == {dtype} for s in seen)
    # the loss scaler is on for fp16 only, and last.pt keeps its state for --resume (a disabled one saves {})
    assert [s.is_enabled() for s in scalers] == [amp == "fp16"]
    scaler_state = load_checkpoint(tmp_path / "r" / "last.pt")["scaler"]
    if amp == "fp16":
        assert scaler_state["scale"] > 0 and scaler_state["growth_factor"] == 2.0
    else:
        assert scaler_state == {}


@pytest.mark.slow
def test_progress_in_a_log_file_never_shows_a_stale_count(synth_root, tmp_path, capsys):
    import re

    # capsys's stderr is not a terminal, as when a job writes to a log file
    train(tiny_config("train.epochs=1", "train.tensorboard=false", "train.log_every=1"), synth_root, tmp_path / "r",
          progress=True, log=lambda s: None)
    lines = re.split(r"[\r\n]", capsys.readouterr().err)
    with_loss = [line for line in lines if "loss=" in line]
    assert not [line for line in with_loss if re.search(r"\b0/\d+ ", line)], with_loss


def test_a_batch_that_does_not_fit_in_memory_is_one_line(synth_root, tmp_path):
    """`ulimit -v` with data.size=4096x4096 data.cache=none raised a DefaultCPUAllocator traceback: the
    RAM-cache estimate does not cover the batch itself."""
    import resource
    import subprocess
    import sys

    def limit() -> None:  # 6 GB of address space: torch loads, one 4096x4096 batch does not fit
        resource.setrlimit(resource.RLIMIT_AS, (6 * 10**9, 6 * 10**9))

    sets = [a for kv in ["model.name=test_resnet", "data.size=4096x4096", "data.cache=none", "train.batch_size=8",
                         "train.epochs=1", "data.folds=4", "train.trackers=none", "data.workers=0"]
            for a in ("--set", kv)]
    done = subprocess.run([sys.executable, "-m", "maskcls", "train", str(synth_root), "--out", str(tmp_path / "r"),
                           "--config", "demo", "--quiet", *sets], capture_output=True, text=True, timeout=600,
                          preexec_fn=limit, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert err[-1].startswith("maskcls train: error: out of memory (RAM) training a batch of 8 photos at 4096x4096")
    assert "train.batch_size=4" in err[-1] and "data.size" in err[-1]
    assert not (tmp_path / "r").exists()
