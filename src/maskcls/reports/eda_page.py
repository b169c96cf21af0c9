"""The EDA report's figures (PNG, matplotlib's object-oriented API) and its HTML page.

The page is static: inline style, no script, nothing fetched from elsewhere; plots and thumbnails are
referenced by paths relative to the page, so the folder can be zipped, moved and opened from disk.
Every text that comes from the data (person names, paths, decoder messages) is escaped.
"""

from __future__ import annotations

from importlib import resources

from html import escape
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .. import labels
from ..figures import save

MAX_DUP_PAIRS_SHOWN = 120  # photo pairs shown with thumbnails (summary.json lists more)
MAX_PEOPLE_PAIRS_SHOWN = 60
MAX_ROWS_SHOWN = 200  # undecodable photos, corrections
MASK_COLOURS = ("tab:blue", "tab:orange", "tab:green")


# --------------------------------------------------------------------------- figures


def _class_figure(class_counts: dict[str, int]) -> Figure:
    names = list(class_counts)
    values = np.array([class_counts[n] for n in names])
    mask = labels.by_field("mask").name
    colours = [MASK_COLOURS[labels.decode_answers(i)[mask]] if n != "unknown" else "silver" for i, n in enumerate(names)]
    fig = Figure(figsize=(8, 0.28 * len(names) + 1.4), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(names))[::-1]
    ax.barh(y, values, color=colours)
    top = max(int(values.max(initial=0)), 1)
    for yi, v in zip(y, values):
        ax.text(v + top * 0.01, yi, str(int(v)) if v else "0 (empty)", va="center", fontsize=7,
                color="black" if v else "crimson")
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlim(0, top * 1.15)
    ax.set_xlabel("photos")
    ax.set_title("photos per class (colour: mask state)")
    ax.grid(axis="x", alpha=0.3)
    return fig


def _age_figure(ages: dict, cutoffs: labels.AgeCutoffs) -> Figure:
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    ax = fig.add_subplot()
    hist = {int(k): v for k, v in ages["histogram"].items()}
    if not hist:
        ax.text(0.5, 0.5, "no ages in the data", transform=ax.transAxes, ha="center", va="center", color="grey")
        ax.set_axis_off()
        return fig
    ax.bar(list(hist), list(hist.values()), width=0.9, color="tab:blue")
    # Every label stays inside the axes: a label is written towards the middle of the age range (a
    # cut-off at the oldest age, 60 in the real data, would otherwise run off the right edge).
    middle = (min(hist) + max(hist)) / 2
    for near in ages["near_cutoffs"]:
        lo, hi = near["ages"]
        ax.axvspan(lo - 0.5, hi + 0.5, color="gold", alpha=0.25, lw=0)
        ax.axvline(near["age"] - 0.5, color="black", lw=1.5)
        right = near["age"] - 0.5 > middle
        text = f"{near['cutoff']} cut-off {near['age']} " if right else f" {near['cutoff']} cut-off {near['age']}"
        ax.text(near["age"] - 0.5, 1.0, text, transform=ax.get_xaxis_transform(), va="top", fontsize=8,
                ha="right" if right else "left")
    move = ages.get("move_old_cutoff")
    if move:
        ax.axvline(move["to"] - 0.5, color="crimson", lw=1, ls="--")
        right = move["to"] - 0.5 > middle
        text = f"old cut-off at {move['to']} " if right else f" old cut-off at {move['to']}"
        ax.text(move["to"] - 0.5, 0.9, text, transform=ax.get_xaxis_transform(),
                va="top", ha="right" if right else "left", fontsize=8, color="crimson")
    first = ages["near_cutoffs"][0]
    ax.set_xlabel(f"age (years); shaded: the {first['age'] - first['ages'][0]} ages on either side of a cut-off")
    ax.set_ylabel("people")
    ax.set_title(f"people per age (groups {', '.join(cutoffs.names())})")
    ax.grid(axis="y", alpha=0.3)
    return fig


