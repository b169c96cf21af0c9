"""One table from several seeds of benchmarks/real_photos.py: per part, field and source, the mean over
the seeds of top-k precision, precision and recall (the audit's and plain cleanlab's on the same
probabilities), with each seed's top-k in brackets, and the blend's paired top-k gain over the networks
alone with a 95% t-interval. Prints markdown (never asserts).

    python benchmarks/real_photos_table.py OUT_SEED0/results.json OUT_SEED1/results.json ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats


def main(paths: list[str]) -> None:
    if not paths:
        sys.exit(__doc__)
    frames = []
    for i, path in enumerate(paths):
        rows = json.loads(Path(path).read_text())["table"]
        frames.append(pd.DataFrame(rows).assign(seed=json.loads(Path(path).read_text())["settings"]["seed"]))
    table = pd.concat(frames)
    n = table["seed"].nunique()
    print(f"{n} seed(s): {sorted(int(s) for s in table['seed'].unique())}\n")
    print("| part | field | source | quality | top-k (per seed) | P | R | cleanlab top-k | cleanlab P | cleanlab R |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (part, field, source), g in table.groupby(["part", "field", "source"], sort=False):
        seeds = " ".join(f"{v:.2f}" for v in g.sort_values("seed")["maskcls topk"])
        cl = [g[c].mean() if c in g else float("nan") for c in ("cleanlab topk", "cleanlab precision", "cleanlab recall")]
        print(f"| {part} | {field} | {source} | {g['quality'].mean():.2f} | {g['maskcls topk'].mean():.2f} ({seeds}) | "
              f"{g['maskcls precision'].mean():.2f} | {g['maskcls recall'].mean():.2f} | "
              + " | ".join("n/a" if np.isnan(v) else f"{v:.2f}" for v in cl) + " |")
    print("\npaired top-k gain over the networks alone (mean [95% t-interval] over the seeds):")
    for (part, field), g in table.groupby(["part", "field"], sort=False):
        base = g[g["source"] == "networks"].set_index("seed")["maskcls topk"]
        for source in [s for s in g["source"].unique() if s != "networks"]:
            d = (g[g["source"] == source].set_index("seed")["maskcls topk"] - base).dropna().to_numpy()
            if len(d) > 1:
                half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
                print(f"- {part} {field} {source}: {d.mean():+.2f} [{d.mean() - half:+.2f}, {d.mean() + half:+.2f}]")
            elif len(d):
                print(f"- {part} {field} {source}: {d.mean():+.2f} (one seed)")


if __name__ == "__main__":
    main(sys.argv[1:])
