"""SynthPeds' version and its calibration block (every difficulty knob, in one place).

CALIBRATION: these values are calibrated ONCE on the global baseline (the lead tunes
them so that the baseline's Market-like numbers land in a realistic range) and then
frozen.  Changing any value changes the images: bump :data:`SYNTHPEDS_VERSION` with it,
so that ``(preset, seed, version)`` keeps naming exactly one set of bytes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: Bump whenever the renderer, the layouts or :data:`CALIBRATION` change the output.
SYNTHPEDS_VERSION = 1


@dataclass(frozen=True)
class Calibration:
    """Difficulty knobs.  Lengths are fractions of the image (or person) size unless noted.

    Identity space (how much of a person one region tells):
        palette_head, palette_upper, palette_lower, palette_carried: number of *region
            prototypes* per body region; an identity is a combination of one prototype per
            region (and a body shape), so every region alone is shared by many identities.
        palette_shape: number of body-shape prototypes (height/width).
        min_region_difference: two identities differ in at least this many of the four
            regions (head, upper, lower, carried).
        prototype_colour_jitter: std of the per-prototype colour offset (0-255 scale) around
            the named garment colours.
    Per image appearance:
        colour_noise: std of the per-image, per-material colour offset (0-255 scale).
        shading: strength of the cylindrical body shading (0 = flat colours).
        illumination: (low, high) of the camera gain; per-image gain varies by illum_jitter.
        white_balance: max per-channel gain deviation of a camera's white balance.
        noise_std: std of the additive pixel noise (0-255 scale).
        blur: (low, high) of the cameras' Gaussian blur radius, in pixels at 256x128.
        downscale: (low, high) of the cameras' resolution loss (downscale then upscale factor).
    Detector and pose:
        box_offset: std of the detector-box centre offset (fraction of image width / height).
        box_scale: (low, high) of the person height as a fraction of the image height.
        arm_swing, leg_swing: max swing angles in degrees (side views).
    Occlusion:
        occluder_prob: probability that a Market-like (train/query/gallery) image has an occluder.
        occluder_kinds: the occluder kinds and their relative weights.
    Supersampling:
        canvas_height: people are drawn on a canvas at least this tall and box-downsampled
            (anti-aliasing): 128x64 images render at 2x, 256x128 at 1x (where the cameras'
            blur and resolution loss already soften the edges).
    """

    palette_head: int = 18
    palette_upper: int = 28
    palette_lower: int = 18
    palette_carried: int = 10
    palette_shape: int = 6
    min_region_difference: int = 2
    prototype_colour_jitter: float = 14.0
    colour_noise: float = 6.0
    shading: float = 0.35
    illumination: tuple[float, float] = (0.75, 1.15)
    illum_jitter: float = 0.12
    white_balance: float = 0.10
    noise_std: float = 4.0
    blur: tuple[float, float] = (0.3, 1.0)
    downscale: tuple[float, float] = (1.0, 2.0)
    box_offset: float = 0.04
    box_scale: tuple[float, float] = (0.78, 0.97)
    arm_swing: float = 28.0
    leg_swing: float = 24.0
    occluder_prob: float = 0.12
    occluder_kinds: tuple[tuple[str, float], ...] = (("pole", 1.0), ("box", 1.0), ("person", 1.0), ("luggage", 1.0))
    canvas_height: int = 256

    def as_dict(self) -> dict:
        return asdict(self)


#: The calibration block (see :class:`Calibration`).  Calibrated once on the global
#: baseline (``tools/calibrate_synthpeds.py``; record in
#: ``results/calibration/synthpeds_v1.json``): the generator's first values gave the smoke
#: baseline a holistic Rank-1 of 74.0, just under the 75-90 target band, so the per-image
#: appearance noise was lowered once (colour noise 9 -> 6, illumination (0.65, 1.2) ->
#: (0.75, 1.15), white balance 0.14 -> 0.10, blur (0.3, 1.3) -> (0.3, 1.0), resolution loss
#: (1, 2.4) -> (1, 2), box offset 0.05 -> 0.04), giving 83.3.  Frozen since: change values
#: here only, and bump SYNTHPEDS_VERSION.
CALIBRATION = Calibration()
