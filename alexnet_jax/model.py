"""AlexNet in flax.linen: the 2012 paper's network and torchvision's layout, with ablation knobs.

Shape letters: B batch, H/W height/width, C channels, F features, K classes. Inside the
data + model parallel step, the classifier holds 1/M of FC6, FC7 and FC8 (M = size of the
'model' mesh axis) and returns the logits of its own class slice, logits_BK of width K/M.
"""
from typing import ClassVar, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from alexnet_jax import errors
from alexnet_jax import pooling

# The paper's constants (section 3.3): k, n, alpha, beta.
LRN_K, LRN_N, LRN_ALPHA, LRN_BETA = 2.0, 5, 1e-4, 0.75
POOLED_SIZE = 6  # the classifier sees a 6x6 map whatever the input size
# Inputs are standardised with ImageNet's RGB mean and std (on [0, 1]). The paper fed
# mean-subtracted pixels on the 0..255 scale, and its N(0, 0.01) init and LRN constants are tuned
# to that scale: the paper variant multiplies by 255 * std to get those pixel values back.
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


def standardize(images, lighting_B3=None):
  """uint8 images [B, ..., H, W, 3] -> float32 standardised, with the PCA lighting offset if given.

  Every source ships uint8 (4x fewer bytes, no float work on the host); AlexNet takes the result.
  """
  if images.dtype != jnp.uint8:
    raise TypeError(f'standardize takes uint8 pixels, not {images.dtype}: the input contract of '
                    'input_pipeline.py.')
  x = images.astype(jnp.float32) / 255.0
  if lighting_B3 is not None:  # per-image RGB offset on the [0, 1] scale
    x = x + lighting_B3.reshape(lighting_B3.shape[:1] + (1,) * (x.ndim - 2) + (3,))
  return (x - jnp.asarray(IMAGENET_MEAN_RGB)) / jnp.asarray(IMAGENET_STD_RGB)


class ConvLayer(NamedTuple):
  """One convolution of the trunk and what follows it."""
  features: int
  kernel: int
  stride: int
  padding: int
  bias: float  # the paper's bias init (model.weight_init='paper' only)
  grouped: bool  # split into model.groups groups (the paper's two GPUs)
  lrn: bool  # followed by local response normalisation (when model.lrn)
  pool: bool  # followed by max pooling


# conv1's padding 2 gives the paper's 55x55 map from a 224 input (as cuda-convnet).
CONVS = {
    'paper': (ConvLayer(96, 11, 4, 2, 0.0, grouped=False, lrn=True, pool=True),
              ConvLayer(256, 5, 1, 2, 1.0, grouped=True, lrn=True, pool=True),
              ConvLayer(384, 3, 1, 1, 0.0, grouped=False, lrn=False, pool=False),
              ConvLayer(384, 3, 1, 1, 1.0, grouped=True, lrn=False, pool=False),
              ConvLayer(256, 3, 1, 1, 1.0, grouped=True, lrn=False, pool=True)),
    'torchvision': (ConvLayer(64, 11, 4, 2, 0.0, grouped=False, lrn=False, pool=True),
                    ConvLayer(192, 5, 1, 2, 1.0, grouped=False, lrn=False, pool=True),
                    ConvLayer(384, 3, 1, 1, 0.0, grouped=False, lrn=False, pool=False),
                    ConvLayer(256, 3, 1, 1, 1.0, grouped=False, lrn=False, pool=False),
                    ConvLayer(256, 3, 1, 1, 1.0, grouped=False, lrn=False, pool=True)),
}

VARIANTS = {
    'paper': dict(activation='relu', lrn=True, overlap_pool=True, dropout_rate=0.5, groups=2,
                  weight_init='paper'),
    'torchvision': dict(activation='relu', lrn=False, overlap_pool=True, dropout_rate=0.5, groups=1,
                        weight_init='torchvision'),
}
# Initialisations (model.weight_init): 'paper' N(0, 0.01) weights, biases 1 in conv2, conv4, conv5,
# FC6 and FC7; 'torchvision' PyTorch's defaults; 'he' N(0, 2 / fan_in) weights and zero biases
# (He et al., 2015), which keep the activations' scale through the ReLUs. The other two shrink it
# layer by layer: a small model trained briefly then sits at chance for hundreds of steps.
INITS = ('paper', 'torchvision', 'he')
HIDDEN = 4096  # the paper's FC6/FC7 width


