"""Reading and writing images (Pillow), with atomic writes.

Any format Pillow reads; EXIF orientation is applied; grayscale, palette, RGBA/LA, CMYK,
bilevel and 16-bit images are turned into uint8 RGB for the pipeline and written back in
their own mode where the output format stores it (:func:`compose_output`), taking only the
replaced pixels from the anonymized RGB (so every other pixel keeps its exact value). Metadata (EXIF, which may hold GPS positions) is not copied; the ICC
profile is. Outputs are written to a temporary file and renamed when complete
(:func:`~sganon.core.atomic.atomic_output`): a failure never leaves a partial or
unanonymized file under the output name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_output
from .errors import InputError

#: Largest image / video frame read by default (width x height): 100 MP.
DEFAULT_MAX_PIXELS = 100_000_000
OUTPUT_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG"}


def image_extensions() -> frozenset[str]:
    """File extensions Pillow can read (lower case, with the dot)."""
    from PIL import Image

    Image.init()
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


@dataclass
class LoadedImage:
    """An image as read from disk.

    Attributes:
        rgb: uint8 ``[H, W, 3]``, what the pipeline sees (upright).
        original: The upright Pillow image in its own mode (``L``, ``RGBA``, ``I;16``, ...);
            ``None`` for RGB images, whose pixels are ``rgb`` exactly (not kept twice:
            a 96 MP photo is 288 MB as an array, 384 MB as a Pillow image).
        format: Pillow's format name of the file (``"JPEG"``, ``"PNG"``, ...).
        mode: The file's Pillow mode.
        icc_profile: The file's ICC profile (bytes) or ``None``.
    """

    rgb: np.ndarray
    original: Any
    format: str
    mode: str = "RGB"
    icc_profile: bytes | None = None


def read_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read an image; raises :class:`InputError` naming the problem (empty, truncated, not an
    image, more than one frame, more than ``max_pixels`` pixels - checked from the header)."""
    import warnings

    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise InputError(f"{path}: the file is empty")
        with warnings.catch_warnings():
            # Our own limit replaces Pillow's decompression-bomb check.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                with Image.open(path) as image:
                    check_pixels(path, image.width, image.height, max_pixels)
                    if getattr(image, "n_frames", 1) > 1:
                        raise InputError(
                            f"{path}: has {image.n_frames} frames (animated or multi-page); only single-frame "
                            "images are anonymized - split it into frames first"
                        )
                    file_format = image.format or "PNG"
                    image.load()
                    ImageOps.exif_transpose(image, in_place=True)  # not a copy (a 96 MP photo: 384 MB)
                    upright = image
            finally:
                Image.MAX_IMAGE_PIXELS = limit
    except UnidentifiedImageError as error:
        raise InputError(f"{path}: not an image file Pillow can read") from error
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise InputError(f"{path}: cannot decode the image (truncated or corrupt?): {error}") from error
    if upright.width == 0 or upright.height == 0:
        raise InputError(f"{path}: the image has zero size ({upright.width}x{upright.height})")
    rgb = to_rgb8(upright)
    mode, icc_profile = upright.mode, upright.info.get("icc_profile")
    return LoadedImage(rgb, None if mode == "RGB" else upright, file_format, mode, icc_profile)


