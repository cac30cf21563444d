"""cuda-convnet's conv-local CIFAR-10 network (layers-conv-local-11pct.cfg): the section 3.3 net.

  python -m alexnet_jax.main --config=configs/cifar10_conv_local.py --workdir=runs/conv_local \
      --config.data.name=folder:data/cifar10 [--config.model.lrn=False]   # 11% / 13% in the paper

Two 5x5 convolutions of 64 maps with cross-map response normalization (size 9, scale 0.001,
power 0.75) and max pooling 3/2, two locally connected 3x3 layers (64 and 32 maps, no weight
sharing), FC10: 2,112,970 parameters. Random 24x24 crops of the 32x32 photos and flips; the
centre 24x24 (or --config.data.eval_crops=10: corners, centre and mirrors, cuda-convnet's
multiview test). SGD as its layer-params file: learning rate 0.001, momentum 0.9; weight cost
0.004 (the file: 0 on the convolutions, 0.004 on the local layers, 0.01 on FC10; here one value).
The file trained ~350 + 150 epochs, then /10 for 10 and /10 for 10; here 520 epochs with one
/10 at 500. model.lrn=False is layers-conv-local-13pct.cfg. Measured here: docs/cifar10.md
(runs of 4 epochs, 3 seeds each).
"""
from configs import cifar10_18pct


def get_config():
  config = cifar10_18pct.get_config()
  config.num_epochs = 520.0
  config.data.image_size = 24
  config.data.resize_ratio = 32 / 24  # 24-px crops of the 32-px photos, not resampled
  config.data.flip = True
  config.model.variant = 'cifar_conv_local'
  config.optimizer.decay_every_epochs = 500.0
  return config
