"""Quickstart: the paper's AlexNet, narrowed, on a generated 10-class ImageNet; minutes on 2 CPU cores.

  python -m alexnet_jax.main --config=configs/quickstart.py --workdir=runs/quickstart

The first run writes the data set in the real ILSVRC2012 archive format and prepares it with
TFDS's own imagenet2012 builder (about 15 s); it then trains through the real input pipeline
(paper augmentation) and evaluates on held-out images (the last 10% of train: TFDS labels the
validation archive with the full 1000-class list, see alexnet_jax/fake_imagenet.py).
Expected: about 97% top-1 on the held-out images after 700 steps, 2 min 45 s on 2 CPU cores with
the data generation (chance: 10%). FC6/FC7 are 512 wide instead of 4096, and the recipe is for
minutes, not days: AdamW, no dropout, He initialisation. With the paper's N(0, 0.01) init (or
PyTorch's) this small model sits at chance for 200-300 steps and ends near 30-40% top-1.
"""
from configs import default


def get_config():
  config = default.get_config()
  config.total_steps = 700
  config.log_every_steps = 50
  config.eval_every_steps = 350
  config.data.fake_imagenet.classes = 10
  config.data.train_split = 'train[:90%]'
  config.data.eval_split = 'train[90%:]'
  config.data.image_size = 64
  config.data.batch_size = 64
  config.model.fc_width = 512
  config.model.dropout_rate = 0.0
  config.model.weight_init = 'he'
  config.optimizer.name = 'adamw'
  config.optimizer.learning_rate = 0.001
  config.optimizer.weight_decay = 1e-4
  config.optimizer.schedule = 'cosine'
  config.optimizer.warmup_steps = 50
  config.checkpoint.every_steps = 350
  return config
