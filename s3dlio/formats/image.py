"""JPEG and PNG: RGB images of generated pixels, sized to about the requested bytes (needs Pillow)."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ._base import FormatError

if TYPE_CHECKING:
    from collections.abc import Buffer

    from ..datagen import DataGenerator

__all__ = ["make_jpeg", "make_png", "read_image"]

_TOLERANCE = 0.05  # re-encode once when the first guess misses the size by more than this
_JPEG_BYTES_PER_SAMPLE = 0.3  # measured: quality-90 JPEG of random RGB noise


def _pil() -> Any:
    """Pillow's Image module, or an ImportError that says how to get it."""
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError("JPEG and PNG objects need Pillow: pip install pillow (or 's3dlio[all]')") from exc
    return Image


def _encode(pixels: int, generator: DataGenerator, fmt: str, options: dict[str, Any]) -> bytes:
    """An RGB image of about ``pixels`` pixels (near-square) in ``fmt``."""
    height = max(1, math.isqrt(max(1, pixels)))
    width = max(1, pixels // height)
    data = np.frombuffer(generator.object(height * width * 3), dtype=np.uint8).reshape(height, width, 3)
    out = io.BytesIO()
    _pil().fromarray(data, "RGB").save(out, fmt, **options)
    return out.getvalue()


def _sized(
    size: int, generator: DataGenerator, fmt: str, bytes_per_sample: float, options: dict[str, Any]
) -> bytes:
    """Encode at a guessed pixel count, then once more scaled by how far the guess missed."""
    pixels = max(1, round(size / bytes_per_sample / 3))
    encoded = _encode(pixels, generator, fmt, options)
    if size > 0 and abs(len(encoded) - size) > _TOLERANCE * size:
        pixels = max(1, round(pixels * size / len(encoded)))
        encoded = _encode(pixels, generator, fmt, options)
    return encoded


def make_jpeg(size: int, generator: DataGenerator, quality: int = 90) -> bytes:
    """A JPEG (RGB) of about ``size`` bytes; tiny sizes still give a 1x1 image (~700 bytes)."""
    return _sized(size, generator, "JPEG", _JPEG_BYTES_PER_SAMPLE, {"quality": quality})


def make_png(size: int, generator: DataGenerator) -> bytes:
    """A PNG (RGB) of about ``size`` bytes: stored when the data is incompressible, deflated otherwise."""
    level = 0 if generator.compress == 1 else 1  # deflating random pixels costs 10x and saves nothing
    return _sized(size, generator, "PNG", 1 / generator.compress, {"compress_level": level})


def read_image(buffer: Buffer) -> np.ndarray:
    """Pixels of a JPEG or PNG (any format Pillow reads) as an (height, width, channels) uint8 array."""
    image_module = _pil()
    try:
        with image_module.open(io.BytesIO(buffer)) as image:
            return np.asarray(image)
    except (OSError, SyntaxError) as exc:  # PIL raises UnidentifiedImageError (an OSError) and SyntaxError
        raise FormatError(f"not an image Pillow can read: {exc}") from exc
