"""The encoder, its heads, encoder files (torchvision / MONAI compatible) and ImageNet init."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from modan_dicom.errors import ConfigError, SourceError
from modan_dicom.models import (
    IMAGENET_FILE,
    PretrainModel,
    build_encoder,
    build_head,
    build_model,
    imagenet_encoder,
    imagenet_weights_path,
    load_encoder,
    load_encoder_with_metadata,
    monai_resnet18_kwargs,
    save_encoder,
)

SIZE = 32


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _images(n: int = 3, channels: int = 1, size: int = SIZE) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(1))


def _perturb_bn(net: nn.Module) -> None:
    """Give BatchNorm non-trivial running statistics so that eval-mode comparisons test them too."""
    g = torch.Generator().manual_seed(2)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


@pytest.mark.parametrize(
    ("stem", "kernel", "stride", "conv1_side"), [("paper", 3, 1, SIZE), ("torchvision", 7, 2, SIZE // 2)]
)
def test_encoder_stems_and_shapes(stem: str, kernel: int, stride: int, conv1_side: int) -> None:
    net = build_encoder(stem)
    assert isinstance(net, torchvision.models.ResNet)
    assert net.conv1.kernel_size == (kernel, kernel) and net.conv1.stride == (stride, stride)
    assert net.conv1.in_channels == 1 and net.conv1.bias is None
    assert isinstance(net.maxpool, nn.MaxPool2d)  # "keeping the remaining layers unchanged"
    assert isinstance(net.fc, nn.Identity)
    x = _images()
    assert net.conv1(x).shape == (3, 64, conv1_side, conv1_side)
    assert net.maxpool(net.relu(net.bn1(net.conv1(x)))).shape[-1] == conv1_side // 2
    assert net(x).shape == (3, 512)


def test_unknown_stem_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="stem"):
        build_encoder("5x5")


def test_heads() -> None:
    x = _images(2)
    assert build_model("mlp")(x).shape == (2, 128)
    assert build_model("mlp", out_dim=64)(x).shape == (2, 64)
    assert build_model("fc1000", stem="torchvision")(x).shape == (2, 1000)
    assert build_model("linear", n_classes=165)(x).shape == (2, 165)
    assert build_model("mlp", n_classes=165)(x).shape == (2, 165)  # the cross-entropy baseline's classifier
    classifier = build_head("fc1000", n_classes=7)
    assert isinstance(classifier, nn.Linear) and classifier.out_features == 7
    mlp = build_head("mlp")
    assert [type(m) for m in mlp.net] == [nn.Linear, nn.ReLU, nn.Linear]
    assert (mlp.net[0].in_features, mlp.net[0].out_features, mlp.net[2].out_features) == (512, 512, 128)
    model = build_model("mlp")
    assert torch.equal(model.features(x), model.encoder(x))
    with pytest.raises(ConfigError):
        build_head("linear")
    with pytest.raises(ConfigError):
        build_head("attention")
    with pytest.raises(ConfigError):
        build_head("mlp", n_classes=0)


@pytest.mark.parametrize("stem", ["paper", "torchvision"])
def test_save_load_round_trip(tmp_path, stem: str) -> None:
    net = build_encoder(stem)
    _perturb_bn(net)
    net.eval()
    path = save_encoder(PretrainModel(net, build_head("mlp")), tmp_path / "runs" / "encoder.pt",
                        {"method": "mulsupcon", "labels": ["CT", "MR", "US", "knee"], "epochs": 3})
    assert [p.name for p in path.parent.iterdir()] == ["encoder.pt"]  # no temporary left behind
    loaded, meta = load_encoder_with_metadata(path)
    assert meta["method"] == "mulsupcon" and meta["labels"] == ["CT", "MR", "US", "knee"]
    assert (meta["arch"], meta["stem"], meta["in_channels"], meta["feature_dim"]) == ("resnet18", stem, 1, 512)
    loaded.eval()
    x = _images()
    assert torch.equal(loaded(x), net(x))
    assert torch.equal(load_encoder(path).eval()(x), net(x))


def test_saved_names_are_torchvision_names(tmp_path) -> None:
    path = save_encoder(build_encoder("paper"), tmp_path / "e.pt", {})
    state = torch.load(path, weights_only=True)["state_dict"]
    reference = set(torchvision.models.resnet18().state_dict()) - {"fc.weight", "fc.bias"}
    assert set(state) == reference
    assert "layer1.0.conv1.weight" in state and "layer2.0.downsample.0.weight" in state


@pytest.mark.parametrize(("stem", "conv"), [("paper", (3, 1, 1)), ("torchvision", (7, 2, 3))])
def test_loads_into_plain_torchvision_resnet18(tmp_path, stem: str, conv: tuple[int, int, int]) -> None:
    net = build_encoder(stem)
    _perturb_bn(net)
    path = save_encoder(net, tmp_path / "e.pt", {"method": "simclr"})
    state = torch.load(path, weights_only=True)["state_dict"]
    plain = torchvision.models.resnet18()
    plain.conv1 = nn.Conv2d(1, 64, conv[0], conv[1], conv[2], bias=False)
    result = plain.load_state_dict(state, strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"] and result.unexpected_keys == []
    plain.fc = nn.Identity()
    x = _images()
    assert torch.equal(plain.eval()(x), net.eval()(x))


@pytest.mark.parametrize("stem", ["paper", "torchvision"])
def test_loads_into_monai_resnet(tmp_path, stem: str) -> None:
    from monai.networks.nets import ResNet

    net = build_encoder(stem)
    _perturb_bn(net)
    path = save_encoder(net, tmp_path / "e.pt", {})
    state = torch.load(path, weights_only=True)["state_dict"]
    monai_net = ResNet(**monai_resnet18_kwargs(stem))
    monai_net.load_state_dict(state, strict=True)  # same names and shapes
    x = _images()
    torch.testing.assert_close(monai_net.eval()(x), net.eval()(x), rtol=1e-5, atol=1e-6)


def test_load_plain_state_dict_and_wrapped_prefixes(tmp_path) -> None:
    net = build_encoder("torchvision")
    plain = {f"module.{k}": v for k, v in net.state_dict().items()}
    plain["module.fc.weight"] = torch.zeros(1000, 512)
    torch.save(plain, tmp_path / "ddp.pth")
    loaded, meta = load_encoder_with_metadata(tmp_path / "ddp.pth")
    assert meta["stem"] == "torchvision"
    x = _images()
    assert torch.equal(loaded.eval()(x), net.eval()(x))


def test_missing_and_corrupt_files(tmp_path) -> None:
    with pytest.raises(SourceError, match="not found"):
        load_encoder(tmp_path / "absent.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(SourceError, match="cannot read"):
        load_encoder(bad)
    good = save_encoder(build_encoder(), tmp_path / "good.pt", {})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(SourceError):
        load_encoder(truncated)
    torch.save({"weights": [1, 2, 3]}, tmp_path / "other.pt")
    with pytest.raises(SourceError, match="not an encoder"):
        load_encoder(tmp_path / "other.pt")
    state = build_encoder().state_dict()
    del state["layer4.1.bn2.weight"]
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(SourceError, match="layer4.1.bn2.weight"):
        load_encoder(tmp_path / "partial.pt")


def _fake_imagenet_file(folder, legacy: bool = False) -> tuple[object, dict[str, torch.Tensor]]:
    """A real torchvision resnet18 state dict (random weights) saved under torchvision's ImageNet file name.

    legacy: leave out the BatchNorm ``num_batches_tracked`` buffers, as files saved by 2017 PyTorch do.
    """
    reference = torchvision.models.resnet18()
    _perturb_bn(reference)
    state = reference.state_dict()
    if legacy:
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / IMAGENET_FILE
    torch.save(state, path)
    return path, state


@pytest.mark.parametrize("legacy", [False, True])
def test_imagenet_init_sums_rgb(tmp_path, legacy: bool) -> None:
    path, state = _fake_imagenet_file(tmp_path / "weights", legacy)
    net = imagenet_encoder("torchvision", weights_path=path)
    expected = state["conv1.weight"][:, 0] + state["conv1.weight"][:, 1] + state["conv1.weight"][:, 2]
    torch.testing.assert_close(net.conv1.weight[:, 0], expected)
    assert torch.equal(net.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])
    assert torch.equal(net.bn1.running_var, state["bn1.running_var"])
    # a grey image through the 1-channel encoder = the RGB network on that image repeated on 3 channels
    rgb = torchvision.models.resnet18()
    rgb.load_state_dict(state, strict=not legacy)
    rgb.fc = nn.Identity()
    x = _images(2, size=64)
    torch.testing.assert_close(net.eval()(x), rgb.eval()(x.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-5)
    # a folder holding the file works too; in_channels=3 keeps the RGB kernel
    assert torch.equal(imagenet_encoder(weights_path=path.parent, in_channels=3).conv1.weight, state["conv1.weight"])


def test_imagenet_init_paper_stem_takes_the_centre(tmp_path) -> None:
    path, state = _fake_imagenet_file(tmp_path)
    net = imagenet_encoder("paper", weights_path=path)
    assert net.conv1.weight.shape == (64, 1, 3, 3) and net.conv1.stride == (1, 1)
    torch.testing.assert_close(net.conv1.weight[:, 0], state["conv1.weight"].sum(1)[:, 2:5, 2:5])
    assert torch.equal(net.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])


def test_imagenet_init_default_location_is_the_hub_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert imagenet_weights_path() == tmp_path / "hub" / "checkpoints" / IMAGENET_FILE
    with pytest.raises(SourceError) as info:
        imagenet_encoder()
    message = str(info.value)
    assert "\n" not in message and IMAGENET_FILE in message and str(imagenet_weights_path()) in message
    _, state = _fake_imagenet_file(tmp_path / "hub" / "checkpoints")
    torch.testing.assert_close(imagenet_encoder().conv1.weight[:, 0], state["conv1.weight"].sum(1))


def test_imagenet_wrong_file(tmp_path) -> None:
    torch.save(build_encoder().state_dict(), tmp_path / IMAGENET_FILE)
    with pytest.raises(SourceError, match="ImageNet"):
        imagenet_encoder(weights_path=tmp_path)
    with pytest.raises(SourceError, match="not found"):
        imagenet_encoder(weights_path=tmp_path / "nowhere.pth")
