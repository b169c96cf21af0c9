"""Serving backends: the BACKENDS table drives the predictor and the CLI, the module stays light, and the
serving package has no import circle."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from maskcls import labels
from maskcls.cli import main
from maskcls.config import load_config
from maskcls.data.transforms import eval_transform
from maskcls.errors import UserError
from maskcls.serve import backends
from maskcls.serve.predictor import Predictor

SRC = Path(__file__).resolve().parents[1] / "src" / "maskcls"


class FakeMember:
    """Probabilities from the brightness of the left and right halves of each image, so a mirror image
    gets other probabilities; it records what it was given."""

    def __init__(self, source: Path, crop: str = "none") -> None:
        self.config = load_config(None, ["data.size=24x32", f"data.crop={crop}", "train.batch_size=4"])
        self.source, self.data, self.train_photos, self.n_models = source, "", None, 1
        self.seen: list[np.ndarray] = []

    def probs(self, images) -> np.ndarray:
        images = np.asarray(images)
        self.seen.append(images.copy())
        w = images.shape[3]
        left, right = images[..., : w // 2].mean((1, 2, 3)), images[..., w // 2:].mean((1, 2, 3))
        out = np.full((len(images), labels.NUM_CLASSES), 1.0)
        out[:, 0] += left
        out[:, 1] += right
        return (out / out.sum(1, keepdims=True)).astype(np.float32)


@pytest.fixture
def fake(monkeypatch):
    """A backend registered in the table, as a new one would be: a loader, a suffix and a help line."""
    loaded: list[FakeMember] = []

    def load(runs, device):
        paths = [Path(runs)] if isinstance(runs, (str, Path)) else [Path(r) for r in runs]
        loaded.extend(FakeMember(p, crop="center" if "center" in p.name else "none") for p in paths)
        return loaded[-len(paths):]

    monkeypatch.setitem(backends.BACKENDS, "fake", backends.Backend("a test backend", ".fake", False, load))
    return loaded


def _image(seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    img[:, :24] //= 4  # a dark left half: the mirror image is another picture
    return img


def test_a_backend_registered_in_the_table_is_served_by_the_predictor(fake, tmp_path):
    img = _image()
    predictor = Predictor(tmp_path / "m.fake", backend="fake")
    assert [m.source for m in predictor.members] == [tmp_path / "m.fake"] and predictor.device.type == "cpu"
    probs = predictor.predict_proba([img])
    (member,) = fake
    batch = eval_transform((24, 32))(img).transpose(2, 0, 1)[None]
    np.testing.assert_allclose(probs, member.probs(batch), rtol=1e-6)
    # hflip TTA goes through the member too: the mean of the photo's and its mirror image's probabilities
    tta = Predictor(tmp_path / "m.fake", backend="fake", tta="hflip").predict_proba([img])
    want = (member.probs(batch) + member.probs(batch[..., ::-1])) / 2
    np.testing.assert_allclose(tta, want, rtol=1e-6)
    assert not np.allclose(tta, probs)
    # an ensemble of two members of that backend averages them
    both = Predictor([tmp_path / "a.fake", tmp_path / "b.fake"], backend="fake")
    assert both.n_models == 2 and both.predict(np.stack([img, img])).shape[0] == 2


def test_the_other_backends_point_to_the_one_whose_file_it_is(fake, tmp_path):
    (tmp_path / "m.fake").write_text("x")
    with pytest.raises(UserError, match="an exported fake model; run it with --backend fake"):
        Predictor(tmp_path / "m.fake")  # the default backend (torch) loads run folders
    with pytest.raises(UserError, match="backend must be one of torch, onnx, fake, got 'tflite'"):
        Predictor(tmp_path / "m.fake", backend="tflite")


def test_the_cli_takes_its_backend_choices_from_the_table(fake, tmp_path, capsys):
    photo = tmp_path / "p.png"
    import cv2

    cv2.imwrite(str(photo), _image())
    assert main(["classify", str(tmp_path / "m.fake"), str(photo), "--backend", "fake"]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert line["class"] in range(labels.NUM_CLASSES)


def test_the_predictor_preprocesses_with_each_members_own_crop(fake, tmp_path):
    img = _image(1)
    Predictor([tmp_path / "plain.fake", tmp_path / "center.fake"], backend="fake").predict_proba([img])
    plain, center = fake
    assert (plain.config.data.crop, center.config.data.crop) == ("none", "center")
    np.testing.assert_array_equal(plain.seen[0][0], eval_transform((24, 32), "none")(img).transpose(2, 0, 1))
    np.testing.assert_array_equal(center.seen[0][0], eval_transform((24, 32), "center")(img).transpose(2, 0, 1))
    assert not np.array_equal(plain.seen[0], center.seen[0])


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_the_backends_table_imports_no_torch_onnxruntime_or_albumentations():
    out = _run("import sys; from maskcls.serve.backends import BACKENDS, TTA_CHOICES; "
               "print(tuple(BACKENDS), TTA_CHOICES, "
               "sorted({'torch', 'onnxruntime', 'albumentations', 'numpy'} & set(sys.modules)))")
    assert out.strip() == "('torch', 'onnx') ('none', 'hflip') []"


def test_export_does_not_import_the_predictor():
    out = _run("import sys, maskcls.serve.export; print('maskcls.serve.predictor' in sys.modules)")
    assert out.strip() == "False"


def _imports(path: Path) -> set[str]:
    """The maskcls modules a source file imports (at any depth of the file, lazy imports included)."""
    module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    package = package.removesuffix(".__init__")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("maskcls")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.startswith("maskcls"):
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names}
    return found


def test_the_package_has_no_import_circle():
    modules = {".".join(p.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in SRC.rglob("*.py")}
    graph = {m: sorted(i for i in _imports(p) if i in modules and i != m and not modules[i].name == "__init__.py")
             for m, p in modules.items()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in graph[m]:
            if state.get(n) == 1:
                raise AssertionError("import circle: " + " -> ".join(path[path.index(n):] + [m, n]))
            if n not in state:
                visit(n, path + [m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])
    assert "maskcls.serve.backends" in graph["maskcls.serve.predictor"]  # the graph sees relative imports
