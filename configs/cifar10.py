"""AlexNet, the paper's network, trained from scratch on CIFAR-10's photos.

  tar xzf cifar10-train-jpeg.tar.gz -C data/cifar10     # data/cifar10/train/<class>/*.jpg
  python -m alexnet_jax.main --config=configs/cifar10.py --workdir=runs/cifar10_alexnet \
      --config.data.name=folder:data/cifar10
  python -m alexnet_jax.tools.evaluate --workdir=runs/cifar10_alexnet --config.data.eval_crops=10

The paper's layers unchanged (five convolutions, two groups, LRN after conv1 and conv2,
overlapping 3/2 max pooling, FC6/FC7 of 4096), without dropout, on the photos upsampled to 64 px:
conv1's 11x11 stride 4 then gives 15x15 maps, the pools 7x7, 3x3 and 1x1, and FC6 reads the 256
features of the last (model.pooled_size=1 instead of the 6x6 of 224-px inputs). 20,209,034
parameters. Chosen by measurement (docs/results.md, 'AlexNet on CIFAR-10'): after 2 epochs it held
out 53.3% against 51.7% for a first layer fit for 32 px (5x5 stride 2 on the photos as they are,
--config.data.image_size=32 --config.model.conv1_kernel=5 --config.model.conv1_stride=2), at the
same speed (about 320 images/s on 2 CPU cores; a 5x5 stride-1 conv1 would run at 88). PyTorch's
default initialisation: with the paper's N(0, 0.01) and biases of 1, the 32-px variant was still
at chance after 400 steps (1.1 epochs) and this one left it only after 250 steps.

No dropout, by measurement (docs/cifar10.md, 'The learning rate, dropout and training window,
measured'): after 3 epochs at lr 0.01 the network held out 63.4% without it against 59.7% with
the paper's 0.5, and the 12-epoch run with 0.5 trained about as well as it held out (76.5%
against 75.6%): at this budget it underfits, and dropout slows it further.
--config.model.dropout_rate=0.5 puts it back.

The paper's augmentation at its own ratio: random windows of 28 of the 32 pixels (224/256 of the
side) scaled to 64, flips, PCA lighting; the centre window to evaluate (or
--config.data.eval_crops=10: four corners, centre and their mirrors); measured against the whole
photo below. 45,000 photos train and 5,000 are held out (a fixed shuffle of the training set). The
paper's SGD (batch 128, momentum 0.9, weight decay 5e-4, learning rate 0.01) with a cosine decay
over the 12 epochs instead of its three divisions by 10, which need a run long enough for the error
to plateau three times.
Expected: 77.6% top-1 on the 5,000 held-out photos (79.5% with 10 crops) after the 12 epochs,
28 to 35 minutes of train steps on 2 idle CPU cores (260-320 images/s, as the shared host goes;
docs/results.md, 'AlexNet on CIFAR-10'); with --config.model.dropout_rate=0.5, 75.6% (77.6%); with
--config.optimizer.learning_rate=0.02, 77.3% (79.1%); on the whole photo, no shifts
(--config.data.resize_ratio=1.0), 77.5% (78.4%); without LRN (--config.model.lrn=False), 77.3%
(79.0%): each led after 2 or 3 epochs (docs/cifar10.md, 'The learning rate, dropout and training
window, measured', and the ablations), and none after 12.
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
  config.data.image_size = 64  # the 32-px photos upsampled for the paper's conv1
  config.data.batch_size = 128
  config.model.num_classes = 10
  config.model.pooled_size = 1
  config.model.weight_init = 'torchvision'
  config.model.dropout_rate = 0.0  # measured: 63.4% against 59.7% with 0.5 after 3 epochs
  config.optimizer.learning_rate = 0.01
  config.optimizer.schedule = 'cosine'
  config.optimizer.warmup_steps = 200
  config.checkpoint.every_steps = 1000
  config.checkpoint.keep = 2
  return config
