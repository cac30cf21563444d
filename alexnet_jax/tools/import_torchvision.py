"""Turns torchvision's AlexNet weights (a state_dict .pth) into a workdir this project can use.

  python -m alexnet_jax.tools.import_torchvision --weights=alexnet-owt-7be5be79.pth --workdir=runs/tv

The workdir (torchvision variant, step 0) is read by inference.load, tools.predict, tools.evaluate,
tools.export and --config.init_from. Any class count and FC width of torchvision's layout load
(features.{0,3,6,8,10}, classifier.{1,4,6}); the file is read with torch.load(weights_only=True),
which refuses pickles that would run code. Evaluation preprocessing is torchvision's: shorter
side to 256, centre 224 crop, ImageNet mean and std.
"""
from __future__ import annotations

import os
import pickle

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import functools

import numpy as np
from absl import flags
from etils import epy

from alexnet_jax import cli
from alexnet_jax import errors

with epy.lazy_imports():  # loaded at their first use: --help answers before JAX's import
  from alexnet_jax import classes
  from alexnet_jax import model as model_lib
  from alexnet_jax import paths

FLAGS = flags.FLAGS


@functools.cache
def torch_convs() -> dict:
  """torchvision's conv module names -> (our name, kernel shape [out, in, k, k]), from model.CONVS."""
  convs, in_channels = {}, 3
  for i, (index, layer) in enumerate(zip((0, 3, 6, 8, 10), model_lib.CONVS['torchvision'])):
    convs[f'features.{index}'] = (f'conv{i + 1}', (layer.features, in_channels, layer.kernel,
                                                   layer.kernel))
    in_channels = layer.features
  return convs


DENSES = {'classifier.1': 'fc6', 'classifier.4': 'fc7', 'classifier.6': 'fc8'}
POOLED = (256, 6, 6)  # conv5's channels and the adaptive pool's map: FC6's input, NCHW in torch


class ImportError_(errors.Error, ValueError):  # pylint: disable=invalid-name  # not the builtin ImportError
  """A weights file that is not torchvision's AlexNet layout; the message names the key."""


def _expected_shapes(state_dict) -> dict:
  """{key: shape} of torchvision's layout, FC width and class count read from the file."""
  width = tuple(np.shape(state_dict.get('classifier.1.weight', (0, 0))))[0]
  classes_ = tuple(np.shape(state_dict.get('classifier.6.weight', (0, 0))))[0]
  shapes = {}
  for key, (_, shape) in torch_convs().items():
    shapes.update({f'{key}.weight': shape, f'{key}.bias': shape[:1]})
  for key, (out, fan_in) in zip(DENSES, ((width, int(np.prod(POOLED))), (width, width),
                                         (classes_, width))):
    shapes.update({f'{key}.weight': (out, fan_in), f'{key}.bias': (out,)})
  return shapes


def convert(state_dict: dict) -> dict:
  """torchvision AlexNet state_dict (numpy arrays) -> this project's torchvision-variant params."""
  expected = _expected_shapes(state_dict)
  for key, shape in expected.items():
    if key not in state_dict:
      raise ImportError_(f'key {key} is missing: not torchvision\'s AlexNet layout.')
    if tuple(np.shape(state_dict[key])) != shape:
      raise ImportError_(f'key {key} has shape {tuple(np.shape(state_dict[key]))}, expected '
                         f'{shape} in torchvision\'s AlexNet layout.')
  extra = [k for k in state_dict if k not in expected]
  if extra:
    raise ImportError_(f'unexpected key {extra[0]}: not torchvision\'s AlexNet layout.')
  get = lambda key: np.asarray(state_dict[key], np.float32)
  params = {name: {'kernel': get(f'{key}.weight').transpose(2, 3, 1, 0),  # OIHW -> HWIO
                   'bias': get(f'{key}.bias')} for key, (name, _) in torch_convs().items()}
  for key, name in DENSES.items():
    weight = get(f'{key}.weight')  # [out, in]
    if name == 'fc6':  # torch flattens (C, H, W), our NHWC trunk (H, W, C): permute the rows once
      weight = weight.reshape((-1,) + POOLED).transpose(0, 2, 3, 1).reshape(weight.shape[0], -1)
    params[name] = {'kernel': weight.T, 'bias': get(f'{key}.bias')}
  return params


def read_state_dict(path: str) -> dict:
  """The .pth file's tensors as numpy arrays; never runs code from the file."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError_('reading .pth files needs PyTorch: pip install torch (the CPU build will '
                       'do).') from None
  if not os.path.isfile(path):
    raise ImportError_(f'--weights={path}: no such file.')
  try:
    loaded = torch.load(path, map_location='cpu', weights_only=True)
  except pickle.UnpicklingError as e:
    refused = [line for line in str(e).splitlines() if 'GLOBAL' in line]
    if refused:  # weights_only met a callable: running it is what a malicious file wants
      raise ImportError_(f'{path} was refused: it names code to run on loading ({refused[0][:120]}'
                         '); only a plain state_dict of tensors is read.') from None
    raise ImportError_(f'{path} is not a readable PyTorch file (a damaged or foreign pickle).') from None
  except Exception as e:  # pylint: disable=broad-except  # truncated zip, not a torch file, ...
    raise ImportError_(f'{path} is not a readable PyTorch file ({type(e).__name__}: '
                       f'{(str(e).splitlines() or [""])[0][:120]}).') from None
  if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
    raise ImportError_(f'{path} is not a state_dict (a dict of tensors): save model.state_dict().')
  return {k: v.detach().to(torch.float32).numpy() for k, v in loaded.items()}


def imported_config(num_classes: int, fc_width: int):
  """configs/torchvision.py for these weights: 224 px, centre-crop evaluation."""
  config = cli.load_config_file('torchvision')
  config.model.num_classes = num_classes
  config.model.fc_width = fc_width
  config.data.image_size = 224
  config.data.eval_crops = 1
  return config


def write_workdir(params: dict, workdir: str) -> None:
  """A workdir holding params as step 0 of a torchvision-variant run (with fresh optimizer state)."""
  from alexnet_jax import checkpoint  # pylint: disable=g-import-not-at-top
  num_classes, fc_width = params['fc8']['bias'].shape[0], params['fc7']['bias'].shape[0]
  ids = list(classes.imagenet_names()) if num_classes == 1000 else classes.numbered(num_classes)
  checkpoint.write_params_workdir(params, workdir, imported_config(num_classes, fc_width), ids)


def main(argv):
  cli.quiet_logs()
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}.')
  if paths.listdir(FLAGS.workdir):  # local or gs://
    cli.fail(f'--workdir={FLAGS.workdir} exists and is not empty: give a new folder.')
  params = convert(read_state_dict(FLAGS.weights))
  with cli.output(FLAGS.workdir, '--workdir'):
    write_workdir(params, FLAGS.workdir)
  count = sum(x.size for layer in params.values() for x in layer.values())
  cli.wrote(FLAGS.workdir, f'{FLAGS.weights}, {count:,} parameters, '
            f'{params["fc8"]["bias"].shape[0]} classes')


if __name__ == '__main__':
  flags.DEFINE_string('weights', None, 'A torchvision AlexNet state_dict (.pth).')
  flags.DEFINE_string('workdir', None, 'A new folder for the imported run.')
  flags.mark_flags_as_required(['weights', 'workdir'])
  cli.run(main)
