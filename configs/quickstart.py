"""Quickstart: a small AlexNet on a generated 10-class ImageNet, a few minutes on 2 CPU cores.

  python -m alexnet_jax.main --config=configs/quickstart.py --workdir=runs/quickstart

The first run writes the data set in the real ILSVRC2012 archive format and prepares it with
TFDS's own imagenet2012 builder (seconds); it then trains through the real input pipeline
(paper augmentation) and evaluates on held-out images (the last 10% of train: TFDS labels the
validation archive with the full 1000-class list, see tools/fake_imagenet.py).
"""
from configs import default


def get_config():
  config = default.get_config()
  config.total_steps = 600
  config.log_every_steps = 50
  config.eval_every_steps = 300
  config.data.fake_imagenet.classes = 10
  config.data.train_split = 'train[:90%]'
  config.data.eval_split = 'train[90%:]'
  config.data.image_size = 64
  config.data.batch_size = 64
  config.data.shuffle_buffer = 4096
  config.model.fc_width = 512
  config.optimizer.learning_rate = 0.02
  config.optimizer.schedule = 'cosine'
  config.optimizer.warmup_steps = 50
  config.checkpoint.every_steps = 300
  return config
