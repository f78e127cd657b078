"""Escaping and self-containment helpers."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np

from spinemetrics.report._html import esc, plotly_js, script_json
from spinemetrics.report.slices import png_bytes


def test_esc_escapes_markup_and_quotes():
    assert esc('<script>alert(1)</script>') == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert esc('a"b\'c&') == "a&quot;b&#x27;c&amp;"
    assert esc(float("nan")) == "—"


def test_script_json_cannot_close_a_script_element():
    payload = {"id": "</script><script>alert(1)</script><!--", "x": float("nan"),
               "arr": np.array([1, 2]), "sep": "\u2028"}
    text = script_json(payload)
    assert "</" not in text and "<!--" not in text and "\u2028" not in text
    back = json.loads(text.replace("<\\!--", "<!--"))  # "<\/" is valid JSON for "</"
    assert back["id"] == payload["id"]
    assert back["x"] is None and back["arr"] == [1, 2] and back["sep"] == "\u2028"


def test_plotly_js_is_embedded_without_cdn_loader():
    js = plotly_js()
    assert len(js) > 1_000_000  # the full bundle, inline
    assert "</script" not in js.lower()


def _decode_png(data: bytes) -> tuple[int, int, int, bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        tag = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(tag + body)
        if tag == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif tag == b"IDAT":
            idat += body
        pos += 12 + length
    w, h, _, colour, *_ = ihdr
    return w, h, colour, zlib.decompress(idat)


def test_png_round_trip_grey_and_rgba():
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, (7, 5), dtype=np.uint8)
    w, h, colour, raw = _decode_png(png_bytes(grey))
    assert (w, h, colour) == (5, 7, 0)
    rows = np.frombuffer(raw, np.uint8).reshape(7, 6)
    assert np.all(rows[:, 0] == 0) and np.array_equal(rows[:, 1:], grey)
    rgba = rng.integers(0, 256, (3, 4, 4), dtype=np.uint8)
    w, h, colour, raw = _decode_png(png_bytes(rgba))
    assert (w, h, colour) == (4, 3, 6)
    assert np.array_equal(np.frombuffer(raw, np.uint8).reshape(3, 17)[:, 1:].reshape(3, 4, 4), rgba)
