"""`maskcls demo`: the main job end to end on built-in synthetic data, sized for a CPU."""

from __future__ import annotations

from pathlib import Path

from .summary import format_summary, summarize
from .synth import make_dataset
from .validate import validate
from .data import load_table
from .errors import UserError


def run_demo(out: str | Path = "demo-output", *, people: int = 160, eval_people: int = 20, seed: int = 0) -> dict:
    """Generate demo data under OUT/data (once), validate it and summarise it."""
    out = Path(out)
    data_dir = out / "data"
    if not data_dir.exists():
        print(f"[1/2] writing demo data to {data_dir}")
        make_dataset(data_dir, people=people, eval_people=eval_people, noise=0.02, seed=seed, size=(96, 128))
    else:
        print(f"[1/2] reusing demo data in {data_dir}")
    print("[2/2] validating")
    result = validate(data_dir)
    if result.problems:
        raise UserError(f"{data_dir}: the demo data has {len(result.problems)} problem(s); delete the folder and rerun")
    table, _ = load_table(data_dir)
    print(format_summary(summarize(table)))
    return {"data": str(data_dir)}
