"""Segmentation overlays rendered on a copy of an image: colour classes, blur, replace, cut-out.

All images are BGR uint8 (H, W, 3) in source pixels; masks are vision_app.types.Mask at the same size.
Blending uses a per-pixel alpha made from the mask's foreground probability: pixels whose probability
is above `threshold + softness/2` get alpha exactly 1 (kept bit-for-bit), those below
`threshold - softness/2` alpha 0, with a linear ramp between (a soft edge without a halo).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from vision_app.errors import ConfigError
from vision_app.models import VOC21
from vision_app.types import Mask

MODES = ("color", "blur", "replace", "cutout")
GREEN_SCREEN_BGR = (64, 177, 0)  # "replace" with no background image set
CHECKER_BGR = ((200, 200, 200), (150, 150, 150))  # "cutout": the usual transparency checkerboard


def voc_palette(n: int = 256) -> NDArray[np.uint8]:
    """The standard PASCAL VOC colour map as (n, 3) uint8 BGR (class 15, person, is (128, 128, 192))."""
    pal = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (b, g, r)
    return pal


def class_colors(class_names: tuple[str, ...]) -> NDArray[np.uint8]:
    """(256, 3) uint8 BGR lookup table: a class known to VOC keeps its VOC colour (selfie's 'person'
    looks the same as DeepLab's); others take the palette entry of their index."""
    pal = voc_palette()
    lut = pal.copy()
    for i, name in enumerate(class_names):
        lut[i] = pal[VOC21.index(name)] if name in VOC21 else pal[i]
    return lut


def soft_alpha(probs: NDArray[np.float32], threshold: float, softness: float) -> NDArray[np.float32]:
    """(H, W) foreground probability → (H, W) float32 alpha in [0, 1] (see the module docstring)."""
    if softness <= 0.0:
        return (probs > threshold).astype(np.float32)
    lo = threshold - softness / 2.0
    alpha = (probs - np.float32(lo)) * np.float32(1.0 / softness)
    return np.clip(alpha, 0.0, 1.0, out=alpha)


def blend(fg: NDArray[np.uint8], bg: NDArray[np.uint8], alpha: NDArray[np.float32]) -> NDArray[np.uint8]:
    """fg·alpha + bg·(1 − alpha) per pixel; where alpha is 1 the result equals fg exactly."""
    return cv2.blendLinear(fg, bg, alpha, 1.0 - alpha)  # type: ignore[return-value]


def fast_blur(img: NDArray[np.uint8], sigma_px: float) -> NDArray[np.uint8]:
    """A Gaussian-looking blur of large sigma at low cost: downscale, blur a little, upscale."""
    h, w = img.shape[:2]
    f = max(1, int(sigma_px // 3))
    small = cv2.resize(img, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), max(sigma_px / f, 0.5))
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)  # type: ignore[return-value]


def checkerboard(h: int, w: int, cell: int = 16) -> NDArray[np.uint8]:
    yy, xx = np.ogrid[:h, :w]
    odd = ((yy // cell + xx // cell) % 2).astype(bool)
    out = np.empty((h, w, 3), np.uint8)
    out[~odd] = CHECKER_BGR[0]
    out[odd] = CHECKER_BGR[1]
    return out


def load_background(path: str) -> NDArray[np.uint8] | None:
    """The replacement background (BGR uint8) or None for the plain green screen."""
    if not path:
        return None
    p = Path(path).expanduser()
    img = cv2.imread(str(p), cv2.IMREAD_COLOR) if p.is_file() else None
    if img is None:
        raise ConfigError(f"segment.background {path!r} is not a readable image; give a .jpg/.png path "
                          f"or \"\" for a plain green background")
    return img  # type: ignore[return-value]


def cover(img: NDArray[np.uint8], h: int, w: int) -> NDArray[np.uint8]:
    """Scale img to cover (h, w) keeping its aspect ratio, then centre-crop to exactly (h, w)."""
    ih, iw = img.shape[:2]
    s = max(h / ih, w / iw)
    nh, nw = max(h, round(ih * s)), max(w, round(iw * s))
    big = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    y, x = (nh - h) // 2, (nw - w) // 2
    return np.ascontiguousarray(big[y:y + h, x:x + w])


@dataclass
class LegendEntry:
    name: str
    color_bgr: tuple[int, int, int]
    share: float


def label_shares(labels: NDArray[np.uint8]) -> NDArray[np.float64]:
    """(256,) share of pixels per label value of a uint8 label image (cv2.calcHist: ~5× np.bincount)."""
    hist = cv2.calcHist([labels], [0], None, [256], [0, 256]).ravel().astype(np.float64)
    return hist / max(labels.size, 1)


def legend_entries(mask: Mask, lut: NDArray[np.uint8]) -> list[LegendEntry]:
    """Classes covering at least 0.1 % of the mask (background, index 0, excluded), largest first."""
    shares = label_shares(mask.labels)
    out = [LegendEntry(name, tuple(int(v) for v in lut[i]), float(shares[i]))  # type: ignore[arg-type]
           for i, name in enumerate(mask.class_names) if i > 0 and shares[i] >= 0.001]
    return sorted(out, key=lambda e: -e.share)


def draw_legend(img: NDArray[np.uint8], entries: list[LegendEntry]) -> None:
    """Swatch + name + share per class in the bottom-left corner (away from the box labels that
    draw.py puts above boxes), drawn in place on img."""
    if not entries:
        return
    h, w = img.shape[:2]
    scale = max(0.4, min(h, w) / 900)
    lines = [f"{e.name} {100 * e.share:.0f}%" if e.share >= 0.01 else f"{e.name} <1%" for e in entries]
    th = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][1]
    row = th + 8
    tw = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] for t in lines)
    x0, y0 = 4, max(0, h - row * len(lines) - 8)
    box = img[y0:y0 + row * len(lines) + 4, x0:min(w, x0 + tw + row + 10)]
    box[:] = box // 2  # darken behind the text so it reads on any image
    for i, (e, text) in enumerate(zip(entries, lines)):
        y = y0 + 4 + i * row
        cv2.rectangle(img, (x0 + 4, y), (x0 + 4 + th, y + th), e.color_bgr, -1)
        cv2.putText(img, text, (x0 + th + 10, y + th), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)


