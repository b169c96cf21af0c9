"""The review page: one static review.html (opens from disk, no server, nothing external) with small
thumbnails beside it, where a person accepts or rejects each proposed fix and saves the accepted ones
as a corrections CSV (the format ``maskcls.data.corrections.read`` takes).

The issues travel into the page as JSON, each with its corrections-CSV row already made by
``rank.to_corrections``, so the page only filters and quotes rows and cannot drift from the format.
Opened from disk, decisions live in the browser's localStorage under a key derived from this audit's
issues and output folder, so a reload keeps them, two tabs of the same page follow each other and
two audits never share them. Served by
``maskcls review`` (``server.py``), the page sends every decision to the server, which writes it to
AUDIT/decisions.csv at once; the server's state is then the page's. Either way ``u`` undoes the
last decision made, wherever the cursor is, and a card accepted in an earlier review (the issues'
``reviewed`` column) starts out accepted.
"""

from __future__ import annotations

from collections.abc import Iterable

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import pandas as pd

from ..data.images import PhotoError, read_rgb, resize
from ..fileio import atomic_open, write_text
from .decisions import card_id, issue_key
from .rank import CORRECTION_COLUMNS, to_corrections

SOURCES = (("networks trained here", "networks_say"), ("face model", "face_model_says"))
_NEEDED = ["person", "photos", "field", "given", "suggested", "score", "rank", "fix_image", "fix_from", "fix_to"]
JPEG_QUALITY = 82


def write_review(issues: pd.DataFrame, photo_paths: dict[str, list[tuple[str, str]]], out_dir: Path, *,
                 thumb_size: tuple[int, int] = (72, 96), data_id: str = "", layout: Iterable[str] = ()) -> Path:
    """Write ``out_dir/review.html`` and its thumbnails in ``out_dir/thumbs/``; returns the page's path.

    issues : ``rank.find_issues`` output (or its CSV read back), one card per row, best rank first.
    photo_paths : person -> [(photo stem, photo file path), ...]; the person's photos shown on a card.
        A person missing here gets a card without photos; a photo that does not decode gets a
        placeholder naming it.
    thumb_size : (width, height) of the thumbnails in pixels.
    data_id : ``decisions.data_fingerprint`` of the audited data; ``maskcls review`` needs it to tie the
        decisions it writes to that data.
    layout : people in the competition's 7-photo layout (``data.corrections.layout_people``): a card
        that changes one of their photos' mask alone carries a warning.
    Optional columns shown on each card: ``quality`` (the field's), ``proposed`` ("yes" or "no: why"),
    ``networks_say`` and ``face_model_says`` (each source's probability of the suggestion).
    """
    layout = set(layout)
    missing = [c for c in _NEEDED if c not in issues.columns]
    if missing:
        raise ValueError(f"issues is missing column(s) {', '.join(missing)}")
    out_dir = Path(out_dir)
    issues = issues.sort_values("rank", kind="stable").reset_index(drop=True)
    fixes = to_corrections(issues)
    people = list(dict.fromkeys(issues["person"].astype(str)))
    thumbs = _write_thumbs({p: list(photo_paths.get(p, [])) for p in people}, out_dir / "thumbs", thumb_size)

    cards = []
    for rec, fix in zip(issues.to_dict("records"), fixes.to_dict("records")):
        person, photos = str(rec["person"]), _cell(rec["photos"]) or "*"
        marked = None if photos == "*" else set(photos.split("+"))
        cards.append({
            "id": card_id(issue_key(person, rec["field"], photos, _cell(rec["given"]), _cell(rec["suggested"]))),
            "earlier": "accept" if _cell(rec.get("reviewed", "")) == "accepted" else "",
            "rank": int(rec["rank"]), "score": round(float(rec["score"]), 4), "person": person,
            "field": str(rec["field"]), "photos": photos, "given": _cell(rec["given"]),
            "suggested": _cell(rec["suggested"]), "fix": f"{fix['from']} \u2192 {fix['to']}".strip(),
            "note": _cell(rec.get("note", "")),
            # How far to trust it: the field's quality (the audit's gate), whether it was proposed or is
            # listed only and why (rank.proposal_verdicts), and the 7-photo layout warning.
            "quality": None if _cell(rec.get("quality", "")) == "" else round(float(rec["quality"]), 2),
            "proposed": _cell(rec.get("proposed", "")),
            "warning": LAYOUT_CARD_WARNING if _is_layout_fix(rec, layout) else "",
            # What each source says of the suggestion (audit.run: the networks and the face model).
            "sources": [[name, _cell(rec.get(col, ""))] for name, col in SOURCES if _cell(rec.get(col, ""))],
            "thumbs": [[str(stem), thumbs.get((person, str(stem), str(path))), marked is None or str(stem) in marked]
                       for stem, path in photo_paths.get(person, [])],
            "correction": [fix[c] for c in CORRECTION_COLUMNS],
        })
    audit = hashlib.sha256(json.dumps([str(out_dir.resolve()), [c["id"] for c in cards],
                                       [c["correction"] for c in cards]]).encode()).hexdigest()[:16]
    data = {"audit": audit, "data": data_id, "columns": CORRECTION_COLUMNS, "thumb": list(thumb_size), "issues": cards}
    page = out_dir / "review.html"
    write_text(page, _PAGE.replace("__DATA__", _script_json(data)))
    return page


