"""cuda-convnet's CIFAR-10 networks (alexnet_jax/cifar_nets.py) in plain torch.nn, for the
benchmark's side-by-side step. Same layers, shapes and formulas; tests/torch_nets_test.py loads the
Flax parameters into them and checks the logits agree.

torch is imported by the caller and passed in: this module stays importable without it.
"""
import numpy as np
from etils import epy

with epy.lazy_imports():  # JAX and Flax at the first use: --help of the tools answers first
  from alexnet_jax import cifar_nets

_LAYERS = {  # (name, kind, features or pool kind, ReLU after it), as CifarNet.__call__ runs them
    'cifar18pct': (('conv1', 'conv', 32, False), ('pool1', 'pool', 'max', True),
                   ('norm1', 'norm', 0, False), ('conv2', 'conv', 32, True),
                   ('pool2', 'pool', 'avg', False), ('norm2', 'norm', 0, False),
                   ('conv3', 'conv', 64, True), ('pool3', 'pool', 'avg', False),
                   ('fc10', 'dense', 0, False)),
    'cifar_conv_local': (('conv1', 'conv', 64, True), ('pool1', 'pool', 'max', False),
                         ('norm1', 'norm', 0, False), ('conv2', 'conv', 64, True),
                         ('norm2', 'norm', 0, False), ('pool2', 'pool', 'max', False),
                         ('local3', 'local', 64, True), ('local4', 'local', 32, True),
                         ('fc10', 'dense', 0, False)),
}


def layers(variant: str, num_classes: int = 10) -> list[dict]:
  """The network's layers in order with their input shapes: name, kind, hw, cin, features, pool
  ('max' | 'avg'), relu (a ReLU follows), input_grad (false for conv1, as in training); the dense
  layer's flattened: the (H, W, C) map it reads."""
  out, hw, channels = [], cifar_nets.IMAGE_SIZE[variant], 3
  for name, kind, arg, relu in _LAYERS[variant]:
    layer = dict(name=name, kind=kind, hw=hw, cin=channels, relu=relu, input_grad=name != 'conv1')
    if kind == 'pool':
      layer['pool'] = arg
      hw = 1 + -(-(hw - 3) // 2)
    elif kind in ('conv', 'local'):
      layer['features'] = channels = arg
    elif kind == 'dense':
      layer.update(cin=hw * hw * channels, features=num_classes, flattened=(hw, hw, channels))
    out.append(layer)
  return out


def module(torch, variant: str, layer: dict):
  """torch.nn module of one layers() entry (its ReLU not included)."""
  nn, F = torch.nn, torch.nn.functional
  norm = cifar_nets.NORMS[variant]

  class ResponseNorm(nn.Module):
    def forward(self, x):
      if norm.cross_map:  # torch divides alpha by the size, as cuda-convnet divides its scale
        return F.local_response_norm(x, norm.size, alpha=norm.scale, beta=norm.pow, k=1.0)
      before, after = norm.size // 2, (norm.size - 1) // 2
      sums = F.avg_pool2d(F.pad(x * x, (before, after, before, after)), norm.size, 1) * norm.size**2
      return x / (1.0 + norm.scale / norm.size**2 * sums) ** norm.pow

  class Local(nn.Module):
    """A locally connected 3x3 layer: each output position has its own [C * 3 * 3, F] kernel."""
    def __init__(self, channels, features, size):
      super().__init__()
      self.size = size
      self.weight = nn.Parameter(torch.randn(size * size, channels * 9, features) * 0.04)
      self.bias = nn.Parameter(torch.zeros(features, size, size))

    def forward(self, x):
      patches = F.unfold(x, 3, padding=1)  # [B, C * 3 * 3, H * W], (C, kh, kw) as Flax's patches
      y = torch.einsum('bpl,lpf->bfl', patches, self.weight)
      return y.reshape(x.shape[0], -1, self.size, self.size) + self.bias

  kind = layer['kind']
  if kind == 'conv':
    return nn.Conv2d(layer['cin'], layer['features'], 5, padding=2)
  if kind == 'pool':  # 3/2 with cuda-convnet's ceil count; windows past the edge: the pixels inside
    return (nn.MaxPool2d(3, 2, ceil_mode=True) if layer['pool'] == 'max'
            else nn.AvgPool2d(3, 2, ceil_mode=True, count_include_pad=False))
  if kind == 'norm':
    return ResponseNorm()
  if kind == 'local':
    return Local(layer['cin'], layer['features'], layer['hw'])
  return nn.Sequential(nn.Flatten(), nn.Linear(layer['cin'], layer['features']))


def cifar_net(torch, variant: str, num_classes: int = 10):
  """The torch.nn twin of cifar_nets.CifarNet(variant) with its default knobs (NCHW input)."""
  modules = []
  for layer in layers(variant, num_classes):
    modules += [module(torch, variant, layer)] + ([torch.nn.ReLU()] if layer['relu'] else [])
  return torch.nn.Sequential(*modules)


def load_flax_params(torch, net, variant: str, params) -> None:
  """Copies CifarNet(variant)'s Flax parameters into cifar_net(torch, variant)'s modules."""
  modules = [m[-1] if isinstance(m, torch.nn.Sequential) else m for m in net
             if list(m.parameters())]
  flattened = layers(variant)[-1]['flattened']
  assert len(params) == len(modules), (list(params), modules)
  for module, name in zip(modules, cifar_nets.INIT_STD[variant]):  # the layers in order
    layer = params[name]
    kernel, bias = (torch.from_numpy(np.array(layer[k])) for k in ('kernel', 'bias'))
    if isinstance(module, torch.nn.Conv2d):  # HWIO -> OIHW
      kernel = kernel.permute(3, 2, 0, 1)
    elif isinstance(module, torch.nn.Linear):  # rows in Flax's NHWC flattening -> torch's NCHW
      kernel = kernel.reshape(*flattened, -1).permute(3, 2, 0, 1).reshape(
          kernel.shape[1], -1)
    else:  # Local: [H, W, C * k * k, F] -> [H * W, C * k * k, F]; bias [H, W, F] -> [F, H, W]
      kernel, bias = kernel.reshape(-1, *kernel.shape[2:]), bias.permute(2, 0, 1)
    with torch.no_grad():
      module.weight.copy_(kernel)
      module.bias.copy_(bias)
