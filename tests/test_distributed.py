"""Several processes (torchrun, gloo on CPU): disjoint training shards, every validation photo once,
one complete run folder written by rank 0."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from maskcls.training.loaders import ShardSampler, eval_rows, make_loader


@pytest.mark.parametrize("weighted", [False, True])
def test_shards_are_disjoint_and_cover_the_epoch(weighted):
    n, world = 23, 3
    weights = torch.rand(n, dtype=torch.double) if weighted else None
    shards = [list(ShardSampler(n, rank=r, world=world, weights=weights, generator=torch.Generator().manual_seed(5)))
              for r in range(world)]
    assert all(len(s) == 8 for s in shards)  # 23 padded to 24, 8 each
    if not weighted:
        flat = [i for s in shards for i in s]
        assert set(flat) == set(range(n)) and len(flat) - len(set(flat)) == 1  # one index repeated as padding
        assert not set(shards[0]) & set(shards[1]) & set(shards[2])
    else:  # the same weighted draw on every rank, split by position
        full = torch.multinomial(weights, n, replacement=True, generator=torch.Generator().manual_seed(5)).tolist()
        full += full[:1]
        assert [full[r::world] for r in range(world)] == shards


def test_evaluation_rows_cover_every_photo_once():
    rows = [eval_rows(10, r, 3) for r in range(3)]
    assert sorted(np.concatenate(rows).tolist()) == list(range(10))


def test_each_rank_loads_its_own_training_photos(synth_root):
    """Two ranks' training loaders, iterated for an epoch, decode disjoint photo files that together are
    the whole training part, each with its own labels."""
    from maskcls.data.prepare import prepare
    from conftest import tiny_config

    cfg = tiny_config("data.folds=3", "data.cache=false")  # photos decoded from their files, not a cache
    train_ds, _ = prepare(cfg, synth_root, log=lambda s: None).datasets(cfg, 0, progress=False)
    assert train_ds.cache is None
    real = train_ds.transform
    decoded: list[str] = []

    def recording(img, seed=None, key=None, preprocessed=False):
        assert img.ndim == 3 and img.shape[2] == 3 and img.std() > 0  # a real decoded photo
        decoded.append(key)
        return real(img, seed=seed, key=key, preprocessed=preprocessed)

    train_ds.transform = recording
    per_rank = []
    for rank in range(2):
        decoded.clear()
        loader = make_loader(train_ds, batch_size=-(-len(train_ds) // 2), workers=0, device=torch.device("cpu"),
                             train=True, generator=torch.Generator().manual_seed(1), rank=rank, world=2)
        batches = list(loader)
        assert sum(len(images) for images, _ in batches) == len(decoded)
        for images, targets in batches:
            assert images.dtype == torch.uint8 and tuple(images.shape[1:]) == (3, 64, 48)
        got = torch.cat([t for _, t in batches])
        expected = train_ds.targets[[train_ds.paths.index(p) for p in decoded]]
        assert torch.equal(got, expected)  # each photo with its own labels
        per_rank.append(set(decoded))
    assert not per_rank[0] & per_rank[1]
    assert per_rank[0] | per_rank[1] == set(train_ds.paths)


@pytest.mark.slow
def test_two_processes_train_one_run(synth_root, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", "-m", "maskcls",
           "--quiet", "train", str(synth_root), "--out", str(run), "--config", "demo", "--corrections", "none",
           "--set", "model.name=test_resnet", "--set", "data.size=48x64", "--set", "train.epochs=1",
           "--set", "data.folds=3", "--set", "train.batch_size=8", "--set", "train.sampler=weighted"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("best epoch") == 1  # only rank 0 talks
    files = {p.name for p in run.iterdir()}
    assert {"config.yaml", "best.pt", "last.pt", "metrics.csv", "summary.json", "val_probs.csv", "curves.png",
            "confusion.png", "val_predictions.csv"} <= files
    summary = json.loads((run / "summary.json").read_text())
    assert summary["processes"] == 2
    probs = pd.read_csv(run / "val_probs.csv")
    assert len(probs) == summary["val_photos"] and probs["path"].is_unique
    # The gathered validation rows are in order: the saved model, run in one process, agrees.
    from maskcls.serve.predictor import Predictor

    again = Predictor(run).predict_proba(probs["path"].tolist())
    assert np.allclose(again, probs[[f"p{c}" for c in range(18)]].to_numpy(), atol=1e-5)
