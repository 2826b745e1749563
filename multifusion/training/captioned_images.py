"""Captioned images in the formats people have, streamed, and prepared for a stage (resized, cropped square).

- **webdataset** (as img2dataset writes it): `*.tar` shards whose members of one sample share a key
  (`000123.jpg`, `000123.txt`, `000123.json`). The caption is the `.txt`, else the `.json`'s `caption` or `text`;
  the language is the `.json`'s `language` or `lang`, if any.
- **imagefolder** (Hugging Face `datasets`): a folder with `metadata.jsonl`, one JSON object per line with
  `file_name` (relative to the folder), the caption as `text` or `caption`, and optionally `language`.

Both are read as a stream: shards member by member (`tarfile` in stream mode), metadata line by line, each image
only when its sample is reached, so a dataset larger than memory, or than the local disk (shards on a mounted
filesystem), works. With `rank` and `world_size`, each process reads its own shards (webdataset) or lines
(imagefolder). A sample without a caption or with an unreadable image is skipped and counted, never fatal.
`shapes/export.py` writes the shapes world in both formats, to test them.
"""

from __future__ import annotations

import io
import json
import logging
import random
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

LOG = logging.getLogger(__name__)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
FORMATS = ("webdataset", "imagefolder")


@dataclass(frozen=True)
class CaptionedImage:
    image: Image.Image
    caption: str
    language: str | None  # None when the data does not say
    key: str  # the sample's key (webdataset) or file name (imagefolder)


class CaptionedImages:
    """An iterable over the captioned images at `source`: a folder with `metadata.jsonl` (imagefolder), a folder
    of `.tar` shards, one `.tar`, or a list of `.tar` paths (webdataset). `skipped` counts bad samples seen."""

    def __init__(self, source: str | Path | Sequence[str | Path], rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not one of world_size {world_size} processes")
        self.rank, self.world_size, self.skipped = rank, world_size, 0
        if isinstance(source, (str, Path)) and (Path(source) / "metadata.jsonl").is_file():
            self.format, self.root, self.shards = "imagefolder", Path(source), []
            return
        if isinstance(source, (str, Path)):
            source = Path(source)
            shards = sorted(source.glob("*.tar")) if source.is_dir() else [source]
        else:
            shards = [Path(s) for s in source]
        if not shards or any(s.suffix != ".tar" for s in shards):
            raise ValueError(f"{source}: expected a folder with metadata.jsonl, a folder of .tar shards, or .tar files")
        self.format, self.root, self.shards = "webdataset", None, shards

    def __iter__(self) -> Iterator[CaptionedImage]:
        if self.format == "imagefolder":
            yield from self._imagefolder()
        else:
            for shard in self.shards[self.rank :: self.world_size]:
                yield from self._shard(shard)

    def _imagefolder(self) -> Iterator[CaptionedImage]:
        with (self.root / "metadata.jsonl").open(encoding="utf-8") as lines:
            for number, line in enumerate(lines):
                if number % self.world_size != self.rank or not line.strip():
                    continue
                try:
                    meta = json.loads(line)
                    name = meta["file_name"]
                    path = (self.root / name).resolve()
                    if not path.is_relative_to(self.root.resolve()):
                        raise ValueError("file_name leaves the folder")
                    sample = self._sample(path.read_bytes(), _caption_of(meta), meta, name)
                except (ValueError, KeyError, TypeError, OSError) as error:
                    sample = self._skip(f"metadata.jsonl line {number + 1}", error)
                if sample is not None:
                    yield sample

    def _shard(self, shard: Path) -> Iterator[CaptionedImage]:
        group: dict[str, bytes] = {}
        key = None
        with tarfile.open(shard, mode="r|*") as tar:  # stream mode: members in order, nothing seeks
            for member in tar:
                if not member.isfile():
                    continue
                name = Path(member.name)
                member_key = str(name.with_suffix(""))
                if key is not None and member_key != key:
                    yield from self._group(shard, key, group)
                    group = {}
                key = member_key
                group[name.suffix.lower()] = tar.extractfile(member).read()
        if key is not None:
            yield from self._group(shard, key, group)

    def _group(self, shard: Path, key: str, members: dict[str, bytes]) -> Iterator[CaptionedImage]:
        where = f"{shard.name}:{key}"
        try:
            meta = json.loads(members[".json"]) if ".json" in members else {}
            caption = members[".txt"].decode("utf-8") if ".txt" in members else _caption_of(meta)
            image = next((members[ext] for ext in IMAGE_EXTENSIONS if ext in members), None)
            if image is None:
                raise ValueError("no image member")
            sample = self._sample(image, caption, meta, key)
        except (ValueError, KeyError, UnicodeDecodeError) as error:
            sample = self._skip(where, error)
        if sample is not None:
            yield sample

    def _sample(self, image_bytes: bytes, caption: str, meta: dict, key: str) -> CaptionedImage:
        if not isinstance(caption, str) or not caption.strip():
            raise ValueError("no caption")
        try:
            image = Image.open(io.BytesIO(image_bytes))
            image.load()
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"unreadable image ({type(error).__name__})") from None
        language = meta.get("language", meta.get("lang")) if isinstance(meta, dict) else None
        return CaptionedImage(image.convert("RGB"), caption.strip(), language if isinstance(language, str) else None, key)

    def _skip(self, where: str, error: Exception) -> None:
        self.skipped += 1
        LOG.warning("skipping %s: %s", where, error)
        return None


def _caption_of(meta: dict) -> str:
    caption = meta.get("caption", meta.get("text")) if isinstance(meta, dict) else None
    if not isinstance(caption, str):
        raise ValueError("no caption")
    return caption


def prepare(image: Image.Image, resolution: int, center_crop: bool = True, rng: random.Random | None = None) -> Image.Image:
    """The image resized so that its shorter side is `resolution`, then cropped square: at the centre, or at a
    random place (`center_crop=False`, drawn from `rng`)."""
    scale = resolution / min(image.size)
    width, height = max(resolution, round(image.width * scale)), max(resolution, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.BICUBIC)
    if center_crop:
        left, top = (width - resolution) // 2, (height - resolution) // 2
    else:
        rng = rng or random.Random()
        left, top = rng.randint(0, width - resolution), rng.randint(0, height - resolution)
    return image.crop((left, top, left + resolution, top + resolution))
