"""How fast `maskcls faces` computes 384x512 photos (target: at least 10 photos/s on a 2-core machine),
on a fresh cache each time. Prints photos/s and the ratio to the target (never asserts).

    python benchmarks/faces_speed.py [--photos 200] [--workers 2] [--real DEV]

Three sets, all at the competition's 384x512:
  portrait   scikit-image's astronaut (a real face, found by HOG in every copy), shifted and mirrored:
             every photo is detected and described, the common case on real photos
  synthetic  maskcls's demo faces: drawn, so HOG rarely finds them and every photo runs the whole
             cascade, then has no descriptor: the slowest detection path
  real       with --real DEV: the development set's masked faces (build_dev.py), resized to 384x512
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from _cli import positive, run
from maskcls.errors import UserError
from maskcls.cli.common import CommandParser
from maskcls.faces.compute import compute_faces

TARGET = 10.0  # photos/s


def portraits(folder: Path, n: int) -> list[Path]:
    from skimage import data

    base = cv2.resize(data.astronaut()[20:420, 80:380], (384, 512), interpolation=cv2.INTER_AREA)
    out = []
    for i in range(n):
        img = np.roll(base, (i % 20) - 10, axis=1)
        img = np.ascontiguousarray(img[:, ::-1] if i % 2 else img)
        img[:8, :8] = (i % 256, i // 256, 0)  # every photo its own content: the cache would skip a repeat
        path = folder / f"p{i:04d}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR))
        out.append(path)
    return out


def synthetic(folder: Path, n: int) -> list[Path]:
    from maskcls.data.synth import make_dataset

    make_dataset(folder / "demo", people=max(2, n // 7), eval_people=0, noise=0.0, seed=0, size=(384, 512), workers=2)
    return sorted((folder / "demo").rglob("*.jpg"))[:n]


def real(folder: Path, dev: Path, n: int) -> list[Path]:
    import csv

    rows = list(csv.DictReader(open(dev / "facemask" / "manifest.csv")))[:n]
    out = []
    for i, r in enumerate(rows):
        img = cv2.imread(str(dev / "facemask" / r["path"]))
        path = folder / f"r{i:04d}.jpg"
        cv2.imwrite(str(path), cv2.resize(img, (384, 512), interpolation=cv2.INTER_CUBIC))
        out.append(path)
    return out


def main() -> None:
    parser = CommandParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--photos", type=positive, default=200, help="photos per set (default %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default %(default)s)")
    parser.add_argument("--real", default=None, metavar="DEV", help="build_dev.py's folder: add its masked faces")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sets = {"portrait": portraits, "synthetic": synthetic}
        if args.real:
            sets["real"] = lambda f, n: real(f, Path(args.real), n)
        print(f"| set | photos | faces found | photos/s | vs target {TARGET:g}/s |\n|---|---|---|---|---|")
        for name, make in sets.items():
            folder = root / name
            folder.mkdir()
            paths = make(folder, args.photos)
            faces = compute_faces(paths, cache_dir=root / f"cache-{name}", workers=args.workers, progress=False)
            if faces.computed < len(paths):
                raise UserError(f"{name}: only {faces.computed} of {len(paths)} photos are distinct; the rate would "
                                "measure the cache")
            rate = faces.computed / faces.seconds
            print(f"| {name} | {len(paths)} | {int(faces.found.sum())} ({faces.per_detector}) | {rate:.1f} | "
                  f"{rate / TARGET:.2f}x |", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    run(main)
