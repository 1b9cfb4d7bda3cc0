"""Grad-CAM (reidlib.viz.attention) on tiny hand-made models."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reidlib.viz.attention import feature_similarity, grad_cam, overlay_cam


class Ident(nn.Module):
    def forward(self, x):
        return x


class OnePixelHead(nn.Module):
    """score = w . A[:, :, i0, j0]: only one spatial location of the map influences the score."""

    def __init__(self, c, i0, j0):
        super().__init__()
        self.body = Ident()
        self.w = nn.Parameter(torch.arange(1.0, c + 1) * torch.tensor([1.0, -1.0] * (c // 2)))
        self.i0, self.j0 = i0, j0

    def forward(self, x):
        a = self.body(x)
        return a[:, :, self.i0, self.j0] @ self.w


class GapLinear(nn.Module):
    """conv -> GAP -> linear (one row per 'class'): the CAM setting of Zhou et al. 2016."""

    def __init__(self, c_in=3, c=5, classes=4):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def test_one_pixel_head_exact_values():
    torch.manual_seed(0)
    n, c, h, w = 3, 4, 5, 3
    model = OnePixelHead(c, 2, 1)
    a = torch.randn(n, c, h, w)
    out = grad_cam(model, model.body, a, lambda s: s, relu=False)
    # dS/dA is w at (2, 1), zero elsewhere: alpha_k = w_k / (h w)
    alpha = model.w.detach() / (h * w)
    assert torch.allclose(out.weights, alpha.expand(n, c))
    expected = torch.einsum("c,nchw->nhw", alpha, a)
    assert torch.allclose(out.maps, expected, atol=1e-6)
    assert torch.allclose(out.scores, a[:, :, 2, 1] @ model.w.detach())
    # with ReLU: the positive part, exactly
    pos = grad_cam(model, model.body, a, lambda s: s).maps
    assert torch.equal(pos, expected.clamp_min(0))


def test_localised_activation_gives_a_map_at_that_location_only():
    # the feature map is non-zero at one location: so is the Grad-CAM map
    c, h, w = 2, 4, 4
    model = OnePixelHead(c, 1, 2)
    a = torch.zeros(1, c, h, w)
    a[0, 0, 1, 2] = 3.0  # w_0 = 1 > 0
    m = grad_cam(model, model.body, a, lambda s: s).maps[0]
    assert m[1, 2] == pytest.approx(3.0 / (h * w))
    m2 = m.clone()
    m2[1, 2] = 0
    assert torch.count_nonzero(m2) == 0


def test_gap_linear_equals_cam_and_is_nonnegative():
    torch.manual_seed(1)
    model = GapLinear()
    x = torch.randn(6, 3, 8, 4)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    out = grad_cam(model, model.features, x, lambda logits: logits.gather(1, labels[:, None])[:, 0])
    assert out.maps.shape == (6, 8, 4)
    assert (out.maps >= 0).all()
    with torch.no_grad():
        model.eval()
        a = model.features(x)
        cam = torch.einsum("nc,nchw->nhw", model.fc.weight[labels], a) / (8 * 4)  # CAM / hw
    assert torch.allclose(out.maps, cam.clamp_min(0), atol=1e-6)


def test_batched_equals_one_by_one_and_upsampled_shape():
    torch.manual_seed(2)
    model = GapLinear()
    x = torch.randn(5, 3, 8, 4)
    score = lambda logits: logits[:, 1]  # noqa: E731
    batch = grad_cam(model, model.features, x, score, size=(16, 8), normalize=True).maps
    assert batch.shape == (5, 16, 8)
    singles = torch.cat([grad_cam(model, model.features, x[i:i + 1], score, size=(16, 8), normalize=True).maps
                         for i in range(5)])
    assert torch.allclose(batch, singles, atol=1e-6)
    peaks = batch.flatten(1).amax(1)
    assert torch.all((peaks == 0) | torch.isclose(peaks, torch.ones(5)))
    assert (batch >= 0).all()


def test_side_effects_none_and_works_under_no_grad():
    torch.manual_seed(3)
    model = GapLinear()
    model.train()
    x = torch.randn(2, 3, 8, 4)
    with torch.no_grad():
        out = grad_cam(model, model.features, x, lambda z: z[:, 0])
    assert out.maps.shape == (2, 8, 4) and not out.maps.requires_grad
    assert model.training  # restored
    assert all(p.grad is None for p in model.parameters())
    assert len(model.features._forward_hooks) == 0
    # a second call is not disturbed by the first
    again = grad_cam(model, model.features, x, lambda z: z[:, 0])
    assert torch.allclose(out.maps, again.maps)


def test_feature_similarity_score_and_self_reference():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    x = torch.randn(3, 3, 8, 4)
    ref = torch.randn(3, 6)
    out = grad_cam(model, model[1], x, feature_similarity(ref))
    with torch.no_grad():
        f = model(x)
    assert torch.allclose(out.scores, F.cosine_similarity(f, ref, dim=1), atol=1e-6)
    # the similarity of an image to its own feature is at its maximum: zero gradient, zero map
    own = grad_cam(model, model[1], x, feature_similarity(f))
    assert own.maps.abs().max() < 1e-5
    # one reference for every image
    one = grad_cam(model, model[1], x, feature_similarity(ref[0]))
    assert torch.allclose(one.scores, F.cosine_similarity(f, ref[:1].expand(3, 6), dim=1), atol=1e-6)


def test_works_on_the_reid_baseline():
    from reidlib.models.baseline import Baseline

    torch.manual_seed(5)
    model = Baseline(num_classes=4, backbone="resnet10", pretrained=False)
    x = torch.randn(2, 3, 64, 32)
    ref = torch.randn(2, model.feat_dim)
    out = grad_cam(model, model.backbone, x, feature_similarity(ref), size=(64, 32))
    assert out.maps.shape == (2, 64, 32) and torch.isfinite(out.maps).all() and (out.maps >= 0).all()


def test_errors():
    model = GapLinear()
    x = torch.randn(2, 3, 8, 4)
    with pytest.raises(ValueError, match=r"one score per image, shape \(2,\)"):
        grad_cam(model, model.features, x, lambda z: z)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        grad_cam(model, model.features, x[0], lambda z: z[:, 0])
    with pytest.raises(RuntimeError, match="did not run"):
        grad_cam(model, nn.ReLU(), x, lambda z: z[:, 0])
    with pytest.raises(ValueError, match=r"\(N, C, h, w\) feature map"):
        grad_cam(model, model.fc, x, lambda z: z[:, 0])
    assert len(model.fc._forward_hooks) == 0  # removed after an error too
    with pytest.raises(ValueError, match="does not match"):
        feature_similarity(torch.randn(3, 4))(torch.randn(2, 4))


def test_overlay_cam():
    img = np.zeros((16, 8, 3), dtype=np.uint8)
    cam = torch.zeros(4, 2)
    cam[0, 0] = 2.0
    rgb = overlay_cam(img, cam, alpha=1.0)
    assert rgb.shape == (16, 8, 3) and rgb.dtype == np.float32
    assert 0.0 <= rgb.min() and rgb.max() <= 1.0
    # the hot corner is red-ish (jet at 1), the far corner blue-ish (jet at 0)
    assert rgb[0, 0, 0] > rgb[0, 0, 2] and rgb[-1, -1, 2] > rgb[-1, -1, 0]
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        overlay_cam(np.zeros((4, 4)), cam)