def _faces_figure(faces: dict[int, np.ndarray], counts: dict[int, int]) -> Figure:
    names = dict(enumerate(labels.by_field("mask").names())) | {-1: "unknown"}
    keys = [k for k in (0, 1, 2, -1) if k in faces]
    fig = Figure(figsize=(1.9 * max(len(keys), 1) + 0.4, 2.9), layout="constrained")
    if not keys:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no photo decoded", transform=ax.transAxes, ha="center", va="center", color="grey")
        ax.set_axis_off()
        return fig
    axes = np.atleast_1d(fig.subplots(1, len(keys)))
    for ax, k in zip(axes, keys):
        ax.imshow(faces[k])
        ax.set_title(f"{names[k]}\n(n={counts.get(k, 0)})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("mean face per mask state", fontsize=10)
    return fig


def write_plots(folder: Path, summary: dict, faces: dict[int, np.ndarray], face_counts: dict[int, int],
                cutoffs: labels.AgeCutoffs) -> dict[str, str]:
    """Write the PNGs into ``folder``; returns name -> file name (relative to the page).

    faces, face_counts : mask state (-1 unknown) -> mean face and the number of photos averaged."""
    plots = {"classes": "class_counts.png", "ages": "age_histogram.png", "faces": "mean_faces.png"}
    save(_class_figure(summary["class"]), folder / plots["classes"])
    save(_age_figure(summary["ages"], cutoffs), folder / plots["ages"])
    save(_faces_figure(faces, face_counts), folder / plots["faces"])
    return plots


# --------------------------------------------------------------------------- HTML


def _e(value) -> str:
    return escape(str(value), quote=True)


def _table(header: list[str], rows: list[list], *, cls: str = "") -> str:
    """An HTML table; every cell is escaped, numbers are right-aligned."""
    def cell(v, tag):
        num = isinstance(v, (int, float)) and not isinstance(v, bool)
        return f"<{tag}{' class=num' if num else ''}>{_e(v)}</{tag}>"

    head = "".join(cell(h, "th") for h in header)
    body = "".join("<tr>" + "".join(cell(v, "th" if j == 0 else "td") for j, v in enumerate(r)) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else "-"


def _counts_table(title: str, counts: dict[str, int], total: int) -> str:
    return f"<div><h3>{_e(title)}</h3>" + _table([title, "photos", "share"],
                                                    [[k, v, _pct(v, total)] for k, v in counts.items()]) + "</div>"


def _thumb(src: str | None, caption: str, title: str) -> str:
    img = (f'<img src="{_e(src)}" width="48" height="64" alt="{_e(caption)}" loading="lazy">' if src
           else '<span class="missing">no thumbnail</span>')
    return f'<figure title="{_e(title)}">{img}<figcaption>{_e(caption)}</figcaption></figure>'


def _overview(s: dict) -> str:
    total = s["photos"]
    parts = [f"<p><b>{s['people']}</b> people, <b>{total}</b> photos "
             f"({_e(s['layout'])} layout). Age groups {_e(', '.join(s['cutoffs']['age_groups']))}.</p>",
             '<div class="row">',
             *(_counts_table(t.column.replace("_", " "), s[t.column], total) for t in labels.TASKS), "</div>"]
    return _section("overview", "People and photos", "".join(parts))


def _classes(s: dict, plots: dict) -> str:
    imb = s["imbalance"]
    total = s["photos"]
    rows = [[i if name != "unknown" else "", name, n, _pct(n, total)] for i, (name, n) in enumerate(s["class"].items())]
    ratio = (f"Imbalance: largest class {_e(imb['largest']['class'])} ({imb['largest']['photos']}) / smallest non-empty "
             f"{_e(imb['smallest']['class'])} ({imb['smallest']['photos']}) = <b>{imb['ratio']:.1f}x</b>; "
             f"{imb['empty_classes']} empty class(es)." if imb["ratio"] is not None
             else f"No 18-class labels; {imb['empty_classes']} empty class(es).")
    unl = (f" {imb['unlabelled_photos']} photo(s) lack a label and have no class (shown as unknown)."
           if imb["unlabelled_photos"] else "")
    body = (f"<p>{ratio}{_e(unl)}</p><p class=note>{_e(imb['note'])}</p><div class=row>"
            + _table(["#", "class", "photos", "share"], rows)
            + f'<img class=plot src="{_e(plots["classes"])}" alt="photos per class"></div>')
    return _section("classes", "Classes", body)


def _ages(s: dict, plots: dict) -> str:
    a = s["ages"]
    stats = (f"{a['people_with_age']} people with an age ({a['unknown']} unknown)"
             + (f", {a['min']}-{a['max']}, mean {a['mean']}, median {a['median']}" if a["people_with_age"] else ""))
    rows = [[f"{n['cutoff']} ({n['age']})", f"{n['ages'][0]}-{n['ages'][1]}", n["below"], n["at_or_above"], n["people"]]
            for n in a["near_cutoffs"]]
    body = f"<p>{_e(stats)}.</p>" + _table(["cut-off", "ages", "below", "at or above", "people"], rows)
    move = a.get("move_old_cutoff")
    if move:
        before, after = move["old_group_people"]
        body += (f"<p>Moving the old cut-off from {s['cutoffs']['old']} to {move['to']} would move "
                 f"<b>{move['people']}</b> people ({move['photos']} photos) {_e(move['direction'])}; the old group "
                 f"would have {after} people instead of {before}.</p>")
    body += f'<img class=plot src="{_e(plots["ages"])}" alt="age histogram">'
    return _section("ages", "Ages", body)


def _crosstabs(s: dict) -> str:
    parts = ['<div class="row">']
    for mask, table in s["gender_by_age"].items():
        ages = list(next(iter(table.values())))
        rows = [[g, *[row[a] for a in ages], sum(row.values())] for g, row in table.items()]
        parts.append(f"<div><h3>mask: {_e(mask)}</h3>" + _table(["gender \\ age", *ages, "all"], rows) + "</div>")
    parts.append("</div>")
    race = _table(["race", "people"], [[k, v] for k, v in s["race"].items()])
    return _section("crosstabs", "Gender x age per mask state, and race",
                    "<p>Photos per gender and age group, one table per mask state.</p>" + "".join(parts)
                    + "<h3>Race (people)</h3>" + race)


def _images(s: dict) -> str:
    im = s["images"]
    tables = ['<div class="row">']
    for key, title in (("sizes", "size (W x H, decoded)"), ("modes", "mode"), ("channels", "channels"), ("formats", "format")):
        tables.append("<div>" + _table([title, "photos"], [[k, v] for k, v in im[key].items()]) + "</div>")
    tables.append("</div>")
    broken = im["undecodable"]
    if broken:
        rows = [[b["person"], b["image"], b["path"], b["error"]] for b in broken[:MAX_ROWS_SHOWN]]
        more = f"<p>... and {len(broken) - MAX_ROWS_SHOWN} more (summary.json lists all).</p>" if len(broken) > MAX_ROWS_SHOWN else ""
        bad = (f'<h3 class="warn">{len(broken)} photo(s) do not decode</h3>'
               + _table(["person", "photo", "file", "decoder's message"], rows, cls="wide") + more)
    else:
        bad = "<p>Every photo decodes.</p>"
    return _section("images", "Image files", f"<p>{im['decoded']} of {s['photos']} photos decoded.</p>" + "".join(tables) + bad)


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def _duplicates(s: dict, table: pd.DataFrame, pairs: np.ndarray, thumbs: dict[int, str]) -> str:
    d = s["duplicates"]
    rule = (f"Photos of <b>different</b> people whose perceptual hashes ({_e(d['method'])}) differ in at most "
            f"{d['threshold']} bits")
    if not d["pairs_total"]:  # "0 pair(s), 0 with identical pixels, between 0 pair(s) of people" said nothing
        intro = f"<p>No duplicates across people: no two photos of different people within {d['threshold']} bits " \
                f"({_e(d['method'])}). Near-identical photos of one person are normal and not counted.</p>"
    else:
        intro = (f"<p>{rule}: <b>{d['pairs_total']}</b> {_plural(d['pairs_total'], 'pair')}, "
                 f"{d['exact_pairs']} with identical pixels, between {len(d['people_pairs'])} "
                 f"{_plural(len(d['people_pairs']), 'pair')} of people. Often one person filed twice or a labelling "
                 "mistake. Near-identical photos of one person are normal and not listed.</p>")
    if not d["pairs_total"]:
        return _section("duplicates", "Duplicates across people", intro)
    people = _table(["person A", "person B", "photo pairs", "identical", "closest distance"],
                    [[p["people"][0], p["people"][1], p["pairs"], p["exact"], p["closest"]]
                     for p in d["people_pairs"][:MAX_PEOPLE_PAIRS_SHOWN]])
    cards = []
    for (i, j, dist), listed in zip(pairs[:MAX_DUP_PAIRS_SHOWN].tolist(), d["pairs"]):
        a, b = sorted((i, j), key=lambda k: str(table.at[k, "person"]))  # as listed: person A first
        figs = "".join(_thumb(thumbs.get(k), f"{table.at[k, 'person']} / {table.at[k, 'image']}", str(table.at[k, "path"]))
                       for k in (a, b))
        what = "identical pixels" if listed["exact"] else f"distance {dist}"
        cards.append(f'<div class="pair">{figs}<p>{what}</p></div>')
    shown = min(len(pairs), MAX_DUP_PAIRS_SHOWN)
    more = f"<p>Showing the {shown} closest of {d['pairs_total']} pairs; summary.json lists up to {d['pairs_listed']}.</p>"
    return _section("duplicates", "Duplicates across people",
                    intro + people + f'<h3>Closest photo pairs</h3><div class="pairs">{"".join(cards)}</div>' + more)


MAX_IDENTITY_SHOWN = 60  # findings of each kind shown with thumbnails (summary.json lists all)


def identity_rows(checks, table: pd.DataFrame) -> set[int]:
    """The table rows whose thumbnails the identity section shows."""
    if checks is None:
        return set()
    rows: set[int] = set()
    at = {p: i for i, p in enumerate(table["path"])}
    persons = table["person"].astype(str).to_numpy()
    for r in checks.mismatches.head(MAX_IDENTITY_SHOWN).itertuples():
        rows |= {i for i in np.flatnonzero(persons == r.person)[:7]} | {at[r.path]}
    for r in checks.matches.head(MAX_IDENTITY_SHOWN).itertuples():
        for person in (r.person_a, r.person_b):
            rows |= set(np.flatnonzero(persons == person)[:7].tolist())
    return {int(i) for i in rows}


def _identity(checks, table: pd.DataFrame, thumbs: dict[int, str], notes: list[str] = ()) -> str:
    if checks is None and notes:
        return _section("identity", "Identity (face model)", "".join(f"<p>{_e(n)}</p>" for n in notes))
    if checks is None:
        return _section("identity", "Identity (face model)",
                        "<p>No faces cached for this data: run <code>maskcls faces DATA</code> (or "
                        "<code>maskcls eda --faces compute</code>) to check, with the pretrained face model, for "
                        "photos whose face is not their person's and for one person filed under two ids.</p>")
    from ..faces.describe import SAME_PERSON_DISTANCE
    from ..faces.identity import MATCH_DISTANCE

    f = checks.faces
    persons = table["person"].astype(str).to_numpy()

    def strip(person: str, mark: str | None = None) -> str:
        return "".join(_thumb(thumbs.get(int(i)), str(table.at[int(i), "image"]) + (" (this one)" if mark and
                              table.at[int(i), "path"] == mark else ""), str(table.at[int(i), "path"]))
                       for i in np.flatnonzero(persons == person)[:7])

    intro = (f"<p>dlib's face descriptor on the {int(f.found.sum())} of {len(f.table)} photos with a face found"
             + (f" ({f.missing} not in the face cache)" if f.missing else "") + ". "
             f"<b>{len(checks.mismatches)}</b> photo(s) lie farther than {SAME_PERSON_DISTANCE} (dlib's same-person "
             f"threshold) from their person's other faces; <b>{len(checks.matches)}</b> pair(s) of ids have one face "
             f"(median distance below {MATCH_DISTANCE}): one person filed twice, whom the folds keep together "
             "(data.face_groups). Questions to look at, not verdicts: masks hide half the face.</p>")
    cards = [f'<div class="pair"><p><b>{_e(r.person)}</b>: {_e(r.image)} is {r.distance:.2f} from the others</p>'
             f'<div class="thumbs">{strip(r.person, r.path)}</div></div>'
             for r in checks.mismatches.head(MAX_IDENTITY_SHOWN).itertuples()]
    cards += [f'<div class="pair"><p><b>{_e(r.person_a)}</b> and <b>{_e(r.person_b)}</b>: distance {r.distance:.2f}'
              f'</p><div class="thumbs">{strip(r.person_a)}{strip(r.person_b)}</div></div>'
              for r in checks.matches.head(MAX_IDENTITY_SHOWN).itertuples()]
    return _section("identity", "Identity (face model)", intro + f'<div class="pairs">{"".join(cards)}</div>')


def _samples(samples: dict[int, list[int]], table: pd.DataFrame, thumbs: dict[int, str], cutoffs: labels.AgeCutoffs,
             plots: dict) -> str:
    names = labels.class_names(cutoffs)
    rows = []
    for c, idx in samples.items():
        if c < 0 and not idx:
            continue
        name = names[c] if c >= 0 else "unknown (a label missing)"
        figs = "".join(_thumb(thumbs.get(i), str(table.at[i, "image"]), f"{table.at[i, 'person']}: {table.at[i, 'path']}")
                       for i in idx) or '<span class="note">no photos</span>'
        rows.append(f'<div class="sample"><div class="cname">{_e(name)}</div><div class="thumbs">{figs}</div></div>')
    body = ("<p>A few photos per class, from different people where possible.</p>" + "".join(rows)
            + f'<h3>Mean face per mask state</h3><img class=plot src="{_e(plots["faces"])}" alt="mean faces">')
    return _section("samples", "Samples and mean faces", body)


def _corrections(s: dict) -> str:
    c = s["corrections"]
    if c is None:
        return ""
    before, after = c["before"], c["after"]
    rows = []
    for key in (*(t.column for t in labels.TASKS), "class"):
        for name in dict.fromkeys([*before[key], *after[key]]):
            b, a = before[key].get(name, 0), after[key].get(name, 0)
            rows.append([f"{key}: {name}", b, a, f"{a - b:+d}" if a != b else ""])
    changes = c["changes"]
    change_rows = [[ch["person"], ch["image"], ch["field"], ch["old"], ch["new"], ch["note"]] for ch in changes[:MAX_ROWS_SHOWN]]
    body = (f"<p>Corrections <code>{_e(c['spec'])}</code>: {_e(c['summary'])}.</p><div class=row>"
            + _table(["count", "before", "after", "change"], rows)
            + "<div><h3>Changes</h3>"
            + (_table(["person", "photo", "field", "old", "new", "note"], change_rows, cls="wide") if changes else "<p>none</p>")
            + (f"<p>... and {len(changes) - MAX_ROWS_SHOWN} more.</p>" if len(changes) > MAX_ROWS_SHOWN else "")
            + "".join(f'<p class="note">{_e(line)}</p>' for line in c["not_applied"][:20])
            + "</div></div>")
    return _section("corrections", "Label corrections", body)


def _problems(s: dict) -> str:
    probs = s["data_problems"]
    if not probs:
        return ""
    items = "".join(f"<li>{_e(p)}</li>" for p in probs[:MAX_ROWS_SHOWN])
    return _section("problems", "Data warnings", f"<p>{len(probs)} warning(s) from scanning the data "
                    f"(run <code>maskcls validate</code> for details):</p><ul>{items}</ul>")


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{body}</section>'


def render(summary: dict, *, table: pd.DataFrame, pairs: np.ndarray, samples: dict[int, list[int]],
           thumbs: dict[int, str], cutoffs: labels.AgeCutoffs, plots: dict[str, str], checks=None) -> str:
    """The whole page as one string. ``thumbs`` maps table rows to thumbnail paths relative to the page."""
    sections = [_overview(summary), _classes(summary, plots), _ages(summary, plots), _crosstabs(summary),
                _images(summary), _duplicates(summary, table, pairs, thumbs),
                _identity(checks, table, thumbs, summary.get("identity_notes", [])),
                _samples(samples, table, thumbs, cutoffs, plots), _corrections(summary), _problems(summary)]
    links = [("overview", "overview"), ("classes", "classes"), ("ages", "ages"), ("crosstabs", "gender x age"),
             ("images", "image files"), ("duplicates", "duplicates"), ("identity", "identity"), ("samples", "samples")]
    if summary["corrections"] is not None:
        links.append(("corrections", "corrections"))
    if summary["data_problems"]:
        links.append(("problems", "warnings"))
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in links)
    return (_head() + f"<header><h1>Dataset report</h1><p class=src>{_e(summary['data'])}</p><nav>{nav}</nav></header>"
            + "<main>" + "".join(sections) + "</main></body></html>\n")


def _head() -> str:
    """The page's head and styles (resources/pages/eda_head.html), up to the opened <body>."""
    return resources.files("maskcls").joinpath("resources/pages/eda_head.html").read_text(encoding="utf-8")
