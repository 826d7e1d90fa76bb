"""DICOM files to H x W x 3 uint8, as a radiologist's default display would show them.

pydicom is imported only here (and only when a DICOM file is met). It is not one of medrival's declared
dependencies; a missing pydicom is reported as an :class:`ImageDecodeError` saying what to install. Rules:

- Frame: multi-frame files give their middle frame (``NumberOfFrames // 2``): a study example is one 2-D
  image, and the middle slice / frame is the most representative single one (the first is often blank).
- Rescale: stored values go through RescaleSlope / RescaleIntercept (or a Modality LUT Sequence) to
  modality values (HU for CT). Enhanced multi-frame files keep these in functional groups; those are read too.
- Window: if WindowCenter / WindowWidth is present (first value when multi-valued), the DICOM VOI function
  (LINEAR by default, LINEAR_EXACT, SIGMOID; PS3.3 C.11.2.1.2) maps the window to 0..255; otherwise a VOI LUT
  Sequence is applied and its output stretched by min..max; otherwise the modality values are stretched by
  their own min..max. A window with a width < 1 (LINEAR) or <= 0 is invalid and falls back to min..max.
- MONOCHROME1 (high values dark) is inverted after windowing, so bright means dense in every output.
- Colour: RGB / YBR_* are returned as RGB (pydicom converts YBR); PALETTE COLOR goes through its colour LUT;
  colour samples deeper than 8 bits are scaled by their nominal depth (2**BitsStored - 1 -> 255).
- Greyscale is replicated to three channels.
- Compressed transfer syntaxes whose decoder plugin is not installed (JPEG-LS, JPEG lossless, 12-bit JPEG;
  JPEG 2000 decodes through Pillow) raise :class:`ImageDecodeError` with pydicom's list of plugins to install.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Union

import numpy as np

from medrival.data.imageio import ImageDecodeError, grey_to_rgb, minmax_to_uint8

__all__ = ["read_dicom", "dicom_to_rgb_uint8", "probe_dicom"]

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_CONVERT_FIX = ("install one of the decoder plugins pydicom names above, or convert the file to an "
                "uncompressed transfer syntax (e.g. `gdcmconv --raw` or `dcmdjpeg`)")


def _pydicom(name: str) -> Any:
    try:
        import pydicom
    except ImportError as error:
        raise ImageDecodeError.for_image(name, "reading DICOM needs the pydicom package, which is not installed",
                                         fix="pip install pydicom") from error
    return pydicom


def read_dicom(source: Union[str, Path, bytes], name: str) -> Any:
    """Read a DICOM file (path or bytes) into a pydicom Dataset; ``name`` labels errors.

    ``force=True`` so files without the 128-byte preamble (old ACR-NEMA style, some exports) are read too; a
    non-DICOM file then fails later with "has no pixel data" rather than a parser message.
    """
    pydicom = _pydicom(name)
    stream = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        dataset = pydicom.dcmread(stream, force=True)
    except MemoryError:
        raise
    except Exception as error:  # pydicom raises InvalidDicomError, EOFError, ValueError, struct.error, ...
        raise ImageDecodeError.for_image(name, f"unreadable DICOM ({type(error).__name__}: {error})") from error
    _set_missing_transfer_syntax(dataset, pydicom)
    return dataset


def _set_missing_transfer_syntax(dataset: Any, pydicom: Any) -> None:
    """Files without file meta have no Transfer Syntax UID, which pydicom needs to decode pixels.

    The parser has already worked out how the file is encoded (``original_encoding``); record that.
    """
    file_meta = getattr(dataset, "file_meta", None)
    if file_meta is None or file_meta.get("TransferSyntaxUID") or "PixelData" not in dataset:
        return
    implicit, little = getattr(dataset, "original_encoding", (None, None))
    uid = pydicom.uid
    if implicit:
        file_meta.TransferSyntaxUID = uid.ImplicitVRLittleEndian
    elif little is not None:
        file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian if little else uid.ExplicitVRBigEndian


def dicom_to_rgb_uint8(dataset: Any, *, name: str) -> np.ndarray:
    """A pydicom Dataset's image (middle frame) as C-contiguous H x W x 3 uint8; rules in the module docstring."""
    if not any(keyword in dataset for keyword in _PIXEL_KEYWORDS):
        raise ImageDecodeError.for_image(name, "DICOM file has no pixel data (not an image object?)",
                                         fix="remove non-image DICOM objects (reports, structured reports, "
                                             "RT plans) from the release's index")
    frame = _middle_frame(dataset)
    pixels = _decode_frame(dataset, frame, name)
    try:
        return _display_rgb(pixels, dataset, frame)
    except MemoryError:
        raise
    except Exception as error:  # malformed LUTs / descriptors surface as KeyError, IndexError, ValueError, ...
        reason = f"inconsistent DICOM display attributes ({type(error).__name__}: {error})"
        raise ImageDecodeError.for_image(name, reason) from error


def _display_rgb(pixels: np.ndarray, dataset: Any, frame: int) -> np.ndarray:
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        rgb = apply_color_lut(pixels, dataset)
        return _colour_to_uint8(rgb, bits=8 * rgb.dtype.itemsize)
    if pixels.ndim == 3:
        return _colour_to_uint8(pixels, bits=int(dataset.get("BitsStored") or 8 * pixels.dtype.itemsize))
    grey = _grey_to_uint8(pixels, dataset, frame)
    if photometric == "MONOCHROME1":
        grey = 255 - grey
    return grey_to_rgb(grey)


