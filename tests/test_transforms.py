"""reidlib.data.transforms: masks move with images, image-only photometrics, Pad/Resize test modes."""

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from reidlib.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageOnlyRandomErasing,
    PadToCanvas,
    build_test_transform,
    build_train_transform,
    denormalize,
)


def _pair(h=32, w=16):
    """An image whose colour encodes its position and a mask with the same encoding."""
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    img = np.stack([yy * 4, xx * 8, np.full_like(yy, 100)], -1).astype(np.uint8)
    mask = (yy // 8 * 2 + xx // 8 + 1).astype(np.uint8)  # 8 blocks, labels 1..8 (0 = padding)
    return img, mask


def test_train_transform_moves_mask_with_image():
    img, mask = _pair()
    t = build_train_transform((32, 16), flip=0.5, pad=4, random_erasing=0.0)
    for seed in range(12):
        torch.manual_seed(seed)
        out = t({"image": img, "mask": tv_tensors.Mask(torch.from_numpy(mask)), "pid": 3})
        x, m = out["image"], out["mask"]
        assert out["pid"] == 3
        assert x.dtype == torch.float32 and x.shape == (3, 32, 16)
        assert isinstance(m, tv_tensors.Mask) and m.dtype == torch.uint8 and m.shape == (32, 16)
        # recover the original (row, col) of every pixel from the colour and check the mask agrees
        raw = (denormalize(x) * 255).round()
        valid = m > 0
        rows = (raw[0] / 4).round().long()
        cols = (raw[1] / 8).round().long()
        expect = rows // 8 * 2 + cols // 8 + 1
        assert valid.sum() > 0
        assert torch.equal(expect[valid], m[valid].long())
        # padded pixels: mask 0 and image black (0 before normalisation)
        assert (raw[:, ~valid] == 0).all()


def test_flip_happens_and_mask_follows():
    img, mask = _pair()
    t = build_train_transform((32, 16), flip=1.0, pad=0, random_erasing=0.0)
    out = t(tv_tensors.Image(torch.from_numpy(img).permute(2, 0, 1)), tv_tensors.Mask(torch.from_numpy(mask)))
    x, m = out
    np.testing.assert_array_equal(m.numpy(), mask[:, ::-1])
    raw = (denormalize(x) * 255).round().numpy()
    np.testing.assert_allclose(raw[1], img[:, ::-1, 1], atol=1)


def test_random_erasing_image_only():
    img, mask = _pair()
    t = ImageOnlyRandomErasing(p=1.0, scale=(0.2, 0.3), value=0)
    x = tv_tensors.Image(torch.ones(3, 32, 16))
    m = tv_tensors.Mask(torch.from_numpy(mask))
    torch.manual_seed(0)
    xe, me = t(x, m)
    assert (xe == 0).any() and torch.equal(me, m)
    # the full train transform with erasing p=1 leaves the mask intact
    t = build_train_transform((32, 16), flip=0.0, pad=0, random_erasing=1.0)
    torch.manual_seed(1)
    out = t({"image": img, "mask": tv_tensors.Mask(torch.from_numpy(mask))})
    assert torch.equal(out["mask"], m)


def test_normalisation_constants():
    x = np.full((4, 2, 3), 255, np.uint8)
    out = build_test_transform((4, 2))(x)
    expect = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(out[:, 0, 0], expect)


def test_resize_mode():
    img = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    out = build_test_transform((16, 8), mode="resize")(img)
    assert out.shape == (3, 16, 8) and out.dtype == torch.float32


def test_pad_mode_top_crop_wide():
    # a 10x16 top crop onto a 32x16 canvas: scale min(32/10, 16/16) = 1, top-aligned, bottom padded
    img = np.full((10, 16, 3), 255, np.uint8)
    out = build_test_transform((32, 16), mode="pad")(img)
    assert out.shape == (3, 32, 16)
    white = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(out[:, :10], white[:, None, None].expand(3, 10, 16))
    assert (out[:, 10:] == 0).all()  # constant = 0 after normalisation (mean colour)


def test_pad_canvas_tall_crop_and_mask():
    # 40x5 left crop onto 32x16: scale min(32/40, 16/5) = 0.8 -> 32x4, centred horizontally
    img = tv_tensors.Image(torch.full((3, 40, 5), 200, dtype=torch.uint8))
    mask = tv_tensors.Mask(torch.full((40, 5), 3, dtype=torch.uint8))
    x, m = PadToCanvas((32, 16), anchor="top", fill=7, mask_fill=0)(img, mask)
    assert x.shape == (3, 32, 16) and m.shape == (32, 16)
    cols = torch.nonzero((m == 3).any(0)).flatten().tolist()
    assert cols == [6, 7, 8, 9]
    assert (x[:, :, :6] == 7).all() and (x[:, :, 10:] == 7).all()
    assert set(torch.unique(m).tolist()) == {0, 3}
    x2, m2 = PadToCanvas((32, 16), anchor="top-left")(img, mask)
    assert torch.nonzero((m2 == 3).any(0)).flatten().tolist() == [0, 1, 2, 3]
    x3, m3 = PadToCanvas((32, 16), anchor="bottom", upscale=False)(
        tv_tensors.Image(torch.zeros(3, 8, 8, dtype=torch.uint8)), tv_tensors.Mask(torch.ones(8, 8, dtype=torch.uint8)))
    rows = torch.nonzero((m3 == 1).any(1)).flatten().tolist()
    assert rows == list(range(24, 32))


def test_errors():
    with pytest.raises(ValueError, match="'stretch'.*'resize', 'pad'"):
        build_test_transform((32, 16), mode="stretch")
    with pytest.raises(ValueError, match="anchor='middle'"):
        PadToCanvas((32, 16), anchor="middle")
    with pytest.raises(ValueError, match=r"size=\(0, 16\)"):
        build_train_transform((0, 16))
