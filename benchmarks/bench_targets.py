"""Issue targets for the data pipeline, printed (never asserted): on a 2-core CPU with resnet18,

  96x128, photos cached:         train_ratio = real training step / model alone >= 0.9
  384x512 JPEGs, cached loader:  >= 5x the reference loader (PIL + torchvision per photo)

    python benchmarks/bench_targets.py [--people 60] [--steps 10]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from maskcls.config import load_config
from maskcls.data.synth import make_dataset
from maskcls.experiments.bench import bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=60)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        make_dataset(data, people=args.people, eval_people=0, noise=0, seed=0, size=(384, 512), workers=2)
        small = bench(load_config("demo", ["model.name=resnet18", "model.weights=none", "data.size=96x128",
                                           "train.batch_size=32", "data.cache=disk", f"data.cache_dir={tmp}/c1"]),
                      data, steps=args.steps, repeats=args.repeats)
        full = bench(load_config("demo", ["model.name=resnet18", "model.weights=none", "data.size=384x512",
                                          "train.batch_size=16", "data.cache=disk", f"data.cache_dir={tmp}/c2"]),
                     data, steps=max(2, args.steps // 3), repeats=args.repeats)
    print(f"resnet18 96x128, cached:  model {small['model_img_s']:.1f} img/s, train {small['train_img_s']:.1f} img/s, "
          f"train_ratio {small['train_ratio']:.2f} (target >= 0.9)")
    print(f"384x512 JPEG loaders:     cached {full['loader_img_s']:.0f} img/s, no cache "
          f"{full['loader_nocache_img_s']:.0f} img/s, reference {full['reference_loader_img_s']:.0f} img/s, "
          f"cached/reference {full['cache_vs_reference']:.1f}x (target >= 5x)")
    print(f"384x512 resnet18:         model {full['model_img_s']:.1f} img/s, train_ratio {full['train_ratio']:.2f}, "
          f"predict_ratio {full['predict_ratio']:.2f}")


if __name__ == "__main__":
    main()
