"""PNG files read chunk by chunk, by the format's published rules (ISO/IEC 15948): their text without decoding a
pixel, and whether their image data is whole before anything decodes it.

Pillow reads a PNG's text chunks by decoding the whole image first, and fills the rows a file does not hold
instead of refusing it; both are what a hostile file exploits (a 13000x13000 picture behind a few hundred KB, a
header that promises 4096 rows over 10). Everything here is bounded: chunks are walked without reading the image
data into memory, and the image data is inflated in slices, counted and discarded.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from .errors import PromptError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_TEXT_BYTES = 16 * 1024 * 1024  # all text chunks together
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def is_png(head: bytes) -> bool:
    return head.startswith(SIGNATURE)


def chunks(f: BinaryIO, what: str, keep: tuple[bytes, ...]) -> Iterator[tuple[bytes, bytes | int]]:
    """(type, data) of each chunk up to IEND; chunks not in `keep` yield their length instead of their data and
    are skipped. `PromptError` when the file ends early or a checksum is wrong (for the chunks read)."""
    if f.read(8) != SIGNATURE:
        raise PromptError(f"{what} is not a PNG file")
    while True:
        head = f.read(8)
        if len(head) < 8:
            raise PromptError(f"{what} is not a readable image file (truncated: it ends before its IEND chunk)")
        length, kind = struct.unpack(">I4s", head)
        if kind not in keep:
            f.seek(length + 4, io.SEEK_CUR)
            yield kind, length
        else:
            data, crc = f.read(length), f.read(4)
            if len(data) < length or len(crc) < 4 or struct.unpack(">I", crc)[0] != zlib.crc32(kind + data) & 0xFFFFFFFF:
                raise PromptError(f"{what} is not a readable image file (a broken {kind.decode('latin-1')} chunk)")
            yield kind, data
        if kind == b"IEND":
            return


@dataclass(frozen=True)
class PngText:
    """What a PNG says of itself without a pixel decoded: its text chunks and its size (from IHDR)."""

    text: dict[str, str]
    size: tuple[int, int]


def png_text(f: BinaryIO, what: str = "the PNG") -> PngText:
    """The text chunks (tEXt, zTXt, iTXt) and size of a PNG, without decoding its image."""
    text: dict[str, str] = {}
    size = (0, 0)
    total = 0
    for kind, data in chunks(f, what, (b"IHDR", b"tEXt", b"zTXt", b"iTXt")):
        if kind == b"IHDR" and not isinstance(data, int) and len(data) >= 8:
            size = struct.unpack(">II", data[:8])
        if isinstance(data, int) or kind == b"IHDR":
            continue
        total += len(data)
        if total > MAX_TEXT_BYTES:
            raise PromptError(f"{what} holds more than {MAX_TEXT_BYTES // 2**20} MiB of text")
        try:
            key, value = _text_chunk(kind, data)
        except (ValueError, zlib.error, UnicodeDecodeError):
            continue  # a text chunk we cannot read is not ours
        text.setdefault(key, value)
    return PngText(text, size)


def _text_chunk(kind: bytes, data: bytes) -> tuple[str, str]:
    key, _, rest = data.partition(b"\0")
    if kind == b"tEXt":
        return key.decode("latin-1"), rest.decode("latin-1")
    if kind == b"zTXt":
        return key.decode("latin-1"), _inflate(rest[1:], MAX_TEXT_BYTES).decode("latin-1")
    compressed, _method, rest = rest[0], rest[1], rest[2:]
    _language, _, rest = rest.partition(b"\0")
    _translated, _, body = rest.partition(b"\0")
    return key.decode("latin-1"), (_inflate(body, MAX_TEXT_BYTES) if compressed else body).decode("utf-8")


def _inflate(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, limit)
    if inflater.unconsumed_tail:
        raise ValueError("text too long")
    return out


def check_whole(data: bytes, what: str) -> None:
    """Refuse a PNG whose chunks are broken, that ends before IEND, or whose image data holds fewer (or more)
    bytes than its header's size needs."""
    f = io.BytesIO(data)
    header: tuple | None = None
    inflater = zlib.decompressobj()
    produced = 0
    for kind, chunk in chunks(f, what, (b"IHDR", b"IDAT", b"IEND")):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            produced += _count(inflater, chunk)
    if header is None:
        raise PromptError(f"{what} is not a readable image file (no IHDR chunk)")
    needed = expected_bytes(*header[:4], interlaced=header[6] == 1)
    if produced != needed:
        raise PromptError(f"{what} is not a readable image file: its header says {header[0]}x{header[1]} but its data "
                          f"holds {'less' if produced < needed else 'more'}")  # fmt: skip


def _count(inflater: zlib._Decompress, chunk: bytes) -> int:
    """Inflate `chunk` in slices of at most 1 MiB, counting the bytes and keeping none."""
    count, pending = 0, chunk
    try:
        while pending:
            count += len(inflater.decompress(pending, 1 << 20))
            pending = inflater.unconsumed_tail
    except zlib.error:
        return -1
    return count


def expected_bytes(width: int, height: int, depth: int, colour: int, interlaced: bool) -> int:
    """Bytes of filtered scanlines a PNG of this header holds (a filter byte per row; Adam7 passes if interlaced)."""
    bits = depth * CHANNELS.get(colour, 4)

    def rows(w: int, h: int) -> int:
        return 0 if w == 0 or h == 0 else h * (1 + (w * bits + 7) // 8)

    if not interlaced:
        return rows(width, height)
    return sum(rows((width - x + dx - 1) // dx, (height - y + dy - 1) // dy) for x, y, dx, dy in ADAM7)
