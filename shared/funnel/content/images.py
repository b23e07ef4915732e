"""Cover images: a deterministic PNG card rendered in pure Python.

The LLM writes the image prompt and alt text (``generate_image`` step); the
picture itself is a gradient card in the product's colour theme at its
configured size. No image model is called yet (see README.md).
"""
from __future__ import annotations

import hashlib
import struct
import zlib

THEMES = {"auto": None, "blue": ((20, 60, 140), (90, 160, 230)), "green": ((20, 100, 60), (120, 200, 140)),
          "warm": ((160, 60, 20), (240, 170, 90)), "mono": ((30, 30, 30), (200, 200, 200))}


def _colours(theme: str, seed: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    colours = THEMES.get(theme)
    if colours:
        return colours
    digest = hashlib.sha256(seed.encode()).digest()
    return (digest[0] // 2, digest[1] // 2, digest[2] // 2), (128 + digest[3] // 2, 128 + digest[4] // 2,
                                                              128 + digest[5] // 2)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def render_png(size: str, theme: str, seed: str) -> bytes:
    width, height = (int(part) for part in size.lower().split("x"))
    top, bottom = _colours(theme, seed)
    rows = []
    for y in range(height):
        t = y / max(1, height - 1)
        pixel = bytes(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        rows.append(b"\x00" + pixel * width)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(b"".join(rows), 6)) + _chunk(b"IEND", b""))
