"""Decode any stored medical image to H x W x 3 uint8, and bring it to a model's square input.

Releases store images as PNG / JPEG / TIFF files (8-bit or 16-bit), DICOM files (with or without a ``.dcm``
suffix), encoded bytes inside parquet cells, or arrays inside npz files. Every decoder here returns the same
thing: a C-contiguous H x W x 3 uint8 array, greyscale replicated to three channels, because the models'
preprocessing (open_clip's ``convert('RGB')``) treats every image as RGB. Rules:

- 8-bit modes go through PIL's ``convert('RGB')``, exactly as open_clip does: alpha is dropped (not
  composited), palettes are expanded, EXIF orientation is not applied, only the first frame of a
  multi-frame TIFF/GIF is read.
- 16-bit / 32-bit / float greyscale (PNG ``I;16``, TIFF ``I``/``F``) is stretched by the image's own min..max
  to 0..255 (a constant image gives zeros); PIL's own conversion would clip everything above 255 to white.
- Arrays: uint8 passes through; other dtypes are stretched by their finite min..max; NaN / inf become 0.
- DICOM: see :mod:`medrival.data.dicom` (rescale, window, MONOCHROME1 inversion, middle frame).

:func:`fit_geometry` then reproduces open_clip's inference transform (torchvision ``Resize`` + ``CenterCrop``
on a PIL image, or resize-and-pad, or squash) pixel for pixel, so decoding in the loader changes nothing
compared with handing the model a PIL image.
"""
from __future__ import annotations

import io
import stat
import struct
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from medrival.core.errors import DataError
from medrival.core.images import ImageGeometry

__all__ = [
    "ImageDecodeError", "decode_image", "pil_to_rgb_uint8", "array_to_rgb_uint8", "minmax_to_uint8",
    "grey_to_rgb", "is_dicom", "probe_image", "fit_geometry", "read_dicom", "dicom_to_rgb_uint8",
]

ImageInput = Union[str, Path, bytes, bytearray, memoryview]
DICOM_SUFFIXES = (".dcm", ".dicom")
_DICOM_MAGIC = b"DICM"
_DICOM_MAGIC_OFFSET = 128  # after the 128-byte preamble (DICOM PS3.10, 7.1)
# Files named as raster images are decoded by PIL without first reading 132 bytes to look for the DICOM magic:
# one open() fewer per image is measurable in the data loader (benchmarks/loading.py).
_RASTER_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp"})
_FIX = "re-download or re-extract this file, or remove it from the release's index"
_RESAMPLING = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}
_PIL_HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


class ImageDecodeError(DataError):
    """An image that cannot be decoded: missing, empty, truncated, corrupt or in an unsupported encoding.

    ``name`` is the file (or label) and ``reason`` the short cause; both survive pickling (the default
    exception pickling keeps ``__dict__``), so errors raised in loader worker processes keep them.
    """

    def __init__(self, message: str, *, name: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.reason = reason

    @classmethod
    def for_image(cls, name: str, reason: str, fix: str = _FIX) -> "ImageDecodeError":
        """The standard message: which file, why, what was expected, how to fix it."""
        message = (f"Cannot decode image {name!r}: {reason}. Expected a readable image file (PNG, JPEG, TIFF, "
                   f"BMP, ... or DICOM) or encoded image bytes. Fix: {fix}.")
        return cls(message, name=name, reason=reason)


def minmax_to_uint8(values: np.ndarray) -> np.ndarray:
    """Stretch ``values`` (any shape, any real dtype) linearly so its finite min..max spans 0..255.

    Non-finite values (NaN, +-inf: masked pixels of float maps) become 0; a constant image becomes all 0.
    """
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, dtype=np.uint8)
    low, high = float(values[finite].min()), float(values[finite].max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (np.where(finite, values, low) - low) * 255.0 / (high - low)  # one rounding: exact .5 ties
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    """H x W uint8 -> H x W x 3 uint8, the grey level copied to every channel."""
    return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))


def pil_to_rgb_uint8(image: Image.Image) -> np.ndarray:
    """A loaded PIL image as H x W x 3 uint8 (see the module docstring for the per-mode rules)."""
    if image.mode in _PIL_HIGH_DEPTH_MODES:
        return grey_to_rgb(minmax_to_uint8(np.asarray(image)))
    rgb = image if image.mode == "RGB" else image.convert("RGB")  # drops alpha, like open_clip
    return np.array(rgb, dtype=np.uint8, order="C")  # np.array: a writable copy, not a view of PIL's buffer


