"""A QR code of a subscription link, as a PNG a phone's VPN app can scan."""

from __future__ import annotations

import io

import segno


def qr_png(text: str) -> bytes:
    """The PNG (8 pixels a module, a quiet zone of 4 as the standard asks)."""
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="png", scale=8, border=4)
    return out.getvalue()