LAYOUT_CARD_WARNING = ("one photo's mask in the 7-photo layout: one photo there cannot be wrong alone (only a swap "
                       "of incorrect_mask and normal keeps the layout); accept only if the photo shows it")


def _is_layout_fix(rec: dict, layout: set[str]) -> bool:
    return rec["field"] == "mask" and _cell(rec.get("fix_to", "")) != "swap" and str(rec["person"]) in layout


def _cell(value) -> str:
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


def _script_json(obj) -> str:
    """JSON safe inside <script type="application/json">: no '<' (so no '</script>' or '<!--'),
    no '>' or '&', and no U+2028/U+2029 (line breaks to older JavaScript parsers)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _write_thumbs(photos: dict[str, list[tuple[str, str]]], folder: Path,
                  size: tuple[int, int]) -> dict[tuple[str, str, str], str | None]:
    """(person, stem, path) -> 'thumbs/NAME.jpg' relative to the page, or None when it does not decode."""
    jobs = [(person, str(stem), str(path)) for person, items in photos.items() for stem, path in items]

    def make(job: tuple[str, str, str]) -> str | None:
        person, stem, path = job
        # Names from a hash: person names may hold any character, and the page must not depend on them.
        name = hashlib.sha1("\0".join(job).encode()).hexdigest()[:20] + ".jpg"
        try:
            small = resize(read_rgb(path), size)
        except PhotoError:
            return None
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            return None
        with atomic_open(folder / name, "wb") as fh:
            fh.write(buf.tobytes())
        return f"thumbs/{name}"

    # Threads: decoding and resizing release the GIL.
    with ThreadPoolExecutor(4) as pool:
        return dict(zip(jobs, pool.map(make, jobs)))


_PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>maskcls label review</title>
<link rel="icon" href="data:,">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #222; }
  header { position: sticky; top: 0; z-index: 1; background: #fff; border-bottom: 1px solid #ccd;
           padding: 8px 16px; display: flex; flex-wrap: wrap; gap: 8px 20px; align-items: center; }
  h1 { font-size: 18px; margin: 0; }
  #counts span { margin-right: 12px; }
  .help { color: #667; margin: 0; }
  kbd { border: 1px solid #aab; border-radius: 3px; padding: 0 4px; background: #f8f8fb; font-size: 12px; }
  main { padding: 12px 16px; display: grid; gap: 10px; max-width: 1000px; }
  .card { background: #fff; border: 1px solid #d5d7de; border-left: 6px solid #bbb; border-radius: 6px;
          padding: 8px 12px; outline: none; content-visibility: auto; contain-intrinsic-size: auto 190px;
          scroll-margin: 110px 0 12px; }  /* keep the focused card clear of the sticky header */
  .card.focused { box-shadow: 0 0 0 3px #2a6ef0; }
  .card.accept { border-left-color: #1f9d4c; background: #f2fbf5; }
  .card.reject { border-left-color: #d33; background: #fdf3f3; }
  .card.skip { border-left-color: #999; border-left-style: dashed; }
  .earlier { color: #1f9d4c; font-size: 12px; }
  .head { display: flex; flex-wrap: wrap; gap: 4px 14px; align-items: baseline; }
  .rank { font-weight: 700; }
  .field { text-transform: uppercase; font-size: 12px; letter-spacing: .05em; color: #445; }
  .person { font-family: ui-monospace, monospace; }
  .state { margin-left: auto; font-weight: 600; }
  .change b { font-size: 15px; }
  .thumbs { display: flex; flex-wrap: wrap; gap: 6px; margin: 6px 0; }
  figure { margin: 0; text-align: center; font-size: 11px; color: #667; padding: 2px; border: 2px solid transparent; border-radius: 4px; }
  figure.hl { border-color: #f0a020; color: #222; font-weight: 600; }
  figure img, figure .missing { display: block; background: #e4e5ea; }
  figure .missing { display: flex; align-items: center; justify-content: center; font-size: 10px; }
  .note { color: #667; font-size: 12px; }
  .sources { font-size: 12px; color: #334; margin: 4px 0; }
  .quality, .verdict { margin-left: 12px; font-size: 12px; }
  .verdict.proposed { color: #175e1f; }
  .verdict.listed { color: #8a5a00; }
  .warning { font-size: 12px; color: #8a1f11; background: #fff1ec; padding: 3px 6px; margin: 4px 0; }
  .source { margin-right: 16px; }
  .actions button { margin-right: 6px; }
  button { font: inherit; padding: 3px 10px; border-radius: 4px; border: 1px solid #99a; background: #fff; cursor: pointer; }
  button.primary { background: #2a6ef0; color: #fff; border-color: #2a6ef0; }
  #status { color: #1f9d4c; }
  #status.error { color: #d33; font-weight: 600; }
</style>
</head>
<body>
<header>
  <h1>Label review</h1>
  <div id="counts" aria-live="polite"></div>
  <button id="save" class="primary" type="button">Save accepted corrections</button>
  <span id="status"></span>
  <p class="help"><kbd>a</kbd> accept &middot; <kbd>r</kbd> reject &middot; <kbd>s</kbd> skip &middot;
    <kbd>u</kbd> undo &middot; <kbd>j</kbd>/<kbd>k</kbd> or <kbd>&darr;</kbd>/<kbd>&uarr;</kbd> move.
    <span id="where">Decisions are kept in this browser.</span></p>
</header>
<main id="cards"></main>
<script type="application/json" id="audit-data">__DATA__</script>
<script>
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("audit-data").textContent);
  var issues = data.issues;
  var storeKey = "maskcls-review:" + data.audit;
  var LABEL = { accept: "accepted", reject: "rejected", skip: "skipped" };
  var byId = {};
  issues.forEach(function (issue, i) { byId[issue.id] = i; });
  // decisions: card id -> accept/reject/skip; history: the undo stack, {id, prev} newest last.
  var saved = load();
  var decisions = saved.decisions;
  var history = saved.history;
  var server = false;      // true once `maskcls review` answered: it holds the decisions, on disk
  var queue = null;        // server requests, sent one after another in the order keys were pressed
  var cards = [];
  var current = -1;

  function load() {
    var s;
    try { s = JSON.parse(window.localStorage.getItem(storeKey) || "{}") || {}; }
    catch (e) { s = {}; }  // storage disabled or unreadable: decisions last for this visit only
    // Pages before the undo stack stored the decisions object alone.
    if (!s.decisions) return { decisions: s, history: [] };
    return { decisions: s.decisions, history: s.history || [] };
  }
  function store() {
    if (server) return;
    try { window.localStorage.setItem(storeKey, JSON.stringify({ decisions: decisions, history: history })); }
    catch (e) { /* as above */ }
  }
  function stateOf(i) { return decisions[issues[i].id] || issues[i].earlier || ""; }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function build(issue, i) {
    var card = el("article", "card");
    card.tabIndex = -1;
    card.dataset.index = String(i);
    var head = el("div", "head");
    head.appendChild(el("span", "rank", "#" + issue.rank));
    head.appendChild(el("span", "field", issue.field));
    head.appendChild(el("span", "person", issue.person));
    head.appendChild(el("span", "score", "score " + issue.score.toFixed(2)));
    if (issue.quality !== null && issue.quality !== undefined)
      head.appendChild(el("span", "quality", issue.field + " read at quality " + issue.quality.toFixed(2)));
    if (issue.proposed) {
      var listed = issue.proposed.indexOf("no") === 0;
      head.appendChild(el("span", listed ? "verdict listed" : "verdict proposed",
                          listed ? "listed only: " + issue.proposed.replace(/^no:\s*/, "") : "proposed"));
    }
    head.appendChild(el("span", "state"));
    card.appendChild(head);
    var change = el("div", "change");
    change.appendChild(document.createTextNode("given "));
    change.appendChild(el("b", "given", issue.given));
    change.appendChild(document.createTextNode(" \u2192 suggested "));
    change.appendChild(el("b", "suggested", issue.suggested));
    change.appendChild(el("span", "photos", "  (photos: " + issue.photos + "; fix " + issue.fix + ")"));
    card.appendChild(change);
    var strip = el("div", "thumbs");
    issue.thumbs.forEach(function (t) {
      var fig = el("figure", t[2] ? "hl" : "");
      if (t[1]) {
        var img = el("img");
        img.loading = "lazy";
        img.decoding = "async";
        img.width = data.thumb[0];
        img.height = data.thumb[1];
        img.alt = t[0];
        img.src = t[1];
        fig.appendChild(img);
      } else {
        var box = el("div", "missing", "no photo");
        box.style.width = data.thumb[0] + "px";
        box.style.height = data.thumb[1] + "px";
        fig.appendChild(box);
      }
      fig.appendChild(el("figcaption", "", t[0]));
      strip.appendChild(fig);
    });
    card.appendChild(strip);
    if (issue.sources && issue.sources.length) {
      var says = el("div", "sources");
      issue.sources.forEach(function (s) {
        says.appendChild(el("span", "source", s[0] + ": " + s[1]));
      });
      card.appendChild(says);
    }
    if (issue.warning) card.appendChild(el("div", "warning", "\u26a0 " + issue.warning));
    if (issue.note) card.appendChild(el("div", "note", issue.note));
    if (issue.earlier) card.appendChild(el("div", "earlier", "accepted in an earlier review"));
    var actions = el("div", "actions");
    [["accept", "Accept (a)"], ["reject", "Reject (r)"], ["skip", "Skip (s)"]].forEach(function (a) {
      var b = el("button", "", a[1]);
      b.type = "button";
      b.dataset.act = a[0];
      actions.appendChild(b);
    });
    card.appendChild(actions);
    return card;
  }

  function paint(i) {
    var state = stateOf(i);
    var card = cards[i];
    card.classList.remove("accept", "reject", "skip");
    if (state) card.classList.add(state);
    card.dataset.state = state || "pending";
    card.querySelector(".state").textContent = state ? LABEL[state] : "pending";
  }

  function counts() {
    var n = { accept: 0, reject: 0, skip: 0 };
    issues.forEach(function (issue, i) { var s = stateOf(i); if (s) n[s] += 1; });
    var box = document.getElementById("counts");
    box.textContent = "";
    [["accepted", n.accept], ["rejected", n.reject], ["pending", issues.length - n.accept - n.reject]]
      .forEach(function (c) {
        var s = el("span", "", c[0] + ": ");
        var v = el("b", "", String(c[1]));
        v.id = "count-" + c[0];
        s.appendChild(v);
        box.appendChild(s);
      });
    if (n.skip) box.appendChild(el("span", "", "(" + n.skip + " skipped)"));
  }

  function focusCard(i) {
    if (!cards.length) return;
    i = Math.max(0, Math.min(cards.length - 1, i));
    if (current >= 0 && cards[current]) cards[current].classList.remove("focused");
    current = i;
    cards[i].classList.add("focused");
    cards[i].focus({ preventScroll: true });
    cards[i].scrollIntoView({ block: "nearest" });
  }

  function repaint() { issues.forEach(function (issue, i) { paint(i); }); counts(); }

  function status(text, error) {
    var s = document.getElementById("status");
    s.textContent = text;
    s.className = error ? "error" : "";
  }

  // One request to `maskcls review`, queued behind the earlier ones; its answer is the whole state.
  function send(path, body, then) {
    queue = (queue || Promise.resolve()).then(function () {
      return fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
        .then(function (r) {
          return r.json().then(function (j) { if (!r.ok) throw new Error(j.error || r.statusText); return j; });
        })
        .then(function (j) { decisions = j.decisions; repaint(); status("saved to decisions.csv"); if (then) then(j); })
        .catch(function (e) { status("NOT SAVED: " + e.message + " (is maskcls review still running?)", true); });
    });
  }

  function decide(i, act) {
    if (i < 0 || i >= issues.length) return;
    var id = issues[i].id;
    if (server) send("api/decide", { id: id, decision: act });
    else {
      history.push({ id: id, prev: decisions[id] || null });
      decisions[id] = act;
      store();
      paint(i);
      counts();
    }
    focusCard(i + 1);
  }

  // Undo the last decision made, wherever the cursor is, and show the card it concerned.
  function undo() {
    if (server) {
      send("api/undo", {}, function (j) { if (j.undone in byId) focusCard(byId[j.undone]); });
      return;
    }
    var last = history.pop();
    if (!last) return;
    if (last.prev) decisions[last.id] = last.prev; else delete decisions[last.id];
    store();
    if (last.id in byId) { paint(byId[last.id]); focusCard(byId[last.id]); }
    counts();
  }

  function csvCell(value) {
    var s = value === null || value === undefined ? "" : String(value);
    return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }

  function save() {
    var rows = [data.columns];
    issues.forEach(function (issue, i) { if (stateOf(i) === "accept") rows.push(issue.correction); });
    var text = rows.map(function (r) { return r.map(csvCell).join(","); }).join("\n") + "\n";
    var url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
    var a = el("a");
    a.href = url;
    a.download = "accepted_corrections.csv";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
    document.getElementById("status").textContent = "saved " + (rows.length - 1) + " correction(s)";
  }

  var main = document.getElementById("cards");
  var frag = document.createDocumentFragment();
  issues.forEach(function (issue, i) { var c = build(issue, i); cards.push(c); frag.appendChild(c); });
  main.appendChild(frag);
  issues.forEach(function (issue, i) { paint(i); });
  counts();
  if (!issues.length) main.appendChild(el("p", "", "No issues found: nothing to review."));

  main.addEventListener("click", function (e) {
    var card = e.target.closest(".card");
    if (!card) return;
    var i = Number(card.dataset.index);
    var act = e.target.closest("button") ? e.target.closest("button").dataset.act : null;
    if (act) { if (server || ready) decide(i, act); } else focusCard(i);
  });
  document.getElementById("save").addEventListener("click", save);
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;  // leave Ctrl+R, Cmd+A and friends to the browser
    if (e.target.closest && e.target.closest("input, textarea, select")) return;
    var moves = { j: 1, ArrowDown: 1, k: -1, ArrowUp: -1 };
    var acts = { a: "accept", r: "reject", s: "skip" };
    if (e.key in moves) focusCard(current < 0 ? 0 : current + moves[e.key]);
    else if (!ready && (e.key in acts || e.key === "u")) { /* still asking the server for the decisions */ }
    else if (e.key === "u") undo();
    else if (e.key in acts) { if (current < 0) focusCard(0); decide(current, acts[e.key]); }
    else return;
    e.preventDefault();
  });
  // Opened from disk in two tabs (or reloaded while the browser still delivers the last writes), the
  // page follows what the other document stored: the browser tells every other page of the origin.
  window.addEventListener("storage", function (e) {
    if (server || e.key !== storeKey) return;
    var s = load();
    decisions = s.decisions;
    history = s.history;
    repaint();
  });
  var ready = false;
  function start(mode) {
    ready = true;
    document.body.dataset.mode = mode;
    repaint();
    // Start at the first card still undecided, so a reload continues where the review stopped.
    var first = issues.findIndex(function (issue, i) { return !stateOf(i); });
    focusCard(first < 0 ? 0 : first);
  }
  // Served by `maskcls review`: the server's decisions (from AUDIT/decisions.csv) are the page's.
  // Opened from disk, or served by anything else, the page keeps its decisions in this browser.
  if (/^https?:$/.test(location.protocol)) {
    fetch("api/state", { cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error(r.statusText); return r.json(); })
      .then(function (j) {
        if (j.audit !== data.audit) throw new Error("another audit");
        server = true;
        decisions = j.decisions;
        document.getElementById("where").textContent =
          "Every decision is written to " + j.folder + "/decisions.csv and accepted_corrections.csv as you make it.";
        start("server");
      })
      .catch(function () { start("local"); });
  } else start("local");
})();
</script>
</body>
</html>
"""