def array_to_rgb_uint8(array: np.ndarray, *, name: str = "array") -> np.ndarray:
    """An image stored as an array -- (H,W), (H,W,1), (H,W,3), or channels-first (1|3,H,W) -- as H x W x 3 uint8.

    uint8 passes through; bool becomes 0/255; other dtypes are stretched by min..max over all channels
    together (so colour ratios survive); NaN / inf become 0.
    """
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] not in (1, 3) and array.shape[0] in (1, 3):
        array = np.moveaxis(array, 0, 2)  # channels-first (as torch / MedMNIST-3D tools store it)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3) or array.size == 0:
        raise ImageDecodeError.for_image(
            name, f"array of shape {tuple(array.shape)} and dtype {array.dtype} is not an image "
            "(expected (H, W), (H, W, 1), (H, W, 3) or channels-first (3, H, W))",
            fix="store one 2-D greyscale or RGB image per entry")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ImageDecodeError.for_image(name, f"array dtype {array.dtype} is not numeric",
                                         fix="store images as integer or float arrays")
    if array.dtype == np.uint8:
        pixels = array
    elif array.dtype == np.bool_:
        pixels = array.astype(np.uint8) * 255  # masks: min..max would turn an all-True mask black
    else:
        pixels = minmax_to_uint8(array)
    return grey_to_rgb(pixels) if pixels.ndim == 2 else np.ascontiguousarray(pixels)


def is_dicom(path_or_bytes: ImageInput) -> bool:
    """True for a ``.dcm`` / ``.dicom`` path, or for content with ``DICM`` at byte 128.

    The magic matters: some releases ship DICOM files without any suffix. A missing file is not DICOM.
    """
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        head = bytes(path_or_bytes[:_DICOM_MAGIC_OFFSET + 4])
    else:
        path = Path(path_or_bytes)
        if path.suffix.lower() in DICOM_SUFFIXES:
            return True
        try:
            with path.open("rb") as handle:
                head = handle.read(_DICOM_MAGIC_OFFSET + 4)
        except OSError:
            return False
    return head[_DICOM_MAGIC_OFFSET:] == _DICOM_MAGIC


def decode_image(source: ImageInput, *, name: str | None = None) -> np.ndarray:
    """Decode a file path or encoded bytes (PNG in a parquet cell, ...) to C-contiguous H x W x 3 uint8.

    DICOM (by suffix or magic) goes through pydicom, everything else through PIL. ``name`` labels the image
    in error messages (default: the path). Raises :class:`ImageDecodeError` for any unreadable input.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, label = bytes(source), name or "<image bytes>"
        if not data:
            raise ImageDecodeError.for_image(label, "empty bytes (0 bytes)", fix="check the stored image column")
        if is_dicom(data):
            return _decode_dicom(data, label)
        return _decode_with_pil(io.BytesIO(data), label)
    path = Path(source)
    label = name or str(path)
    problem = _file_problem(path)
    if problem is not None:
        raise ImageDecodeError.for_image(label, problem)
    if path.suffix.lower() not in _RASTER_SUFFIXES and is_dicom(path):
        return _decode_dicom(path, label)
    return _decode_with_pil(path, label)


def _file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be an image file at all (missing, a folder, empty, unreadable), else None."""
    try:
        status = path.stat()  # one system call answers all three questions
    except FileNotFoundError:
        return "missing file (no such path)"
    except OSError as error:
        return f"file cannot be accessed ({error.strerror or error})"
    if not stat.S_ISREG(status.st_mode):
        return "not a regular file"
    return "empty file (0 bytes)" if status.st_size == 0 else None


def _decode_with_pil(source: Union[Path, io.BytesIO], label: str) -> np.ndarray:
    try:
        with Image.open(source) as image:
            image.load()  # decodes now, inside the try: a truncated file fails here, not later
            return pil_to_rgb_uint8(image)
    except MemoryError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageDecodeError.for_image(label, f"too many pixels for PIL's safety limit ({error})",
                                         fix="downscale the file before use") from error
    except Exception as error:  # damaged files raise OSError, SyntaxError, struct.error, ValueError, ...
        raise ImageDecodeError.for_image(label, _pil_reason(error)) from error


def _pil_reason(error: Exception) -> str:
    if isinstance(error, UnidentifiedImageError):
        return "not an image (cannot identify image file)"
    if isinstance(error, (OSError, SyntaxError, EOFError, struct.error)):  # PIL's words for damaged data
        return f"truncated or corrupt image data ({type(error).__name__}: {error})"
    return f"unsupported image ({type(error).__name__}: {error})"


def _decode_dicom(source: Union[Path, bytes], label: str) -> np.ndarray:
    from medrival.data import dicom  # here, not at the top: dicom.py imports this module (ImageDecodeError)

    return dicom.dicom_to_rgb_uint8(dicom.read_dicom(source, label), name=label)


