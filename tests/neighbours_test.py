"""tools.neighbours: FC7 features on all devices, the streamed nearest-neighbour search, the PNG."""
import os

import numpy as np
from PIL import Image
from scipy import ndimage

from alexnet_jax import inference
from alexnet_jax import workdir as workdir_lib
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


TRUE_BAR, OTHER_BAR = (255, 127, 14), (31, 119, 180)  # matplotlib's tab:orange and tab:blue


def _colour(image, rgb):
  return np.all(np.abs(image.astype(int) - rgb) < 8, axis=-1)


def _panels(image):
  """(top, left, bottom, right) of the picture's solid rectangles (pictures in their frames; not
  text, bars or the bar chart's open frame), found by scanning for the white background."""
  labels, _ = ndimage.label(np.any(image < 250, axis=-1))
  boxes = []
  for index, found in enumerate(ndimage.find_objects(labels), 1):
    box = labels[found] == index
    if min(box.shape) >= 20 and box.mean() > 0.95:
      boxes.append((found[0].start, found[1].start, found[0].stop, found[1].stop))
  return boxes


def _row_bands(image):
  """The picture's horizontal bands holding one row of panels each, top to bottom."""
  tops = sorted({(top, bottom) for top, _, bottom, _ in _panels(image)})
  return [image[top:bottom] for top, bottom in tops]


def _panel_rows(image):
  """The panels' insides (frames cut off), row by row, each row left to right."""
  rows = {}
  for top, left, bottom, right in sorted(_panels(image), key=lambda box: box[1]):
    rows.setdefault(top, []).append(image[top + 2:bottom - 2, left + 2:right - 2])
  return [rows[top] for top in sorted(rows)]


def test_each_row_draws_its_query_its_top5_bars_and_its_neighbours_in_order(tmp_path):
  rng = np.random.default_rng(0)
  colours = rng.integers(0, 200, (2, 4, 3), dtype=np.uint8)  # [query, (itself, 3 neighbours)]
  solid = np.broadcast_to(colours[:, :, None, None, :], (2, 4, 16, 16, 3))
  labels = np.array([1, 5])  # row 1's true class is the least likely of 6: not in its top 5
  probabilities = np.array([0.5, 0.3, 0.1, 0.05, 0.03, 0.02])
  nearest = (np.ones((2, 3)), solid[:, 1:], np.array([[1, 1, 2], [5, 0, 5]]))
  neighbours.draw((solid[:, 0], labels), np.log(np.stack([probabilities] * 2)), nearest,
                  [f'class{c}' for c in range(6)], str(tmp_path / 'nn.png'), 'made up')
  image = np.asarray(Image.open(tmp_path / 'nn.png').convert('RGB'))
  rows = _panel_rows(image)
  assert [len(row) for row in rows] == [4, 4]
  for q, row in enumerate(rows):
    for j, panel in enumerate(row):  # the query, then its neighbours nearest first
      np.testing.assert_array_equal(np.median(panel.reshape(-1, 3), axis=0), colours[q, j])
  first, second = _row_bands(image)
  # Row 0: the longest bar (0.5, blue) half the axis from 0 to 1 (its frame's dark sides), its
  # true class's bar (0.3) orange; row 1's true class is not drawn.
  blue = np.flatnonzero(np.any(_colour(first, OTHER_BAR), axis=0))
  sides = np.flatnonzero(np.mean(np.all(first < 80, axis=-1), axis=0) > 0.5)
  zero, one = sides[sides <= blue[0]][-1], sides[sides > blue[-1]][0]
  assert abs((blue[-1] + 1 - zero) / (one - zero) - 0.5) < 0.02
  orange = np.flatnonzero(np.any(_colour(first, TRUE_BAR), axis=0))
  assert abs((orange[-1] + 1 - zero) / (one - zero) - 0.3) < 0.02
  assert not _colour(second, TRUE_BAR).any() and np.any(_colour(second, OTHER_BAR))


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
  # Found by scanning the picture: 3 rows of the query and its 6 neighbours; each query is the
  # centre crop of that held-out image (in order; far from the others), and has its orange bar.
  image = np.asarray(Image.open(output).convert('RGB'))
  rows = _panel_rows(image)
  assert [len(row) for row in rows] == [1 + 6] * 3
  config = workdir_lib.read_config(os.path.join(workdir, 'config.json'))
  images, _, mask = next(neighbours._batches(config.data, config.data.eval_split, config, limit=3))
  queries = images[mask]
  for q, row in enumerate(rows):
    drawn = Image.fromarray(row[0]).resize(queries.shape[2:0:-1], Image.BILINEAR)
    differences = [np.abs(np.asarray(drawn, float) - query).mean() for query in queries]
    assert np.argmin(differences) == q and differences[q] < 15, differences
  for band in _row_bands(image):
    assert np.sum(_colour(band, TRUE_BAR)) > 50  # 4 classes: the true one is always in the top 5
  assert 'has no config.json' in error_line(no_config)
  assert 'cannot write' in error_line(unwritable)


def test_the_title_names_the_workdir_as_given():
  said = neighbours.title('runs/cats_dogs', 120, 6, 1000)
  assert said.startswith('runs/cats_dogs step 120: top-5 predictions and the 6 nearest of 1000')
  assert os.getcwd() not in said
