"""AlexNet, the paper's network, trained from scratch on CIFAR-10's photos.

  tar xzf cifar10-train-jpeg.tar.gz -C data/cifar10     # data/cifar10/train/<class>/*.jpg
  python -m alexnet_jax.main --config=configs/cifar10.py --workdir=runs/cifar10_alexnet \
      --config.data.name=folder:data/cifar10
  python -m alexnet_jax.tools.evaluate --workdir=runs/cifar10_alexnet --config.data.eval_crops=10

The paper's layers (five convolutions with two groups, LRN after conv1 and conv2, overlapping 3/2
max pooling, FC6/FC7 of 4096 with dropout 0.5, its N(0, 0.01) initialisation and biases of 1)
with one change for 32-px photos: conv1 is 5x5 with stride 2 (padding 2) instead of 11x11 with
stride 4, so its 96 maps are 16x16, as the paper's 55x55 maps are about a quarter of its 224-px
input; the pools then leave 7x7, 3x3 and 1x1 maps, and FC6 reads the 256 features of the last one
(model.pooled_size=1). The choice was measured against upsampling the photos to 64 px for the
paper's own conv1 (as fast; docs/results.md, 'AlexNet on CIFAR-10').

The paper's augmentation at its own ratio: random 28-px windows of the 32-px photos (224/256 of the
side) scaled to 32, flips, PCA lighting; the centre window to evaluate (or
--config.data.eval_crops=10: four corners, centre and their mirrors). 45,000 photos train and
5,000 are held out (a fixed shuffle of the training set). The paper's SGD (batch 128, momentum
0.9, weight decay 5e-4) with a cosine decay of the learning rate over the budget instead of its
three divisions by 10, which need a run long enough for the error to plateau three times.
Expected: the numbers in docs/results.md ('AlexNet on CIFAR-10'), measured on 2 CPU cores.
With TFDS's cifar10 instead of the folder: --config.data.name=cifar10
--config.data.train_split=train --config.data.eval_split=test.
"""
from configs import default


def get_config():
  config = default.get_config()
  config.num_epochs = 12.0
  config.log_every_steps = 50
  config.eval_every_steps = 0  # at the end (and at every checkpoint's step if set)
  config.data.name = 'folder:data/cifar10'
  config.data.train_split = 'train[:90%]'
  config.data.eval_split = 'train[90%:]'
  config.data.image_size = 32
  config.data.batch_size = 128
  config.model.num_classes = 10
  config.model.conv1_kernel = 5
  config.model.conv1_stride = 2
  config.model.pooled_size = 1
  config.optimizer.learning_rate = 0.01
  config.optimizer.schedule = 'cosine'
  config.optimizer.warmup_steps = 200
  config.checkpoint.every_steps = 1000
  config.checkpoint.keep = 2
  return config
