"""Start-up of `maskcls classify` with the ONNX backend against the PyTorch one: the wall time of one
command classifying one photo, start to exit, and the modules each loaded. Prints the medians and their
ratio; never asserts.

    python benchmarks/onnx_startup.py [--repeats 7] [--config demo] [--out DIR]

It trains a one-epoch demo model on 8 synthetic people (the model's quality does not matter here),
exports it, then alternates the two commands --repeats times each (one at a time, so neither slows the
other). The first of each is a warm-up for the file cache and is not counted.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _cli import positive, run

from maskcls.cli.common import CommandParser
from maskcls.config import load_config
from maskcls.data.synth import make_dataset
from maskcls.serve.export import export_run
from maskcls.training.fit import train

PROBE = ("import sys\nfrom maskcls.cli import main\ncode = main(sys.argv[1:])\n"
         "print('LOADED', ','.join(sorted({'torch', 'albumentations', 'onnxruntime'} & set(sys.modules))), file=sys.stderr)\n"
         "sys.exit(code)\n")


def once(args: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, "--quiet", *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"maskcls {' '.join(args)} failed:\n{done.stderr}")
    loaded = next(line for line in done.stderr.splitlines() if line.startswith("LOADED")).split(" ", 1)[1:]
    return seconds, (loaded[0] if loaded else "") or "none"


def main() -> None:
    parser = CommandParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--repeats", type=positive, default=7, help="timed commands per backend (default: %(default)s)")
    parser.add_argument("--config", default="demo", help="the recipe: a built-in name or a YAML file (default: demo)")
    parser.add_argument("--out", default=None, help="keep the data, run and export here (default: a temp folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        data, model = root / "data", root / "run"
        if not (data / "train" / "train.csv").is_file():
            make_dataset(data, people=8, eval_people=2, seed=0, size=(96, 128))
        if not (model / "best.pt").is_file():
            cfg = load_config(args.config, ["train.epochs=1", "train.trackers=none", "data.folds=2"])
            train(cfg, data, model, progress=False, log=lambda s: None)
        onnx = model / "model.onnx"
        if not onnx.is_file():
            export_run(model, onnx)
        photo = str(sorted((data / "eval" / "images").iterdir())[0])
        commands = {"torch": ["classify", str(model), photo],
                    "onnx": ["classify", str(onnx), photo, "--backend", "onnx"]}
        times: dict[str, list[float]] = {k: [] for k in commands}
        loaded: dict[str, str] = {}
        for name, command in commands.items():
            once(command)  # warm-up: the file cache
        for _ in range(args.repeats):
            for name, command in commands.items():
                seconds, loaded[name] = once(command)
                times[name].append(seconds)
    print(f"\n`maskcls classify` of one photo, start to exit, median of {args.repeats} (one command at a time):")
    print(f"{'backend':8} {'median s':>9} {'min s':>7}  heavy modules loaded")
    for name in commands:
        print(f"{name:8} {statistics.median(times[name]):9.2f} {min(times[name]):7.2f}  {loaded[name]}")
    ratio = statistics.median(times["torch"]) / statistics.median(times["onnx"])
    print(f"ONNX starts {ratio:.1f}x faster than PyTorch (median over median)")


if __name__ == "__main__":
    run(main)
