import pytest
import torch
from safetensors.torch import save_file

from maskcls.errors import UserError
from maskcls.training.model import build_model, class_log_probs


def test_local_weights_file_loads_through_build_model(tmp_path):
    torch.manual_seed(1)
    source = build_model("resnet18", "multi", "none")
    # As a user would have it: a plain torchvision state dict, ImageNet classifier included.
    import torchvision
    tv = torchvision.models.resnet18()
    tv.load_state_dict({**{k: v for k, v in source.backbone.state_dict().items()},
                        "fc.weight": tv.fc.weight, "fc.bias": tv.fc.bias})
    torch.save(tv.state_dict(), tmp_path / "r18.pth")
    loaded = build_model("resnet18", "single", str(tmp_path / "r18.pth"))
    for k, v in source.backbone.state_dict().items():
        assert torch.equal(loaded.backbone.state_dict()[k], v)
    save_file(source.backbone.state_dict(), str(tmp_path / "r18.safetensors"))
    again = build_model("resnet18", "multi", str(tmp_path / "r18.safetensors"))
    assert torch.equal(again.backbone.conv1.weight, source.backbone.conv1.weight)


def test_foreign_or_missing_weights_are_user_errors(tmp_path):
    torch.save(build_model("test_resnet", "multi", "none").backbone.state_dict(), tmp_path / "tiny.pth")
    with pytest.raises(UserError, match="does not fit this model|shares no parameter names"):
        build_model("resnet18", "multi", str(tmp_path / "tiny.pth"))
    with pytest.raises(UserError, match="not found"):
        build_model("resnet18", "multi", str(tmp_path / "nope.pth"))
    with pytest.raises(UserError, match="unknown model"):
        build_model("resnet_does_not_exist", "multi", "none")


@pytest.mark.parametrize("name", ["resnet18", "test_resnet", "timm:test_efficientnet", "mobilenet_v3_small"])
def test_heads_and_class_probabilities(name):
    model = build_model(name, "multi", "none").eval()
    out = model(torch.randint(0, 255, (2, 3, 64, 48), dtype=torch.uint8))
    assert {k: v.shape[1] for k, v in out.items()} == {"mask": 3, "gender": 2, "age": 3}
    probs = class_log_probs(out).exp()
    assert probs.shape == (2, 18) and torch.allclose(probs.sum(1), torch.ones(2), atol=1e-5)
    single = build_model(name, "single", "none").eval()
    assert single(torch.zeros(1, 3, 64, 48))["class"].shape == (1, 18)


def test_imagenet_weights_come_from_the_download_cache(tmp_path, monkeypatch):
    """weights=imagenet goes through torchvision's own loader, which reads the torch hub cache first.
    A file placed there under the official name stands in for the real download (none possible here)."""
    import torchvision
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(3)
    reference = torchvision.models.resnet18()
    url = torchvision.models.get_model_weights("resnet18").DEFAULT.url
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference.state_dict(), cache / url.rsplit("/", 1)[1])
    model = build_model("resnet18", "multi", "imagenet")
    assert torch.equal(model.backbone.conv1.weight, reference.conv1.weight)
    assert torch.equal(model.backbone.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)
    assert torch.allclose(model.mean.flatten() / 255, torch.tensor([0.485, 0.456, 0.406]))


def test_two_pretrained_timm_models_in_one_process_offline(tmp_path, monkeypatch):
    """Offline, a timm model with pretrained weights reads them from the Hugging Face cache; building a
    second one in the same process (fold 1 of --fold all, ablate, audit) must work as the first did."""
    import huggingface_hub
    import timm
    from safetensors.torch import save_file

    import maskcls.training.model as model_mod

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(model_mod, "reachable", lambda *a, **k: False)  # no network: the offline path
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    torch.manual_seed(5)
    reference = timm.create_model("test_resnet", pretrained=False)
    # The local weights file, laid out as the Hugging Face cache holds a download of timm/test_resnet.r160_in1k.
    repo = tmp_path / "models--timm--test_resnet.r160_in1k"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    save_file(reference.state_dict(), str(repo / "snapshots" / commit / "model.safetensors"))
    offline_before = huggingface_hub.constants.HF_HUB_OFFLINE
    first = build_model("timm:test_resnet", "multi", "imagenet")
    second = build_model("timm:test_resnet", "multi", "imagenet")
    expected = {k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    for model in (first, second):
        got = model.backbone.state_dict()
        assert got.keys() == expected.keys() and all(torch.equal(got[k], v) for k, v in expected.items())
    assert huggingface_hub.constants.HF_HUB_OFFLINE == offline_before  # offline mode only for the call
