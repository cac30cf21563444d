"""Krizhevsky's CIFAR-10 networks, as cuda-convnet's example layer files define them.

'cifar18pct' (layers-18pct.cfg: "18% error on CIFAR-10 in 20 minutes", 32x32 images) is the
four-weight-layer net of the paper's Figure 1; 'cifar_conv_local' (layers-conv-local-11pct.cfg,
24x24 crops) is the net of section 3.3: 11% test error with its two response normalizations,
13% without (layers-conv-local-13pct.cfg, model.lrn=False). Shape letters as in model.py.
"""
import functools
from typing import ClassVar, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from alexnet_jax import errors
from alexnet_jax import model as model_lib
from alexnet_jax import pooling


class Norm(NamedTuple):
  """A cuda-convnet normalization layer: x / (1 + scale / region * sum of x^2 in it)^pow."""
  size: int
  scale: float
  pow: float
  cross_map: bool  # 'cmrnorm' (over `size` adjacent maps) | 'rnorm' (size x size pixels of a map)


# The layer files' constants: initW (the std of a zero-mean normal; biases start at 0) and the
# norm layers of their layer-params files.
INIT_STD = {
    'cifar18pct': {'conv1': 1e-4, 'conv2': 0.01, 'conv3': 0.01, 'fc10': 0.01},
    'cifar_conv_local': {'conv1': 1e-4, 'conv2': 0.01, 'local3': 0.04, 'local4': 0.04,
                         'fc10': 0.01},
}
NORMS = {'cifar18pct': Norm(3, 5e-5, 0.75, cross_map=False),
         'cifar_conv_local': Norm(9, 1e-3, 0.75, cross_map=True)}
VARIANTS = {name: dict(activation='relu', lrn=True, overlap_pool=True, dropout_rate=0.0, groups=1,
                       weight_init='paper') for name in INIT_STD}
IMAGE_SIZE = {'cifar18pct': 32, 'cifar_conv_local': 24}  # what the layer files were written for


def response_norm(x_BHWC, norm: Norm):
  """cuda-convnet's rnorm / cmrnorm; its scale is divided by the region's size (layer.py)."""
  if norm.cross_map:
    return model_lib.local_response_norm(x_BHWC, k=1.0, n=norm.size, alpha=norm.scale / norm.size,
                                         beta=norm.pow)
  squares = jnp.square(x_BHWC.astype(jnp.float32))
  before, after = norm.size // 2, (norm.size - 1) // 2
  window = jax.lax.reduce_window(squares, 0.0, jax.lax.add, (1, norm.size, norm.size, 1),
                                 (1, 1, 1, 1), ((0, 0), (before, after), (before, after), (0, 0)))
  return x_BHWC / jnp.power(1.0 + norm.scale / norm.size**2 * window, norm.pow).astype(x_BHWC.dtype)


class LocalConv(nn.Module):
  """A locally connected layer (no weight sharing) with nn.ConvLocal's parameters and numbers.

  Each output position's patch [C * k * k] meets its own kernel in one batched matrix product.
  """
  features: int
  kernel: int
  padding: int
  kernel_init: nn.initializers.Initializer
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BHWC):
    patches_BHWP = jax.lax.conv_general_dilated_patches(
        x_BHWC.astype(self.dtype), (self.kernel, self.kernel), (1, 1),
        [(self.padding, self.padding)] * 2, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    _, h, w, p = patches_BHWP.shape
    kernel_HWPF = self.param('kernel', self.kernel_init, (h, w, p, self.features))
    bias_HWF = self.param('bias', nn.initializers.zeros, (h, w, self.features))
    y_BHWF = jnp.einsum('bhwp,hwpf->bhwf', patches_BHWP, kernel_HWPF.astype(self.dtype))
    return y_BHWF + bias_HWF.astype(self.dtype)


def cuda_convnet_pool(x_BHWC, kind: str, window: int, stride: int):
  """cuda-convnet's pooling: 1 + ceil((size - window) / stride) outputs; a window that runs past
  the edge covers the pixels inside it (max over them, or their mean)."""
  h, w = x_BHWC.shape[1:3]
  pad_h, pad_w = (pooling.ceil_padding(n, window, stride) for n in (h, w))
  if kind == 'max':
    padded = jnp.pad(x_BHWC, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), constant_values=-jnp.inf)
    return pooling.max_pool(padded, window, stride)
  return pooling.avg_pool(x_BHWC, window, stride, (pad_h, pad_w))


