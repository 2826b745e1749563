"""The real-model recipe: pretrained models fused into one MultiFusion pipeline, then trained on captioned images.

    multifusion plan    --config fusion.json [--gpus 8 --gpu-memory 80]         # plan.py: memory and hours, first
    multifusion fuse    --stable-diffusion SD --lm LM --vision VISION --captions DATA --out runs/fused   # assemble.py
    multifusion prefix  --from runs/fused --data DATA --out runs/prefix        # stage_prefix.py: stage 3
    multifusion realign --from runs/prefix/pipeline --data DATA --out runs/realign   # stage_realign.py: stage 4

`assemble.py` loads the three components and re-dimensions the U-Net's cross-attention to the LM's width
(`redimension.py`); `stage_config.py` holds what the two stages share (settings, data stream, EMA, saving);
`configs/` holds example fusions for `plan`. The stages run on the general machinery of `training/` (loop,
sharding, losses, captioned-image streams, latent cache) under accelerate, `accelerate launch` for many GPUs.
"""
