"""torchvision ResNets as re-ID backbones: last-stride option and offline-safe weights loading.

:func:`build_backbone` returns a :class:`ResNetBackbone` whose ``forward`` gives the
layer-4 feature map ``(N, C, H/16, W/16)`` with ``last_stride=1`` (``H/32`` with 2) and whose
``out_channels`` is ``C`` (2048 for ResNet-50, 512 for ResNet-18/10).

ImageNet weights come through torchvision's weights API (``ResNet50_Weights.IMAGENET1K_V1``
...).  They are looked up in the torch hub cache first
(``torch.hub.get_dir()/checkpoints/<file>``, i.e. ``$TORCH_HOME/hub/checkpoints``); a
download is tried only when the download host answers a short connection probe, so an
offline machine fails at once with a message naming the file and the folder to put it in
(never a hanging download).  ``weights="path/to/file.pth"`` (or ``.safetensors``) loads an
explicit file instead; ``pretrained=False`` starts from scratch.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import resnet as tv_resnet

# name -> (torchvision constructor, weights enum member name or None)
_ARCHS: dict[str, tuple[Callable[[], tv_resnet.ResNet], str | None]] = {
    "resnet50": (lambda: tv_resnet.resnet50(weights=None), "ResNet50_Weights.IMAGENET1K_V1"),
    "resnet34": (lambda: tv_resnet.resnet34(weights=None), "ResNet34_Weights.IMAGENET1K_V1"),
    "resnet18": (lambda: tv_resnet.resnet18(weights=None), "ResNet18_Weights.IMAGENET1K_V1"),
    # A tiny ResNet (one BasicBlock per stage) for CPU smoke runs: no ImageNet weights.
    "resnet10": (lambda: tv_resnet.ResNet(tv_resnet.BasicBlock, [1, 1, 1, 1]), None),
    # The same at a quarter of the width (16-32-64-128 channels, ~1/14 of resnet10's FLOPs):
    # the CPU smoke profile's backbone.  No ImageNet weights.
    "resnet10s": (lambda: narrow_resnet((16, 32, 64, 128), (1, 1, 1, 1)), None),
    # Half of resnet10's width (32-64-128-256): a candidate for the book profile's backbone.
    "resnet10m": (lambda: narrow_resnet((32, 64, 128, 256), (1, 1, 1, 1)), None),
}


def narrow_resnet(widths: tuple[int, ...] = (16, 32, 64, 128), layers: tuple[int, ...] = (1, 1, 1, 1)) -> tv_resnet.ResNet:
    """A torchvision ``ResNet`` of ``BasicBlock``s with custom stage widths.

    torchvision's constructor fixes the widths at 64-128-256-512; this builds the standard
    ResNet and replaces its stem and stages with narrower ones made of torchvision's own
    ``BasicBlock``, so :class:`ResNetBackbone` (and torchvision-layout state dicts of the
    same widths) work unchanged.
    """
    if len(widths) != 4 or len(layers) != 4 or min(widths) < 1 or min(layers) < 1:
        raise ValueError(f"narrow_resnet needs 4 positive widths and 4 positive block counts, got {widths}, {layers}")
    net = tv_resnet.ResNet(tv_resnet.BasicBlock, list(layers))
    net.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(widths[0])
    net.inplanes = widths[0]
    for i, (w, n) in enumerate(zip(widths, layers)):
        setattr(net, f"layer{i + 1}", net._make_layer(tv_resnet.BasicBlock, w, n, stride=1 if i == 0 else 2))
    net.fc = nn.Linear(widths[-1], 1000)
    for m in net.modules():  # torchvision's initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    return net

BACKBONES = tuple(_ARCHS)
PROBE_TIMEOUT_S = 3.0


class WeightsUnavailableError(RuntimeError):
    """ImageNet weights are neither cached nor downloadable."""


def _weights_enum(name: str):
    spec = _ARCHS[name][1]
    if spec is None:
        return None
    enum_name, member = spec.split(".")
    return getattr(getattr(tv_resnet, enum_name), member)


def weights_cache_dir() -> Path:
    """Where torch hub keeps downloaded checkpoints: ``torch.hub.get_dir()/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def network_reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the host of ``url`` accepts a TCP connection within ``timeout`` seconds."""
    u = urlparse(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        with socket.create_connection((u.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a state dict from ``.safetensors`` or a torch file (``weights_only=True``).

    A ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper is unwrapped, and a leading
    ``module.`` (DDP) is stripped.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"weights file not found: {p} (expected a .pth/.pt or .safetensors state dict)")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            sd = load_file(str(p))
        except Exception as e:  # noqa: BLE001 - a truncated or corrupt file: re-raised with its name
            raise OSError(f"cannot read weights file {p}: it is not a valid safetensors file ({e}); "
                          f"retrain it or copy it again") from e
    else:
        try:
            sd = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - re-raised with the file name
            raise OSError(f"cannot load weights file {p} with torch.load(weights_only=True): {e}") from e
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise ValueError(f"weights file {p} does not hold a state dict (got {type(sd).__name__})")
    return {k[7:] if k.startswith("module.") else k: v for k, v in sd.items()}


def imagenet_state_dict(name: str, progress: bool = True) -> dict[str, torch.Tensor]:
    """The torchvision ImageNet state dict of backbone ``name``: from the hub cache, else downloaded.

    Raises :class:`WeightsUnavailableError` naming the file and the cache folder when the file
    is not cached and the download host cannot be reached.
    """
    if name not in _ARCHS:
        raise ValueError(f"unknown backbone {name!r}; available: {', '.join(BACKBONES)}")
    w = _weights_enum(name)
    if w is None:
        raise WeightsUnavailableError(
            f"backbone {name!r} has no ImageNet weights; use pretrained=False (train from scratch)"
        )
    filename = os.path.basename(urlparse(w.url).path)
    cache = weights_cache_dir()
    cached = cache / filename
    if cached.is_file():
        return load_state_dict_file(cached)
    if not network_reachable(w.url):
        raise WeightsUnavailableError(
            f"ImageNet weights for {name} ({_ARCHS[name][1]}) are not cached and {urlparse(w.url).hostname} "
            f"cannot be reached. Download {w.url} on a connected machine and place it as\n"
            f"    {cached}\n"
            f"(the torch hub cache folder {cache}; set TORCH_HOME to move it), give an explicit "
            f"weights file, or use pretrained=False to train from scratch."
        )
    cache.mkdir(parents=True, exist_ok=True)
    return torch.hub.load_state_dict_from_url(w.url, model_dir=str(cache), progress=progress,
                                              map_location="cpu", weights_only=True)


class ResNetBackbone(nn.Module):
    """A torchvision ResNet without its pooling and classifier: images -> layer-4 feature map.

    The sub-module names match torchvision's (``conv1, bn1, layer1..layer4``), so torchvision
    state dicts load directly (their ``fc.*`` keys are ignored).
    """

    def __init__(self, net: tv_resnet.ResNet, name: str, last_stride: int = 1):
        super().__init__()
        if last_stride not in (1, 2):
            raise ValueError(f"last_stride must be 1 or 2, got {last_stride}")
        self.name = name
        self.last_stride = last_stride
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        block = self.layer4[0]
        # torchvision puts the stride on conv2 in Bottleneck (ResNet v1.5) and conv1 in BasicBlock
        strided = block.conv2 if isinstance(block, tv_resnet.Bottleneck) else block.conv1
        strided.stride = (last_stride, last_stride)
        if block.downsample is not None:
            block.downsample[0].stride = (last_stride, last_stride)
        self.out_channels = net.fc.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def load_weights(self, state_dict: dict[str, torch.Tensor], source: str = "state dict") -> None:
        """Load a torchvision-layout state dict (classifier keys ignored); mismatches raise naming ``source``."""
        sd = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
        try:
            missing, unexpected = self.load_state_dict(sd, strict=False)
        except RuntimeError as e:  # shape mismatches
            raise ValueError(f"weights from {source} do not fit backbone {self.name}: {str(e)[:500]}") from e
        if missing or unexpected:
            raise ValueError(
                f"weights from {source} do not fit backbone {self.name}: "
                f"missing keys {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                f"unexpected keys {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
            )


def build_backbone(
    name: str = "resnet50",
    pretrained: bool = True,
    last_stride: int = 1,
    weights: str | os.PathLike | None = None,
    progress: bool = True,
) -> ResNetBackbone:
    """Build backbone ``name`` (``resnet50 | resnet34 | resnet18 | resnet10``).

    Args:
        pretrained: load torchvision's ImageNet weights (cache, else download; see the module doc).
        last_stride: stride of layer 4 (1 doubles the final map's resolution, as in the strong baseline and PCB).
        weights: an explicit ``.pth``/``.pt``/``.safetensors`` state dict to load instead
            (takes precedence over ``pretrained``).
    """
    if name not in _ARCHS:
        raise ValueError(f"unknown backbone {name!r}; available: {', '.join(BACKBONES)}")
    bb = ResNetBackbone(_ARCHS[name][0](), name, last_stride)
    if weights is not None:
        bb.load_weights(load_state_dict_file(weights), source=str(weights))
    elif pretrained:
        bb.load_weights(imagenet_state_dict(name, progress=progress), source=f"torchvision {name} ImageNet weights")
    return bb