class CifarNet(model_lib.Network):
  """A CIFAR-10 network of cuda-convnet on standardised images; fields: model.Network's.

  Knobs: activation, lrn (the norm layers), overlap_pool (3/2 or 2/2 pools), dropout_rate (before
  fc10; the files have none), weight_init ('paper': the files' initW; 'he'; 'torchvision').
  fc_width has no meaning here (no hidden dense layer); groups must be 1.
  """
  VARIANTS: ClassVar[dict] = VARIANTS
  variant: str = 'cifar18pct'
  num_classes: int = 10

  def _check(self):
    super()._check()
    if self.option('groups') != 1:
      raise errors.ConfigError(f'model.groups={self.groups}: {self.variant} has no grouped convolutions; '
                       'set --config.model.groups=1.')
    if self.conv1_kernel or self.conv1_stride or self.pooled_size != model_lib.POOLED_SIZE:
      raise errors.ConfigError(f'model.conv1_kernel, conv1_stride and pooled_size are AlexNet\'s; '
                       f'{self.variant} has its own layers: leave them at their defaults.')
    if self.model_shards > 1:
      raise errors.ConfigError(f'{self.variant} has no layer to split over the model axis; set '
                       '--config.mesh.model=1.')

  def _init(self, layer, fan_in):
    """(kernel init, bias init) of a layer: the file's initW, or the project's other inits."""
    init = self.option('weight_init')
    if init == 'torchvision':
      return model_lib.TORCH_KERNEL_INIT, model_lib.torch_bias_init(fan_in)
    if init == 'he':
      return model_lib.HE_KERNEL_INIT, nn.initializers.zeros
    return nn.initializers.normal(INIT_STD[self.variant][layer]), nn.initializers.zeros

  def _conv(self, name, x, features, kernel=5, padding=2):
    kernel_init, bias_init = self._init(name, kernel * kernel * x.shape[-1])
    return model_lib.Conv(features, kernel, 1, padding, 1, kernel_init, bias_init, self.dtype,
                          name=name)(x)

  def _local(self, name, x, features):
    kernel_init, _ = self._init(name, 9 * x.shape[-1])
    return LocalConv(features, 3, 1, kernel_init, jnp.dtype(self.dtype), name=name)(x)

  @nn.compact
  def __call__(self, images_BHWC, train: bool = False, example_ids_B=None):
    """Logits [B, K]."""
    self._check()
    act = jnp.tanh if self.option('activation') == 'tanh' else nn.relu
    norm = (functools.partial(response_norm, norm=NORMS[self.variant]) if self.option('lrn')
            else lambda x: x)
    window = 3 if self.option('overlap_pool') else 2
    pool = lambda x, kind: cuda_convnet_pool(x, kind, window, 2)
    # The files' mean-subtracted pixels on the 0..255 scale, as the paper variant of AlexNet.
    x = images_BHWC.astype(self.dtype) * jnp.asarray(model_lib.IMAGENET_STD_RGB, self.dtype) * 255.0
    if self.variant == 'cifar18pct':  # conv1 -> max pool -> relu (its neuron is on pool1)
      x = norm(act(pool(self._conv('conv1', x, 32), 'max')))
      x = norm(pool(act(self._conv('conv2', x, 32)), 'avg'))
      x = pool(act(self._conv('conv3', x, 64)), 'avg')
    else:
      x = norm(pool(act(self._conv('conv1', x, 64)), 'max'))
      x = pool(norm(act(self._conv('conv2', x, 64))), 'max')
      x = act(self._local('local3', x, 64))
      x = act(self._local('local4', x, 32))
    x_BF = x.reshape(x.shape[0], -1)
    rate = self.option('dropout_rate')
    if train and rate > 0:
      ids_B = jnp.arange(x_BF.shape[0]) if example_ids_B is None else example_ids_B
      x_BF = model_lib.per_example_dropout(x_BF, rate, self.make_rng('dropout'), ids_B)
    kernel_init, bias_init = self._init('fc10', x_BF.shape[-1])
    logits_BK = nn.Dense(self.num_classes, kernel_init=kernel_init, bias_init=bias_init,
                         dtype=jnp.dtype(self.dtype), name='fc10')(x_BF)
    return logits_BK.astype(jnp.float32)
