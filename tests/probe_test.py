"""tools.probe: the ridge solver and its cross-validation, the layers' features, and the tool on
photos whose classes are the colour (learnable) or drawn at random (not)."""
import concurrent.futures
import json
import os

import numpy as np
import pytest
from PIL import Image

from alexnet_jax import errors
from alexnet_jax import inference
from alexnet_jax.tools import neighbours
from alexnet_jax.tools import probe
from conftest import run_module

# One xdist worker runs this module: its fixtures (the run loaded, the photos, the one command-line
# run, started first so that it overlaps the in-process tests) are made once.
pytestmark = pytest.mark.xdist_group('probe_test')


def _closed_form(x_NF, y_NK, strength):
  return np.linalg.solve(x_NF.T @ x_NF + strength * np.eye(x_NF.shape[1]), x_NF.T @ y_NK)


@pytest.mark.parametrize('examples, features', [(6, 10), (10, 4)])  # dual, then primal
def test_ridge_weights_are_the_closed_form(examples, features):
  rng = np.random.default_rng(examples)
  x_NF, y_NK = rng.normal(size=(examples, features)), rng.normal(size=(examples, 3))
  strengths = [1e-2, 1.0, 1e3]
  for strength, weights in zip(strengths, probe.ridge_weights(x_NF, y_NK, strengths)):
    np.testing.assert_allclose(weights, _closed_form(x_NF, y_NK, strength), rtol=1e-8, atol=1e-10)


def test_the_probe_separates_separable_classes_and_cross_validates_on_train_only():
  # Three classes, class k told by feature k (3 units up) among 10 features of noise: separable.
  rng = np.random.default_rng(0)
  labels, held_labels = np.arange(40) % 3, np.arange(30) % 3
  x_NF = rng.normal(size=(40, 10)) * 0.3
  x_NF[np.arange(40), labels] += 3
  held = rng.normal(size=(30, 10)) * 0.3
  held[np.arange(30), held_labels] += 3
  x_NF, held, strengths = x_NF.astype(np.float32), held.astype(np.float32), [1.0, 10.0, 100.0, 1e3]
  np.testing.assert_allclose(probe.cross_validate(x_NF, labels, 3, strengths),
                             [1.0, 1.0, 1.0, 0.825])  # 1000 shrinks the weights too far
  found = probe.probe(x_NF, labels, held, held_labels, 3, strengths)
  # The best cross-validated strength, of the tied ones the strongest; perfect on held-out rows.
  assert found == {'top1': 1.0, 'ridge': 100.0, 'cv_top1': 1.0, 'features': 10}
  # Held-out labels shifted by one class: the held-out score falls to 0, the choice (made on the
  # train rows alone) does not move.
  shifted = probe.probe(x_NF, labels, held, (held_labels + 1) % 3, 3, strengths)
  assert shifted == {**found, 'top1': 0.0}

def test_folds_hold_each_example_once_each_class_spread_and_fixed():
  labels = np.repeat([0, 1, 2], [10, 7, 3])
  folds = probe.folds_of(labels)
  assert folds.shape == (20,) and set(folds) == set(range(probe.FOLDS))  # each example once
  assert np.bincount(folds).tolist() == [4] * 5
  for label, count in zip(range(3), [10, 7, 3]):  # a class spread over folds as evenly as it goes
    per_fold = np.bincount(folds[labels == label], minlength=5)
    assert per_fold.max() - per_fold.min() <= 1 and per_fold.sum() == count
  np.testing.assert_array_equal(folds, probe.folds_of(labels))


def _colour_photos(root, labels_random: bool, train=30, val=50, seed=0):
  """root/{train,val}/{blue,red}/: noise with a strong red or blue cast. The folder (the label) is
  the cast, or labels_random: a coin flipped apart from it, half the images of each class."""
  rng = np.random.default_rng(seed)
  for split, count in (('train', train), ('val', val)):
    casts = rng.permutation(np.repeat([0, 2], count))  # red, blue channel
    folders = np.repeat(['blue', 'red'], count)
    folders = rng.permutation(folders) if labels_random else np.where(casts == 0, 'red', 'blue')
    for i, (cast, folder) in enumerate(zip(casts, folders)):
      image = rng.integers(0, 80, (40, 48, 3), dtype=np.uint8)
      image[..., cast] += 150
      os.makedirs(os.path.join(root, split, folder), exist_ok=True)
      Image.fromarray(image).save(os.path.join(root, split, folder, f'{i}.png'))
  return root


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
  """(colour, scrambled): _colour_photos with the cast as the label, and with random labels."""
  root = tmp_path_factory.mktemp('probe_photos')
  return (_colour_photos(str(root / 'colour'), labels_random=False),
          _colour_photos(str(root / 'scrambled'), labels_random=True))


@pytest.fixture(scope='module')
def command_line(trained_run, photos, tmp_path_factory):
  """(future of the CompletedProcess, its --json path): the tool's one command-line run, on the
  colour photos with the default layers, in a background thread from the module's first use on."""
  output = str(tmp_path_factory.mktemp('probe_cli') / 'probe.json')
  with concurrent.futures.ThreadPoolExecutor(1) as pool:
    yield pool.submit(run_module, 'alexnet_jax.tools.probe', f'--workdir={trained_run[0]}',
                      f'--data=folder:{photos[0]}', f'--json={output}'), output


