"""build_model(name, heads, weights): a torchvision or timm backbone with mask/gender/age heads.

The model owns its input normalisation (mean/std buffers), so loaders hand it uint8 images and a
checkpoint carries everything inference needs.

With face features (model.face_features) the model's input is {"images": uint8 (N, 3, H, W), "faces":
float32 (N, 128)}: dlib's descriptor of each photo's face, a NaN row where no face was found. The
descriptor is late-fused: z-scored by the training photos' mean and std (buffers, so checkpoints and
ONNX files carry them), zero where no face was found plus a no-face flag, then concatenated with the
CNN's pooled features before the gender and age heads (and the 18-way head); the mask head reads the
CNN alone. ``model.name=face-descriptor`` has no CNN: all heads read the descriptor.
"""

from __future__ import annotations

import contextlib
import os
import socket
import urllib.parse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import labels
from ..choices import HEADS
from ..config import FACE_MODEL  # model.name of the heads on the face descriptor alone
from ..errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


FACE_SIZE = 128  # faces.describe.DESCRIPTOR_SIZE (not imported: this module must not need dlib)
Inputs = torch.Tensor | dict[str, torch.Tensor]  # images, or {"images", "faces"} for face features


def head_sizes(heads: str) -> dict[str, int]:
    """Each head's outputs for ``heads`` (choices.HEADS): multi (mask, gender, age) or single (the 18 classes);
    the sizes are labels.HEAD_SIZES, the one home of that fact."""
    if heads not in HEADS:
        raise UserError(f"heads must be one of {', '.join(HEADS)}, got {heads!r}")
    return {name: labels.HEAD_SIZES[name] for name in labels.head_names(heads)}


class FaceInput(nn.Module):
    """dlib's descriptor -> the heads' face features (N, 129): each of the 128 numbers z-scored with the
    training photos' mean and std, 0 where no face was found, then a no-face flag (1.0 / 0.0).

    Zero plus a flag rather than a learned "no face" embedding: for a linear head the two are the same
    function (the flag's weights are that embedding's projection), and this one exports to ONNX as two
    plain operations. The descriptor is frozen: dlib computes it outside the graph."""

    width = FACE_SIZE + 1

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(FACE_SIZE))
        self.register_buffer("std", torch.ones(FACE_SIZE))

    def fit(self, descriptors: np.ndarray) -> int:
        """Set the standardization from the training photos' descriptors (NaN rows skipped); returns
        how many faces it was fitted on. With fewer than two faces it stays at (0, 1)."""
        found = descriptors[~np.isnan(descriptors).any(1)]
        if len(found) >= 2:
            self.mean.copy_(torch.as_tensor(found.mean(0), dtype=torch.float32))
            # a floor keeps a dimension that barely varies from turning noise into large inputs
            self.std.copy_(torch.as_tensor(np.maximum(found.std(0), 1e-3), dtype=torch.float32))
        return len(found)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        """(N, 128) descriptors, NaN rows for no face -> (N, 129): z-scored descriptors and a no-face flag."""
        faces = faces.float()
        missing = torch.isnan(faces)
        z = torch.where(missing, torch.zeros_like(faces), (faces - self.mean) / self.std)
        return torch.cat([z, missing.any(1, keepdim=True).float()], 1)


