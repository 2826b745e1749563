"""The shapes world written as captioned images in the formats people have (webdataset shards, an imagefolder), as
`training/captioned_images.py` streams them: the data the tests of the streams and of the real-model stages
(`fusion/`) train on."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Sequence
from pathlib import Path

from ..training.captioned_images import FORMATS
from .captions import LANGUAGES
from .dataset import ShapesDataset


def export_shapes(out: str | Path, count: int, fmt: str, seed: int = 0, shard_size: int = 1000, canvas: int = 64,
                  languages: Sequence[str] = LANGUAGES) -> Path:  # fmt: skip
    """Write `count` shapes-world samples (captions in `languages`, each with its language) as webdataset shards
    (`00000.tar`, ...; `.png` + `.txt` + `.json` per sample) or as an imagefolder (`images/` + `metadata.jsonl`)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = ShapesDataset(count, seed=seed, languages=languages, canvas=canvas)
    if fmt == "imagefolder":
        (out / "images").mkdir(exist_ok=True)
        with (out / "metadata.jsonl").open("w", encoding="utf-8") as meta:
            for index in range(count):
                sample = dataset[index]
                name = f"images/{index:06d}.png"
                sample.image.save(out / name)
                meta.write(json.dumps({"file_name": name, "text": sample.caption, "language": sample.lang}, ensure_ascii=False) + "\n")
        return out
    for start in range(0, count, shard_size):
        with tarfile.open(out / f"{start // shard_size:05d}.tar", "w") as tar:
            for index in range(start, min(start + shard_size, count)):
                sample, key = dataset[index], f"{index:09d}"
                image = io.BytesIO()
                sample.image.save(image, format="PNG")
                meta = {"key": key, "caption": sample.caption, "language": sample.lang}
                for suffix, data in ((".png", image.getvalue()), (".txt", sample.caption.encode("utf-8")),
                                     (".json", json.dumps(meta, ensure_ascii=False).encode("utf-8"))):  # fmt: skip
                    info = tarfile.TarInfo(key + suffix)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return out
