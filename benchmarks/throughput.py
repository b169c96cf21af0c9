"""Training throughput: where does the time go? Prints images/s and ratios, never asserts.

  model only      forward + backward + step on a batch already in memory (the ceiling)
  cached loader   the real loop with photos decoded once into RAM (data.cache=true)
  file loader     the real loop decoding JPEGs every step (data.cache=false)

A ratio near 1.0 means the loop is compute-bound; well below 1.0 means the data pipeline starves
the model (raise data.workers or turn on data.cache).

    python benchmarks/throughput.py [--model regnetx_002] [--size 96x128] [--batch 32] [--steps 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from maskcls.config import load_config
from maskcls.data.prepare import prepare
from maskcls.data.synth import make_dataset
from maskcls.training.loaders import loader_for
from maskcls.training.losses import MultiTaskLoss
from maskcls.training.model import build_model
from maskcls.training.optim import build_optimizer


def timed_steps(model, optimizer, loss_fn, batches, steps: int) -> float:
    """Images per second over ``steps`` training steps (after one warm-up step)."""
    model.train()
    it = iter(batches)
    seen, start = 0, None
    for i in range(steps + 1):
        images, targets = next(it)
        loss = loss_fn(model(images), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i == 0:
            start = time.perf_counter()
        else:
            seen += images.shape[0]
    return seen / (time.perf_counter() - start)


def cycle(loader):
    while True:
        yield from loader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="regnetx_002")
    parser.add_argument("--size", default="96x128")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        make_dataset(data, people=40, eval_people=0, noise=0, seed=0, workers=2)  # full-size photos
        base = ["model.weights=none", f"model.name={args.model}", f"data.size={args.size}",
                f"train.batch_size={args.batch}", f"data.workers={args.workers}", "model.freeze_epochs=0"]
        results = {}
        for label, cache in (("cached loader", "true"), ("file loader", "false")):
            cfg = load_config("demo", base + [f"data.cache={cache}"])
            train_ds, _ = prepare(cfg, data, log=lambda s: None).datasets(cfg, 0, progress=False)
            model = build_model(cfg.model.name, cfg.model.heads, "none")
            loss_fn = MultiTaskLoss(cfg.model.heads)
            loader = loader_for(train_ds, cfg, torch.device("cpu"), train=True, generator=torch.Generator().manual_seed(0))
            results[label] = timed_steps(model, build_optimizer(model, cfg), loss_fn, cycle(loader), args.steps)
        images, targets = next(iter(loader))
        model = build_model(cfg.model.name, cfg.model.heads, "none")
        results["model only"] = timed_steps(model, build_optimizer(model, cfg), loss_fn,
                                            cycle([(images, targets)]), args.steps)
    ceiling = results["model only"]
    print(f"{args.model} at {args.size}, batch {args.batch}, {args.workers} workers, {torch.get_num_threads()} threads")
    for label in ("model only", "cached loader", "file loader"):
        print(f"  {label:<14} {results[label]:8.1f} img/s   ratio to model only {results[label] / ceiling:5.2f}")


if __name__ == "__main__":
    main()