@pytest.fixture(scope='module')
def clf(trained_run, command_line):  # command_line: started before, to overlap what follows
  """The trained run loaded once, in this process."""
  del command_line
  return inference.load(trained_run[0])


def test_random_init_features_differ_from_the_trained_ones(clf):
  widths = probe.layer_widths(clf.model, clf.params, clf.config.data.image_size)
  assert list(widths) == ['conv1', 'conv2', 'conv3', 'conv4', 'conv5', 'fc6', 'fc7', 'fc8']
  images = np.random.default_rng(3).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
  trained = probe.make_features(clf.model, clf.params, ['conv5', 'fc7'])(images)
  fresh = probe.make_features(clf.model, probe.initial_params(clf), ['conv5', 'fc7'])(images)
  assert {k: v.shape for k, v in trained.items()} == {'conv5': (5, widths['conv5']),
                                                      'fc7': (5, 64)}
  # FC7 after its relu, as neighbours reads it (the input of FC8).
  np.testing.assert_allclose(trained['fc7'], neighbours.make_features(clf)(images)[1], rtol=1e-6)
  for name in trained:
    assert fresh[name].shape == trained[name].shape and fresh[name].min() >= 0
    assert np.abs(fresh[name] - trained[name]).max() > 1e-3 * np.abs(trained[name]).max()
  again = probe.make_features(clf.model, probe.initial_params(clf), ['fc7'])(images)
  np.testing.assert_array_equal(again['fc7'], fresh['fc7'])  # config.seed: the same every time


def test_random_labels_stay_at_chance_and_the_random_init_baseline(clf, photos):
  colour, scrambled = photos
  # Chance: the scrambled folders are a random half/half split of each split's 100 or 60 images,
  # drawn apart from the images (their casts and noise). The probe, fitted on the train images,
  # predicts red for some m of the 100 held-out images whatever their folders; the red-labelled
  # among them, X, is then hypergeometric (100 images, 50 red, m drawn), and top-1 is
  # (2X + 50 - m) / 100: mean 0.5, variance m (100 - m) / 99 / 100^2, a standard deviation of at
  # most 0.0503 (m = 50). 0.35-0.65 is that +-2.98 std; exactly, a layer at chance falls outside it
  # with probability at most 0.25% (m = 50), the three layers at most 0.76%.
  chance = probe.probe_run(clf, f'folder:{scrambled}')
  assert (chance['train'], chance['eval'], list(chance['layers'])) == (60, 100,
                                                                      ['conv5', 'fc6', 'fc7'])
  for name, found in chance['layers'].items():
    assert 0.35 <= found['top1'] <= 0.65, (name, found)
  baseline = probe.probe_run(clf, f'folder:{colour}', layers=['fc7'], random_init=True)
  assert baseline['random_init'] is True and list(baseline['layers']) == ['fc7']


def _error_line(call) -> str:
  """The line cli.run (every tool's start-up path) prints of the error call() raises: the first of
  its message, the error being one of the project's (another is a bug and keeps its traceback)."""
  with pytest.raises(errors.Error) as caught:
    call()
  return errors.first_line(caught.value)


def test_unknown_layers_a_missing_folder_and_no_run_are_one_line_errors(clf, photos, tmp_path):
  colour = photos[0]
  said = _error_line(lambda: probe.probe_run(clf, f'folder:{colour}', layers=['fc6', 'pool9']))
  assert "'pool9'" in said
  assert 'conv1,conv2,conv3,conv4,conv5,fc6,fc7' in said and 'fc8' not in said
  said = _error_line(lambda: probe.probe_run(clf, f'folder:{tmp_path / "none"}'))
  assert 'no such folder' in said
  assert 'holds no checkpoint' in _error_line(lambda: inference.load(str(tmp_path)))


def test_a_probe_learns_the_colour_on_the_command_line(trained_run, command_line):
  workdir, _ = trained_run  # trained on 4 classes of bands; probed on red against blue
  future, output = command_line
  learned = future.result()
  assert learned.returncode == 0, learned.stderr[-3000:]
  record = json.loads(learned.stdout)
  with open(output) as f:
    assert json.loads(f.read()) == record
  assert {k: record[k] for k in ('workdir', 'step', 'random_init', 'train', 'eval', 'classes')} == {
      'workdir': workdir, 'step': 6, 'random_init': False, 'train': 60, 'eval': 100,
      'classes': ['blue', 'red']}
  assert list(record['layers']) == ['conv5', 'fc6', 'fc7']  # the default: last three hidden
  assert [v['features'] for v in record['layers'].values()] == [2304, 64, 64]
  for name, found in record['layers'].items():
    assert found['top1'] >= 0.9 and found['cv_top1'] >= 0.9, (name, found)
    assert found['ridge'] in (1, 10, 100, 1000, 10000, 100000)
  assert 'features of train: 60/60 images' in learned.stderr and 'fc7: top-1' in learned.stderr
