"""The shapes world: one or two coloured shapes on a canvas, captioned in five languages; the tiny model is trained
on it and the evaluation measures with it.

- the world and its words: `world.py` (scenes), `captions.py` and `frames.py` (captions, training and held-out
  frames), `vocabulary.py` (every word a caption can hold);
- images: `render.py` (scenes and reference images), `augment.py` (references varied as people draw them),
  `foreign.py` (an independent drawing routine, for the benchmark), `scorer.py` (reading an image back);
- data: `dataset.py` (deterministic samples), `export.py` (written as webdataset shards or an imagefolder);
- `recipe/`: the tiny model's training recipe on this world (`multifusion train ...`).
"""
