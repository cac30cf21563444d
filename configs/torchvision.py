"""torchvision's AlexNet layout with torchvision's reference recipe (references/classification).

  python -m alexnet_jax.main --config=configs/torchvision.py --workdir=runs/tv \
      --config.data.manual_dir=/data/imagenet

Recipe: SGD lr 0.01 (0.1 diverges without BatchNorm), momentum 0.9, weight decay 1e-4, x0.1
every 30 epochs, 90 epochs, global batch 256 (8 GPUs x 32), random-resized crops and flips, no
PCA lighting, centre-crop evaluation. Expected: 56.5% top-1 / 79.1% top-5 (torchvision's weights).
"""
from configs import default


def get_config():
  config = default.get_config()
  config.model.variant = 'torchvision'
  config.data.batch_size = 256
  config.data.crop = 'inception'
  config.data.pca_lighting_std = 0.0
  config.optimizer.weight_decay = 1e-4
  config.optimizer.decay_every_epochs = 30.0
  return config
