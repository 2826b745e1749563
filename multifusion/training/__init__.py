"""The general training machinery both recipes use; it knows nothing of the shapes world or of either recipe.

- `loop.py`: the one training loop (accelerate, AdamW with warm-up, clipping, JSONL loss log, checkpoints and
  `--resume`); `sharding.py`: FSDP2 sharding and sharded checkpoints for models larger than one GPU.
- `losses.py`: the denoising loss (min-SNR, optional teacher), token matching and symmetric InfoNCE.
- `encoder_step.py`: a MultiFusion encoder's training step (prompts encoded with gradients, the LM loss).
- `cross_attention.py`: a U-Net's `attn2` modules and how it reads a conditioning through them.
- `latents.py`: images as tensors and scaled VAE latents; `latent_cache.py`: those latents cached on disk.
- `captioned_images.py`: captioned images streamed from webdataset shards or an imagefolder, prepared for a stage.

The recipes that use it: `shapes/recipe/` (the tiny model from scratch on the shapes world) and `fusion/` (real
pretrained models fused and trained on captioned images).
"""
