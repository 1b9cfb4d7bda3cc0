"""STNReID: localisation net (Table 1), the Eq. 1-2 sampler, Eq. 5-6, pairwise matching, two stages."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reidlib.losses.stnreid import stn_loss, stnreid_loss
from reidlib.models.stnreid import (
    LocalizationNet,
    affine_sample,
    box_iou_pairs,
    theta_to_box,
)


# ---------------------------------------------------------------------------------
# localisation net
# ---------------------------------------------------------------------------------
def test_localization_net_table1_shapes_256x128():
    net = LocalizationNet((256, 128))
    x = torch.randn(2, 6, 256, 128)
    shapes = []
    for layer in net.features:
        x = layer(x)
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            shapes.append(tuple(x.shape[1:]))
    # Table 1: Conv1 128x64x16, MaxPool 64x32x16, Conv2 32x16x32, MaxPool 16x8x32 (C, H, W here)
    assert shapes == [(16, 128, 64), (16, 64, 32), (32, 32, 16), (32, 16, 8)]
    assert net.flat_dim == 4096
    fcs = [m for m in net.regressor if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in fcs] == [(4096, 512), (512, 128), (128, 32), (32, 6)]
    # ReLU after FC1-3, none after FC4
    assert isinstance(net.regressor[-1], nn.Linear)
    assert sum(isinstance(m, nn.ReLU) for m in net.regressor) == 3
    theta = net(torch.randn(2, 3, 256, 128), torch.randn(2, 3, 256, 128))
    assert theta.shape == (2, 2, 3)


def test_localization_net_parameter_count_256x128():
    net = LocalizationNet((256, 128))
    conv1 = 7 * 7 * 6 * 16  # no bias: BatchNorm follows
    bn1 = 2 * 16
    conv2 = 3 * 3 * 16 * 32
    bn2 = 2 * 32
    fc1 = 4096 * 512 + 512
    fc2 = 512 * 128 + 128
    fc3 = 128 * 32 + 32
    fc4 = 32 * 6 + 6
    expected = conv1 + bn1 + conv2 + bn2 + fc1 + fc2 + fc3 + fc4
    assert expected == 2_177_062
    assert sum(p.numel() for p in net.parameters()) == expected


def test_localization_net_scales_to_smoke_size():
    net = LocalizationNet((128, 64))
    assert net.flat_dim == 32 * 8 * 4
    assert net(torch.randn(3, 3, 128, 64), torch.randn(3, 3, 128, 64)).shape == (3, 2, 3)


def test_localization_net_identity_init():
    torch.manual_seed(0)
    net = LocalizationNet((64, 32))
    theta = net(torch.randn(4, 3, 64, 32), torch.rand(4, 3, 64, 32))
    ident = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(4, 2, 3)
    assert torch.equal(theta, ident)
    assert torch.count_nonzero(net.regressor[-1].weight) == 0


def test_localization_net_bad_input():
    net = LocalizationNet((64, 32))
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 3, 64, 32\)"):
        net(torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="same shape"):
        net(torch.randn(1, 3, 64, 32), torch.randn(2, 3, 64, 32))


# ---------------------------------------------------------------------------------
# Eq. 1-2 sampler and boxes
# ---------------------------------------------------------------------------------
def test_identity_theta_warp_reproduces_input():
    torch.manual_seed(0)
    img = torch.rand(2, 3, 16, 8)
    theta = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(2, 2, 3)
    out = affine_sample(img, theta)
    torch.testing.assert_close(out, img, atol=1e-6, rtol=0)


def test_warp_with_crop_theta_reproduces_crop():
    """partial_crop's theta (crop -> holistic) sampled at native size gives back the crop."""
    from reidlib.data.partial import partial_crop

    rng = np.random.default_rng(0)
    img = torch.rand(3, 32, 16)
    pc = partial_crop(img, spec="stnreid", rng=rng, crop_box=(0, 8, 16, 32))
    theta = torch.from_numpy(pc.theta)[None]
    out = affine_sample(img[None], theta, size=pc.image.shape[-2:])
    torch.testing.assert_close(out[0], pc.image, atol=1e-5, rtol=0)
    box = theta_to_box(theta, (32, 16))[0]
    torch.testing.assert_close(box, torch.tensor([0.0, 8.0, 16.0, 32.0]))


def test_theta_to_box_and_iou():
    theta = torch.tensor([[[0.5, 0.0, -0.5], [0.0, 1.0, 0.0]]])  # left half
    box = theta_to_box(theta, (20, 10))
    torch.testing.assert_close(box, torch.tensor([[0.0, 0.0, 5.0, 20.0]]))
    iou = box_iou_pairs(box, torch.tensor([[0.0, 0.0, 10.0, 20.0]]))
    torch.testing.assert_close(iou, torch.tensor([0.5]))
    assert box_iou_pairs(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([[2.0, 2, 3, 3]])).item() == 0.0


# ---------------------------------------------------------------------------------
# Eq. 5-6
# ---------------------------------------------------------------------------------
def test_stn_loss_is_squared_l2_mean():
    fp = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    fa = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    # (1 + 4 + 9 + 16) / 2
    assert stn_loss(fp, fa).item() == pytest.approx(15.0)
    with pytest.raises(ValueError, match="same shape"):
        stn_loss(fp, fa[:, :1])


def test_stnreid_loss_equals_hand_written_combination():
    torch.manual_seed(0)
    n, c, d = 6, 3, 5
    out = {f"{a}_{k}": torch.randn(n, c if a == "logits" else d) for k in "hpa" for a in ("logits", "feat")}
    y = torch.tensor([0, 0, 1, 1, 2, 2])

    def tri(f, labels):  # a simple margin ranking stand-in with a tuple return
        dist = torch.cdist(f, f)
        same = labels[:, None] == labels[None]
        ap = (dist * same).amax(1)
        an = torch.where(same, torch.full_like(dist, 1e9), dist).amin(1)
        return F.relu(ap - an + 0.3).mean(), dist

    total, terms = stnreid_loss(out, y, F.cross_entropy, tri)
    ref = 0.0
    for k in "hpa":
        ref = ref + F.cross_entropy(out[f"logits_{k}"], y) + tri(out[f"feat_{k}"], y)[0]
    ref = ref + ((out["feat_p"] - out["feat_a"]) ** 2).sum(1).mean()
    torch.testing.assert_close(total, ref)
    assert terms["stn"] == pytest.approx(float(((out["feat_p"] - out["feat_a"]) ** 2).sum(1).mean()))
    # ID only (Table 2's Ep1)
    total_id, terms_id = stnreid_loss(out, y, F.cross_entropy)
    ref_id = sum(F.cross_entropy(out[f"logits_{k}"], y) for k in "hpa") + ((out["feat_p"] - out["feat_a"]) ** 2).sum(1).mean()
    torch.testing.assert_close(total_id, ref_id)
    assert "tri_h" not in terms_id
    with pytest.raises(KeyError, match="feat_a"):
        stnreid_loss({k: v for k, v in out.items() if k != "feat_a"}, y, F.cross_entropy)
