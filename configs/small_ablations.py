"""The paper's ablations at a scale of minutes on 2 CPU cores (docs/results.md).

  python launch/sweep.py --config=configs/small_ablations.py \
      --sweep=configs/sweeps/small_ablations.py --workdir_root=runs/ablations/seed0 \
      --config.seed=0      # and again with seed 1, ...
  python -m alexnet_jax.tools.report runs/ablations

The paper's network (LRN, overlapping pooling, two groups, flips, PCA lighting; no dropout) with
FC6/FC7 256 wide, on 64-px images of the generated 10-class ImageNet, trained on 600 images (60 a
class) for 13 epochs, where regularisation can matter, and evaluated on 300 held-out ones. The
recipe is the quickstart's (AdamW, He initialisation), not the paper's: with N(0, 0.01) and SGD a
network this small sits at chance for hundreds of steps. Dropout 0.5 is off: with it this network
stayed near chance in calibration runs (--config.model.dropout_rate=0.5: 13% held-out top-1 after
240 steps; with --config.optimizer.warmup_steps=50 14% after 160; with
--config.optimizer.learning_rate=0.0003 16% after 120; chance is 10%; without dropout 36% after
120), so the sweep (sweeps/small_ablations.py) adds it back as its dropout point.
Expected (docs/results.md): differences of a few points at most, most within the seed spread.
"""
from configs import quickstart


def get_config():
  config = quickstart.get_config()
  config.total_steps = 240
  config.log_every_steps = 20
  config.eval_every_steps = 80
  config.data.train_split = 'train[:20%]'
  config.data.batch_size = 32
  config.model.fc_width = 256
  config.optimizer.warmup_steps = 20
  config.checkpoint.every_steps = 240
  config.checkpoint.keep = 1
  return config