class OverlayRenderer:
    """Renders one overlay mode; holds what can be reused across frames (colour table, background).

    mode: color | blur | replace | cutout. opacity: colour overlay strength 0..1. threshold/softness:
    see soft_alpha. blur_sigma: background blur as a fraction of the frame's short side.
    background: replacement image (BGR uint8, any size) or None for a green screen.
    """

    def __init__(self, mode: str, class_names: tuple[str, ...], *, opacity: float, threshold: float,
                 softness: float, blur_sigma: float, background: NDArray[np.uint8] | None,
                 legend: bool) -> None:
        if mode not in MODES:
            raise ConfigError(f"segment.overlay must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.lut = class_colors(class_names)
        self.opacity = float(opacity)
        self.threshold, self.softness = float(threshold), float(softness)
        self.blur_sigma = float(blur_sigma)
        self.background = background
        self.legend = legend
        self._fill_cache: dict[tuple[str, int, int], NDArray[np.uint8]] = {}  # one entry: the last size

    def fork(self) -> "OverlayRenderer":
        """The same settings with a cache of its own (another stream's finish step, on another thread)."""
        twin = copy.copy(self)
        twin._fill_cache = {}
        return twin

    def alpha(self, mask: Mask) -> NDArray[np.float32]:
        """Foreground alpha (H, W) float32 from the mask's probabilities (or its labels when it has none)."""
        if mask.probs is None:
            return (mask.labels > 0).astype(np.float32)
        return soft_alpha(mask.probs, self.threshold, self.softness)

    def _fill(self, h: int, w: int) -> NDArray[np.uint8]:
        """The replace/cutout background at (h, w), built once per frame size."""
        fill = self._fill_cache.get(("fill", h, w))
        if fill is None:
            if self.mode == "cutout":
                fill = checkerboard(h, w)
            elif self.background is not None:
                fill = cover(self.background, h, w)
            else:
                fill = np.full((h, w, 3), GREEN_SCREEN_BGR, np.uint8)
            self._fill_cache = {("fill", h, w): fill}
        return fill

    def _solid(self, h: int, w: int) -> NDArray[np.uint8]:
        """An (h, w, 3) image of class 1's colour (binary colour overlay), built once per frame size."""
        key = ("solid", h, w)
        if key not in self._fill_cache:
            self._fill_cache = {key: np.full((h, w, 3), self.lut[1], np.uint8)}
        return self._fill_cache[key]

    def render(self, img: NDArray[np.uint8], mask: Mask) -> tuple[NDArray[np.uint8], list[LegendEntry]]:
        """A new image with the overlay (img is not modified) and the legend entries shown."""
        if img.shape[:2] != mask.labels.shape:
            raise ValueError(f"overlay: image {img.shape[:2]} and mask {mask.labels.shape} differ in size")
        h, w = img.shape[:2]
        legend: list[LegendEntry] = []
        if self.mode == "color":
            if mask.probs is not None and len(mask.class_names) == 2:  # binary: soft edge from the prob
                weight = self.alpha(mask) * np.float32(self.opacity)
                colour = self._solid(h, w)
            else:
                # opacity where a class, 0 for background (numpy, not cv2.compare/multiply with a scalar:
                # whether cv2's stubs accept a scalar there changes between opencv-python releases)
                weight = (mask.labels > 0).astype(np.float32) * np.float32(self.opacity)
                colour = cv2.LUT(  # type: ignore[assignment]
                    cv2.cvtColor(mask.labels, cv2.COLOR_GRAY2BGR), self.lut.reshape(256, 1, 3))
            out = blend(colour, img, weight)
            legend = legend_entries(mask, self.lut)
            if self.legend:
                draw_legend(out, legend)
            return out, legend
        alpha = self.alpha(mask)
        if self.mode == "blur":
            bg = fast_blur(img, self.blur_sigma * min(h, w))
        else:
            bg = self._fill(h, w)
        return blend(img, bg, alpha), legend
