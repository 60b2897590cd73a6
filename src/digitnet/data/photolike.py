"""Photo-like pictures of digits: ink on paper as a phone camera sees it, made up, seeded.

For measuring how well :func:`digitnet.data.images.prepare` reads photographs
(``benchmarks/photos.py``) and for its tests. Nothing is downloaded: the digits are
MNIST's own (:func:`mnist_ink`) or rendered with the font Pillow ships (:func:`font_ink`),
so the same seed gives the same pictures on any machine with the same Pillow.

How a digit becomes ink on paper (:func:`render`): the digit's ink coverage (0..1) is
scaled to a realistic size, 120 to 280 pixels tall in a 320 to 600 pixel picture (small,
40 to 90 pixels, and anywhere for ``off-centre``), its edges sharpened like a felt pen's
and blurred by about a pixel like a camera's lens; the ink is dark grey-blue (25 to 70
grey levels) laid over the paper by its coverage. Then, by condition: the paper's colour,
ruled lines, the table around the paper, a light gradient, a shadow, sensor noise, JPEG
compression. :data:`CONDITIONS` lists them; ``all combined`` has every one at once.
"""

from __future__ import annotations

import io

import numpy as np

CONDITIONS = (
    "clean",  # dark ink on white paper, evenly lit: a scan
    "grey paper",  # the paper 130-190 grey levels, as a phone's auto-exposure makes it
    "tinted paper",  # yellowish, bluish or pinkish paper
    "uneven light",  # a brightness gradient across the picture, 45% to 105%
    "shadow",  # a soft-edged shadow (55% light) over part of the picture and the digit
    "sensor noise",  # Gaussian noise, standard deviation 8-14 grey levels per channel
    "jpeg",  # saved as JPEG at quality 30
    "off-centre",  # a small digit (40-90 px) anywhere in the frame
    "lined paper",  # ruled lines every 24-36 px, crossing the digit
    "squared paper",  # a grid every 18-30 px
    "table",  # the paper on a darker table, which shows on one or two sides
    "all combined",  # grey or tinted paper, lines, table, light, shadow, noise, JPEG, off-centre
)


def mnist_ink(image: np.ndarray, height: int) -> np.ndarray:
    """An MNIST digit (28, 28) 0..255, white on black -> its ink coverage, (height, height) in
    0..1, with a felt pen's edge (the upscaled anti-aliasing sharpened)."""
    from PIL import Image

    big = Image.fromarray(np.asarray(image, dtype=np.uint8)).resize((height, height), Image.Resampling.BICUBIC)
    a = np.asarray(big, dtype=np.float32) / 255.0
    return np.clip((a - 0.25) / 0.45, 0, 1)


