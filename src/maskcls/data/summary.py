"""Counts of people, photos and labels: the quick look at a dataset."""

from __future__ import annotations

import pandas as pd

from .. import labels


def summarize(table: pd.DataFrame, cutoffs: labels.AgeCutoffs = labels.AgeCutoffs()) -> dict:
    """People, photos, and photo counts per task answer (keyed by the task's column: mask, gender,
    age_group) and per class (unknown labels counted)."""

    def counts(col: str, names) -> dict[str, int]:
        vc = table[col].value_counts(dropna=False)
        out = {name: int(vc.get(i, 0)) for i, name in enumerate(names)}
        unknown = int(table[col].isna().sum())
        if unknown:
            out["unknown"] = unknown
        return out

    return {
        "people": int(table["person"].nunique()),
        "photos": len(table),
        **{t.column: counts(t.column, t.names(cutoffs)) for t in labels.TASKS},
        "class": counts("label", labels.class_names(cutoffs)),
    }


def format_summary(summary: dict) -> str:
    """``summarize``'s dict as the lines `maskcls summary` prints."""
    lines = [f"people: {summary['people']}   photos: {summary['photos']}"]
    for key in (t.column for t in labels.TASKS):
        lines.append(f"{key + ':':<11}" + "   ".join(f"{k} {v}" for k, v in summary[key].items()))
    lines.append("class:")
    total = max(summary["photos"], 1)
    for i, (name, n) in enumerate(summary["class"].items()):
        tag = f"{i:>2}" if name != "unknown" else "  "
        lines.append(f"  {tag} {name:<24} {n:>6}  {100 * n / total:5.1f}%")
    return "\n".join(lines)