def local_response_norm(x_BHWC, k=LRN_K, n=LRN_N, alpha=LRN_ALPHA, beta=LRN_BETA):
  """b_i = a_i / (k + alpha * sum_{|j-i|<=n/2} a_j^2)^beta, across channels (paper eq. 3.3)."""
  squares = jnp.square(x_BHWC.astype(jnp.float32))
  window = jax.lax.reduce_window(squares, 0.0, jax.lax.add, (1, 1, 1, n), (1, 1, 1, 1),
                                 ((0, 0), (0, 0), (0, 0), (n // 2, (n - 1) // 2)))
  return (x_BHWC / jnp.power(k + alpha * window, beta).astype(x_BHWC.dtype))


def _adaptive_pool_matrix(in_size: int, out_size: int) -> np.ndarray:
  """Averaging weights [out, in] of torchvision's adaptive average pooling."""
  weights = np.zeros((out_size, in_size), np.float32)
  for i in range(out_size):
    start, end = (i * in_size) // out_size, -(-(i + 1) * in_size // out_size)
    weights[i, start:end] = 1.0 / (end - start)
  return weights


def adaptive_avg_pool(x_BHWC, size=POOLED_SIZE):
  """Average pooling to a size x size map; the identity when the map already has that size."""
  h, w = x_BHWC.shape[1:3]
  if (h, w) == (size, size):
    return x_BHWC
  rows = jnp.asarray(_adaptive_pool_matrix(h, size), x_BHWC.dtype)
  cols = jnp.asarray(_adaptive_pool_matrix(w, size), x_BHWC.dtype)
  return jnp.einsum('oh,bhwc,pw->bopc', rows, x_BHWC, cols)


def torch_bias_init(fan_in):
  bound = 1.0 / np.sqrt(fan_in)
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


# PyTorch's default kernel init (kaiming_uniform with a=sqrt(5)) is this variance scaling.
TORCH_KERNEL_INIT = nn.initializers.variance_scaling(1 / 3, 'fan_in', 'uniform')
HE_KERNEL_INIT = nn.initializers.variance_scaling(2.0, 'fan_in', 'normal')


def per_example_dropout(x_BF, rate, key, example_ids_B, column_offset=0, total_columns=None):
  """Dropout whose mask for (example, column) depends on (key, global example id, column) only.

  The mask row of an example is drawn over all total_columns and the local column slice is
  taken, so a layer split over devices draws exactly the mask of the unsplit layer.
  """
  total_columns = total_columns or x_BF.shape[-1]

  def row_mask(example_id):
    keep = jax.random.bernoulli(jax.random.fold_in(key, example_id), 1.0 - rate, (total_columns,))
    return jax.lax.dynamic_slice_in_dim(keep, column_offset, x_BF.shape[-1])

  keep_BF = jax.vmap(row_mask)(example_ids_B)
  return jnp.where(keep_BF, x_BF / (1.0 - rate), 0.0).astype(x_BF.dtype)


class Conv(nn.Module):
  """2D convolution with nn.Conv's parameters; groups run as separate convolutions.

  The kernel is [k, k, C_in / groups, F] as for feature_group_count, but XLA:CPU runs a grouped
  convolution several times slower than the same groups as separate convolutions (conv2's
  shapes; README 'Train-step speed against PyTorch'), so each group is its own convolution and
  the outputs are concatenated.
  """
  features: int
  kernel: int
  stride: int
  padding: int
  groups: int = 1
  kernel_init: nn.initializers.Initializer = nn.initializers.normal(0.01)
  bias_init: nn.initializers.Initializer = nn.initializers.zeros
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BHWC):
    in_per_group, out_per_group = x_BHWC.shape[-1] // self.groups, self.features // self.groups
    kernel = self.param('kernel', self.kernel_init,
                        (self.kernel, self.kernel, in_per_group, self.features))
    bias = self.param('bias', self.bias_init, (self.features,))
    x_BHWC, kernel = x_BHWC.astype(self.dtype), kernel.astype(self.dtype)
    outputs = [jax.lax.conv_general_dilated(
        x_BHWC[..., g * in_per_group:(g + 1) * in_per_group],
        kernel[..., g * out_per_group:(g + 1) * out_per_group], (self.stride, self.stride),
        [(self.padding, self.padding)] * 2, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
               for g in range(self.groups)]
    y_BHWC = outputs[0] if self.groups == 1 else jnp.concatenate(outputs, axis=-1)
    return y_BHWC + bias.astype(self.dtype)


class SplitDense(nn.Module):
  """Dense layer whose kernel may be split over a mesh axis: by output columns or input rows.

  Parameters are declared with their local shape (global / shards); initialised with shards=1
  they have their global shape, which the parallel step then splits with the matching spec.
  """
  features: int  # global output width
  split: str = 'none'  # 'none' | 'columns' | 'rows'
  shards: int = 1
  axis_name: str | None = None
  kernel_init: nn.initializers.Initializer = nn.initializers.normal(0.01)
  bias_init: nn.initializers.Initializer = nn.initializers.zeros
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BF):
    out = self.features // self.shards if self.split == 'columns' else self.features
    kernel = self.param('kernel', self.kernel_init, (x_BF.shape[-1], out))
    bias = self.param('bias', self.bias_init, (out,))
    y_BF = jnp.dot(x_BF.astype(self.dtype), kernel.astype(self.dtype))
    if self.split == 'rows' and self.axis_name is not None:
      y_BF = jax.lax.psum(y_BF, self.axis_name)  # bias added once, after the sum
    return y_BF + bias.astype(self.dtype)


class Network(nn.Module):
  """The model.* config keys, which every network of the project takes as its fields; a knob left
  at None takes the variant's own value (the subclass's VARIANTS table).

  model_axis / model_shards are set by the parallel step only.
  """
  VARIANTS: ClassVar[dict] = VARIANTS
  variant: str = 'paper'
  num_classes: int = 1000
  activation: str | None = None
  lrn: bool | None = None
  overlap_pool: bool | None = None
  dropout_rate: float | None = None
  groups: int | None = None
  weight_init: str | None = None  # not 'init': flax's Module.init
  dtype: str = 'float32'
  fc_width: int = HIDDEN  # smaller for tiny test and quickstart models only
  # conv1 fit for small photos (AlexNet only; 0: the variant's 11x11 stride 4) and the side of
  # the map the classifier sees (adaptive average pooling; the paper's 6x6).
  conv1_kernel: int = 0
  conv1_stride: int = 0
  pooled_size: int = POOLED_SIZE
  model_axis: str | None = None
  model_shards: int = 1

  def option(self, name):
    value = getattr(self, name)
    return self.VARIANTS[self.variant][name] if value is None else value

  def _check(self):
    if self.variant not in self.VARIANTS:
      raise errors.ConfigError(f'model.variant={self.variant!r} is unknown; use one of {variants()}.')
    if self.option('activation') not in ('relu', 'tanh'):
      raise errors.ConfigError(f"model.activation={self.activation!r} is unknown; use 'relu' or 'tanh'.")
    if self.option('weight_init') not in INITS:
      raise errors.ConfigError(f'model.weight_init={self.weight_init!r} is unknown; '
                       f'use one of {list(INITS)}.')


class AlexNet(Network):
  """AlexNet on standardised images (standardize's output); fields: Network's.

  With model_axis set, the classifier holds its 1/model_shards slice of FC6-FC8 and gathers conv
  features over model_axis.
  """

  def _check(self):
    super()._check()
    if self.option('groups') not in (1, 2):
      raise errors.ConfigError(f'model.groups={self.groups} is not supported; use 1 or 2.')
    for name in ('conv1_kernel', 'conv1_stride', 'pooled_size'):
      value = getattr(self, name)
      if value < (1 if name == 'pooled_size' else 0):
        raise errors.ConfigError(f'model.{name}={value} is out of range; use a positive size (conv1_kernel '
                         'and conv1_stride: 0 keeps the variant\'s 11x11 stride 4).')

  def _conv_init(self, bias_value, fan_in):
    if self.option('weight_init') == 'torchvision':
      return TORCH_KERNEL_INIT, torch_bias_init(fan_in)
    if self.option('weight_init') == 'he':
      return HE_KERNEL_INIT, nn.initializers.zeros
    return nn.initializers.normal(0.01), nn.initializers.constant(bias_value)

  def _dense(self, name, features, split, fan_in, bias_value):
    kernel_init, bias_init = self._conv_init(bias_value, fan_in)
    return SplitDense(features, split if self.model_shards > 1 or self.model_axis else 'none',
                      self.model_shards, self.model_axis, kernel_init, bias_init,
                      jnp.dtype(self.dtype), name=name)

  def _trunk(self, images_BHWC, act):
    """The convolutional trunk: images -> pooled 6x6 feature map, flattened (inline modules)."""
    window, stride = (3, 2) if self.option('overlap_pool') else (2, 2)
    layers = CONVS[self.variant]
    x = images_BHWC.astype(self.dtype)
    if self.variant == 'paper':
      x = x * jnp.asarray(IMAGENET_STD_RGB, self.dtype) * 255.0
    in_channels = x.shape[-1]
    for i, layer in enumerate(layers):
      if i == 0 and (self.conv1_kernel or self.conv1_stride):
        kernel = self.conv1_kernel or layer.kernel
        layer = layer._replace(kernel=kernel, stride=self.conv1_stride or layer.stride,
                               padding=(kernel - 1) // 2 if self.conv1_kernel else layer.padding)
      groups = self.option('groups') if layer.grouped else 1
      kernel_init, bias_init = self._conv_init(
          layer.bias, layer.kernel * layer.kernel * in_channels // groups)
      x = Conv(layer.features, layer.kernel, layer.stride, layer.padding, groups, kernel_init,
               bias_init, self.dtype, name=f'conv{i + 1}')(x)
      x = act(x)
      if layer.lrn and self.option('lrn'):
        x = local_response_norm(x)
      if layer.pool:
        x = pooling.max_pool(x, window, stride)
      in_channels = layer.features
    return adaptive_avg_pool(x, self.pooled_size).reshape(x.shape[0], -1)

  @nn.compact
  def __call__(self, images_BHWC, train: bool = False, example_ids_B=None):
    """Logits [B, K] (or this device's K/M slice, for the B/D examples of its 'data' group)."""
    self._check()
    act = jnp.tanh if self.option('activation') == 'tanh' else nn.relu
    rate = self.option('dropout_rate')
    x_BF = self._trunk(images_BHWC, act)
    if example_ids_B is None:
      example_ids_B = jnp.arange(x_BF.shape[0])
    if self.model_axis is not None:  # conv features of the whole 'model' group (no-op if M=1)
      # Typed varying over 'model' (only FC6's column shards read it), so the backward pass is
      # all_gather's transpose, a reduce-scatter of FC6's input gradient; 'invarying' would make it
      # an all-reduce of the whole [B, F] gradient and a slice.
      x_BF = jax.lax.all_gather(x_BF, self.model_axis, tiled=True)
      example_ids_B = jax.lax.all_gather(example_ids_B, self.model_axis, tiled=True, to='invarying')
    dropout = train and rate > 0
    key = self.make_rng('dropout') if dropout else None
    if dropout:
      x_BF = per_example_dropout(x_BF, rate, jax.random.fold_in(key, 6), example_ids_B)
    fan6 = x_BF.shape[-1]
    x_BF = act(self._dense('fc6', self.fc_width, 'columns', fan6, 1.0)(x_BF))
    if dropout:
      offset = 0 if self.model_axis is None else jax.lax.axis_index(self.model_axis) * x_BF.shape[-1]
      x_BF = per_example_dropout(x_BF, rate, jax.random.fold_in(key, 7), example_ids_B,
                                 offset, self.fc_width)
    x_BF = act(self._dense('fc7', self.fc_width, 'rows', self.fc_width, 1.0)(x_BF))
    logits_BK = self._dense('fc8', self.num_classes, 'columns', self.fc_width, 0.0)(x_BF)
    return logits_BK.astype(jnp.float32)


def build(model_config) -> nn.Module:
  """The network of a model.* config: AlexNet, or a CIFAR-10 net of cuda-convnet (cifar_nets.py)."""
  from alexnet_jax import cifar_nets  # pylint: disable=g-import-not-at-top  # it builds on this module
  if model_config['variant'] in cifar_nets.VARIANTS:
    return cifar_nets.CifarNet(**model_config)
  return AlexNet(**model_config)


def variants() -> list[str]:
  from alexnet_jax import cifar_nets  # pylint: disable=g-import-not-at-top
  return sorted(VARIANTS) + sorted(cifar_nets.VARIANTS)


def count_params(params) -> int:
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))

