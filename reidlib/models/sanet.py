"""SANet: the Scale Adaptive Network (Chen et al., BMVC 2023).

SANet is HPNet's multi-branch network (:class:`reidlib.models.hpnet.HPNet`) with two additions:

* the **AFE** (adaptive feature enhancement, Sec. 3.1, Eq. 1-3, :class:`AFE`) between the
  backbone's layer 3 and the branches' layer 4: layers of cells over three scales, each cell
  summing its inputs, refining them (Eq. 2) and sending them on along the scale path its gate
  picks (Eq. 1, Eq. 3);
* the **MFE** (multi-branch feature extension, Sec. 3.2, Eq. 4-5): the four part branches and a
  fifth, global branch (each a copy of layer 4 with a two-convolution segmentation head), the
  features ``F^i = MaxPool(m^i x f^i)`` (Eq. 4, :func:`reidlib.models.hpnet.masked_max_pool`) and
  the visibility ``v^i`` (Eq. 5, :func:`reidlib.models.hpnet.part_visibility`).

Training is Eq. 6 (:mod:`reidlib.losses.sanet`); at test time two images are compared by the mean
Euclidean distance over their commonly visible branches (Eq. 7,
:func:`reidlib.metrics.distance.common_parts_distance`).  Table 3's rows are switches of this one
model: ``afe="none", global_branch=False`` (HPNet), ``global_branch=True`` (+ Global Branch),
``afe="fixed"`` (+ Fixed FE: every path active), ``afe="adaptive"`` (SANet); Table 4's are
``afe_layers`` and ``afe_kernel``.

Decisions the paper leaves open (the chapter states them):

* **Scales.** Three: scale ``s`` has ``1/2^s`` of the layer-3 map's resolution (rounded up),
  ``s = 0`` being the layer-3 map itself.  ``T_scale`` has no parameters: *down* is an adaptive
  average pooling to the next scale's size, *up* a bilinear interpolation (``align_corners=False``)
  to the previous one's, *keep* the identity.
* **Fig. 3a's connections** (:func:`afe_connections`).  The layer-3 feature enters at scale 0
  only, as the stem's output enters Li et al.'s routing space [13], which SANet's AFE follows.
  Layer ``l`` (1-based) has the cells that a path can reach, at scales ``0 .. min(l - 1, 2)``: 1, 2,
  3, 3, 3 cells in five layers (12 cells; 3 layers: 6; 7 layers: 18).  A cell at scale ``s`` has a
  path to the cells of the next layer at ``s - 1`` (up), ``s`` (keep) and ``s + 1`` (down) that exist
  -- two paths at the finest and the coarsest scale, three in between.  So ``c_2^L`` receives from
  ``c_1^{L-1}`` (down) and ``c_2^{L-1}`` (keep) -- and from ``c_3^{L-1}`` (up) where that cell has a
  path there -- and up-samples to ``c_1^{L+1}``, as the text describes.  The last layer's paths
  lead to three output nodes, one per scale.
* **A cell** sums what reaches it (the paper's ``f^L = sum_i h_i^{L-1}``); a cell that nothing
  reaches is inactive and passes nothing on (its output is multiplied by 0, so the forward pass
  has no data-dependent branching and no host synchronisation).  Its gate (Eq. 1) is a 1x1
  convolution to one logit per path, **a global max-pool over the positions** (one score per
  path), and ``F.gumbel_softmax`` at temperature ``tau``.  In training the sample is hard by
  default (``gumbel_hard``: a one-hot forward pass with the soft sample's gradient, so that the
  training network has the test network's one-path structure and the BatchNorm statistics match);
  ``gumbel_hard=False`` trains on the soft samples.  At test time the gate is the one-hot argmax of
  the logits, "the path with the max probability".  The gate's convolution starts near zero
  (weights ~ N(0, 1e-3), bias 0): every path is equally likely at first.  The base operation
  (Eq. 2) is a ``k x k`` convolution at layer 3's width, with BN and ReLU.
* **The multi-scale outputs** are combined by summing, per scale, what the last layer sends
  there, bringing every scale to scale 0 (bilinear) and summing the three.  The AFE adds this to
  its input (``afe_residual``, default): the branches' layer 4, initialised from the backbone,
  keeps receiving the layer-3 features it was trained on, and the AFE enhances them (the paper
  does not say whether the AFE replaces or enhances them).
* **One path per image.**  With one entry and one-hot gates, an image's active cells form one
  path through the layers at test time (Fig. 4a); its scales are :attr:`AFE` ``routes``.  With
  soft gates (training with ``gumbel_hard=False``) every reachable cell contributes; in the fixed
  FE (Table 3) every gate is 1, so every cell is active and sums up to three inputs.
* **Eq. 4's MaxPool** is HPNet's: the global max over the ``h x w`` positions of ``m^i x f^i``
  (per channel), with the soft mask ``m^i`` as Eq. 4 writes it (``mask_pooling="soft"``).  Eq. 5's
  ``v^i`` counts the mask pixels above 0.5; a branch is visible when ``v^i >= 1``.
* **The mask labels** ``DS(M^i)`` of Eq. 6 are HPNet's (see :mod:`reidlib.models.hpnet`): the true
  part masks (SynthPeds; a real dataset's mask folder), moved with the image through flips and
  crops and down-sampled by :func:`reidlib.data.masks.part_mask_labels` (a cell is positive when
  the part covers at least 10 % of it); the global branch's label is the whole body.
* **The global branch** is a fifth branch like the part branches whose mask is the whole body
  (labels 1-4 together): the paper's "the global branch is utilized as a residual path" is read
  as this whole-body branch beside the part branches, which keeps the identity of an image whose
  parts the masks miss; Eq. 7 counts it as the fifth term.
* **Routing outputs** (tensors, in the forward dict and, ``routes`` only, in
  :meth:`extract`'s ``Features.extra``): ``gates`` ``(N, L, 3, 3)`` -- ``gates[n, l, s, t]`` the
  weight of the path from cell ``(l, s)`` to scale ``t`` of the next layer (0 for paths that do not
  exist and for inactive cells); ``routes`` ``(N, L, 3)`` int64 -- the scale the cell sends to
  (argmax of its gate; -1 for inactive and absent cells, and everywhere in the fixed FE, which
  chooses nothing); ``cell_active`` ``(N, L, 3)`` bool.
* **Cost.**  At ResNet-50's layer-3 width (1024 channels) each cell holds 9.4 M parameters at
  ``k = 3`` (113 M for the 12 cells), and the AFE does about 11 of the network's 30 GMACs per
  384x128 image (five layer-4 copies at last stride 1 included).  The book's quarter-width
  backbone has 64 channels there.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reidlib.models.hpnet import HPNet

__all__ = ["route_path", 
    "AFE_MODES",
    "NUM_SCALES",
    "afe_connections",
    "scale_sizes",
    "scale_transform",
    "cell_output",
    "AFECell",
    "AFE",
    "SANet",
]

#: ``"none"``: no AFE (HPNet, + Global Branch); ``"fixed"``: every path active (+ Fixed FE);
#: ``"adaptive"``: gated paths (SANet).
AFE_MODES = ("none", "fixed", "adaptive")
#: The AFE's scales: 1, 1/2 and 1/4 of the layer-3 map's resolution.
NUM_SCALES = 3


def afe_connections(num_layers: int, num_scales: int = NUM_SCALES) -> list[list[tuple[int, ...]]]:
    """Fig. 3a as data: ``conn[l][s]`` are the target scales (ascending: up, keep, down) of the
    paths of the cell at scale ``s`` of layer ``l`` (0-based); layer ``l`` has the cells at scales
    ``0 .. min(l, num_scales - 1)`` (the layer-3 feature enters at scale 0)."""
    if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 1:
        raise ValueError(f"afe_connections: num_layers must be a positive int, got {num_layers!r}")
    if not isinstance(num_scales, int) or num_scales < 1:
        raise ValueError(f"afe_connections: num_scales must be a positive int, got {num_scales!r}")
    return [[tuple(t for t in (s - 1, s, s + 1) if 0 <= t < num_scales) for s in range(min(l + 1, num_scales))]
            for l in range(num_layers)]


def scale_sizes(height: int, width: int, num_scales: int = NUM_SCALES) -> list[tuple[int, int]]:
    """The map size of every scale: ``ceil(h / 2^s) x ceil(w / 2^s)``."""
    return [(math.ceil(height / 2 ** s), math.ceil(width / 2 ** s)) for s in range(num_scales)]


def scale_transform(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``T_scale``: ``x`` ``(N, C, h, w)`` at the map size ``size`` -- the identity (keep), adaptive
    average pooling (down) or bilinear interpolation (up)."""
    size = (int(size[0]), int(size[1]))
    h, w = x.shape[-2:]
    if (h, w) == size:
        return x
    if size[0] <= h and size[1] <= w:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def cell_output(refined: torch.Tensor, alpha: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """SANet Eq. 3: ``h^L_i = alpha x T_scale(f^L_refine)`` -- the refined features sent along one
    path, at the target scale's size, weighted by the path's gate value.

    Args:
        refined: ``(N, C, h, w)`` -- Eq. 2's ``f_refine``.
        alpha: ``(N,)`` -- the gate's value for this path (Eq. 1; 0 for an inactive cell).
        size: the target scale's ``(h', w')``.
    """
    if alpha.shape != refined.shape[:1]:
        raise ValueError(f"cell_output: alpha must be (N,) = ({refined.shape[0]},), got {tuple(alpha.shape)}")
    return scale_transform(refined, size) * alpha.to(refined.dtype).view(-1, 1, 1, 1)


def route_path(routes: torch.Tensor, cell_active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The path an image takes through the adaptive AFE (Fig. 4a), from the forward dict's
    ``routes`` and ``cell_active`` ``(N, L, S)``.

    Returns ``(path, depth)``: ``path`` ``(N, L + 1)`` int64 -- the scale of the active cell at each
    layer, then the output scale the last cell sends to (-1 where a layer has no single active
    cell: the fixed FE, or soft gates); ``depth`` ``(N,)`` float -- the mean of the path's scales
    after the entry (layers 2 .. L and the output; the first layer is always scale 0), the "how
    deep" of an image's features (0: the layer-3 resolution all the way, 2: the coarsest).
    """
    if routes.shape != cell_active.shape or routes.dim() != 3:
        raise ValueError(f"route_path: routes and cell_active must be (N, L, S) alike, got {tuple(routes.shape)} "
                         f"and {tuple(cell_active.shape)}")
    n, L, S = routes.shape
    scales = torch.arange(S, device=routes.device)
    single = cell_active.sum(-1) == 1  # (N, L): one active cell per layer (the adaptive AFE at test time)
    at = (cell_active.long() * scales).sum(-1)  # the active cell's scale where it is single
    visited = torch.where(single, at, torch.full_like(at, -1))
    last = torch.where(single[:, -1], (routes[:, -1] * cell_active[:, -1].long()).sum(-1), torch.full_like(at[:, 0], -1))
    path = torch.cat([visited, last[:, None]], dim=1)
    ok = (path >= 0).all(dim=1)
    depth = torch.where(ok, path[:, 1:].float().mean(dim=1), torch.full((n,), float("nan"), device=routes.device))
    return path, depth


class AFECell(nn.Module):
    """One cell of the AFE: its gate (Eq. 1) and its base operation (Eq. 2).

    Args:
        channels: the feature width (layer 3's).
        targets: the target scales of its paths (:func:`afe_connections`).
        kernel_size: the base operation's kernel (Table 4: 1, 3 or 5).
        gated: False for the fixed FE (no gate: every path has weight 1).
    """

    def __init__(self, channels: int, targets: Sequence[int], kernel_size: int = 3, gated: bool = True):
        super().__init__()
        self.targets = tuple(int(t) for t in targets)
        # the targets as a device tensor (moves with the module; not part of the state dict)
        self.register_buffer("target_scales", torch.tensor(self.targets, dtype=torch.long), persistent=False)
        self.base = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        nn.init.kaiming_normal_(self.base[0].weight, mode="fan_out", nonlinearity="relu")
        self.gate_conv = nn.Conv2d(channels, len(self.targets), kernel_size=1) if gated else None
        if self.gate_conv is not None:
            nn.init.normal_(self.gate_conv.weight, std=1e-3)
            nn.init.zeros_(self.gate_conv.bias)

    def gate(self, f: torch.Tensor, tau: float = 1.0, hard: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """SANet Eq. 1: ``alpha^L = GS(MaxPool(G_1x1(w^L_i, f^L)))``.

        The 1x1 convolution gives one map per path, the max-pool takes each map's maximum over the
        positions, ``GS`` is ``F.gumbel_softmax`` at temperature ``tau`` in training (``hard``: a
        straight-through one-hot sample) and the one-hot argmax at test time (eval mode).

        Returns:
            ``(alpha, logits)``, both ``(N, paths)`` float32.
        """
        if self.gate_conv is None:
            raise RuntimeError("AFECell.gate: this cell has no gate (fixed FE: every path is active)")
        logits = self.gate_conv(f).amax(dim=(2, 3)).float()
        if self.training:
            alpha = F.gumbel_softmax(logits, tau=tau, hard=hard, dim=1)
        else:
            alpha = F.one_hot(logits.argmax(dim=1), logits.shape[1]).to(logits.dtype)
        return alpha, logits

    def refine(self, f: torch.Tensor) -> torch.Tensor:
        """SANet Eq. 2: ``f^L_refine = G_kxk(w^L_i, f^L)`` (the convolution, then BN and ReLU)."""
        return self.base(f)

    def extra_repr(self) -> str:
        return f"targets={self.targets}, gated={self.gate_conv is not None}"


class AFE(nn.Module):
    """The adaptive feature enhancement module (see the module docstring for its wiring).

    Args:
        channels: layer 3's width.
        num_layers: layers of cells (Table 4: 3, 5, 7).
        kernel_size: the cells' base kernel (Table 4: 1, 3, 5).
        mode: ``"adaptive"`` (gated) or ``"fixed"`` (every path active).
        tau: the Gumbel-softmax temperature.
        gumbel_hard: straight-through one-hot samples in training (False: soft samples).
        residual: add the AFE's output to its input.

    ``afe(x)`` returns ``(enhanced, aux)`` with ``aux = {"gates", "routes", "cell_active"}``.
    """

    def __init__(self, channels: int, num_layers: int = 5, kernel_size: int = 3, mode: str = "adaptive",
                 tau: float = 1.0, gumbel_hard: bool = True, residual: bool = True, num_scales: int = NUM_SCALES):
        super().__init__()
        if mode not in ("fixed", "adaptive"):
            raise ValueError(f"AFE: mode={mode!r}; accepted: 'fixed' (every path active) and 'adaptive' (gated)")
        if not isinstance(kernel_size, int) or isinstance(kernel_size, bool) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"AFE: kernel_size must be a positive odd int (Table 4: 1, 3, 5), got {kernel_size!r}")
        if not (isinstance(tau, (int, float)) and tau > 0):
            raise ValueError(f"AFE: tau (the Gumbel-softmax temperature) must be > 0, got {tau!r}")
        self.connections = afe_connections(num_layers, num_scales)
        self.num_layers, self.num_scales, self.kernel_size = num_layers, num_scales, kernel_size
        self.mode, self.tau, self.gumbel_hard, self.residual = mode, float(tau), bool(gumbel_hard), bool(residual)
        self.cells = nn.ModuleList(
            nn.ModuleList(AFECell(channels, targets, kernel_size, gated=mode == "adaptive") for targets in layer)
            for layer in self.connections)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        n, S = x.shape[0], self.num_scales
        sizes = scale_sizes(x.shape[-2], x.shape[-1], S)
        zeros = x.new_zeros(n, dtype=torch.float32)
        feats: list = [x] + [None] * (S - 1)  # what reaches each scale of the current layer
        mass = [x.new_ones(n, dtype=torch.float32)] + [zeros] * (S - 1)  # the path weight reaching it
        gates, routes, active = [], [], []
        for layer in self.cells:
            nxt: list = [None] * S
            nmass = [zeros] * S
            g_rows, r_rows, a_rows = [], [], []
            for s in range(S):
                if s >= len(layer):  # no cell at this scale in this layer
                    g_rows.append(x.new_zeros(n, S, dtype=torch.float32))
                    r_rows.append(torch.full((n,), -1, dtype=torch.long, device=x.device))
                    a_rows.append(torch.zeros(n, dtype=torch.bool, device=x.device))
                    continue
                cell, f = layer[s], feats[s]  # f: the sum of the activated inputs (f^L = sum_i h_i^{L-1})
                on = mass[s] > 0
                if self.mode == "adaptive":
                    alpha, _ = cell.gate(f, self.tau, self.gumbel_hard)
                else:
                    alpha = x.new_ones(n, len(cell.targets), dtype=torch.float32)
                alpha = alpha * on.unsqueeze(1).to(alpha.dtype)
                refined = cell.refine(f)
                cols = [zeros] * S
                for j, t in enumerate(cell.targets):
                    h = cell_output(refined, alpha[:, j], sizes[t])
                    nxt[t] = h if nxt[t] is None else nxt[t] + h
                    nmass[t] = nmass[t] + alpha[:, j].detach()
                    cols[t] = alpha[:, j]
                g_rows.append(torch.stack(cols, dim=1))
                if self.mode == "adaptive":
                    tgt = cell.target_scales[alpha.detach().argmax(dim=1)]
                    r_rows.append(torch.where(on, tgt, torch.full_like(tgt, -1)))
                else:
                    r_rows.append(torch.full((n,), -1, dtype=torch.long, device=x.device))
                a_rows.append(on)
            feats, mass = nxt, nmass
            gates.append(torch.stack(g_rows, dim=1))
            routes.append(torch.stack(r_rows, dim=1))
            active.append(torch.stack(a_rows, dim=1))
        out = None
        for t in range(S):  # the multi-scale outputs, at scale 0, summed
            if feats[t] is not None:
                y = scale_transform(feats[t], sizes[0])
                out = y if out is None else out + y
        if self.residual:
            out = x + out
        aux = {"gates": torch.stack(gates, dim=1), "routes": torch.stack(routes, dim=1),
               "cell_active": torch.stack(active, dim=1)}
        return out, aux

    def extra_repr(self) -> str:
        return (f"mode={self.mode}, layers={self.num_layers}, scales={self.num_scales}, kernel={self.kernel_size}, "
                f"tau={self.tau}, gumbel_hard={self.gumbel_hard}, residual={self.residual}")


class SANet(HPNet):
    """SANet (see the module docstring); the arguments are :class:`HPNet`'s and

    Args:
        afe: ``"adaptive"`` (SANet), ``"fixed"`` (every path active) or ``"none"`` (no AFE).
        afe_layers: the AFE's layers (5 in the paper; Table 4: 3, 5, 7).
        afe_kernel: the cells' base kernel (3 in the paper; Table 4: 1, 3, 5).
        tau: the Gumbel-softmax temperature.
        gumbel_hard: straight-through one-hot Gumbel samples in training.
        afe_residual: the AFE adds to its input (see the module docstring).

    Defaults: the global branch on and Eq. 4's soft mask pooling.  The forward dict adds the
    AFE's ``gates``, ``routes`` and ``cell_active``; :meth:`extract` adds ``extra["routes"]``.
    """

    def __init__(self, num_classes: int, backbone: str = "resnet50", pretrained: bool = True, last_stride: int = 1,
                 weights: str | None = None, afe: str = "adaptive", afe_layers: int = 5, afe_kernel: int = 3,
                 tau: float = 1.0, gumbel_hard: bool = True, afe_residual: bool = True, global_branch: bool = True,
                 mask_pooling: str = "soft", seg_channels: int | None = None, neck_feat: str = "after",
                 normalize: bool = True):
        if afe not in AFE_MODES:
            raise ValueError(f"SANet: afe={afe!r}; accepted: {', '.join(map(repr, AFE_MODES))}")
        super().__init__(num_classes, backbone=backbone, pretrained=pretrained, last_stride=last_stride,
                         weights=weights, global_branch=global_branch, mask_pooling=mask_pooling,
                         seg_channels=seg_channels, neck_feat=neck_feat, normalize=normalize)
        self.afe_mode = afe
        self.afe = None if afe == "none" else AFE(self.mid_channels, afe_layers, afe_kernel, mode=afe, tau=tau,
                                                  gumbel_hard=gumbel_hard, residual=afe_residual)

    def enhance(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The AFE (Eq. 1-3) between layer 3 and the branches (nothing with ``afe="none"``)."""
        if self.afe is None:
            return x, {}
        return self.afe(x)