def probe_image(path: Union[str, Path]) -> str | None:
    """None if ``path`` looks like a readable image, else a short reason. The header is parsed; PNG and JPEG
    files must also end with their end marker (a file cut short is found without decoding it), and other raster
    formats, or a PNG/JPEG without its end marker, are decoded in full.

    Never raises: it is meant for scanning whole releases for missing or broken files cheaply.
    """
    path = Path(path)
    problem = _file_problem(path)
    if problem is not None:
        return problem
    if is_dicom(path):
        from medrival.data import dicom

        return dicom.probe_dicom(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width <= 0 or height <= 0:
                return "image with no pixels (0 width or height)"
            if _body_looks_complete(path, image.format):
                return None
            image.load()  # a suspicious body (or a format without a cheap check) is decoded in full
        return None
    except Exception as error:  # noqa: BLE001 -- a probe reports, it never raises
        return _pil_reason(error)


# The last bytes of a complete file: PNG's IEND chunk, JPEG's end-of-image marker.
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"


def _body_looks_complete(path: Path, image_format: str | None) -> bool:
    """Whether the file ends as a complete PNG or JPEG does: a file cut short (a header that parses, a body that
    does not) fails only at decoding, so the probe reads the file's last bytes -- one seek, not a decode. False
    sends the caller to a full decode (other formats; trailing bytes after the end marker)."""
    if image_format not in ("PNG", "JPEG"):
        return False
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - 64))
            tail = handle.read().rstrip(b"\x00")  # some writers pad JPEG files with zeros
    except OSError:
        return False
    return tail.endswith(_PNG_END if image_format == "PNG" else _JPEG_END)


def fit_geometry(image: np.ndarray, geometry: ImageGeometry) -> np.ndarray:
    """H x W x 3 uint8 -> size x size x 3 uint8, as open_clip's inference transform does on a PIL image.

    ``shortest``: torchvision ``Resize(shortest_side)`` then ``CenterCrop(size)`` (transformers' floor offsets
    when ``crop_offsets == "floor"``); ``longest``: open_clip's ``ResizeKeepRatio(longest=1)`` then centred
    padding with ``fill``; ``squash``: ``Resize((size, size))``. Resizing to the current size is skipped, as
    torchvision skips it, so a size x size input comes back unchanged.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise DataError(f"fit_geometry: expected an H x W x 3 uint8 image, got shape {tuple(image.shape)} and "
                        f"dtype {image.dtype}. Decode images with medrival.data.imageio.decode_image first.")
    size = geometry.size
    if geometry.resize_mode == "squash":
        return np.ascontiguousarray(_resize(image, size, size, geometry.interpolation))
    if geometry.resize_mode == "longest":
        return _fit_longest(image, geometry)
    return _fit_shortest(image, geometry)


def _resize(image: np.ndarray, height: int, width: int, interpolation: str) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image  # torchvision's resize returns the image itself in this case; no resampling
    resized = Image.fromarray(image).resize((width, height), _RESAMPLING[interpolation])
    return np.array(resized, dtype=np.uint8, order="C")


def _fit_shortest(image: np.ndarray, geometry: ImageGeometry) -> np.ndarray:
    height, width = image.shape[:2]
    short, long = min(height, width), max(height, width)
    new_short, new_long = geometry.shortest_side, int(geometry.shortest_side * long / short)  # torchvision's int()
    new_height, new_width = (new_long, new_short) if width <= height else (new_short, new_long)
    resized = _resize(image, new_height, new_width, geometry.interpolation)
    size = geometry.size
    if geometry.crop_offsets == "floor":  # transformers' CLIPImageProcessor.center_crop
        top, left = (new_height - size) // 2, (new_width - size) // 2
    else:  # torchvision's center_crop: Python round(), i.e. half to even
        top, left = int(round((new_height - size) / 2.0)), int(round((new_width - size) / 2.0))
    return np.ascontiguousarray(resized[top:top + size, left:left + size])


def _fit_longest(image: np.ndarray, geometry: ImageGeometry) -> np.ndarray:
    height, width = image.shape[:2]
    size = geometry.size
    ratio = max(height / size, width / size)  # open_clip ResizeKeepRatio(longest=1), same float arithmetic
    new_height, new_width = max(1, round(height / ratio)), max(1, round(width / ratio))
    resized = _resize(image, new_height, new_width, geometry.interpolation)
    canvas = np.full((size, size, 3), geometry.fill, dtype=np.uint8)
    top, left = (size - new_height) // 2, (size - new_width) // 2  # open_clip center_crop_or_pad
    canvas[top:top + new_height, left:left + new_width] = resized
    return canvas


def __getattr__(attribute: str) -> Any:
    """PEP 562: the DICOM functions are importable from here too.

    They live in :mod:`medrival.data.dicom`, which imports this module, so a top-level import would be circular.
    """
    if attribute in ("read_dicom", "dicom_to_rgb_uint8", "probe_dicom"):
        from medrival.data import dicom

        return getattr(dicom, attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
