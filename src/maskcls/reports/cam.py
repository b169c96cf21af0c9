"""Class-activation maps: where in the photo a task head found its answer.

Grad-CAM from the `grad-cam` library (pytorch_grad_cam, jacobgil): well kept, works on any module
that outputs a convolutional feature map (torchvision and timm alike) and costs one forward and one
backward pass per map. Grad-CAM++ and the perturbation methods it also offers (Score-CAM, Ablation-CAM)
cost tens to hundreds of passes per map for little gain on a three-answer head, so plain Grad-CAM it is.

The score explained is the log-probability of one task answer (mask, gender or age), computed from
the 18 class probabilities, so the maps mean the same for a multi-head and a single 18-way head: for a
multi-head model it is that head's log-softmax.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .. import labels
from ..errors import UserError
from ..training.model import FACE_SIZE, MaskNet, class_log_probs

# Column of each (task, answer) in TaskLogProbs' output: mask 0-2, gender 3-4, age 5-7.
TASK_OFFSET = dict(zip((t.name for t in labels.TASKS), np.cumsum([0] + [t.size for t in labels.TASKS[:-1]]).tolist()))


class TaskLogProbs(nn.Module):
    """MaskNet -> (N, 8): log p(answer) of every task, the per-task marginals of the 18 classes."""

    def __init__(self, model: MaskNet) -> None:
        super().__init__()
        self.model = model
        self.faces: torch.Tensor | None = None  # with face features: the descriptors of the batch explained

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The log-probability of one task's class for Grad-CAM to explain."""
        logp = class_log_probs(self.model(images if self.faces is None else {"images": images, "faces": self.faces}))
        cols = [torch.logsumexp(logp[:, np.asarray(t.of_class) == k], dim=1)
                for t in labels.TASKS for k in range(t.size)]
        return torch.stack(cols, dim=1)


def _feature_maps(model: MaskNet, size: tuple[int, int]) -> list[tuple[str, tuple]]:
    """(name, output shape) of the backbone modules that return a convolutional feature map (N, C, h, w)
    with h*w > 1, in the order they finish: a module holding a Conv2d, or one (a norm, an activation)
    right after a Conv2d with its shape. Token models (ViT, Swin) are told apart by their 3-D outputs
    after the last such map: they have none to explain, and an empty list is returned."""
    events: list[tuple[str, tuple, bool]] = []
    with_conv = {name for name, m in model.backbone.named_modules()
                 if any(isinstance(x, nn.Conv2d) for x in m.modules())}

    def hook(module, _inputs, out, name):
        if isinstance(out, torch.Tensor):
            events.append((name, tuple(out.shape), isinstance(module, nn.Conv2d)))

    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: hook(mod, i, o, name))
             for name, m in model.backbone.named_modules() if name]
    try:
        _blank_forward(model, size)
    finally:
        for h in hooks:
            h.remove()
    maps, last_conv = [], None
    for k, (name, shape, is_conv) in enumerate(events):
        if is_conv:
            last_conv = shape
        if len(shape) == 4 and shape[2] * shape[3] > 1 and (name in with_conv or shape == last_conv):
            maps.append((k, name, shape))
    if maps and any(len(shape) == 3 for _, shape, _ in events[maps[-1][0] + 1:]):
        return []  # tokens after the last map: a transformer, whose conv is only its patch embedding
    return [(name, shape) for _, name, shape in maps]


def _blank_forward(model: MaskNet, size: tuple[int, int]) -> None:
    """One blank image through the model in eval mode (for the hooks watching it), mode restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            blank = torch.zeros(1, 3, size[1], size[0])
            model(blank if model.face is None else {"images": blank, "faces": torch.full((1, FACE_SIZE), float("nan"))})
    finally:
        model.train(was_training)


def _output_shape(model: MaskNet, module: nn.Module, size: tuple[int, int]) -> tuple:
    seen: list[tuple] = []
    hook = module.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape))
                                        if isinstance(out, torch.Tensor) else None)
    try:
        _blank_forward(model, size)
    finally:
        hook.remove()
    return seen[-1] if seen else ()


def find_cam_layer(model: MaskNet, size: tuple[int, int], layer: str | None = None) -> str:
    """The module whose feature map Grad-CAM weighs: ``layer`` (a name inside the model or its backbone,
    e.g. ``layer4`` or ``backbone.layer4``), else the last convolutional stage of the backbone (resnet's
    layer4, regnet's final_conv, efficientnet's last block), found by running one blank image through
    the model. Returns the full module name."""
    modules = dict(model.named_modules())
    if layer:
        for name in (layer, f"backbone.{layer}"):
            if name and name in modules:
                shape = _output_shape(model, modules[name], size)
                if len(shape) != 4 or shape[2] * shape[3] < 2:
                    raise UserError(f"--layer {layer}: its output {list(shape)} is not a feature map (N, C, h, w); "
                                    "pick a convolutional layer")
                return name
        near_end = list(dict.fromkeys(n for n, _ in reversed(_feature_maps(model, size))))[:5]
        raise UserError(f"--layer {layer}: the model has no module of that name; its last feature-map modules are "
                        f"{', '.join(near_end) or 'none'}")
    maps = _feature_maps(model, size)
    if not maps:
        names = [n for n, _ in model.backbone.named_modules() if n][-5:]
        raise UserError("cannot find a convolutional feature map in this model (a transformer without one?); give "
                        f"the layer to explain with --layer NAME, e.g. one of its last modules: {', '.join(names)}")
    return f"backbone.{maps[-1][0]}"


def activation_maps(model: MaskNet, images: torch.Tensor, columns: list[np.ndarray], layer: str, *,
                    batch_size: int = 16, faces: torch.Tensor | None = None) -> np.ndarray:
    """Grad-CAM maps: (len(columns), N, H, W) floats in 0..1, one map per photo for each entry of columns.

    images: (N, 3, H, W) uint8 or float 0..255 (what the model's loader gives). columns: arrays of (N,)
    TaskLogProbs column indices (see TASK_OFFSET), e.g. every photo's predicted mask answer. Each map is
    scaled to its own maximum, as Grad-CAM maps are. faces: the photos' descriptors (N, 128) for a model
    with face features: the answers explained are the ones it gives with them.
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    module = dict(model.named_modules())[layer]
    wrapper = TaskLogProbs(model).eval()
    n, _, h, w = images.shape
    out = np.zeros((len(columns), n, h, w), np.float32)
    with torch.enable_grad(), GradCAM(model=wrapper, target_layers=[module]) as cam:
        for start in range(0, n, batch_size):
            batch = images[start:start + batch_size].float()
            wrapper.faces = None if faces is None else faces[start:start + batch_size].to(batch.device)
            for j, col in enumerate(columns):
                targets = [ClassifierOutputTarget(int(c)) for c in col[start:start + batch_size]]
                out[j, start:start + len(batch)] = cam(input_tensor=batch, targets=targets)
    return out


def overlay(image: np.ndarray, heat: np.ndarray, *, weight: float = 0.45) -> np.ndarray:
    """RGB uint8 (H, W, 3) with a 0..1 map drawn over it in the jet colours (red = most weight)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    return show_cam_on_image(image.astype(np.float32) / 255, np.clip(heat, 0, 1), use_rgb=True, image_weight=1 - weight)


def mass_inside(heat: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Share of a map's total weight inside box (x0, y0, x1, y1): how concentrated it is there."""
    x0, y0, x1, y1 = box
    total = float(heat.sum())
    return float(heat[y0:y1, x0:x1].sum()) / total if total > 0 else 0.0
