"""The paper's staged training recipe (design §6), one module per stage, the same code at every scale.

    multifusion train vae     --config tiny --out runs/tiny
    multifusion train unet    --config tiny --out runs/tiny     # English-conditioned U-Net ("pretrained SD")
    multifusion train encoder --config tiny --out runs/tiny     # LM, MAGMA image prefix, cross-lingual alignment
    multifusion train realign --config tiny --out runs/tiny     # only the U-Net's cross-attention, frozen encoder
    multifusion train all     --config tiny --out runs/tiny     # the four, refine.rounds refinements, their average; OUT/times.json
    python -m multifusion.train.probe --config tiny --out runs/tiny   # stage 2 scored while it trains

Every stage runs under accelerate (CPU, one GPU, or `accelerate launch` for many), checkpoints as it goes, resumes
with `--resume`, shows a progress bar and writes its losses to `OUT/STAGE/log.jsonl`.
"""

STAGES = ("vae", "unet", "encoder", "realign")
