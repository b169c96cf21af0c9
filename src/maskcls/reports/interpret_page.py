"""The interpretation page's figures (reliability diagrams, per-class F1) and its static HTML.

Like the EDA page: inline style, no script, nothing fetched from elsewhere; images are referenced by
paths relative to the page, so the folder opens from disk and can be zipped and moved. Every text from
the data (paths) is escaped.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .. import labels
from ..figures import save, plot_per_class_f1

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;max-width:1400px;color:#222}
h1{font-size:1.5em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 6px;font-size:13px;vertical-align:top}
th{background:#f4f4f4}.num{text-align:right}.muted{color:#777;font-size:12px}
figure{display:inline-block;margin:2px 4px;text-align:center}figcaption{font-size:11px;color:#555}
img.t{width:96px;height:auto;image-rendering:auto}img.m{width:150px}
"""


def _reliability_figure(calibration: dict) -> Figure:
    fig = Figure(figsize=(4 * max(len(calibration), 1), 4), layout="constrained")
    for k, (task, cal) in enumerate(calibration.items(), start=1):
        ax = fig.add_subplot(1, max(len(calibration), 1), k)
        t = cal["bins"]
        centres = (t["lo"] + t["hi"]) / 2
        ax.bar(centres, t["accuracy"].fillna(0), width=t["hi"] - t["lo"], edgecolor="k", alpha=0.7, label="accuracy")
        ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
        ax.plot(t["confidence"], t["accuracy"], "o", color="crimson", ms=4, label="mean confidence")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top answer's probability)")
        ax.set_ylabel("share correct")
        ax.set_title(f"{task}: ECE {cal['ece']:.3f} ({cal['photos']} photos)")
        ax.legend(fontsize=7, loc="upper left")
    return fig


def write_plots(folder: Path, calibration: dict, f1, support, names: list[str]) -> dict[str, str]:
    """The page's PNGs, written into folder; returns {name: path relative to the page}."""
    plots = {}
    if calibration:
        save(_reliability_figure(calibration), folder / "reliability.png")
        plots["reliability"] = "reliability.png"
    if f1 is not None:
        plot_per_class_f1(f1, support, names, folder / "per_class_f1.png", title="per-class F1 (support beside each bar)")
        plots["per_class_f1"] = "per_class_f1.png"
    return plots


def _img(src: str, caption: str, cls: str = "t") -> str:
    return f'<figure><img class="{cls}" src="{escape(src)}" alt="{escape(caption)}"><figcaption>{escape(caption)}</figcaption></figure>'


def _answer(targets_row: np.ndarray, cutoffs) -> str:
    parts = [labels.task_names(t.name, cutoffs)[v] if v >= 0 else "?" for t, v in zip(labels.TASKS, targets_row)]
    return "/".join(parts)