def check_pixels(path: Path, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise InputError(
            f"{path}: {width}x{height} = {width * height / 1e6:.1f} MP is more than --max-pixels "
            f"{max_pixels / 1e6:g} MP; raise --max-pixels if you have the memory"
        )


def to_rgb8(image: Any) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]`` of a Pillow image of any mode (16/32-bit gray scaled to 8 bits)."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image).astype(np.float64)
        peak = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        gray = np.clip(np.round(values / peak * 255), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        gray = np.clip(np.round(np.asarray(image, dtype=np.float64)), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "RGB":  # one copy (convert would make a second, .copy() a third: 3 x 288 MB at 96 MP)
        return np.array(image, dtype=np.uint8)
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return np.array(image.convert("RGB"), dtype=np.uint8)


def output_format(loaded: LoadedImage, extension: str | None) -> str:
    if extension:
        return OUTPUT_FORMATS[extension.lower().lstrip(".")]
    return loaded.format


#: Modes the output keeps only where its format can store them (else: the RGB the pipeline saw).
STORABLE = {
    "CMYK": {"JPEG", "TIFF"},  # PNG, BMP, GIF, WebP cannot hold CMYK
    "P": {"PNG", "TIFF", "GIF", "BMP"},
    "1": {"PNG", "TIFF", "GIF", "BMP", "JPEG", "PPM"},
}


def compose_output(loaded: LoadedImage, anonymized: np.ndarray, replaced: np.ndarray, file_format: str) -> Any:
    """The output Pillow image: the original's mode, replaced pixels from ``anonymized``
    (for RGB images ``anonymized`` itself is completed in place and used).

    Pixels outside ``replaced`` keep their original values exactly, in any mode the output
    format can store (docs/anonymize.md, "Images"): L, RGBA, LA and 16/32-bit gray as they
    are; CMYK, palette (P, its own palette; with a transparent colour: RGBA) and bilevel (1)
    with the replaced pixels converted from RGB (Pillow's conversion; palette: the nearest
    colour of the image's palette). Other modes (YCbCr, LAB, F, ...) and modes the format
    cannot store are written as the RGB the pipeline saw. JPEG cannot store alpha or 16 bits,
    so those are converted.
    """
    from PIL import Image

    original = loaded.original
    mode = loaded.mode
    where = replaced[..., None]
    if mode == "P" and "transparency" in original.info:
        original, mode = original.convert("RGBA"), "RGBA"
    if mode == "RGB":
        # In place (no image-sized temporary): ``anonymized`` becomes the output's pixels, and
        # ``loaded.rgb`` (equal to it now) lets the input's buffer go before Pillow copies the
        # output (a 96 MP photo: 288 MB less at the run's memory peak).
        np.copyto(anonymized, loaded.rgb, where=~where)
        loaded.rgb = anonymized
        result = Image.fromarray(anonymized)
    elif mode in ("RGBA", "LA", "L"):
        base = np.asarray(original)
        fresh = np.asarray(Image.fromarray(anonymized).convert(mode))
        if mode == "L":
            result = Image.fromarray(np.where(replaced, fresh, base), "L")
        else:
            colour = fresh[..., :-1]
            merged = np.where(where, colour, base[..., :-1])
            result = Image.fromarray(np.concatenate([merged, base[..., -1:]], axis=2), mode)
    elif mode.startswith("I;16") or mode == "I":
        base = np.asarray(original)
        gray = np.asarray(Image.fromarray(anonymized).convert("L")).astype(np.float64)
        peak = 65535 if mode.startswith("I;16") or base.max(initial=0) > 255 else 255
        fresh = np.round(gray / 255 * peak).astype(base.dtype)
        merged = np.where(replaced, fresh, base)
        # uint16 arrays become mode I;16, int32 arrays mode I.
        result = Image.fromarray(merged.astype(np.uint16 if mode.startswith("I;16") else np.int32))
    elif mode in STORABLE and file_format in STORABLE[mode]:
        if mode == "P":
            fresh_image = Image.fromarray(anonymized).quantize(palette=original, dither=Image.Dither.NONE)
        else:
            fresh_image = Image.fromarray(anonymized).convert(mode)
        base, fresh = np.asarray(original), np.asarray(fresh_image)
        merged = np.where(where if base.ndim == 3 else replaced, fresh, base)
        result = Image.fromarray(merged, mode if mode == "CMYK" else None)  # 4 channels would read as RGBA
        if mode == "P":
            result.putpalette(original.getpalette())
    else:  # YCbCr, LAB, F, ..., or a mode the format cannot store: the RGB the pipeline saw
        base = to_rgb8(original)
        result = Image.fromarray(np.where(where, anonymized, base))
    if file_format == "JPEG":
        if result.mode in ("RGBA", "LA", "P"):
            result = result.convert("RGB" if result.mode != "LA" else "L")
        elif result.mode.startswith("I"):
            result = Image.fromarray(np.where(where, anonymized, to_rgb8(original))[..., 0], "L")
    return result


def write_image(
    path: Path, loaded: LoadedImage, anonymized: np.ndarray, replaced: np.ndarray, extension: str | None = None
) -> None:
    """Write the anonymized image atomically, in the input's format unless ``extension`` is given.
    For RGB inputs ``anonymized`` is completed in place and ``loaded.rgb`` is then that array
    (:func:`compose_output`)."""
    file_format = output_format(loaded, extension)
    image = compose_output(loaded, anonymized, replaced, file_format)
    options: dict[str, Any] = {}
    if loaded.icc_profile:
        options["icc_profile"] = loaded.icc_profile
    if file_format == "JPEG":
        options.update(quality=95)
    with atomic_output(Path(path)) as temporary:
        image.save(temporary, format=file_format, **options)
