"""cuda-convnet's '18pct' CIFAR-10 network (layers-18pct.cfg) on CIFAR-10 photos, the net of Figure 1.

  tar xzf cifar10-train-jpeg.tar.gz -C data/cifar10     # data/cifar10/train/<class>/*.jpg
  python -m alexnet_jax.main --config=configs/cifar10_18pct.py --workdir=runs/cifar10_18pct \
      --config.data.name=folder:data/cifar10

Three 5x5 convolutions (32, 32, 64 maps) with max/average pooling 3/2 and two spatial response
normalizations, then FC10 (89,578 parameters), on whole 32x32 images (no crops or flips), as the
file. 45,000 photos train, 5,000 held out (a fixed shuffle of the training set). SGD as its
layer-params file: learning rate 0.001 on the mean gradient, momentum 0.9, weight cost 0.004
(cuda-convnet puts 1 on FC10's and none on biases; here one weight decay for all parameters).
The file's recipe runs 120 epochs, then /10 for 10 and /10 for 10 more ("18% error ... in 20
minutes" on a GTX 580); here 130 epochs with one /10 at 120 (the 'step' schedule divides at
multiples of decay_every_epochs). Measured here: docs/cifar10.md (Figure 1's shorter runs).
With TFDS's cifar10 instead of the folder: --config.data.name=cifar10
--config.data.train_split=train --config.data.eval_split=test.
"""
from configs import default


def get_config():
  config = default.get_config()
  config.num_epochs = 130.0
  config.log_every_steps = 50
  config.eval_every_steps = 3500
  config.data.name = 'folder:data/cifar10'
  config.data.train_split = 'train[:90%]'
  config.data.eval_split = 'train[90%:]'
  config.data.image_size = 32
  config.data.resize_ratio = 1.0  # the whole 32x32 photo
  config.data.batch_size = 128
  config.data.flip = False
  config.data.pca_lighting_std = 0.0
  config.model.variant = 'cifar18pct'
  config.model.num_classes = 10
  config.optimizer.learning_rate = 0.001
  config.optimizer.weight_decay = 0.004
  config.optimizer.decay_every_epochs = 120.0  # /10 at 120 (the file: 120, then 10 and 10)
  config.checkpoint.every_steps = 3500
  config.checkpoint.keep = 2
  return config