def _middle_frame(dataset: Any) -> int:
    try:
        frames = int(dataset.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        frames = 1
    return max(frames, 1) // 2


def _decode_frame(dataset: Any, frame: int, name: str) -> np.ndarray:
    """One frame's stored values: (rows, columns) or (rows, columns, samples)."""
    from pydicom.pixels import pixel_array

    try:
        return np.asarray(pixel_array(dataset, index=frame))  # decodes that frame only, not the whole cine
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001 -- pydicom's decoders raise RuntimeError, ValueError, ...
        raise _pixel_error(error, dataset, name) from error


def _pixel_error(error: Exception, dataset: Any, name: str) -> ImageDecodeError:
    """Tell a missing decoder plugin (install something) apart from damaged pixel data (replace the file)."""
    text = str(error)
    file_meta = getattr(dataset, "file_meta", None)
    syntax = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    encoding = getattr(syntax, "name", None) or "an unknown transfer syntax"
    if "missing dependencies" in text or "all available plugins" in text or "not supported" in text:
        reason = f"pixel data encoded as {encoding} cannot be decoded with the installed packages: {text}"
        return ImageDecodeError.for_image(name, reason, fix=_CONVERT_FIX)
    return ImageDecodeError.for_image(name, f"corrupt DICOM pixel data ({type(error).__name__}: {text})")


def _colour_to_uint8(rgb: np.ndarray, *, bits: int) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return np.ascontiguousarray(rgb)
    scaled = rgb.astype(np.float64) * 255.0 / (2.0 ** bits - 1.0)
    return np.ascontiguousarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


def _grey_to_uint8(pixels: np.ndarray, dataset: Any, frame: int) -> np.ndarray:
    values = _modality_values(pixels, dataset, frame)
    window = _window(dataset, frame)
    if window is not None:
        return _apply_window(values, *window)
    if dataset.get("VOILUTSequence"):
        from pydicom.pixels import apply_voi

        return minmax_to_uint8(apply_voi(np.rint(values).astype(np.int64), dataset))  # LUTs index integers
    return minmax_to_uint8(values)


def _modality_values(pixels: np.ndarray, dataset: Any, frame: int) -> np.ndarray:
    """Stored values -> modality values (PS3.3 C.11.1): Modality LUT, else slope * value + intercept."""
    if dataset.get("ModalityLUTSequence"):
        from pydicom.pixels import apply_modality_lut

        return apply_modality_lut(pixels, dataset).astype(np.float64)
    slope = _first_number(_frame_value(dataset, frame, "PixelValueTransformationSequence", "RescaleSlope"))
    intercept = _first_number(_frame_value(dataset, frame, "PixelValueTransformationSequence", "RescaleIntercept"))
    values = pixels.astype(np.float64)
    if slope is not None and slope != 0:
        values *= slope
    if intercept is not None:
        values += intercept
    return values


def _window(dataset: Any, frame: int) -> tuple[float, float, str] | None:
    """(centre, width, VOI function) of the first window, or None when absent or invalid."""
    center = _first_number(_frame_value(dataset, frame, "FrameVOILUTSequence", "WindowCenter"))
    width = _first_number(_frame_value(dataset, frame, "FrameVOILUTSequence", "WindowWidth"))
    function = str(_frame_value(dataset, frame, "FrameVOILUTSequence", "VOILUTFunction") or "LINEAR").upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        function = "LINEAR"
    if center is None or width is None or width <= 0 or (function == "LINEAR" and width < 1):
        return None
    return center, width, function


def _apply_window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """The VOI LUT function of PS3.3 C.11.2.1.2 / C.11.2.1.3 with output range 0..255."""
    if function == "SIGMOID":
        fraction = 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    else:
        if function == "LINEAR":  # the standard's LINEAR is defined on centre - 0.5 and width - 1
            center, width = center - 0.5, width - 1.0
        if width == 0:  # LINEAR with width 1: a threshold at the centre
            fraction = (values > center).astype(np.float64)
        else:
            fraction = (values - center) / width + 0.5  # <= 0 below the window, >= 1 above it
    return np.clip(np.rint(np.clip(fraction, 0.0, 1.0) * 255.0), 0, 255).astype(np.uint8)


def _frame_value(dataset: Any, frame: int, group: str, keyword: str) -> Any:
    """``keyword`` at the top level, else in the frame's, else the shared, functional group ``group``.

    Enhanced multi-frame objects (Enhanced CT / MR / XA) keep rescale and window per frame in functional
    group sequences instead of the top level.
    """
    if keyword in dataset:
        return dataset[keyword].value
    for sequence_keyword, index in (("PerFrameFunctionalGroupsSequence", frame),
                                    ("SharedFunctionalGroupsSequence", 0)):
        sequence = dataset.get(sequence_keyword)
        if sequence and len(sequence) > index:
            items = sequence[index].get(group)
            if items and keyword in items[0]:
                return items[0][keyword].value
    return None


def _first_number(value: Any) -> float | None:
    """A DS / IS value (possibly multi-valued, possibly empty) as a float: the first value, or None."""
    if value is None or isinstance(value, (str, bytes)) and not value.strip():
        return None
    if not isinstance(value, (str, bytes)) and hasattr(value, "__len__"):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def probe_dicom(path: Union[str, Path]) -> str | None:
    """None if the DICOM header parses and describes an image (Rows and Columns), else a short reason.

    The pixels are not read (``stop_before_pixels`` also drops PixelData, hence the Rows / Columns check).
    Never raises.
    """
    try:
        import pydicom
    except ImportError:
        return "DICOM file, but pydicom is not installed"
    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception as error:  # noqa: BLE001 -- a probe reports, it never raises
        return f"unreadable DICOM header ({type(error).__name__})"
    if not dataset.get("Rows") or not dataset.get("Columns"):
        return "DICOM without an image (no Rows / Columns)"
    return None
