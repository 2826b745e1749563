"""Image references in prompts: data URLs, local paths, and the checks that keep bad files out.

Every image enters through `load_image`, which refuses decompression bombs before decoding, turns corrupt or
truncated files into a `PromptError`, and resolves local paths only when the caller allows it (the CLI and
Python do; a network request never does).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .errors import PromptError
from .png_chunks import check_whole

# Refuse larger encoded payloads before decoding anything (data URLs arrive from the network).
MAX_IMAGE_BYTES = 32 * 1024 * 1024
# Each side and the aspect ratio are bounded too (read from the header): a 1048576x16 image has few pixels but
# costs seconds and gigabytes in an image processor. Decoded images are reduced to WORKING_SIDE before use.
MAX_IMAGE_SIDE = 8192
MAX_ASPECT_RATIO = 16
WORKING_SIDE = 1024
CONTAINERS = ("ICO", "CUR", "ICNS")  # files of several images, each of its own size
_DATA_URL = re.compile(r"data:image/[A-Za-z0-9.+-]+(?:;[A-Za-z0-9=._+-]+)*;base64,", re.ASCII)


def image_digest(image: Image.Image) -> str:
    """SHA-256 of an image's mode, size and pixels: the same picture gives the same digest, whatever its file."""
    h = hashlib.sha256(f"{image.mode}:{image.width}x{image.height}:".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def to_data_url(image: Image.Image) -> str:
    """Encode an image as a PNG data URL (lossless, so `load_image` gives back the same pixels)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_image(data: bytes, max_pixels: int, what: str = "image") -> Image.Image:
    """Decode encoded image bytes to an RGB image, refusing bombs, corrupt and truncated files."""
    if len(data) > MAX_IMAGE_BYTES:
        raise PromptError(f"{what} is {len(data) / 2**20:.1f} MiB; the limit is {MAX_IMAGE_BYTES // 2**20} MiB")
    try:
        image = Image.open(io.BytesIO(data))
        if image.format in CONTAINERS:  # the header's size is an entry's claim, not what its frames decode to
            raise PromptError(f"{what} is an icon file ({image.format}); save it as PNG, JPEG or WebP to use it")
        check_dimensions(*image.size, max_pixels, what)  # read from the header, before any pixel is decoded
        if image.format == "PNG":
            check_whole(data, what)  # Pillow would fill the rows a file does not hold
        if image.format == "JPEG":
            check_jpeg_holds(data, *image.size, what)  # libjpeg would fill the blocks a file does not hold
        image.draft("RGB", (WORKING_SIDE, WORKING_SIDE))  # JPEG: decode at a reduced scale where it can
        image.load()
    except PromptError:
        raise
    except Image.DecompressionBombError:
        raise PromptError(f"{what} is a decompression bomb; the limit is {max_pixels:,} pixels") from None
    except UnidentifiedImageError:  # Pillow's text names its BytesIO object and address: never echoed
        raise PromptError(f"{what} is not a readable image file (not a format Pillow reads: PNG, JPEG, WebP, ...)") from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise PromptError(f"{what} is not a readable image file (truncated or corrupt)") from None
    return reduced(image.convert("RGB"))


_HUFFMAN_FRAMES = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7}  # SOF markers of Huffman-coded JPEGs


def check_jpeg_holds(data: bytes, width: int, height: int, what: str) -> None:
    """Refuse a Huffman-coded JPEG whose scans are too short for its header's size. Every 8x8 block's DC
    coefficient costs at least one bit, so a file holds at least one byte per 8 blocks of the image after its
    first scan header; a header patched to 4096x4096 over 64x64 data (which libjpeg would decode, filling the rest
    grey with a warning Pillow never raises) holds far less. Arithmetic-coded files have no such floor: not checked."""
    position, frame = 2, None
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return  # not a marker where one belongs: Pillow's decoder will refuse the file
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            position += 2
            continue
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            frame = marker
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            blocks = -(-width // 8) * -(-height // 8)
            if frame in _HUFFMAN_FRAMES and (len(data) - position - 2 - length) * 8 < blocks:
                raise PromptError(f"{what} is not a whole image file: its header says {width}x{height} but its data holds less")
            return
        position += 2 + length


def check_dimensions(width: int, height: int, max_pixels: int, what: str) -> None:
    """Refuse an image by its size alone: pixels, longest side and aspect ratio."""
    if width < 1 or height < 1:
        raise PromptError(f"{what} has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise PromptError(f"{what} is {width}x{height} pixels; the limit is {max_pixels:,} pixels")
    if max(width, height) > MAX_IMAGE_SIDE:
        raise PromptError(f"{what} is {width}x{height} pixels; each side may be at most {MAX_IMAGE_SIDE:,}")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise PromptError(f"{what} is {width}x{height} pixels; the aspect ratio may be at most {MAX_ASPECT_RATIO}:1")


def reduced(image: Image.Image) -> Image.Image:
    """The image with its longer side at most WORKING_SIDE (area-averaged), the aspect kept."""
    if max(image.size) > WORKING_SIDE:
        image = image.copy()
        image.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.BOX)
    return image


def load_image(
    ref: str | Path | bytes | Image.Image,
    *,
    max_pixels: int,
    allow_paths: bool = False,
    what: str = "image",
) -> Image.Image:
    """Resolve an image reference to an RGB image.

    Args:
        ref: a PIL image, encoded bytes, a `data:image/...;base64,` URL, or (only with `allow_paths`) a local path.
        max_pixels: refuse images with more pixels than this.
        allow_paths: resolve local file paths; never set it for references that arrive over a network.
        what: how error messages name the image (e.g. "segment 3 (image)").
    """
    if isinstance(ref, Image.Image):
        check_dimensions(ref.width, ref.height, max_pixels, what)
        return reduced(ref.convert("RGB"))
    if isinstance(ref, bytes):
        return decode_image(ref, max_pixels, what)
    if isinstance(ref, str) and (match := _DATA_URL.match(ref)):
        payload = ref[match.end() :]
        if len(payload) > MAX_IMAGE_BYTES * 4 // 3 + 4:
            raise PromptError(f"{what}: data URL is larger than {MAX_IMAGE_BYTES // 2**20} MiB")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise PromptError(f"{what}: the data URL is not valid base64") from None
        return decode_image(data, max_pixels, what)
    if isinstance(ref, (str, Path)) and allow_paths:
        path = Path(ref).expanduser()
        if not path.is_file():
            raise PromptError(f"{what}: no such file: {path}")
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise PromptError(f"{what}: {path} is larger than {MAX_IMAGE_BYTES // 2**20} MiB")
        return decode_image(path.read_bytes(), max_pixels, what)
    if isinstance(ref, (str, Path)):
        shown = str(ref)[:40]
        raise PromptError(f"{what}: expected a data URL (data:image/png;base64,...), got {shown!r}")
    raise PromptError(f"{what}: expected an image, bytes or a data URL, got {type(ref).__name__}")
