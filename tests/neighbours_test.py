"""tools.neighbours: FC7 features on all devices, the streamed nearest-neighbour search, the PNG."""
import os

import numpy as np
from PIL import Image

from alexnet_jax import inference
from alexnet_jax.tools import neighbours
from conftest import error_line
from conftest import run_modules


def test_streamed_search_finds_the_brute_force_nearest():
  rng = np.random.default_rng(0)
  train = rng.integers(0, 256, (50, 2, 2, 3), dtype=np.uint8)
  labels = np.arange(50)
  queries_QF = rng.normal(128, 60, (4, 12))
  as_features = lambda images: (None, images.reshape(len(images), -1).astype(np.float64))
  mask = np.arange(64) < 50  # 4 batches of 16, the last padded
  padded = lambda x: np.concatenate([x, np.zeros((14,) + x.shape[1:], x.dtype)])
  batches = [(padded(train)[i:i + 16], padded(labels)[i:i + 16], mask[i:i + 16])
             for i in range(0, 64, 16)]
  (distances, images, found), seen, _ = neighbours.search(as_features, queries_QF, batches, 6, 50)
  all_d = np.linalg.norm(queries_QF[:, None] - as_features(train)[1][None], axis=-1)
  expected = np.argsort(all_d, axis=1, kind='stable')[:, :6]
  assert seen == 50
  np.testing.assert_array_equal(found, expected)  # labels are the training indices here
  np.testing.assert_array_equal(images, train[expected])
  np.testing.assert_allclose(distances, np.take_along_axis(all_d, expected, 1))


def test_features_are_fc7_after_relu_on_all_devices(trained_run):
  clf = inference.load(trained_run[0])
  images = np.random.default_rng(3).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
  logits_BK, features_BF = neighbours.make_features(clf)(images)  # 5 rows padded to 8 devices
  assert features_BF.shape == (5, 64) and features_BF.min() >= 0 and features_BF.max() > 0
  np.testing.assert_allclose(logits_BK, clf.logits(images), rtol=1e-5, atol=1e-5)
  fc8 = {k: np.asarray(v) for k, v in clf.params['fc8'].items()}
  np.testing.assert_allclose(features_BF @ fc8['kernel'] + fc8['bias'], logits_BK, rtol=1e-4,
                             atol=1e-4)  # FC8 is linear in the features: they are its input


def test_neighbours_png_shows_every_query(trained_run, tmp_path):
  workdir, _ = trained_run
  output = str(tmp_path / 'nn.png')
  (tmp_path / 'a_file').write_text('')
  result, no_config, unwritable = run_modules(
      # A run evaluated with 10 crops: the neighbours still read centre crops (4-D batches).
      ('alexnet_jax.tools.neighbours', f'--workdir={workdir}', '--queries=3', f'--output={output}',
       '--config.data.eval_crops=10'),
      ('alexnet_jax.tools.neighbours', f'--workdir={tmp_path}', f'--output={tmp_path / "x.png"}'),
      ('alexnet_jax.tools.neighbours', f'--workdir={workdir}', '--queries=1', '--max_train=8',
       f'--output={tmp_path / "a_file" / "x.png"}'))  # a folder that is a file
  assert result.returncode == 0, result.stderr[-3000:]
  assert not result.stdout and '3 queries; features of 36 training images' in result.stderr
  assert 'features: 36/36 training images' in result.stderr
  image = np.asarray(Image.open(output).convert('RGB'))
  assert image.shape == (int((1.75 * 3 + 0.7) * 100), int((2.0 * 6 + 5.6) * 100), 3)
  assert len(np.unique(image.reshape(-1, 3), axis=0)) > 500
  orange = np.all(np.abs(image.astype(int) - (255, 127, 14)) < 8, axis=-1)  # a true-class bar
  assert orange.sum() > 50
  assert 'has no config.json' in error_line(no_config)
  assert 'cannot write' in error_line(unwritable)


def test_the_title_names_the_workdir_as_given():
  said = neighbours.title('runs/cats_dogs', 120, 6, 1000)
  assert said.startswith('runs/cats_dogs step 120: top-5 predictions and the 6 nearest of 1000')
  assert os.getcwd() not in said
