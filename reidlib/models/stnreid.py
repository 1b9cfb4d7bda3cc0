"""STNReID: a pairwise spatial transformer in front of a ReID network (Luo et al. 2019).

The STN module looks at a partial image ``I_p`` and a holistic image ``I_h`` together
(6 channels), predicts the 2D affine transform ``theta`` (:class:`LocalizationNet`, the
paper's Table 1) and samples from ``I_h`` the *affined image* ``I_a`` that should show the
same body region as ``I_p`` (:func:`affine_sample`, Eq. 1-2).  The ReID module (the strong
baseline, :mod:`reidlib.models.baseline`) extracts the global features of the three images
(Eq. 3); training uses Eq. 6 (:mod:`reidlib.losses.stnreid`).

Test time is pairwise: every (partial query, holistic gallery) pair gets its own theta and
its own affined image, and the distance is the distance between the query's feature and
the affined image's feature (:meth:`STNReID.pair_distance`).  :meth:`STNReID.matcher`
returns a :class:`reidlib.metrics.matchers.PairwiseMatcher` batched over pairs, either
over the full ``Q x G`` grid or as a shortlist (global-feature ranking, then STN
rescoring of the top-k).

Two-stage training (Section 3.2) lives in :class:`STNReIDMethod`:

* stage 1 (``extra["stage"] = 1``): end-to-end training of STN + a *weak* ReID module
  (Table 2's Ep1: no ImageNet weights, ID loss only) to get a strong STN;
* stage 2 (``extra["stage"] = 2``): the STN from stage 1 is frozen; Pipeline Mode trains
  (fine-tunes) a strong ReID module behind it with Eq. 6 (Table 2's Ep5 settings), while
  Merge Mode (:func:`merge_mode`) needs no training at all: it puts the frozen STN in
  front of an independently trained ReID model (the baseline).

Choices where the paper is open (see the chapter ``05_stnreid``):

* Table 1 lists padding (1, 1) for the 7x7 Conv1, but a 7x7/2 convolution with padding 1
  on 256x128 gives 126x62, not the listed 128x64, and the listed Flatten size (4096 =
  16x8x32) needs 128x64.  We keep the listed output sizes: Conv1 uses padding 3.
* The convolutions have no bias (each is followed by BatchNorm, as the text says).
* ``affine_grid``/``grid_sample`` use ``align_corners=False`` (torch's default and the
  convention of :func:`reidlib.data.partial.partial_crop`'s ``theta``), bilinear sampling,
  zero padding outside the holistic image.
* ``L_STN`` compares the ReID module's training feature (the triplet loss' feature).
* Training partials remove 20-60 % of the *body*: the crop is cut from the person's box (the
  part mask's, on SynthPeds, whose frames leave a margin around the person), as the partial
  test sets are, not from the whole frame (``extra["crop_within"]``).
"""

from __future__ import annotations

import contextlib
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reidlib.engine.method import Method, TrainConfig
from reidlib.models.base import Features, ReIDModel

IDENTITY_THETA = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _conv_out(n: int, kernel: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - kernel) // stride + 1