class NoImage(nn.Module):
    """The backbone of model.name=face-descriptor: no CNN, no image features (N, 0)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """No image features: an (N, 0) tensor."""
        return x.new_zeros((x.shape[0], 0))


class MaskNet(nn.Module):
    """Backbone features (+ face features) -> dropout -> one linear head per task (or one 18-way head)."""

    def __init__(self, backbone: nn.Module, num_features: int, heads: str,
                 mean: tuple[float, ...], std: tuple[float, ...], drop_rate: float = 0.0, *,
                 face_features: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.head_layout = heads
        self.dropout = nn.Dropout(drop_rate)
        self.face = FaceInput() if face_features else None
        # Gender and age are what the face model reads well; the mask hides most of the face from it, so
        # the mask head keeps the CNN's view (without a CNN every head reads the face).
        self.face_heads = (set() if self.face is None else set(head_sizes(heads)) if isinstance(backbone, NoImage)
                           else {"gender", "age", "class"})
        face_width = FaceInput.width if self.face is not None else 0
        self.heads = nn.ModuleDict({k: nn.Linear(num_features + (face_width if k in self.face_heads else 0), n)
                                    for k, n in head_sizes(heads).items()})
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255)

    @property
    def uses_faces(self) -> bool:
        """Whether the heads read the face descriptor."""
        return self.face is not None

    @property
    def uses_images(self) -> bool:
        """Whether the model reads pixels (a CNN backbone)."""
        return not isinstance(self.backbone, NoImage)

    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        """inputs: images (N, 3, H, W) uint8 or float in 0..255, or with face features {"images": ...,
        "faces": (N, 128) float, NaN rows for no face}. Returns logits per head."""
        images = inputs["images"] if isinstance(inputs, dict) else inputs
        x = (images.float() - self.mean) / self.std
        feats = self.backbone(x)
        fused = feats
        if self.face is not None:
            if not isinstance(inputs, dict) or "faces" not in inputs:
                raise ValueError("this model reads face descriptors: give {'images': ..., 'faces': ...}")
            fused = self.dropout(torch.cat([feats, self.face(inputs["faces"])], 1))
        feats = self.dropout(feats)
        return {k: head(fused if k in self.face_heads else feats) for k, head in self.heads.items()}

    def backbone_parameters(self) -> list[nn.Parameter]:
        """The backbone's parameters (their own learning rate and freezing)."""
        return list(self.backbone.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        """The heads' parameters."""
        return list(self.heads.parameters())


def class_log_probs(outputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """(N, 18) log-probabilities of the 18 classes from either head layout.

    Multi-head: log p(class) = log p(mask) + log p(gender) + log p(age), the heads being trained
    as independent answers.
    """
    if "class" in outputs:
        return F.log_softmax(outputs["class"].float(), dim=1)
    return sum(F.log_softmax(outputs[t.name].float(), dim=1)[:, torch.as_tensor(t.of_class, device=outputs[t.name].device)]
               for t in labels.TASKS)


def _strip_classifier(model: nn.Module) -> int:
    """Replace the last Linear layer (the ImageNet classifier) with Identity; return its in_features.

    Works across torchvision families: resnet .fc, efficientnet/mobilenet/convnext .classifier[-1],
    vit .heads.head, regnet .fc, densenet .classifier.
    """
    last_name, last = None, None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last_name, last = name, module
    if last is None:
        raise UserError("this torchvision model has no linear classifier to replace")
    parent = model
    *path, leaf = last_name.split(".")
    for part in path:
        parent = getattr(parent, part)
    setattr(parent, leaf, nn.Identity())
    return last.in_features


@contextlib.contextmanager
def _hf_offline():
    """Hugging Face Hub offline mode for one call: huggingface_hub reads HF_HUB_OFFLINE once, at import,
    into constants.HF_HUB_OFFLINE, which its requests consult; setting the variable later does nothing."""
    from huggingface_hub import constants

    old = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old


def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """Whether a download host answers at all: offline, fail at once instead of retrying for a minute."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _torchvision_backbone(name: str, pretrained: bool) -> tuple[nn.Module, int, tuple, tuple]:
    import torchvision

    weights = "DEFAULT" if pretrained else None
    if pretrained:
        url = torchvision.models.get_model_weights(name).DEFAULT.url
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urllib.parse.urlparse(url).path).name
        if not cached.is_file() and not reachable(urllib.parse.urlparse(url).hostname or ""):
            raise UserError(f"ImageNet weights for torchvision {name} are not in the cache and "
                            f"{urllib.parse.urlparse(url).hostname} cannot be reached (offline?). Download {url} "
                            f"to {cached} on a machine with internet, pass model.weights=PATH to a local file, "
                            "or use model.weights=none")
    try:
        model = torchvision.models.get_model(name, weights=weights)
    except (OSError, RuntimeError, ValueError) as exc:  # no download possible, or a broken cache
        raise UserError(f"could not load ImageNet weights for torchvision {name}: {exc}. Put them in the torch hub "
                        "cache, pass model.weights=PATH to a local file, or model.weights=none") from None
    return model, _strip_classifier(model), IMAGENET_MEAN, IMAGENET_STD


def _timm_backbone(name: str, pretrained: bool) -> tuple[nn.Module, int, tuple, tuple]:
    import timm

    offline = pretrained and not os.environ.get("HF_HUB_OFFLINE") and not reachable("huggingface.co")
    try:
        if offline:  # use the Hugging Face cache only: a cached model loads, a missing one fails at once
            with _hf_offline():
                model = timm.create_model(name, pretrained=True, num_classes=0)
        else:
            model = timm.create_model(name, pretrained=pretrained, num_classes=0)
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise UserError(f"unknown model {name!r}: not a torchvision or timm model name") from None
        raise UserError(f"could not create timm model {name}: {exc}") from None
    except (OSError, ValueError) as exc:
        why = "huggingface.co cannot be reached (offline?) and they are not in the Hugging Face cache" if offline \
            else str(exc).splitlines()[0]
        raise UserError(f"could not load pretrained weights for timm {name}: {why}. Fetch them on a machine with "
                        "internet into the Hugging Face cache, pass model.weights=PATH to a local file, or use "
                        "model.weights=none") from None
    cfg = model.pretrained_cfg or {}
    # With num_classes=0 the pooled output can be wider than num_features (e.g. MobileNetV3's conv head).
    width = getattr(model, "head_hidden_size", None) or model.num_features
    return (model, width, tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD)))


def read_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors, a plain .pth state dict, or a checkpoint holding one under model/state_dict."""
    from ..fileio import require_file

    path = require_file(path, "weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types; all mean "not a weights file"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "weights only" in str(exc).lower():
            first = "it holds Python objects other than tensors, and maskcls never runs code from a file"
        raise UserError(f"weights file {path} could not be read: {first}") from None
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"weights file {path} does not hold a state dict of tensors")
    return state


def load_backbone_weights(backbone: nn.Module, path: str | Path) -> dict[str, int]:
    """Load matching tensors from a local file into ``backbone``; returns counts of loaded/skipped keys."""
    state = read_weights_file(path)
    cleaned = {}
    for key, value in state.items():
        for prefix in ("module.", "backbone."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        cleaned[key] = value
    own = backbone.state_dict()
    matched = {k: v for k, v in cleaned.items() if k in own}
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in matched.items() if v.shape != own[k].shape]
    if wrong:
        raise UserError(f"weights file {path} does not fit this model: {'; '.join(wrong[:3])}")
    if not matched:
        raise UserError(f"weights file {path} shares no parameter names with this model; is it for another architecture?")
    backbone.load_state_dict(matched, strict=False)
    return {"loaded": len(matched), "missing": len(own) - len(matched), "ignored": len(cleaned) - len(matched)}


def build_model(name: str = "resnet50", heads: str = "multi", weights: str = "imagenet", *,
                drop_rate: float = 0.0, mean: tuple[float, ...] | None = None,
                std: tuple[float, ...] | None = None, face_features: bool = False) -> MaskNet:
    """Create ``name`` (torchvision first, then timm; prefix ``timm:`` to force timm) with ``heads``.

    weights: ``imagenet`` (the library's pretrained weights, from its download cache), ``none``, or a
    path to a local .pth/.safetensors file (a backbone state dict or a maskcls checkpoint).
    mean/std default to the backbone's pretrained data config. face_features: the heads also read the
    face descriptor (module docstring); ``name="face-descriptor"`` has no CNN and implies them.
    """
    import torchvision

    head_sizes(heads)  # validate before building anything
    if name == FACE_MODEL:
        if weights not in ("imagenet", "none"):
            raise UserError(f"model.name={FACE_MODEL} has no CNN to load {weights} into; use model.weights=none")
        return MaskNet(NoImage(), 0, heads, tuple(mean or IMAGENET_MEAN), tuple(std or IMAGENET_STD), drop_rate,
                       face_features=True)
    pretrained = weights == "imagenet"
    if name.startswith("timm:"):
        backbone, nf, m, s = _timm_backbone(name[5:], pretrained)
    elif name in torchvision.models.list_models():
        backbone, nf, m, s = _torchvision_backbone(name, pretrained)
    else:
        backbone, nf, m, s = _timm_backbone(name, pretrained)
    if weights not in ("imagenet", "none"):
        load_backbone_weights(backbone, weights)
    return MaskNet(backbone, nf, heads, tuple(mean or m), tuple(std or s), drop_rate, face_features=face_features)


def model_for(cfg, weights: str | None = None) -> MaskNet:
    """build_model with a config's model settings and normalisation (weights: cfg.model.weights unless given)."""
    return build_model(cfg.model.name, cfg.model.heads, cfg.model.weights if weights is None else weights,
                       drop_rate=cfg.model.drop_rate, mean=cfg.data.mean, std=cfg.data.std,
                       face_features=cfg.model.face_features)


def mirrored(inputs: Inputs) -> Inputs:
    """The batch's photos mirrored left to right (hflip TTA); a face's descriptor stays as it is: the face
    model aligns the face on its landmarks, so a mirror image describes the same person."""
    if isinstance(inputs, dict):
        return {**inputs, "images": inputs["images"].flip(3)}
    return inputs.flip(3)


def batch_size_of(inputs: Inputs) -> int:
    """The number of photos in ``inputs`` (a tensor, or the face-features dict)."""
    return (inputs["images"] if isinstance(inputs, dict) else inputs).shape[0]
