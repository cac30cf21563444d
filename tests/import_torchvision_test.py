"""tools.import_torchvision: logits equal PyTorch's, strict layout checks, no code run from a file."""
import os

import numpy as np
import pytest
import torch

from alexnet_jax import checkpoint
from alexnet_jax import inference
from alexnet_jax import model as model_lib
from alexnet_jax import train
from alexnet_jax.tools import import_torchvision as importer
from conftest import error_line
from conftest import run_module
from conftest import torchvision_alexnet


def test_logits_equal_pytorchs_on_the_same_standardised_input(imported_torchvision):
  net, _, workdir = imported_torchvision
  clf = inference.load(workdir)
  assert clf.config.model.variant == 'torchvision' and clf.config.data.image_size == 224
  assert clf.class_names == [f'class {i}' for i in range(10)]
  images_BHWC = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
  standardised = np.array(model_lib.standardize(images_BHWC))  # torchvision's ToTensor, Normalize
  with torch.no_grad():
    expected = net(torch.from_numpy(standardised.transpose(0, 3, 1, 2))).numpy()
  got = clf.logits(images_BHWC)
  assert np.max(np.abs(got - expected)) / np.max(np.abs(expected)) < 1e-4
  # Another pipeline's standardised floats (a torch batch, channels moved last) are taken as is.
  floats = clf.logits_standardized(np.ascontiguousarray(standardised))
  assert np.max(np.abs(floats - expected)) / np.max(np.abs(expected)) < 1e-4
  with pytest.raises(inference.ImageError, match='logits_standardized'):
    clf.logits(standardised)


def test_imagenet_weights_get_imagenet_names_and_a_resumable_workdir(tmp_path):
  """1000 classes: ImageNet's names. The workdir is a step-0 run: training resumes in it from the
  imported weights (not from a fresh initialisation), on this host's 8-device mesh."""
  state = {k: v for k, v in torchvision_alexnet(num_classes=1000, width=8).state_dict().items()}
  params = importer.convert({k: v.numpy() for k, v in state.items()})
  workdir = str(tmp_path / 'run')
  importer.write_workdir(params, workdir)
  clf = inference.load(workdir)
  assert clf.step == 0 and clf.class_names[:2] == ['tench', 'goldfish']
  assert clf.class_ids[0] == 'n01440764' and len(clf.class_names) == 1000
  # The run's own config, on 8 synthetic 64-px images a step: one step, then a save.
  config = importer.imported_config(1000, 8)
  config.update_from_flattened_dict({
      'data.name': 'synthetic', 'data.image_size': 64, 'data.batch_size': 8, 'total_steps': 1,
      'log_every_steps': 1, 'eval_every_steps': 0, 'checkpoint.every_steps': 1})
  train.train_and_evaluate(config, workdir)
  after, step, _ = checkpoint.load_params(workdir)
  assert step == 1
  for layer in params:  # one step away from the imported kernels; a fresh start is ~141% away
    change = np.linalg.norm(after[layer]['kernel'] - params[layer]['kernel'])
    assert 0 < change < 0.05 * np.linalg.norm(params[layer]['kernel']), layer


def test_layout_errors_name_the_first_bad_key():
  state = {k: v.numpy() for k, v in torchvision_alexnet(num_classes=3, width=8).state_dict().items()}
  params = importer.convert(state)
  assert params['fc6']['kernel'].shape == (9216, 8) and params['conv2']['kernel'].shape == (5, 5, 64, 192)
  missing = dict(state)
  del missing['features.8.bias']
  with pytest.raises(importer.ImportError_, match='key features.8.bias is missing'):
    importer.convert(missing)
  wrong = dict(state, **{'features.3.weight': np.zeros((96, 64, 5, 5), np.float32)})
  with pytest.raises(importer.ImportError_, match=r'features.3.weight has shape \(96, 64, 5, 5\)'):
    importer.convert(wrong)
  with pytest.raises(importer.ImportError_, match='unexpected key features.1.weight'):
    importer.convert(dict(state, **{'features.1.weight': np.zeros(3, np.float32)}))


class _RunsCode:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f'touch {self.marker}',))


def test_a_pickle_that_runs_code_is_refused_and_runs_nothing(tmp_path):
  marker = tmp_path / 'ran'
  weights = tmp_path / 'evil.pth'
  torch.save({'features.0.weight': _RunsCode(marker)}, weights)
  line = error_line(run_module('alexnet_jax.tools.import_torchvision', f'--weights={weights}',
                               f'--workdir={tmp_path / "out"}'))
  assert 'evil.pth was refused' in line
  assert not marker.exists() and not (tmp_path / 'out').exists()
  with pytest.raises(importer.ImportError_, match='not a readable PyTorch file'):
    (tmp_path / 'junk.pth').write_bytes(b'\x00' * 100)
    importer.read_state_dict(str(tmp_path / 'junk.pth'))
  with pytest.raises(importer.ImportError_, match='not a state_dict'):
    torch.save({'model': {'w': torch.zeros(2)}}, tmp_path / 'nested.pth')
    importer.read_state_dict(str(tmp_path / 'nested.pth'))
  with pytest.raises(importer.ImportError_, match="no such file"):
    importer.read_state_dict(str(tmp_path / 'missing.pth'))


def test_without_torch_one_line_says_what_to_install(monkeypatch, tmp_path):
  monkeypatch.setitem(__import__('sys').modules, 'torch', None)  # import torch -> ImportError
  with pytest.raises(importer.ImportError_, match='pip install torch'):
    importer.read_state_dict(str(tmp_path / 'any.pth'))


def test_an_existing_workdir_is_never_overwritten(imported_torchvision, tmp_path):
  _, weights, workdir = imported_torchvision
  before = sorted(os.listdir(os.path.join(workdir, 'checkpoints')))
  assert 'exists and is not empty' in error_line(run_module(
      'alexnet_jax.tools.import_torchvision', f'--weights={weights}', f'--workdir={workdir}'))
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == before