class LocalizationNet(nn.Module):
    """STNReID's localisation network (Table 1): ``theta = f_loc(I_{h,p})``.

    Input: the holistic and partial images concatenated on channels ``(N, 6, H, W)``
    (:meth:`forward` takes the two images and concatenates them).  Layers::

        Conv1 7x7/16, stride 2 (+BN+ReLU) -> MaxPool 2x2/2
        Conv2 3x3/32, stride 2 (+BN+ReLU) -> MaxPool 2x2/2
        Flatten -> FC1 512 (+ReLU) -> FC2 128 (+ReLU) -> FC3 32 (+ReLU) -> FC4 6

    For 256x128 inputs the flatten size is 16x8x32 = 4096 as in the paper; for other
    sizes it is computed from ``input_size``.  FC4 starts with zero weights and the
    identity bias ``[1, 0, 0, 0, 1, 0]`` (the paper's initial theta), so an untrained STN
    samples the whole holistic image.
    """

    def __init__(self, input_size: Sequence[int] = (256, 128), in_channels: int = 6):
        super().__init__()
        if len(input_size) != 2 or min(input_size) < 16:
            raise ValueError(f"LocalizationNet: input_size must be (H, W) with H, W >= 16, got {tuple(input_size)}")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.in_channels = in_channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, kernel_size=7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(16, 32, kernel_size=3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        h, w = self.input_size
        h, w = _conv_out(h, 7, 2, 3) // 2, _conv_out(w, 7, 2, 3) // 2
        h, w = _conv_out(h, 3, 2, 1) // 2, _conv_out(w, 3, 2, 1) // 2
        if h < 1 or w < 1:
            raise ValueError(f"LocalizationNet: input_size {self.input_size} is too small for Table 1's four downsamplings")
        self.feature_size = (32, h, w)
        self.flat_dim = 32 * h * w
        self.regressor = nn.Sequential(
            nn.Linear(self.flat_dim, 512),
            nn.ReLU(inplace=True),
            nn.Linear(512, 128),
            nn.ReLU(inplace=True),
            nn.Linear(128, 32),
            nn.ReLU(inplace=True),
            nn.Linear(32, 6),  # FC4: regression, no ReLU
        )
        self.reset_theta()

    def reset_theta(self) -> None:
        """Zero FC4's weight and set its bias to the identity transform."""
        last = self.regressor[-1]
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.copy_(torch.tensor(IDENTITY_THETA))

    def forward(self, partial: torch.Tensor, holistic: torch.Tensor) -> torch.Tensor:
        """``theta`` ``(N, 2, 3)`` for the pairs ``(partial[i], holistic[i])``.

        Both inputs are ``(N, 3, H, W)`` at this net's ``input_size``.
        """
        if partial.shape != holistic.shape:
            raise ValueError(
                f"LocalizationNet: partial and holistic batches must have the same shape, got "
                f"{tuple(partial.shape)} and {tuple(holistic.shape)}"
            )
        if partial.dim() != 4 or tuple(partial.shape[-2:]) != self.input_size or 2 * partial.shape[1] != self.in_channels:
            raise ValueError(
                f"LocalizationNet: expected images of shape (N, {self.in_channels // 2}, {self.input_size[0]}, "
                f"{self.input_size[1]}), got {tuple(partial.shape)}"
            )
        x = torch.cat([holistic, partial], dim=1)  # I_{h,p}: (N, 6, H, W)
        x = self.features(x).flatten(1)
        return self.regressor(x).view(-1, 2, 3)


def affine_sample(holistic: torch.Tensor, theta: torch.Tensor, size: Optional[Sequence[int]] = None) -> torch.Tensor:
    """STNReID Eq. 1-2: the affined image ``I_a = f_STN(I_{h,p})`` sampled from ``I_h``.

    Eq. 1, the grid generator: every target point ``(x^t, y^t)`` of the regular grid of
    the affined image (normalised coordinates in [-1, 1]) is mapped to the source point
    ``(x^s, y^s) = A_theta (x^t, y^t, 1)^T`` of the holistic image (``F.affine_grid``);
    Eq. 2, the sampler: ``I_a`` is read from ``I_h`` at those points by bilinear
    interpolation (``F.grid_sample``; zeros outside the image; ``align_corners=False``).

    ``holistic``: ``(N, C, H, W)``; ``theta``: ``(N, 2, 3)``; ``size``: the affined
    image's ``(H, W)`` (default: the holistic image's).  Differentiable in both.
    """
    if holistic.dim() != 4 or theta.shape != (holistic.shape[0], 2, 3):
        raise ValueError(
            f"affine_sample: expected holistic (N, C, H, W) and theta (N, 2, 3), got "
            f"{tuple(holistic.shape)} and {tuple(theta.shape)}"
        )
    n, c, h, w = holistic.shape
    out_h, out_w = (h, w) if size is None else (int(size[0]), int(size[1]))
    grid = F.affine_grid(theta.to(holistic.dtype), [n, c, out_h, out_w], align_corners=False)
    return F.grid_sample(holistic, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def theta_to_box(theta: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The holistic-image region that ``theta`` samples, as pixel boxes ``(N, 4)`` ``x1, y1, x2, y2``.

    The affined image's corners (normalised ``(+-1, +-1)``, i.e. pixel edges with
    ``align_corners=False``) are mapped through ``theta``; the box is their bounding box
    in the pixel frame of a holistic image of ``size = (H, W)`` (edges: ``x = (u + 1) W / 2``).
    For a pure scale + translation theta (what the STN learns for crops) the box is exact.
    """
    if theta.dim() != 3 or theta.shape[1:] != (2, 3):
        raise ValueError(f"theta_to_box: expected theta of shape (N, 2, 3), got {tuple(theta.shape)}")
    h, w = size
    corners = theta.new_tensor([[-1.0, -1.0, 1.0], [1.0, -1.0, 1.0], [-1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    src = torch.einsum("nij,kj->nki", theta, corners)  # (N, 4, 2) in [-1, 1] units
    x = (src[..., 0] + 1) * (w / 2)
    y = (src[..., 1] + 1) * (h / 2)
    return torch.stack([x.amin(1), y.amin(1), x.amax(1), y.amax(1)], dim=1)


def box_iou_pairs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of matching rows of two ``(N, 4)`` ``x1, y1, x2, y2`` box tensors (``(N,)``)."""
    if a.shape != b.shape or a.dim() != 2 or a.shape[1] != 4:
        raise ValueError(f"box_iou_pairs: expected two (N, 4) boxes, got {tuple(a.shape)} and {tuple(b.shape)}")
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area = lambda t: (t[:, 2:] - t[:, :2]).clamp(min=0).prod(1)  # noqa: E731
    union = area(a) + area(b) - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def _paired_distance(a: torch.Tensor, b: torch.Tensor, metric: str, normalize: bool) -> torch.Tensor:
    """Distance between matching rows of ``a`` and ``b`` (``(B, D)`` -> ``(B,)``), with the
    conventions of :class:`reidlib.metrics.matchers.GlobalMatcher` (squared euclidean or
    ``1 - cos``, optionally on L2-normalised features)."""
    a, b = a.float(), b.float()
    if normalize:
        a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    if metric == "euclidean":
        return (a - b).pow(2).sum(1)
    if metric == "cosine":
        return 1.0 - (F.normalize(a, dim=1) * F.normalize(b, dim=1)).sum(1)
    raise ValueError(f"unknown metric {metric!r}: accepted metrics are 'euclidean' and 'cosine'")


class STNReID(ReIDModel):
    """STN module + ReID module (Fig. 2).

    Args:
        reid: the ReID module, a :class:`reidlib.models.baseline.Baseline` (any model whose
            training forward returns ``{"logits", "feat"}`` and whose ``extract`` gives
            ``Features.global_feat`` works).
        stn: the localisation network (default: a fresh :class:`LocalizationNet` for ``image_size``).
        image_size: ``(H, W)`` of the images (partial crops are resized to it).
        freeze_stn: stage 2 -- the STN's parameters get ``requires_grad=False``, it stays in
            eval mode (its BatchNorm statistics do not move) and runs without autograd.
        shortlist: the default matcher's mode: None = every (query, gallery) pair is scored;
            ``k`` = global-feature ranking, then STN rescoring of the top ``k``.
        batch_pairs: pairs per batched STN + ReID forward in the matcher.
        metric, normalize: the feature distance (default: the ReID module's).
        amp: run the pair passes under autocast on CUDA (bf16 where supported, else fp16).

    Training forward: ``model(holistic, partial)`` returns ``logits_k``/``feat_k`` for
    ``k`` in ``h, p, a`` (holistic, partial, affined), ``theta`` ``(N, 2, 3)`` and the
    ``affined`` images.  The three image kinds go through the ReID module as one batch.
    """

    def __init__(self, reid: nn.Module, stn: Optional[LocalizationNet] = None, image_size: Sequence[int] = (256, 128),
                 freeze_stn: bool = False, shortlist: Optional[int] = None, batch_pairs: int = 256,
                 metric: Optional[str] = None, normalize: bool = True, amp: bool = True):
        super().__init__()
        self.amp = bool(amp)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.stn = stn if stn is not None else LocalizationNet(self.image_size)
        if self.stn.input_size != self.image_size:
            raise ValueError(f"STNReID: the STN was built for {self.stn.input_size} images, the model for {self.image_size}")
        self.reid = reid
        self.shortlist = shortlist
        self.batch_pairs = int(batch_pairs)
        self.metric = metric if metric is not None else getattr(reid, "metric", "euclidean")
        self.normalize = bool(normalize)
        self.stn_frozen = False
        if freeze_stn:
            self.freeze_stn()

    # -- stage 2 -------------------------------------------------------------
    def freeze_stn(self) -> "STNReID":
        """Freeze the STN module (Section 3.2, stage 2): no gradients, BatchNorm in eval mode."""
        self.stn_frozen = True
        for p in self.stn.parameters():
            p.requires_grad_(False)
        self.stn.eval()
        return self

    def train(self, mode: bool = True) -> "STNReID":
        super().train(mode)
        if self.stn_frozen:
            self.stn.eval()
        return self

    # -- the STN module ----------------------------------------------------
    def predict_theta(self, partial: torch.Tensor, holistic: torch.Tensor) -> torch.Tensor:
        """``theta = f_loc(I_{h,p})`` ``(N, 2, 3)`` (no autograd when the STN is frozen)."""
        if self.stn_frozen:
            with torch.no_grad():
                return self.stn(partial, holistic)
        return self.stn(partial, holistic)

    def affine(self, partial: torch.Tensor, holistic: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The STN module ``f_STN``: ``(I_a, theta)`` for the pairs ``(partial[i], holistic[i])``."""
        theta = self.predict_theta(partial, holistic)
        return affine_sample(holistic, theta), theta

    # -- training ------------------------------------------------------------
    def forward(self, holistic: torch.Tensor, partial: Optional[torch.Tensor] = None):
        if partial is None:
            raise TypeError("STNReID.forward(holistic, partial): training needs the partial images too; "
                            "use extract() at test time")
        if holistic.shape != partial.shape:
            raise ValueError(f"STNReID: holistic {tuple(holistic.shape)} and partial {tuple(partial.shape)} batches "
                             f"must have the same shape (partial crops are resized to the image size)")
        affined, theta = self.affine(partial, holistic)
        n = holistic.shape[0]
        out = self.reid(torch.cat([holistic, partial, affined.to(holistic.dtype)]))  # Eq. 3 for I_h, I_p, I_a
        if not isinstance(out, dict) or "logits" not in out or "feat" not in out:
            raise TypeError(f"STNReID: the ReID module's training forward must return a dict with 'logits' and 'feat', "
                            f"got {type(out).__name__} (is it in training mode?)")
        res = {"theta": theta, "affined": affined}
        for i, k in enumerate(("h", "p", "a")):
            res[f"logits_{k}"] = out["logits"][i * n:(i + 1) * n]
            res[f"feat_{k}"] = out["feat"][i * n:(i + 1) * n]
        return res

    # -- test time -----------------------------------------------------------
    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> Features:
        """The global features (ReID module alone) and the images, for pairwise matching."""
        return Features(images=images, global_feat=self.reid.extract(images).global_feat.float())

    @torch.no_grad()
    def pair_distance(self, q: Features, g: Features) -> torch.Tensor:
        """Distances of the pairs ``(q[b], g[b])``, batched: ``(B,)``.

        For every pair: ``theta = f_loc(I_g, I_q)`` with the query as the partial image,
        ``I_a`` sampled from the gallery image, and ``d(f_q, f_{I_a})``.
        """
        if q.images is None or g.images is None or q.global_feat is None:
            raise ValueError("STNReID.pair_distance needs Features with images (both sides) and the query's "
                             "global_feat, as STNReID.extract returns them")
        dev = next(self.stn.parameters()).device
        qi, gi = q.images.to(dev), g.images.to(dev)
        amp = contextlib.nullcontext()
        if dev.type == "cuda" and self.amp:  # the pair passes dominate test time: bf16/fp16 on GPUs
            amp = torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
        with amp:
            affined, _ = self.affine(qi.to(gi.dtype), gi)
            fa = self.reid.extract(affined).global_feat
        return _paired_distance(q.global_feat.to(dev), fa, self.metric, self.normalize)

    def global_matcher(self):
        """The ReID module alone ("w/o STN" in Tables 2 and 3)."""
        from reidlib.metrics.matchers import GlobalMatcher

        return GlobalMatcher(metric=self.metric, normalize=self.normalize)

    def matcher(self, shortlist: "Optional[int] | str" = "default", batch_pairs: Optional[int] = None, progress: bool = False):
        """The pairwise matcher: full ``Q x G`` (``shortlist=None``) or the top-``k`` shortlist of
        the global features rescored (``shortlist=k``); ``"default"`` takes the model's setting."""
        from reidlib.metrics.matchers import PairwiseMatcher

        k = self.shortlist if shortlist == "default" else shortlist
        return PairwiseMatcher(self.pair_distance, batch_pairs=batch_pairs or self.batch_pairs, shortlist=k,
                               cheap=self.global_matcher(), progress=progress)


def merge_mode(stn: LocalizationNet, reid: nn.Module, **kw) -> STNReID:
    """Merge Mode (Section 3.2, Fig. 3b): a frozen STN in front of an independently trained
    ReID model, with no further training."""
    size = stn.input_size
    return STNReID(reid, stn=stn, image_size=size, freeze_stn=True, **kw).eval()


# ---------------------------------------------------------------------------------
# weights of earlier stages / runs
# ---------------------------------------------------------------------------------
def _weights_file(path) -> "Path":
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        f = p / "model.safetensors"
        if not f.is_file():
            raise FileNotFoundError(f"{p} is a folder without model.safetensors; expected a finished training run "
                                    f"folder (runs/...) or a weights file")
        return f
    if not p.is_file():
        raise FileNotFoundError(f"weights not found: {p}; expected a training run folder holding model.safetensors "
                                f"or a .safetensors/.pth weights file")
    return p


def load_stn(path, input_size: Sequence[int] = (256, 128)) -> LocalizationNet:
    """The localisation net of a stage-1 run (its folder or weights file; ``stn.*`` keys of an
    :class:`STNReID` state dict, or a bare :class:`LocalizationNet` state dict)."""
    from reidlib.models.backbones import load_state_dict_file

    f = _weights_file(path)
    sd = load_state_dict_file(f)
    if any(k.startswith("stn.") for k in sd):
        sd = {k[4:]: v for k, v in sd.items() if k.startswith("stn.")}
    net = LocalizationNet(input_size)
    try:
        net.load_state_dict(sd)
    except RuntimeError as e:
        raise ValueError(f"{f} does not hold a LocalizationNet for {tuple(input_size)} images (STNReID stage-1 "
                         f"weights expected): {e}") from e
    return net


def load_reid_init(reid: nn.Module, path) -> nn.Module:
    """Initialise the ReID module from a run's weights (a baseline run, or the ``reid.*`` part of
    an STNReID run).  The classifier is skipped when its number of identities differs."""
    from reidlib.models.backbones import load_state_dict_file

    f = _weights_file(path)
    sd = load_state_dict_file(f)
    if any(k.startswith("reid.") for k in sd):
        sd = {k[5:]: v for k, v in sd.items() if k.startswith("reid.")}
    own = reid.state_dict()
    skipped = [k for k, v in sd.items() if k in own and own[k].shape != v.shape]
    if any(not k.startswith("classifier") for k in skipped):
        raise ValueError(f"{f}: tensors {skipped[:5]} do not fit the ReID module {type(reid).__name__} "
                         f"(another backbone or image size?)")
    sd = {k: v for k, v in sd.items() if k not in skipped}
    missing, unexpected = reid.load_state_dict(sd, strict=False)
    bad = [k for k in missing if not k.startswith("classifier")] + list(unexpected)
    if bad:
        raise ValueError(f"{f} does not hold weights of {type(reid).__name__}: missing/unexpected keys {bad[:6]}")
    return reid


def load_run_model(run_dir, device="cpu") -> nn.Module:
    """Rebuild the model of a finished training run (``config.json`` + ``model.safetensors``), in eval mode."""
    import json
    from pathlib import Path

    from reidlib.engine.checkpoint import load_weights
    from reidlib.engine.method import TrainConfig
    from reidlib.engine.registry import get_method

    run = Path(run_dir)
    cfg_file = run / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{cfg_file} not found; expected the folder of a training run (config.json, model.safetensors)")
    meta = json.loads(cfg_file.read_text())
    cfg = TrainConfig.from_dict(meta["train_config"]).replace(pretrained=False)  # the run's weights replace ImageNet's
    method = get_method(meta["method"])(cfg, int(meta["num_classes"]))
    method.skip_init_weights = True  # earlier stages' weights are inside this run's weights
    model = method.build_model()
    load_weights(_weights_file(run), model)
    return model.to(device).eval()


def load_merge_mode(stn_run, reid_run, device="cpu", **kw) -> STNReID:
    """Merge Mode from two runs: the STN of a stage-1 STNReID run and an independently trained
    ReID model (e.g. chapter 03's baseline run)."""
    reid = load_run_model(reid_run, device)
    stn_model = load_run_model(stn_run, device)
    stn = stn_model.stn if isinstance(stn_model, STNReID) else None
    if stn is None:
        raise ValueError(f"{stn_run} is not an STNReID run (its model is {type(stn_model).__name__})")
    return merge_mode(stn, reid, **kw).to(device)


# ---------------------------------------------------------------------------------
# the training method
# ---------------------------------------------------------------------------------
#: Table 2's five settings of the ReID module (PT: ImageNet init, LS: label smoothing, L_Tri).
CONFRONTATION_SETTINGS: dict[str, dict] = {
    "Ep1": {"pretrained": False, "label_smooth": 0.0, "triplet": False},
    "Ep2": {"pretrained": True, "label_smooth": 0.0, "triplet": False},
    "Ep3": {"pretrained": True, "label_smooth": 0.1, "triplet": False},
    "Ep4": {"pretrained": True, "label_smooth": 0.0, "triplet": True},
    "Ep5": {"pretrained": True, "label_smooth": 0.1, "triplet": True},
}

MODES = ("pipeline", "merge")
#: What teaches the STN in stage 1: Eq. 6 (the paper) or the true theta (an oracle, chapter 05).
STN_TARGETS = ("features", "oracle")


class STNReIDMethod(Method):
    """STNReID's two-stage training (registered as ``"stnreid"``).

    ``extra`` settings:

    * ``stage``: 1 (end-to-end STN + ReID; default) or 2 (the STN frozen);
    * ``mode``: stage 2's ``"pipeline"`` (train the ReID module behind the frozen STN with
      Eq. 6).  ``"merge"`` trains nothing -- build it with :func:`load_merge_mode`;
    * ``stn_weights``: stage 2: the stage-1 run (folder or weights file) whose STN is frozen;
    * ``reid_weights``: optional initial weights of the ReID module (a baseline run, ...);
      with ``pretrained`` this replaces ImageNet weights (the smoke profile's stand-in for
      Table 2's ``PT``, as there are no ImageNet weights for its tiny backbone);
    * ``label_smooth`` (epsilon, 0 = plain CE), ``triplet`` (bool), ``margin`` (0.3) --
      the ReID loss ``L_R`` (Table 2's LS, L_ID, L_Tri); ``stn_weight`` (1.0: Eq. 6);
    * ``stn_target``: what teaches the STN in stage 1: ``"features"`` (the paper: Eq. 6, whose
      ``L_STN`` compares features) or ``"oracle"`` (not the paper: the STN alone regresses the
      true ``theta`` of each crop, :func:`reidlib.losses.stnreid.theta_regression_loss`; the
      ReID module is not trained) -- chapter 05's measure of what the localisation net can
      learn with a schedule;
    * ``stn_lr_mult``: the STN's learning-rate multiplier (1, as in the paper; a larger rate
      made the smoke STN collapse onto tiny patches early in training, see chapter 05);
    * ``strategy``: the partial-crop strategy (``"stnreid"``: remove 20-60 % from a random side);
    * ``crop_within``: what the crop removes a fraction of: ``"body"`` (default; the person's box,
      "remove 20-60 % of the body", the way the partial test sets are cut) or ``"frame"``
      (the whole image) -- see :class:`reidlib.data.loader.PartialCropDataset`;
    * ``neck_feat``, ``metric``, ``backbone_weights``: the baseline's; ``shortlist``,
      ``batch_pairs``: the default matcher.

    Recipes: :meth:`recipe` gives stage 1 with Table 2's Ep1 settings; :meth:`stage_recipe`
    any stage / setting.
    """

    name = "stnreid"

    @classmethod
    def recipe(cls, profile: str) -> TrainConfig:
        return cls.stage_recipe(profile, stage=1, setting="Ep1")

    @classmethod
    def stage_recipe(cls, profile: str, stage: int = 1, setting: str = "Ep1", **extra) -> TrainConfig:
        """The recipe of ``stage`` with Table 2's ``setting`` (``"Ep1"`` .. ``"Ep5"``) for the ReID module.

        Stage 1 is Ep1 in the paper, stage 2 is Ep5; ``extra`` keys override ``TrainConfig.extra``.
        """
        if setting not in CONFRONTATION_SETTINGS:
            raise ValueError(f"unknown setting {setting!r}: Table 2's settings are {', '.join(CONFRONTATION_SETTINGS)}")
        if stage not in (1, 2):
            raise ValueError(f"stage={stage!r}: STNReID trains in stage 1 or 2")
        s = CONFRONTATION_SETTINGS[setting]
        from reidlib.models.baseline import BaselineMethod

        # the ReID module is the strong baseline's network: same backbone, input size and last stride
        # (so that Merge Mode and the baseline-initialised settings load its weights)
        base = BaselineMethod.recipe(profile) if profile in ("smoke", "full") else None
        x = {"stage": stage, "mode": "pipeline", "setting": setting, "stn_weights": None, "reid_weights": None,
             "label_smooth": s["label_smooth"], "triplet": s["triplet"], "margin": 0.3, "stn_weight": 1.0,
             "strategy": "stnreid", "neck_feat": "after", "metric": "euclidean", "backbone_weights": None,
             "shortlist": None, "batch_pairs": 256, "stn_lr_mult": 1.0, "crop_within": "body",
             "stn_target": "features"}
        x.update(extra)
        if profile == "full":
            # Section 4 "Settings": ResNet-50, 256x128, batch 32 = 8 ids x 4, Adam, 2e-4 for 150 epochs
            # then 2e-5 for 150, weight decay 5e-4, flip + crop + generated partials.
            return TrainConfig(
                image_size=base.image_size, backbone=base.backbone, pretrained=s["pretrained"],
                last_stride=base.last_stride, epochs=300, batch_p=8, batch_k=4, optimizer="adam", lr=2e-4, weight_decay=5e-4,
                scheduler="step", milestones=(150,), gamma=0.1, warmup_epochs=0, warmup_factor=1.0,
                random_erasing=0.0, flip=0.5, pad=10, checkpoint_every=10, extra=x,
            )
        if profile == "smoke":
            # CPU seconds on SynthPeds smoke (~25 s per stage on 2 cores): the baseline's tiny ResNet,
            # 200 iterations (4 x 50) of 8 ids x 2 images, the rate / 10 for the last 50.  Enough for
            # the STN to beat the identity transform on held-out crops, far from converged (chapter 05).
            return TrainConfig(
                image_size=base.image_size, backbone=base.backbone, pretrained=s["pretrained"],
                last_stride=base.last_stride, epochs=4, batch_p=8, batch_k=2, optimizer="adam", lr=1e-3, weight_decay=5e-4,
                scheduler="step", milestones=(3,), gamma=0.1, warmup_epochs=0, warmup_factor=1.0,
                random_erasing=0.0, flip=0.5, pad=5, num_workers=0, checkpoint_every=2,
                max_iters_per_epoch=50, extra=x,
            )
        raise ValueError(f"unknown profile {profile!r}: STNReID has recipes 'smoke' and 'full'")

    def __init__(self, cfg: TrainConfig, num_classes: int):
        super().__init__(cfg, num_classes)
        from reidlib.losses import CrossEntropyLabelSmooth, TripletLoss

        x = cfg.extra
        self.stage = int(x.get("stage", 1))
        self.mode = x.get("mode", "pipeline")
        if self.stage not in (1, 2):
            raise ValueError(f"extra.stage={self.stage!r}: STNReID trains in stage 1 or 2")
        if self.mode not in MODES:
            raise ValueError(f"extra.mode={self.mode!r}: accepted modes are {', '.join(map(repr, MODES))}")
        if self.stage == 2 and self.mode == "merge":
            raise ValueError("Merge Mode trains nothing: build it with reidlib.models.stnreid.load_merge_mode("
                             "stage-1 STNReID run, trained ReID run); use mode='pipeline' to train stage 2")
        self.stn_target = x.get("stn_target", "features")
        if self.stn_target not in STN_TARGETS:
            raise ValueError(f"extra.stn_target={self.stn_target!r}: accepted targets are "
                             f"{', '.join(map(repr, STN_TARGETS))}")
        if self.stn_target == "oracle" and self.stage != 1:
            raise ValueError("extra.stn_target='oracle' trains an STN: it is a stage-1 setting (stage 2 freezes the STN)")
        if self.stage == 2 and not x.get("stn_weights"):
            raise ValueError("stage 2 needs extra.stn_weights: the stage-1 STNReID run (folder or model.safetensors) "
                             "whose STN is frozen")
        self.ce = CrossEntropyLabelSmooth(num_classes, epsilon=float(x.get("label_smooth", 0.0)))
        self.triplet = TripletLoss(margin=float(x.get("margin", 0.3))) if x.get("triplet", False) else None
        self.stn_weight = float(x.get("stn_weight", 1.0))

    def build_model(self) -> STNReID:
        from reidlib.models.baseline import Baseline

        c, x = self.cfg, self.cfg.extra
        skip = getattr(self, "skip_init_weights", False)  # set by load_run_model: the run's weights follow
        init = None if skip else x.get("reid_weights")
        reid = Baseline(
            self.num_classes, backbone=c.backbone, pretrained=bool(c.pretrained and not init and not skip),
            last_stride=c.last_stride,
            weights=x.get("backbone_weights"), neck_feat=x.get("neck_feat", "after"), metric=x.get("metric", "euclidean"),
        )
        if init:
            load_reid_init(reid, init)
        if self.stage == 2 and not skip:
            stn = load_stn(x["stn_weights"], c.image_size)
        else:
            stn = LocalizationNet(c.image_size)
        return STNReID(reid, stn=stn, image_size=c.image_size, freeze_stn=self.stage == 2,
                       shortlist=x.get("shortlist"), batch_pairs=int(x.get("batch_pairs", 256)),
                       metric=x.get("metric", "euclidean"))

    def train_dataset(self, dataset, pid2label: dict[int, int]):
        """Holistic images (flip, pad + crop) and a partial crop of each (``strategy``, cut from the
        body box or the frame: ``crop_within``), resized to the image size."""
        from reidlib.data.loader import PartialCropDataset
        from reidlib.data.transforms import build_geometric_transform, build_photometric_transform

        c = self.cfg
        return PartialCropDataset(
            dataset.train, dataset, strategy=c.extra.get("strategy", "stnreid"), size=c.image_size, p_partial=1.0,
            transform=build_photometric_transform(c.random_erasing),
            holistic_transform=build_geometric_transform(c.image_size, flip=c.flip, pad=c.pad),
            return_holistic=True, relabel=pid2label, crop_within=c.extra.get("crop_within", "frame"),
        )

    def param_groups(self, model: nn.Module) -> list[dict]:
        """Two groups: the ReID module (``lr_mult`` 1) and the STN (``extra.stn_lr_mult``, default 1;
        absent when the STN is frozen)."""
        from reidlib.engine.checkpoint import unwrap

        m = unwrap(model)
        groups = [{"params": [p for p in m.reid.parameters() if p.requires_grad], "lr_mult": 1.0}]
        stn = [p for p in m.stn.parameters() if p.requires_grad]
        if stn:
            groups.append({"params": stn, "lr_mult": float(self.cfg.extra.get("stn_lr_mult", 1.0))})
        return groups

    def loss(self, model: nn.Module, batch: dict, epoch: int):
        """Eq. 6 on the batch (or the oracle's theta regression); logs its terms and the IoU of
        the STN's box with the true crop box."""
        from reidlib.engine.checkpoint import unwrap
        from reidlib.losses.stnreid import stnreid_loss, theta_regression_loss

        size = batch["holistic"].shape[-2:]
        if self.stn_target == "oracle":  # not the paper: the STN alone, on the true theta
            if isinstance(model, nn.parallel.DistributedDataParallel):
                raise RuntimeError("extra.stn_target='oracle' trains the STN outside the model's forward: "
                                   "run it in one process (not under torchrun/DDP)")
            theta = unwrap(model).predict_theta(batch["image"], batch["holistic"])
            total = theta_regression_loss(theta, batch["theta"])
            terms = {"theta_mse": float(total.detach())}
        else:
            out = model(batch["holistic"], batch["image"])
            total, terms = stnreid_loss(out, batch["label"], self.ce, self.triplet, self.stn_weight)
            theta = out["theta"]
            terms["acc_p"] = float((out["logits_p"].argmax(1) == batch["label"]).float().mean())
        with torch.no_grad():
            pred = theta_to_box(theta.detach().float(), size)
            true = theta_to_box(batch["theta"].float(), size)
            terms["box_iou"] = float(box_iou_pairs(pred, true).mean())
        terms.pop("total", None)
        return total, terms
