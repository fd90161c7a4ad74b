"""Decode many small encoded images (PNG, JPEG) into one NCHW uint8 array.

For 32x32 images Pillow spends most of its time parsing file headers in
Python rather than decoding pixels, so the loop below is as lean as Pillow
allows: the format is named from the file suffix (no probing of every other
format) and each image is written straight into one preallocated array.

Introduced in ``docs/architecture.md`` ("Data") and README.md ("Data").
"""
from __future__ import annotations

import io
import os

import numpy as np

from lars_ref.data.errors import DataError

PILLOW_FORMATS = {".png": ("PNG",), ".jpg": ("JPEG",), ".jpeg": ("JPEG",)}


def decode_images(blobs: list, grayscale: bool, where) -> np.ndarray:
    """Decode a list of encoded images, all of one size.

    Parameters
    ----------
    blobs : list of (file name, bytes)
    grayscale : convert to one channel ("L") instead of three ("RGB")
    where : the source, for error messages

    Returns
    -------
    numpy.ndarray
        ``(len(blobs), C, H, W)`` uint8 with C = 1 or 3, in the order of ``blobs``.

    Raises
    ------
    DataError
        No images, an image that cannot be decoded, or one whose size differs
        from the first one.
    """
    from PIL import Image

    if not blobs:
        raise DataError(f"{where}: no images to decode")
    mode = "L" if grayscale else "RGB"
    out = None
    for i, (name, blob) in enumerate(blobs):
        formats = PILLOW_FORMATS.get(os.path.splitext(name)[1].lower())
        try:
            with Image.open(io.BytesIO(blob), formats=formats) as image:
                converted = image if image.mode == mode else image.convert(mode)
                pixels = np.asarray(converted)
        except Exception as err:  # Pillow raises many types for a broken file
            raise DataError(f"{where}/{name}: cannot decode image ({err})") from None
        if out is None:
            out = np.empty((len(blobs),) + pixels.shape, dtype=np.uint8)
        if pixels.shape != out.shape[1:]:
            raise DataError(f"{where}/{name}: image is {pixels.shape} (HWC), the "
                            f"first one was {out.shape[1:]}; resize all images to "
                            "one size")
        out[i] = pixels
    out = out.reshape(out.shape[:3] + (-1,))  # (N, H, W, C), also when C = 1
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))
