"""Decoding medical image files to H x W x 3 uint8 and fitting them to a model's square input.

Every expectation is computed independently of medrival: PIL for ordinary images, pydicom's own primitives
(pixel_array, apply_modality_lut, apply_voi_lut, apply_color_lut) and the DICOM formulas for DICOM, torchvision /
open_clip transforms for the geometry. DICOM files are pydicom's and pydicom-data's test files (offline).
"""
from __future__ import annotations

import importlib.util
import io
import pickle
import shutil

import numpy as np
import pytest
from PIL import Image, ImageFile

from medrival.core.errors import DataError
from medrival.core.images import ImageGeometry
from medrival.data import imageio
from medrival.data.imageio import (
    ImageDecodeError, array_to_rgb_uint8, decode_image, fit_geometry, is_dicom, pil_to_rgb_uint8, probe_image,
)

HAS_PYDICOM = importlib.util.find_spec("pydicom") is not None
needs_pydicom = pytest.mark.skipif(not HAS_PYDICOM, reason="pydicom is not installed")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about odd test-file encodings


def _rng_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _save(tmp_path, image: Image.Image, filename: str, **kwargs):
    path = tmp_path / filename
    image.save(path, **kwargs)
    return path


# --------------------------------------------------------------------------------------------- PIL files

def test_greyscale_png_is_replicated_to_three_channels(tmp_path):
    grey = np.arange(35 * 47, dtype=np.uint64).reshape(35, 47) % 256
    path = _save(tmp_path, Image.fromarray(grey.astype(np.uint8)), "grey.png")
    decoded = decode_image(path)
    assert decoded.shape == (35, 47, 3) and decoded.dtype == np.uint8 and decoded.flags.c_contiguous
    for channel in range(3):
        np.testing.assert_array_equal(decoded[:, :, channel], grey)


def test_rgb_png_and_tiff_round_trip_exactly(tmp_path):
    rgb = _rng_image(31, 45)
    for filename in ("colour.png", "colour.tif", "colour.bmp"):
        np.testing.assert_array_equal(decode_image(_save(tmp_path, Image.fromarray(rgb), filename)), rgb)


def test_rgba_and_la_drop_alpha_like_open_clip(tmp_path):
    rgb = _rng_image(20, 30)
    alpha = np.full((20, 30), 7, dtype=np.uint8)  # nearly transparent: dropping, not compositing, keeps the RGB
    rgba = Image.fromarray(np.dstack([rgb, alpha]))
    np.testing.assert_array_equal(decode_image(_save(tmp_path, rgba, "rgba.png")), rgb)
    la = Image.merge("LA", [Image.fromarray(rgb[:, :, 0]), Image.fromarray(alpha)])
    decoded = decode_image(_save(tmp_path, la, "la.png"))
    np.testing.assert_array_equal(decoded, np.repeat(rgb[:, :, :1], 3, axis=2))


