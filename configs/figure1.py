"""Figure 1 of the paper (section 3.1): steps to 25% training error, ReLU against tanh.

  python launch/sweep.py --config=configs/figure1.py --sweep=configs/sweeps/figure1.py \
      --workdir_root=runs/figure1
  python -m alexnet_jax.tools.report runs/figure1 --train_error=0.25 --output=runs/figure1

The paper trained a four-layer CNN on CIFAR-10 without regularisation and found ReLUs reached 25%
training error six times faster than tanh, each at its own best learning rate. Here: torchvision's
AlexNet layout, narrowed (FC 256 wide), He initialisation, SGD with momentum 0.9 at a constant
learning rate (after 20 warm-up steps), batch 32, no weight decay, dropout, flips or PCA lighting
(random crops stay), 64-px images of
the generated 10-class ImageNet (offline). With CIFAR-10 prepared by TFDS, add
  --config.data.name=cifar10 --config.data.train_split=train --config.data.eval_split=test \
      --config.model.num_classes=10
(the generated set is read through TFDS's imagenet2012 builder: 1000 outputs, 10 of them used).
Expected (docs/results.md): ReLU reaches 25% training error several times sooner than tanh.
"""
from configs import default


def get_config():
  config = default.get_config()
  config.total_steps = 400
  config.log_every_steps = 10  # the resolution of "steps to 25% training error"
  config.eval_every_steps = 0
  config.data.fake_imagenet.classes = 10
  config.data.train_split = 'train[:90%]'
  config.data.eval_split = 'train[90%:]'
  config.data.image_size = 64
  config.data.batch_size = 32
  config.data.flip = False
  config.data.pca_lighting_std = 0.0
  config.model.variant = 'torchvision'
  config.model.fc_width = 256
  config.model.dropout_rate = 0.0
  config.model.weight_init = 'he'
  config.optimizer.learning_rate = 0.003
  config.optimizer.warmup_steps = 20  # without it, 0.01 blew up in the first steps and stalled
  config.optimizer.weight_decay = 0.0
  config.optimizer.schedule = 'constant'
  config.checkpoint.every_steps = 100000  # the end only
  config.checkpoint.keep = 1
  return config
