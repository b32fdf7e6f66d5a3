"""Draw a cheap but real PNG for a finished task: the brief written on a colour of its own.

Pure and blocking (Pillow): call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
from collections.abc import Mapping
from types import MappingProxyType

from PIL import Image, ImageDraw, ImageFont

#: Long side in pixels per (core, lower-case) resolution; kept small so rendering is cheap.
LONG_SIDE: Mapping[str, int] = MappingProxyType({"0.5k": 512, "1k": 512, "2k": 768, "4k": 1024})
_DEFAULT_LONG_SIDE = 768

_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def image_size(aspect_ratio: str, resolution: str) -> tuple[int, int]:
    """Width and height for ``aspect_ratio`` ("W:H") with the long side set by resolution."""
    w_text, _, h_text = aspect_ratio.partition(":")
    rw, rh = int(w_text), int(h_text)
    long_side = LONG_SIDE.get(resolution, _DEFAULT_LONG_SIDE)
    if rw >= rh:
        return long_side, max(1, round(long_side * rh / rw))
    return max(1, round(long_side * rw / rh)), long_side


def _palette(brief: str) -> tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, ...]]:
    digest = hashlib.sha256(brief.encode("utf-8")).digest()
    hue = digest[0] / 255.0

    def rgb(h: float, lightness: float, saturation: float) -> tuple[int, int, int]:
        r, g, b = colorsys.hls_to_rgb(h % 1.0, lightness, saturation)
        return round(r * 255), round(g * 255), round(b * 255)

    background = rgb(hue, 0.84, 0.55)
    accent = rgb(hue + 0.08, 0.70, 0.50)
    return background, accent, tuple(digest[1:9])


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: _Font, max_width: float) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if draw.textlength(candidate, font=font) <= max_width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = ""
        # A word wider than the line is cut into pieces that fit.
        piece = ""
        for char in word:
            if piece and draw.textlength(piece + char, font=font) > max_width:
                lines.append(piece)
                piece = ""
            piece += char
        current = piece
    if current:
        lines.append(current)
    return lines


def render_png(*, brief: str, aspect_ratio: str, resolution: str, caption: str = "") -> bytes:
    """A PNG of the requested aspect ratio with ``brief`` written across it."""
    width, height = image_size(aspect_ratio, resolution)
    background, accent, noise = _palette(brief)
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)

    # Two soft discs placed from the brief's hash, for a little composition.
    short = min(width, height)
    for i in (0, 4):
        cx = noise[i] / 255 * width
        cy = noise[i + 1] / 255 * height
        r = short * (0.25 + noise[i + 2] / 255 * 0.35)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=accent)

    margin = max(4, short // 12)
    size = max(8, min(short // 9, max(width, height) // 22))
    font: _Font = ImageFont.load_default(size=size)
    line_height = size * 1.25
    lines = _wrap(draw, brief, font, width - 2 * margin)
    max_lines = max(1, int((height - 2 * margin - line_height) // line_height))
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(1, len(lines[-1]) - 1)] + "…"
    ink = (34, 34, 40)
    y = float(margin)
    for line in lines:
        draw.text((margin, y), line, fill=ink, font=font)
        y += line_height
    if caption:
        small: _Font = ImageFont.load_default(size=max(8, size * 2 // 3))
        draw.text((margin, height - margin - size), caption, fill=(70, 70, 80), font=small)

    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=3)
    return out.getvalue()