def test_palette_and_one_bit_images(tmp_path):
    palette_image = Image.fromarray(_rng_image(24, 18)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    path = _save(tmp_path, palette_image, "palette.png")
    expected = np.asarray(Image.open(path).convert("RGB"))
    np.testing.assert_array_equal(decode_image(path), expected)
    assert len(np.unique(decode_image(path).reshape(-1, 3), axis=0)) <= 16

    bits = (np.indices((16, 16)).sum(axis=0) % 2).astype(bool)
    decoded = decode_image(_save(tmp_path, Image.fromarray(bits), "bits.png"))
    np.testing.assert_array_equal(decoded[:, :, 1], np.where(bits, 255, 0))


def test_jpeg_decodes_like_pil_convert_rgb(tmp_path):
    path = _save(tmp_path, Image.fromarray(_rng_image(40, 33)), "photo.jpg", quality=90)
    np.testing.assert_array_equal(decode_image(path), np.asarray(Image.open(path).convert("RGB")))
    cmyk = _save(tmp_path, Image.fromarray(_rng_image(16, 16)).convert("CMYK"), "cmyk.jpg")
    np.testing.assert_array_equal(decode_image(cmyk), np.asarray(Image.open(cmyk).convert("RGB")))


def test_sixteen_bit_png_is_stretched_by_its_own_range(tmp_path):
    values = np.linspace(1000, 4000, 48 * 64).reshape(48, 64).astype(np.uint16)
    path = _save(tmp_path, Image.fromarray(values), "xray16.png")
    assert Image.open(path).mode == "I;16"
    decoded = decode_image(path)
    expected = np.rint((values.astype(np.float64) - 1000) * 255 / 3000).astype(np.uint8)
    np.testing.assert_array_equal(decoded[:, :, 0], expected)
    assert decoded[0, 0, 0] == 0 and decoded[-1, -1, 0] == 255
    np.testing.assert_array_equal(decoded[:, :, 0], decoded[:, :, 2])
    # the same picture in the other high-depth PIL modes decodes identically
    big_endian = Image.frombytes("I;16B", (64, 48), values.astype(">u2").tobytes())
    for image in (big_endian, Image.fromarray(values).convert("I"), Image.fromarray(values).convert("F")):
        np.testing.assert_array_equal(pil_to_rgb_uint8(image), decoded)


def test_constant_sixteen_bit_image_gives_zeros(tmp_path):
    path = _save(tmp_path, Image.fromarray(np.full((9, 9), 3000, dtype=np.uint16)), "flat.png")
    assert not decode_image(path).any()


def test_bytes_input_equals_path_input(tmp_path):
    path = _save(tmp_path, Image.fromarray(_rng_image(12, 21)), "cell.png")
    np.testing.assert_array_equal(decode_image(path.read_bytes()), decode_image(path))
    np.testing.assert_array_equal(decode_image(bytearray(path.read_bytes()), name="row 3"), decode_image(path))


# --------------------------------------------------------------------------------------------- broken input

def _truncated(tmp_path, filename: str, fmt: str):
    path = _save(tmp_path, Image.fromarray(_rng_image(120, 160)), filename, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("filename, fmt", [("cut.png", "PNG"), ("cut.jpg", "JPEG")])
def test_truncated_files_raise_naming_the_file(tmp_path, filename, fmt):
    path = _truncated(tmp_path, filename, fmt)
    with pytest.raises(ImageDecodeError, match=filename) as caught:
        decode_image(path)
    assert "truncated" in str(caught.value) or "corrupt" in str(caught.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # nothing global was switched on
    assert "truncated" in probe_image(path)  # the probe checks the end marker and decodes suspicious files


def test_unreadable_files_raise_and_probe_explains(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n" * 20)
    missing = tmp_path / "missing.png"
    cases = {empty: "empty file", text: "cannot identify image file", missing: "missing file"}
    for path, reason in cases.items():
        with pytest.raises(ImageDecodeError, match=path.name) as caught:
            decode_image(path)
        assert reason in str(caught.value) and reason in caught.value.reason
        assert reason in probe_image(path)
    assert probe_image(tmp_path) == "not a regular file"
    assert "empty" in str(pytest.raises(ImageDecodeError, decode_image, b"").value)
    with pytest.raises(ImageDecodeError, match="row 7"):
        decode_image(b"garbage bytes", name="row 7")


def test_probe_accepts_good_files_without_decoding(tmp_path):
    assert probe_image(_save(tmp_path, Image.fromarray(_rng_image(8, 8)), "ok.png")) is None
    assert probe_image(_save(tmp_path, Image.fromarray(_rng_image(8, 8)), "ok.jpg")) is None


def test_decode_error_is_a_data_error_and_pickles():
    error = ImageDecodeError.for_image("scans/a.png", "empty file (0 bytes)")
    assert isinstance(error, DataError) and "scans/a.png" in str(error) and "Fix:" in str(error)
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) and again.name == "scans/a.png" and again.reason == "empty file (0 bytes)"
    assert str(ImageDecodeError("plain message")) == "plain message"


# --------------------------------------------------------------------------------------------- arrays

def test_float_map_with_nan_is_scaled_and_nan_is_black():
    rnflt = np.random.default_rng(1).uniform(0, 350, size=(30, 40)).astype(np.float32)
    rnflt[0, 0], rnflt[0, 1] = 0.0, 350.0
    rnflt[5:9, 5:9] = np.nan
    decoded = array_to_rgb_uint8(rnflt)
    assert decoded.shape == (30, 40, 3) and decoded.dtype == np.uint8
    assert (decoded[5:9, 5:9] == 0).all() and decoded[0, 0, 0] == 0 and decoded[0, 1, 0] == 255
    finite = np.isfinite(rnflt)
    expected = np.rint(rnflt.astype(np.float64) * 255 / 350)
    np.testing.assert_array_equal(decoded[:, :, 0][finite], expected[finite])


def test_array_layouts():
    rgb = _rng_image(10, 14)
    passed = array_to_rgb_uint8(rgb)
    np.testing.assert_array_equal(passed, rgb)
    np.testing.assert_array_equal(array_to_rgb_uint8(np.moveaxis(rgb, 2, 0)), rgb)  # (3, H, W)
    np.testing.assert_array_equal(array_to_rgb_uint8(rgb[:, :, :1]), np.repeat(rgb[:, :, :1], 3, axis=2))
    np.testing.assert_array_equal(array_to_rgb_uint8(rgb[:, :, 0]), np.repeat(rgb[:, :, :1], 3, axis=2))
    wide = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
    np.testing.assert_array_equal(array_to_rgb_uint8(wide)[:, :, 0], [[0, 64], [128, 255]])
    np.testing.assert_array_equal(array_to_rgb_uint8(np.eye(3, dtype=bool))[:, :, 0], np.eye(3) * 255)
    assert not array_to_rgb_uint8(np.full((4, 4), np.nan)).any()


@pytest.mark.parametrize("shape", [(10,), (10, 14, 4), (2, 10, 14, 3), (0, 5), (5, 10, 14)])
def test_bad_array_shapes_raise(shape):
    with pytest.raises(ImageDecodeError, match="images.npz:train"):
        array_to_rgb_uint8(np.zeros(shape, dtype=np.float32), name="images.npz:train")


# --------------------------------------------------------------------------------------------- DICOM

def _testdata(name: str) -> str:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)  # never the network: the installed packages only
    if path is None:
        pytest.skip(f"pydicom test file {name} is not installed (pydicom-data missing)")
    return path


def _read(name: str):
    import pydicom

    return pydicom.dcmread(_testdata(name))


def _minmax(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    return np.rint((values - values.min()) * 255 / (values.max() - values.min())).astype(np.uint8)


def _pydicom_window_to_uint8(ds, stored: np.ndarray) -> np.ndarray:
    """pydicom's windowing (output in the stored range y_min..y_max) brought to 0..255."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    bits, signed = int(ds.BitsStored), int(ds.PixelRepresentation) == 1
    y_min, y_max = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        y_min, y_max = y_min * slope + intercept, y_max * slope + intercept
    windowed = apply_voi_lut(apply_modality_lut(stored, ds), ds, index=0, prefer_lut=False)
    return np.rint((windowed - y_min) * 255 / (y_max - y_min)).astype(np.int64)


def _assert_grey(decoded: np.ndarray, shape: tuple[int, int]) -> None:
    assert decoded.shape == (*shape, 3) and decoded.dtype == np.uint8 and decoded.flags.c_contiguous
    np.testing.assert_array_equal(decoded[:, :, 0], decoded[:, :, 1])
    np.testing.assert_array_equal(decoded[:, :, 0], decoded[:, :, 2])


@needs_pydicom
def test_ct_without_window_uses_min_max_of_hounsfield_units():
    from pydicom.pixels import apply_modality_lut

    ds = _read("CT_small.dcm")
    assert float(ds.RescaleIntercept) == -1024 and "WindowCenter" not in ds
    decoded = decode_image(_testdata("CT_small.dcm"))
    _assert_grey(decoded, (128, 128))
    np.testing.assert_array_equal(decoded[:, :, 0], _minmax(apply_modality_lut(ds.pixel_array, ds)))


@needs_pydicom
@pytest.mark.parametrize("name", ["MR_small.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm"])
def test_window_is_applied_and_first_of_several_windows_wins(name):
    ds = _read(name)
    decoded = decode_image(_testdata(name))
    _assert_grey(decoded, ds.pixel_array.shape)
    expected = _pydicom_window_to_uint8(ds, ds.pixel_array)
    assert np.abs(decoded[:, :, 0].astype(np.int64) - expected).max() <= 1  # float rounding at .5 only
    center = float(ds.WindowCenter[0] if ds["WindowCenter"].VM > 1 else ds.WindowCenter)
    width = float(ds.WindowWidth[0] if ds["WindowWidth"].VM > 1 else ds.WindowWidth)
    fraction = np.clip((ds.pixel_array - (center - 0.5)) / (width - 1) + 0.5, 0, 1)  # PS3.3 C.11.2.1.2.1
    np.testing.assert_array_equal(decoded[:, :, 0], np.rint(fraction * 255).astype(np.uint8))


@needs_pydicom
def test_monochrome1_radiograph_is_windowed_then_inverted():
    ds = _read("RG3_UNCR.dcm")  # a computed radiograph (CR), MONOCHROME1, 10-bit, window 550 / 1024
    assert ds.PhotometricInterpretation == "MONOCHROME1" and ds.Modality == "CR"
    decoded = decode_image(_testdata("RG3_UNCR.dcm"))
    _assert_grey(decoded, (1760, 1760))
    expected = 255 - _pydicom_window_to_uint8(ds, ds.pixel_array)
    assert np.abs(decoded[:, :, 0].astype(np.int64) - expected).max() <= 1
    assert decoded[0, 0, 0] == 255  # stored 0 (no attenuation recorded) is white in MONOCHROME1


@needs_pydicom
@pytest.mark.parametrize("name", ["MR_small.dcm", "CT_small.dcm"])
def test_monochrome1_copy_is_the_inverse_of_monochrome2(tmp_path, name):
    ds = _read(name)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "m1.dcm")
    np.testing.assert_array_equal(decode_image(tmp_path / "m1.dcm"), 255 - decode_image(_testdata(name)))


def _synthetic_ct(hounsfield: np.ndarray, **elements):
    """A minimal 16-bit signed CT file: stored = HU + 1024 with slope 1, intercept -1024, window 40 / 400."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, meta.MediaStorageSOPInstanceUID, "CT"
    ds.Rows, ds.Columns = hounsfield.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept, ds.WindowCenter, ds.WindowWidth = 1, -1024, 40, 400
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    ds.PixelData = (hounsfield.astype(np.int16) + 1024).astype("<i2").tobytes()
    return ds


@needs_pydicom
def test_synthetic_ct_window_formula_is_exact(tmp_path):
    hounsfield = np.arange(-1024, 1024, dtype=np.int16).reshape(32, 64)
    _synthetic_ct(hounsfield).save_as(tmp_path / "ct.dcm", enforce_file_format=True)
    grey = decode_image(tmp_path / "ct.dcm")[:, :, 0]
    assert (grey[hounsfield <= 40 - 200] == 0).all() and (grey[hounsfield >= 40 + 200] == 255).all()
    assert grey[hounsfield == 40][0] == 128  # ((40 - 39.5) / 399 + 0.5) * 255 = 127.8
    expected = np.rint(np.clip((hounsfield - 39.5) / 399 + 0.5, 0, 1) * 255)
    np.testing.assert_array_equal(grey, expected)
    # LINEAR_EXACT uses the plain centre and width
    _synthetic_ct(hounsfield, VOILUTFunction="LINEAR_EXACT").save_as(tmp_path / "exact.dcm")
    exact = decode_image(tmp_path / "exact.dcm")[:, :, 0]
    np.testing.assert_array_equal(exact, np.rint(np.clip((hounsfield - 40) / 400 + 0.5, 0, 1) * 255))
    _synthetic_ct(hounsfield, VOILUTFunction="SIGMOID").save_as(tmp_path / "sigmoid.dcm")
    sigmoid = decode_image(tmp_path / "sigmoid.dcm")[:, :, 0]
    np.testing.assert_array_equal(sigmoid, np.rint(255 / (1 + np.exp(-4 * (hounsfield - 40) / 400))))
    # an invalid window (width 0) falls back to the min..max of the Hounsfield units
    _synthetic_ct(hounsfield, WindowWidth=0).save_as(tmp_path / "nowidth.dcm")
    np.testing.assert_array_equal(decode_image(tmp_path / "nowidth.dcm")[:, :, 0], _minmax(hounsfield))


@needs_pydicom
def test_dicom_without_suffix_is_found_by_magic_and_bytes_work(tmp_path):
    source = _testdata("MR_small.dcm")
    plain = tmp_path / "IM000123"
    shutil.copyfile(source, plain)
    assert is_dicom(plain) and is_dicom(source) and is_dicom(plain.read_bytes())
    reference = decode_image(source)
    np.testing.assert_array_equal(decode_image(plain), reference)
    np.testing.assert_array_equal(decode_image(plain.read_bytes()), reference)
    png = _save(tmp_path, Image.fromarray(_rng_image(4, 4)), "x.png")
    assert not is_dicom(png) and not is_dicom(png.read_bytes()) and not is_dicom(tmp_path / "gone")
    assert is_dicom(tmp_path / "gone.DCM")  # the suffix alone decides


@needs_pydicom
def test_dicom_without_preamble_or_file_meta_is_read(tmp_path):
    from pydicom.filewriter import dcmwrite

    ds = _read("CT_small.dcm")
    del ds.file_meta
    ds.preamble = None
    dcmwrite(tmp_path / "old.dcm", ds, enforce_file_format=False, implicit_vr=True, little_endian=True)
    assert (tmp_path / "old.dcm").read_bytes()[128:132] != b"DICM"
    np.testing.assert_array_equal(decode_image(tmp_path / "old.dcm"), decode_image(_testdata("CT_small.dcm")))


@needs_pydicom
def test_multi_frame_gives_the_middle_frame():
    ds = _read("emri_small.dcm")  # 10 MR frames, no window
    assert int(ds.NumberOfFrames) == 10
    decoded = decode_image(_testdata("emri_small.dcm"))
    _assert_grey(decoded, (64, 64))
    np.testing.assert_array_equal(decoded[:, :, 0], _minmax(ds.pixel_array[5]))
    colour = _read("SC_rgb_2frame.dcm")
    np.testing.assert_array_equal(decode_image(_testdata("SC_rgb_2frame.dcm")), colour.pixel_array[1])


@needs_pydicom
def test_enhanced_ct_reads_rescale_and_window_from_functional_groups():
    ds = _read("eCT_Supplemental.dcm")  # 2 frames; rescale and window live in SharedFunctionalGroupsSequence
    shared = ds.SharedFunctionalGroupsSequence[0]
    intercept = float(shared.PixelValueTransformationSequence[0].RescaleIntercept)
    center = float(shared.FrameVOILUTSequence[0].WindowCenter)
    width = float(shared.FrameVOILUTSequence[0].WindowWidth)
    hounsfield = ds.pixel_array[1].astype(np.float64) + intercept
    expected = np.rint(np.clip((hounsfield - (center - 0.5)) / (width - 1) + 0.5, 0, 1) * 255)
    np.testing.assert_array_equal(decode_image(_testdata("eCT_Supplemental.dcm"))[:, :, 0], expected)


@needs_pydicom
def test_colour_dicoms():
    us = _read("US1_UNCR.dcm")  # ultrasound, RGB
    decoded = decode_image(_testdata("US1_UNCR.dcm"))
    assert decoded.shape == (480, 640, 3) and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, us.pixel_array)
    rgb = decode_image(_testdata("SC_rgb.dcm"))
    # YBR_FULL is converted to RGB: the same test picture as SC_rgb within YCbCr rounding
    assert np.abs(decode_image(_testdata("SC_ybr_full_uncompressed.dcm")).astype(int) - rgb).max() <= 8
    # 16-bit colour is scaled by its nominal depth: the same picture as the 8-bit file
    np.testing.assert_array_equal(decode_image(_testdata("SC_rgb_16bit.dcm")), rgb)


@needs_pydicom
def test_palette_colour_goes_through_its_lut():
    from pydicom.pixels import apply_color_lut

    ds = _read("OBXXXX1A.dcm")
    assert ds.PhotometricInterpretation == "PALETTE COLOR"
    lut = apply_color_lut(ds.pixel_array, ds)
    assert lut.dtype == np.uint16  # a 16-bit palette: scaled 0..65535 -> 0..255
    expected = np.rint(lut.astype(np.float64) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(decode_image(_testdata("OBXXXX1A.dcm")), expected)


@needs_pydicom
def test_voi_and_modality_lut_sequences():
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    voi = _read("vlut_04.dcm")  # VOI LUT Sequence, no window
    np.testing.assert_array_equal(decode_image(_testdata("vlut_04.dcm"))[:, :, 0],
                                  _minmax(apply_voi_lut(voi.pixel_array, voi)))
    modality = _read("mlut_18.dcm")  # Modality LUT Sequence
    np.testing.assert_array_equal(decode_image(_testdata("mlut_18.dcm"))[:, :, 0],
                                  _minmax(apply_modality_lut(modality.pixel_array, modality)))


@needs_pydicom
def test_jpeg2000_decodes_losslessly_when_pillow_can():
    try:
        decoded = decode_image(_testdata("MR_small_jp2klossless.dcm"))
    except ImageDecodeError as error:
        assert "MR_small_jp2klossless.dcm" in str(error) and "plugin" in str(error)
        return
    np.testing.assert_array_equal(decoded, decode_image(_testdata("MR_small.dcm")))


@needs_pydicom
@pytest.mark.parametrize("name", ["MR_small_jpeg_ls_lossless.dcm", "JPEG-LL.dcm"])
def test_missing_decoder_plugin_is_named(name):
    try:
        decode_image(_testdata(name))
    except ImageDecodeError as error:
        message = str(error)
        assert name in message and "Fix: install" in message
        assert any(plugin in message for plugin in ("pylibjpeg", "pyjpegls", "gdcm"))
    else:
        pytest.skip(f"a decoder plugin for {name} is installed here")


@needs_pydicom
def test_dicom_without_pixels_or_with_damaged_pixels(tmp_path):
    with pytest.raises(ImageDecodeError, match="has no pixel data"):
        decode_image(_testdata("rtplan.dcm"))
    assert "no Rows / Columns" in probe_image(_testdata("rtplan.dcm"))
    with pytest.raises(ImageDecodeError, match="corrupt DICOM pixel data"):
        decode_image(_testdata("MR_truncated.dcm"))
    palette = _read("OBXXXX1A.dcm")
    del palette.RedPaletteColorLookupTableData
    palette.save_as(tmp_path / "no_lut.dcm")
    with pytest.raises(ImageDecodeError, match="no_lut.dcm.*inconsistent DICOM display attributes"):
        decode_image(tmp_path / "no_lut.dcm")
    fake = tmp_path / "fake.dcm"
    fake.write_text("not dicom at all\n" * 10)
    with pytest.raises(ImageDecodeError, match="fake.dcm"):
        decode_image(fake)
    assert isinstance(probe_image(fake), str)
    assert probe_image(_testdata("CT_small.dcm")) is None and probe_image(_testdata("US1_UNCR.dcm")) is None


@needs_pydicom
def test_dicom_functions_are_importable_from_imageio():
    ds = _read("CT_small.dcm")
    from medrival.data.imageio import dicom_to_rgb_uint8, read_dicom

    np.testing.assert_array_equal(dicom_to_rgb_uint8(ds, name="ct"), decode_image(_testdata("CT_small.dcm")))
    assert read_dicom(_testdata("CT_small.dcm"), "ct").Rows == 128
    with pytest.raises(AttributeError):
        imageio.no_such_function  # noqa: B018


# --------------------------------------------------------------------------------------------- geometry

SIZES = [(301, 217), (217, 301), (64, 500), (500, 64), (224, 224), (225, 224), (230, 229)]


def _torchvision_shortest(image: np.ndarray, geometry: ImageGeometry) -> np.ndarray:
    from torchvision import transforms
    from torchvision.transforms import InterpolationMode

    mode = InterpolationMode.BICUBIC if geometry.interpolation == "bicubic" else InterpolationMode.BILINEAR
    pipeline = transforms.Compose([transforms.Resize(geometry.shortest_side, interpolation=mode),
                                   transforms.CenterCrop(geometry.size)])
    return np.asarray(pipeline(Image.fromarray(image)))


@pytest.mark.parametrize("height, width", SIZES)
@pytest.mark.parametrize("resize_size, interpolation", [(None, "bicubic"), (256, "bicubic"), (None, "bilinear")])
def test_shortest_matches_torchvision_exactly(height, width, resize_size, interpolation):
    image = _rng_image(height, width, seed=height * width)
    geometry = ImageGeometry(224, resize_size=resize_size, interpolation=interpolation)
    fitted = fit_geometry(image, geometry)
    assert fitted.shape == (224, 224, 3) and fitted.dtype == np.uint8 and fitted.flags.c_contiguous
    np.testing.assert_array_equal(fitted, _torchvision_shortest(image, geometry))


def test_floor_offsets_follow_transformers():
    image = _rng_image(227, 300, seed=5)  # shorter side 227 -> resized (224 + 3 rows): round(1.5)=2, floor=1
    geometry = ImageGeometry(224, resize_size=227, crop_offsets="floor")
    fitted = fit_geometry(image, geometry)
    np.testing.assert_array_equal(fitted, image[1:225, 38:262])  # 227 is already the short side: no resampling
    rounded = fit_geometry(image, ImageGeometry(224, resize_size=227))
    np.testing.assert_array_equal(rounded, image[2:226, 38:262])
    np.testing.assert_array_equal(rounded, _torchvision_shortest(image, ImageGeometry(224, resize_size=227)))
    resized = _rng_image(301, 217, seed=9)
    expected = np.asarray(Image.fromarray(resized).resize((224, int(224 * 301 / 217)), Image.Resampling.BICUBIC))
    top = (expected.shape[0] - 224) // 2
    np.testing.assert_array_equal(fit_geometry(resized, ImageGeometry(224, crop_offsets="floor")),
                                  expected[top:top + 224])


@pytest.mark.parametrize("height, width", SIZES)
def test_longest_pads_with_fill_like_a_hand_built_canvas(height, width):
    image = _rng_image(height, width, seed=3)
    fitted = fit_geometry(image, ImageGeometry(224, resize_mode="longest", fill=114))
    scale = 224 / max(height, width)
    new_width, new_height = round(width * scale), round(height * scale)
    canvas = Image.new("RGB", (224, 224), (114, 114, 114))
    pasted = Image.fromarray(image)
    if (new_height, new_width) != (height, width):
        pasted = pasted.resize((new_width, new_height), Image.Resampling.BICUBIC)
    canvas.paste(pasted, ((224 - new_width) // 2, (224 - new_height) // 2))
    np.testing.assert_array_equal(fitted, np.asarray(canvas))


@pytest.mark.parametrize("height, width", SIZES)
def test_longest_matches_open_clip_exactly(height, width):
    transform = pytest.importorskip("open_clip.transform")
    from torchvision.transforms import InterpolationMode

    image = _rng_image(height, width, seed=4)
    resize = transform.ResizeKeepRatio(224, longest=1, interpolation=InterpolationMode.BICUBIC)
    expected = transform.CenterCropOrPad(224, fill=0)(resize(Image.fromarray(image)))
    np.testing.assert_array_equal(fit_geometry(image, ImageGeometry(224, resize_mode="longest")), np.asarray(expected))


@pytest.mark.parametrize("height, width", SIZES)
def test_squash_matches_torchvision_exactly(height, width):
    from torchvision import transforms
    from torchvision.transforms import InterpolationMode

    image = _rng_image(height, width, seed=6)
    expected = transforms.Resize((224, 224), interpolation=InterpolationMode.BILINEAR)(Image.fromarray(image))
    fitted = fit_geometry(image, ImageGeometry(224, resize_mode="squash", interpolation="bilinear"))
    np.testing.assert_array_equal(fitted, np.asarray(expected))


@pytest.mark.parametrize("mode", ["shortest", "longest", "squash"])
def test_square_input_of_the_right_size_is_unchanged(mode):
    image = _rng_image(224, 224, seed=7)
    np.testing.assert_array_equal(fit_geometry(image, ImageGeometry(224, resize_mode=mode)), image)
    np.testing.assert_array_equal(fit_geometry(image, ImageGeometry(224, resize_mode=mode, crop_offsets="floor")),
                                  image)


def test_fit_geometry_rejects_non_rgb_uint8():
    with pytest.raises(DataError, match="H x W x 3 uint8"):
        fit_geometry(np.zeros((10, 10), dtype=np.uint8), ImageGeometry(8))
    with pytest.raises(DataError, match="float32"):
        fit_geometry(np.zeros((10, 10, 3), dtype=np.float32), ImageGeometry(8))
