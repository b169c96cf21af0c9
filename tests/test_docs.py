"""The documentation: the site builds with --strict, and every command, option and setting it names exists
(nothing describes a removed option)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path


from maskcls.cli import build_parser
from maskcls.config import Config, flat

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]


def _commands() -> dict:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices


# Named on purpose though not settings: an old spelling the config still reads (and says so), and the
# misspelling the reliability table shows the answer to.
NOT_SETTINGS = {"train.tensorboard": "read as train.trackers", "train.epoch": "the typo example"}


def _code(page: Path) -> list[tuple[int, str]]:
    """(line number, code) of a page: the lines of fenced blocks and the inline `code` spans elsewhere."""
    out, fence = [], False
    for n, line in enumerate(page.read_text().splitlines(), start=1):
        if line.lstrip().startswith("```"):
            fence = not fence
            continue
        if fence:
            out.append((n, line))
        else:
            out += [(n, span) for span in re.findall(r"`([^`]+)`", line)]
    return out


def _mentions(pattern: str) -> list[tuple[str, str, str]]:
    """(page:line, the pattern's group 1, the code it was found in), in code only."""
    out = []
    for page in PAGES:
        for n, code in _code(page):
            for match in re.finditer(pattern, code):
                out.append((f"{page.relative_to(ROOT)}:{n}", match.group(1), code))
    return out


def test_the_site_builds_strictly(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    assert mkdocs, "mkdocs is a test dependency (pyproject's test extra)"
    done = subprocess.run([mkdocs, "build", "--strict", "-d", str(tmp_path / "site")], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    # the reference is generated from the docstrings
    assert api.count("doc-object") >= 10 and "returns a DataFrame" in api  # Predictor's docstring


def test_every_command_the_docs_name_exists():
    commands = _commands()
    named = _mentions(r"\bmaskcls ([a-z][a-z-]+)\b")
    unknown = [(where, cmd) for where, cmd, _ in named if cmd not in commands]
    assert named and not unknown, unknown


def test_every_option_a_command_line_in_the_docs_uses_exists():
    """On a line that runs `maskcls CMD ...`, each --flag before a comment belongs to CMD (or is global)."""
    commands = _commands()
    wrong = []
    for where, cmd, line in _mentions(r"\bmaskcls ([a-z][a-z-]+)\b"):
        if cmd not in commands:
            continue
        call = line.split("maskcls " + cmd, 1)[1].split("#")[0].split("|")[0]
        options = set(commands[cmd]._option_string_actions)
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", call):
            if flag not in options:
                wrong.append((where, cmd, flag))
    assert not wrong, wrong


def test_every_setting_the_docs_name_exists():
    keys = set(flat(Config()))
    named = _mentions(r"(?<![\w./-])((?:data|train|model)\.[a-z_]+)\b(?!\.)")
    unknown = sorted({(where, key) for where, key, _ in named if key not in keys and key not in NOT_SETTINGS
                      and key.rsplit(".", 1)[1] not in ("onnx", "pt", "csv", "json", "yaml", "png", "html")})
    assert named and not unknown, unknown


def _flag(line: str, flag: str) -> str | None:
    match = re.search(rf"{flag}[ =](\S+)", line)
    return match.group(1) if match else None


def test_a_final_fit_shown_takes_its_budget_from_a_run_of_the_same_recipe():
    """`--epochs-from CV` is refused when the final fit's corrections, config or settings differ from CV's
    (training/budget.check_same_recipe): a page must not show that line (the README's fix loop once did)."""
    shown = 0
    for page in PAGES:
        blocks = re.findall(r"```[a-z]*\n(.*?)```", page.read_text(), re.S)
        for block in blocks:
            lines = [line.split("#")[0] for line in block.splitlines()]
            for k, line in enumerate(lines):
                source = _flag(line, "--epochs-from")
                if source is None or not line.lstrip().startswith("maskcls train"):
                    continue
                shown += 1
                cv = [earlier for earlier in lines[:k] if _flag(earlier, "--out") == source and "--fold all" in earlier]
                if not cv:
                    continue  # a syntax line (--epochs-from CV_RUN) trains nothing before it
                for flag in ("--corrections", "--config", "--set"):
                    mine = _flag(line, flag)
                    assert mine is None or mine == _flag(cv[-1], flag), (
                        f"{page.name}: `{line.strip()}` sets {flag} {mine} but {source} was trained with "
                        f"{_flag(cv[-1], flag)}: maskcls refuses it")
    assert shown >= 3, "the pages show the final fit"


class _Checked(Exception):
    """Raised once an ablation's checks passed: the docs test trains nothing."""


def _ablate_lines(page: Path) -> list[tuple[str, str]]:
    """(page:line, command) of every `maskcls ablate` a page shows, continuation lines joined, optional
    [--flag X] parts dropped and the page's shell variables ($PLAIN, $OLD, ...) filled in."""
    out, variables = [], {}
    for block in re.findall(r"```[a-z]*\n(.*?)```", page.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            assign = re.fullmatch(r"([A-Z]+)=(\S+)", line)
            if assign:
                variables[assign.group(1)] = re.sub(r"\$([A-Z]+)", lambda m: variables[m.group(1)], assign.group(2))
            elif line.startswith("maskcls ablate"):
                line = re.sub(r"\$([A-Z]+)", lambda m: variables[m.group(1)], re.sub(r"\[[^\]]*\]", "", line))
                out.append((page.name, line))
    return out


def test_every_ablation_the_docs_show_passes_its_checks(synth_root, tmp_path, monkeypatch):
    """recipes.md showed three `ablate` commands that stopped at once (two variants the same settings under
    today's demo.yaml, or variants on other labels without --key). Each command runs here on tiny data up
    to the end of its checks (check_grid), with its own variants, config and settings."""
    import shlex

    from maskcls.cli import main
    from maskcls.experiments import ablate as ab

    real = ab.check_grid

    def check_then_stop(*args, **kwargs):
        real(*args, **kwargs)
        raise _Checked

    monkeypatch.setattr(ab, "check_grid", check_then_stop)
    shown = [cmd for page in PAGES for cmd in _ablate_lines(page)]
    assert len(shown) >= 5, shown
    for n, (page, line) in enumerate(shown):
        argv = shlex.split(line)[1:]
        name, argv[1] = argv[1], str(synth_root)  # DATA, and the paths inside it (its truth/ files)
        argv = [a.replace(f"{name}/", f"{synth_root}/") for a in argv]
        argv[argv.index("--out") + 1] = str(tmp_path / f"abl{n}")
        if "--jobs" in argv:  # one process here; the checks are the same
            at = argv.index("--jobs")
            del argv[at:at + 2]
        try:
            code = main(argv)
        except _Checked:
            continue
        raise AssertionError(f"{page}: `{line}` stopped before training (exit {code})")


def test_the_package_points_into_pages_that_hold_what_it_names():
    """Help texts, config comments and the demo's closing lines named README sections after the README
    became a one-screen start (the sections moved to docs/). Every pointer the package gives now names a
    docs page that exists and, where it quotes a heading, a page that holds it."""
    shown = 0
    for path in (ROOT / "src" / "maskcls").rglob("*"):
        if path.suffix not in (".py", ".yaml", ".html"):
            continue
        text = path.read_text()
        assert "README" not in text, f"{path.relative_to(ROOT)} points into the README; name the docs page"
        for page, heading in re.findall(r"docs/([\w-]+)\.md(?:, ['\"]?([A-Z][^'\")]+))?", text):
            shown += 1
            target = ROOT / "docs" / f"{page}.md"
            assert target.is_file(), f"{path.relative_to(ROOT)} names docs/{page}.md, which does not exist"
            if heading:
                assert heading.strip() in target.read_text(), (
                    f"{path.relative_to(ROOT)} names {heading!r} in docs/{page}.md, which does not hold it")
    assert shown >= 10


def test_no_escaped_brackets_in_code():
    """A backslash inside a code span is printed as it is: `\\[--set k=v\\]` reached the site as typed."""
    found = []
    for page in PAGES:
        prose = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # fenced blocks show backslashes as typed
        found += [(page.name, span) for span in re.findall(r"`([^`]+)`", prose) if "\\[" in span or "\\]" in span]
    assert not found, found
