"""Quickstart: a small AlexNet trained in a few minutes on 2 CPU cores.

  python -m alexnet_jax.main --config=configs/quickstart.py --workdir=/tmp/alexnet_quickstart
"""
from configs import default


def get_config():
  config = default.get_config()
  config.total_steps = 300
  config.log_every_steps = 25
  config.eval_every_steps = 150
  config.data.name = 'synthetic'
  config.data.image_size = 64
  config.data.batch_size = 64
  config.model.num_classes = 10
  config.optimizer.schedule = 'cosine'
  config.optimizer.warmup_steps = 20
  config.checkpoint.every_steps = 150
  return config
