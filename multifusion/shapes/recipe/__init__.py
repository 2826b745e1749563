"""The tiny model's recipe: the paper's staged training (design §6) from scratch on the shapes world, one module per
stage, on the general machinery of `training/`; the shipped `weights/multifusion-tiny` is what `train all` makes.

    multifusion train vae     --config tiny --out runs/tiny     # autoencoder.py: the VAE on renders
    multifusion train unet    --config tiny --out runs/tiny     # stand_in_sd.py: English-only U-Net ("pretrained SD")
    multifusion train encoder --config tiny --out runs/tiny     # multilingual_encoder.py: LM, image prefix, alignment
    multifusion train realign --config tiny --out runs/tiny     # realign_cross_attention.py: the U-Net's attn2 only
    multifusion train all     --config tiny --out runs/tiny     # the four, refine rounds, their mean; OUT/times.json
    multifusion train refine  --from PIPELINE --config tiny --out runs/refined   # refine.py: 3(c) and 4 again
    python -m multifusion.shapes.recipe.probe --config tiny --out runs/tiny     # stage 2 scored while it trains
    python -m multifusion.shapes.recipe.sides --model PIPELINE                  # which side the encoder reads each object on

`train all` ends with `average.py` (the mean of the last `refine.average_last` rounds). `data.py` holds the
recipe's scenes, caption corpus, tokenizer and noise schedule; `config.py` reads `configs/tiny.json` (by name) or a
JSON file. Every stage runs under accelerate (CPU, one GPU, or `accelerate launch` for many), checkpoints as it
goes, resumes with `--resume`, shows a progress bar and writes its losses to `OUT/STAGE/log.jsonl`.
"""

STAGES = ("vae", "unet", "encoder", "realign")  # what `train all` runs first, in this order
MODULES = {  # each stage's module in this package, whose `run` `multifusion train STAGE` calls
    "vae": "autoencoder",
    "unet": "stand_in_sd",
    "encoder": "multilingual_encoder",
    "realign": "realign_cross_attention",
    "refine": "refine",
    "average": "average",
}