def _confusion_table(cm: np.ndarray, names: tuple[str, ...]) -> str:
    rows = cm.sum(1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    body = ""
    for i, n in enumerate(names):
        cells = "".join(f'<td class="num" style="background:rgba(30,100,200,{0.7 * share[i, j]:.2f})">{cm[i, j]}</td>'
                        for j in range(len(names)))
        body += f"<tr><th>{escape(n)}</th>{cells}</tr>"
    return f"<table><tr><th>given \\ predicted</th>{head}</tr>{body}</table>"


def _mean_cell(entry: dict | None) -> str:
    if not entry:
        return "<td class='muted'>no photos</td>"
    return "<td>" + _img(entry["path"], f"{entry['photos']} photos", "m") + "</td>"


def _top_losses_section(top_rows, per_task, targets, paths, losses, thumbs, cutoffs) -> list[str]:
    out = ['<section id="top-losses"><h2>Top losses</h2><p class="muted">The photos the model got most wrong '
           "(highest loss on their given labels). Beside each, per task head, the map of the predicted and of "
           "the given answer.</p><table><tr><th>photo</th><th>given / predicted</th>"
           + "".join(f"<th>{t.name}</th>" for t in labels.TASKS) + "</tr>"]
    for i in top_rows:
        th = thumbs[i]
        pred = [int(per_task[t.name][i].argmax()) for t in labels.TASKS]
        cells = []
        for j, t in enumerate(labels.TASKS):
            tn = labels.task_names(t.name, cutoffs)
            g = int(targets[i, j])
            p_pred = per_task[t.name][i, pred[j]]
            figs = _img(th[f"{t.name}_pred"], f"pred {tn[pred[j]]} {p_pred:.2f}")
            if g >= 0:
                figs += _img(th[f"{t.name}_given"], f"given {tn[g]} {per_task[t.name][i, g]:.2f}")
            cells.append(f"<td>{figs}</td>")
        out.append(f"<tr><td>{_img(th['photo'], Path(paths[i]).name)}</td><td>given {escape(_answer(targets[i], cutoffs))}"
                   f"<br>predicted {escape(_answer(np.array(pred), cutoffs))}<br>loss {losses[i]:.2f}"
                   f"<br><span class='muted'>{escape(str(Path(paths[i]).parent.name))}</span></td>{''.join(cells)}</tr>")
    out.append("</table></section>")
    return out


def _confused_section(confused, thumbs, paths, names, examples: int) -> list[str]:
    out = ['<section id="confused"><h2>Most confused classes</h2>']
    if not confused:
        out.append("<p>No photo with all three labels was misclassified.</p>")
    else:
        out.append("<table><tr><th>given</th><th>predicted</th><th>photos</th><th>examples</th></tr>")
        for p in confused:
            figs = "".join(_img(thumbs[i]["photo"], Path(paths[i]).name) for i in p["rows"][:examples])
            out.append(f"<tr><td>{escape(names[p['given']])}</td><td>{escape(names[p['predicted']])}</td>"
                       f"<td class='num'>{p['count']}</td><td>{figs}</td></tr>")
        out.append("</table>")
    out.append("</section>")
    return out


def _calibration_section(plots: dict, calibration: dict, f1, support, names) -> list[str]:
    """The reliability diagrams with each task's ECE, then per-class F1 and support."""
    out = ['<section id="calibration"><h2>Calibration</h2><p class="muted">Is 0.9 really 90%? Bars: share correct '
           "per confidence bin; the dashed line is perfect calibration. ECE: the photo-weighted mean gap.</p>"]
    if "reliability" in plots:
        out.append(f'<img src="{plots["reliability"]}" alt="reliability diagrams" style="max-width:100%">')
        out.append("<table><tr><th>task</th><th>ECE</th><th>photos</th></tr>" + "".join(
            f"<tr><td>{k}</td><td class='num'>{v['ece']:.3f}</td><td class='num'>{v['photos']}</td></tr>"
            for k, v in calibration.items()) + "</table>")
    out.append("</section>")
    out.append('<section id="per-class"><h2>Per-class F1 and support</h2>')
    if f1 is None:
        out.append("<p>No photo has all three labels: per-class F1 needs them.</p>")
    else:
        out.append(f'<img src="{plots["per_class_f1"]}" alt="per-class F1" style="max-width:100%">')
        out.append("<table><tr><th>class</th><th>F1</th><th>support</th></tr>" + "".join(
            f"<tr><td>{escape(n)}</td><td class='num'>{a:.3f}</td><td class='num'>{int(b)}</td></tr>"
            for n, a, b in zip(names, f1, support)) + "</table>")
    out.append("</section>")
    return out


def _maps_sections(confusions: dict, means: dict, cutoffs) -> list[str]:
    """The confusion table of each task, then the mean activation map per task and mask state."""
    out = ['<section id="confusions"><h2>Confusion per task</h2><p class="muted">Rows: given answer; columns: '
           "predicted; shade: share of the row.</p>"]
    for t in labels.TASKS:
        out.append(f"<h3>{t.name}</h3>{_confusion_table(confusions[t.name], labels.task_names(t.name, cutoffs))}")
    out.append("</section>")
    out.append('<section id="mean-maps"><h2>Mean activation map per task and mask state</h2><p class="muted">Each '
               "cell: the mean map of the head's predicted answer over the photos of one mask state, drawn on their "
               "mean photo: does gender come from the hair, the jaw or the mask?</p><table><tr><th>mask state</th>"
               + "".join(f"<th>{t.name} head</th>" for t in labels.TASKS) + "</tr>")
    for s, state in enumerate(labels.task_names("mask")):
        cells = "".join(_mean_cell(means.get((s, t.name))) for t in labels.TASKS)
        out.append(f"<tr><th>{escape(state)}</th>{cells}</tr>")
    out.append("</table></section>")
    return out


def render(summary: dict, *, paths, targets, probs, names, cutoffs, top_rows, losses, confused, thumbs, means,
           plots, calibration, confusions, f1, support, examples: int) -> str:
    """The interpret page's HTML: the summary, top losses with their maps, confusions and calibration."""
    from ..labels import task_probs

    head = [f"<!doctype html><html><head><meta charset='utf-8'><title>maskcls interpret</title><style>{STYLE}</style>"
            "</head><body>", "<h1>What the model learned</h1>",
            f"<p>Run <code>{escape(summary['run'])}</code> ({escape(summary['model'])}, {escape(summary['heads'])} heads, "
            f"{escape(summary['size'])}); {summary['n_photos']} photos: {escape(summary['photos'])}. Activation maps: "
            f"{escape(summary['method'])} at <code>{escape(summary['layer'])}</code>; red marks what raised the answer's "
            "score the most.</p>"]
    sections = (_top_losses_section(top_rows, task_probs(probs), targets, paths, losses, thumbs, cutoffs)
                + _confused_section(confused, thumbs, paths, names, examples)
                + _calibration_section(plots, calibration, f1, support, names)
                + _maps_sections(confusions, means, cutoffs))
    return "\n".join(head + sections) + "</body></html>"