def font_ink(digit: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A digit in the font Pillow ships, random weight, slant and tilt -> ink coverage, 0..1,
    about ``height`` pixels tall (a bit more room for the tilt)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=height)
    weight = int(rng.integers(0, max(1, height // 20) + 1))
    canvas = Image.new("L", (2 * height, 2 * height), 0)
    ImageDraw.Draw(canvas).text((height // 2, height // 4), str(digit), fill=255, font=font,
                                stroke_width=weight, stroke_fill=255)
    slant = float(rng.uniform(-0.25, 0.25))
    canvas = canvas.transform(canvas.size, Image.Transform.AFFINE, (1, slant, -slant * height, 0, 1, 0),
                              resample=Image.Resampling.BILINEAR)
    canvas = canvas.rotate(float(rng.uniform(-10, 10)), resample=Image.Resampling.BILINEAR)
    a = np.asarray(canvas, dtype=np.float32) / 255.0
    rows, cols = np.nonzero(a > 0.05)
    return a[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of an (h, w) float image, edges replicated."""
    r = max(1, int(np.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    h, w = a.shape
    p = np.pad(a.astype(np.float32), ((0, 0), (r, r)), mode="edge")
    a = sum(k[i] * p[:, i : i + w] for i in range(2 * r + 1))
    p = np.pad(a, ((r, r), (0, 0)), mode="edge")
    return sum(k[i] * p[i : i + h] for i in range(2 * r + 1)).astype(np.float32)


def _scale_to(a: np.ndarray, height: int) -> np.ndarray:
    from PIL import Image

    h, w = a.shape
    size = (max(1, round(w * height / h)), height)
    return np.clip(np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize(size, Image.Resampling.BILINEAR),
                              dtype=np.float32), 0, 1)


def render(ink: np.ndarray, condition: str, rng: np.random.Generator,
           size: tuple[int, int] | None = None) -> np.ndarray:
    """Ink coverage (h, w) in 0..1 -> a photo-like RGB picture (H, W, 3) uint8 of it under
    ``condition`` (one of :data:`CONDITIONS`); ``size`` (H, W) is random, 320 to 600 pixels
    a side, unless given. JPEG compression is not applied here: see :func:`photo`."""
    if condition not in CONDITIONS:
        raise ValueError(f"Unknown condition {condition!r}; choose from {', '.join(CONDITIONS)}.")
    every = condition == "all combined"
    H, W = int(rng.integers(320, 601)), int(rng.integers(320, 601))
    if size is not None:
        H, W = size
    small = condition == "off-centre" or every
    height = int(rng.integers(40, 91)) if small else int(rng.integers(120, min(281, int(0.75 * min(H, W)))))
    a = _blur(_scale_to(ink, height), 0.8)
    h, w = a.shape
    if w > 0.9 * W:
        a = _scale_to(a, int(height * 0.9 * W / w))
        h, w = a.shape
    if small:
        margin = int(0.12 * min(H, W))  # room for the table around the paper
        top, left = int(rng.integers(margin, H - h - margin)), int(rng.integers(margin, W - w - margin))
    else:
        top = (H - h) // 2 + int(rng.integers(-(H - h) // 6, (H - h) // 6 + 1))
        left = (W - w) // 2 + int(rng.integers(-(W - w) // 6, (W - w) // 6 + 1))
    cover = np.zeros((H, W), np.float32)
    cover[top : top + h, left : left + w] = a

    # The paper.
    if condition == "grey paper" or (every and rng.random() < 0.5):
        paper = np.full(3, rng.uniform(130, 190))
    elif condition == "tinted paper" or every:
        tints = [(235, 222, 170), (200, 215, 240), (240, 205, 215), (215, 235, 205)]
        paper = np.array(tints[int(rng.integers(len(tints)))], float) * rng.uniform(0.75, 1.0)
    else:
        paper = np.full(3, rng.uniform(235, 250))
    img = np.broadcast_to(paper, (H, W, 3)).astype(np.float32).copy()

    # Ruled lines and grids: light blue-grey, 1-2 pixels, under the ink.
    rows = np.arange(H)[:, None]
    cols = np.arange(W)[None, :]
    lines = np.zeros((H, W), np.float32)
    if condition in ("lined paper", "squared paper") or every:
        step = int(rng.integers(24, 37)) if condition != "squared paper" else int(rng.integers(18, 31))
        thick = int(rng.integers(1, 3))
        lines = np.maximum(lines, ((rows + int(rng.integers(step))) % step < thick).astype(np.float32))
        if condition == "squared paper":
            lines = np.maximum(lines, ((cols + int(rng.integers(step))) % step < thick).astype(np.float32))
        lines = _blur(lines, 0.6) * rng.uniform(0.35, 0.6)
        line_colour = np.array([120, 150, 200], np.float32)
        img = img * (1 - lines[..., None]) + line_colour * lines[..., None]

    ink_colour = np.array([rng.uniform(20, 60), rng.uniform(20, 60), rng.uniform(30, 75)], np.float32)
    img = img * (1 - cover[..., None]) + ink_colour * cover[..., None]

    # The table: a darker, brownish surface on one or two sides, beyond the paper's edge.
    if condition == "table" or every:
        table = np.array([rng.uniform(60, 110), rng.uniform(45, 85), rng.uniform(30, 60)], np.float32)
        outside = np.zeros((H, W), bool)
        sides = rng.choice(4, size=int(rng.integers(1, 3)), replace=False)
        for s in sides:
            d = int(rng.uniform(0.04, 0.1) * (H if s < 2 else W))
            if s == 0:
                outside[:d] = True
            elif s == 1:
                outside[H - d :] = True
            elif s == 2:
                outside[:, :d] = True
            else:
                outside[:, W - d :] = True
        img[outside] = table

    # Light: a gradient in a random direction, then a soft-edged shadow over a half-plane.
    light = np.ones((H, W), np.float32)
    if condition == "uneven light" or every:
        angle = rng.uniform(0, 2 * np.pi)
        t = (np.cos(angle) * (cols / W - 0.5) + np.sin(angle) * (rows / H - 0.5)) + 0.5
        light = light * (0.45 + 0.6 * np.clip(t, 0, 1))
    if condition == "shadow" or every:
        angle = rng.uniform(0, 2 * np.pi)
        d = np.cos(angle) * (cols - W / 2) + np.sin(angle) * (rows - H / 2) - rng.uniform(-0.2, 0.2) * min(H, W)
        edge = 1 / (1 + np.exp(-d / rng.uniform(3, 12)))
        light = light * (1 - 0.45 * edge)
    img = img * light[..., None]
    for c in range(3):  # the camera's lens
        img[..., c] = _blur(img[..., c], 0.7)
    if condition == "sensor noise" or every:
        img = img + rng.normal(0, rng.uniform(8, 14), img.shape).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def photo(ink: np.ndarray, condition: str, rng: np.random.Generator, size: tuple[int, int] | None = None) -> bytes:
    """:func:`render`, saved as a file's bytes: JPEG at quality 30 for ``jpeg`` and ``all
    combined``, PNG otherwise."""
    from PIL import Image

    rgb = render(ink, condition, rng, size)
    buf = io.BytesIO()
    if condition in ("jpeg", "all combined"):
        Image.fromarray(rgb).save(buf, format="JPEG", quality=30)
    else:
        Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def photo_set(images: np.ndarray, labels: np.ndarray, n_mnist: int, n_font: int, condition: str,
              seed: int = 0) -> tuple[list[bytes], np.ndarray]:
    """``n_mnist`` MNIST digits (the first of ``images``) and ``n_font`` rendered ones (digits
    0..9 in turn) as photo-like files under one condition: (files, labels)."""
    rng = np.random.default_rng([seed, CONDITIONS.index(condition)])
    files, ys = [], []
    for i in range(n_mnist):
        height = int(rng.integers(120, 281))
        files.append(photo(mnist_ink(images[i], height), condition, rng))
        ys.append(int(labels[i]))
    for i in range(n_font):
        d = i % 10
        files.append(photo(font_ink(d, int(rng.integers(120, 281)), rng), condition, rng))
        ys.append(d)
    return files, np.array(ys, dtype=np.int64)
