"""Captioned images as people have them (webdataset shards, imagefolder), streamed; the shapes world exported."""

import io
import json
import random
import tarfile

import pytest
from PIL import Image

from multifusion.shapes.dataset import ShapesDataset
from multifusion.shapes.export import export_shapes
from multifusion.training.captioned_images import prepare, CaptionedImages


@pytest.mark.parametrize("fmt", ["webdataset", "imagefolder"])
def test_the_shapes_world_exported_reads_back_sample_for_sample(tmp_path, fmt):
    export_shapes(tmp_path, 12, fmt, seed=3, shard_size=5)
    if fmt == "webdataset":
        assert sorted(p.name for p in tmp_path.glob("*.tar")) == ["00000.tar", "00001.tar", "00002.tar"]
    samples = list(CaptionedImages(tmp_path))
    expected = ShapesDataset(12, seed=3)
    assert [s.caption for s in samples] == [expected[i].caption for i in range(12)]
    assert [s.language for s in samples] == [expected[i].lang for i in range(12)]
    assert samples[4].image.tobytes() == expected[4].image.convert("RGB").tobytes()


@pytest.mark.parametrize("fmt", ["webdataset", "imagefolder"])
def test_processes_read_disjoint_parts_that_cover_the_data(tmp_path, fmt):
    export_shapes(tmp_path, 12, fmt, shard_size=3)
    parts = [[s.key for s in CaptionedImages(tmp_path, rank=r, world_size=2)] for r in range(2)]
    assert parts[0] and parts[1] and not set(parts[0]) & set(parts[1])
    assert len(parts[0]) + len(parts[1]) == 12


def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def png(colour, size=(40, 20)):
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_img2dataset_shards_with_json_captions_and_bad_samples(tmp_path):
    with tarfile.open(tmp_path / "shard.tar", "w") as tar:
        add(tar, "0001.jpg", png("red"))  # an image with its caption in .json only, and a language
        add(tar, "0001.json", json.dumps({"caption": "ein roter Kreis", "language": "de", "url": "x"}).encode())
        add(tar, "0002.png", b"not an image")
        add(tar, "0002.txt", b"broken")
        add(tar, "0003.png", png("blue"))  # no caption at all
        add(tar, "0004.webp", png("green"))
        add(tar, "0004.txt", "un cœur vert\n".encode())
    data = CaptionedImages(tmp_path / "shard.tar")
    samples = list(data)
    assert [(s.key, s.caption, s.language) for s in samples] == [("0001", "ein roter Kreis", "de"), ("0004", "un cœur vert", None)]
    assert data.skipped == 2


def test_imagefolder_refuses_paths_outside_its_folder(tmp_path):
    (tmp_path / "a.png").write_bytes(png("red"))
    (tmp_path / "metadata.jsonl").write_text(
        json.dumps({"file_name": "a.png", "text": "a red circle"}) + "\n" + json.dumps({"file_name": "../../etc/passwd", "text": "x"}) + "\n"
    )
    data = CaptionedImages(tmp_path)
    assert [s.caption for s in data] == ["a red circle"] and data.skipped == 1


def test_images_are_resized_and_cropped_square():
    wide = Image.new("RGB", (100, 50), "red")
    wide.paste((0, 0, 255), (0, 0, 20, 50))  # a blue left fifth, outside the centre crop
    centre = prepare(wide, 32)
    assert centre.size == (32, 32) and centre.getpixel((0, 16)) == (255, 0, 0)
    crops = {prepare(wide, 32, center_crop=False, rng=random.Random(seed)).getpixel((0, 16)) for seed in range(20)}
    assert len(crops) > 1  # random crops reach the blue part at some seeds


def test_a_source_that_is_neither_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="metadata.jsonl"):
        CaptionedImages(tmp_path)
    with pytest.raises(ValueError, match="rank"):
        CaptionedImages(tmp_path, rank=2, world_size=2)
