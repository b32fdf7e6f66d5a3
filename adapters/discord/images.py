"""Images over the channel's upload limit: re-encoded with Pillow to fit (WebP, then JPEG, at
the same size first, then scaled down), else ``None`` (the notifier links the image)."""

from __future__ import annotations

import asyncio
import io

from PIL import Image

DEFAULT_LIMIT = 10 * 1024 * 1024
#: room for the multipart envelope around the file
MARGIN = 16 * 1024


def _encode(image: Image.Image, fmt: str, quality: int) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    image.save(out, format=fmt, quality=quality)
    return out.getvalue()


def _fit(data: bytes, limit: int) -> tuple[bytes, str] | None:
    budget = limit - min(MARGIN, limit // 20)
    with Image.open(io.BytesIO(data)) as opened:
        image = opened.copy()
    scale = 1.0
    while scale >= 0.1:
        frame = image
        if scale < 1.0:
            size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
            frame = image.resize(size, Image.Resampling.LANCZOS)
        for fmt, ext, quality in (("WEBP", "webp", 90), ("JPEG", "jpg", 85), ("WEBP", "webp", 70)):
            encoded = _encode(frame, fmt, quality)
            if len(encoded) <= budget:
                return encoded, ext
        scale *= 0.75
    return None


async def fit(data: bytes, limit: int) -> tuple[bytes, str] | None:
    """``(bytes, extension)`` under ``limit``, or None when no encoding fits."""
    return await asyncio.to_thread(_fit, data, limit)
