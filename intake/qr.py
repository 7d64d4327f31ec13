"""QR codes of a public form's address, for posters, flyers and store counters."""

import io

import qrcode
import qrcode.image.svg
from qrcode.constants import ERROR_CORRECT_M

FORMATS = {"png": "image/png", "svg": "image/svg+xml"}


def image(url, image_format):
    """(content, content type) of a QR code holding `url` as PNG or SVG.

    The PNG is large enough to print sharply on an A4 poster; the SVG scales to any size.
    Medium error correction keeps a code readable when part of a poster is creased or dirty.
    """
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=20, border=4)
    code.add_data(url)
    code.make(fit=True)
    buffer = io.BytesIO()
    if image_format == "svg":
        code.make_image(image_factory=qrcode.image.svg.SvgPathFillImage).save(buffer)
    else:
        code.make_image().save(buffer, format="PNG")
    return buffer.getvalue(), FORMATS[image_format]
