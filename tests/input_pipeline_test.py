"""Folder datasets with mixed formats, resume, process sharding, exact eval, error messages."""
import hashlib
import os

import jax
import numpy as np
import pytest
import tensorflow as tf

from alexnet_jax import data_sources
from alexnet_jax import input_pipeline
from alexnet_jax import model as model_lib
from alexnet_jax.data_sources import DataError
from conftest import data_config
from conftest import exif_turned_jpegs
from conftest import write_photos


def write_folder(root, counts, *, seed=0):
  """root/<class>/<i>.{jpg,png}: small noisy photos, JPEG and PNG in turn."""
  return write_photos(str(root), counts, seed=seed, size=(20, 24), formats=('jpg', 'png'))


@pytest.fixture
def folder(tmp_path):
  write_folder(tmp_path / 'photos' / 'train', {'cat': 5, 'dog': 4})
  write_folder(tmp_path / 'photos' / 'val', {'cat': 3, 'dog': 4}, seed=1)
  return data_config(name=f'folder:{tmp_path / "photos"}', data_dir=str(tmp_path / 'tfds'))


def as_processes(monkeypatch, index, count):
  monkeypatch.setattr(jax, 'process_index', lambda: index)
  monkeypatch.setattr(jax, 'process_count', lambda: count)


def take(iterator, n):
  return [next(iterator) for _ in range(n)]


def test_folder_with_mixed_formats_reads_train_and_val(folder):
  info = input_pipeline.get_dataset_info(folder, num_classes=2)
  assert (info.num_classes, info.num_train_examples, info.num_eval_examples) == (2, 9, 7)
  batch = next(input_pipeline.create_train_iterator(folder, seed=0, num_classes=2))
  assert batch['image'].shape == (4, 16, 16, 3) and batch['image'].dtype == np.uint8
  assert batch['label'].dtype == np.int32 and set(batch['label']) <= {0, 1}
  assert batch['lighting'].shape == (4, 3) and batch['lighting'].dtype == np.float32
  assert len({tuple(row) for row in batch['lighting']}) == 4  # one draw per example


def test_lighting_is_zero_when_pca_lighting_is_off(folder):
  folder.pca_lighting_std = 0.0
  batch = next(input_pipeline.create_train_iterator(folder, seed=0, num_classes=2))
  np.testing.assert_array_equal(batch['lighting'], np.zeros((4, 3), np.float32))


def test_resumed_train_iterator_equals_uninterrupted(folder):
  full = take(input_pipeline.create_train_iterator(folder, seed=3, num_classes=2), 6)
  resumed = take(input_pipeline.create_train_iterator(folder, seed=3, num_classes=2, start_step=4), 2)
  for a, b in zip(full[4:], resumed):
    for key in ('image', 'label', 'lighting'):
      np.testing.assert_array_equal(a[key], b[key])


def test_every_epoch_is_a_new_permutation_of_all_examples():
  """A source whose label is the example's index: the train stream's labels are its order."""
  pixel = tf.io.encode_png(np.zeros((2, 2, 3), np.uint8))
  num_examples, batch_size = 12, 4  # 3 steps an epoch
  source = data_sources.Source(
      num_examples=num_examples, num_classes=num_examples, describe=str,
      image_bytes=lambda payload: payload,
      records=lambda idx: (tf.fill(tf.shape(idx), pixel), tf.cast(idx, tf.int32)))
  config = data_config(image_size=2, batch_size=batch_size, pca_lighting_std=0.0)
  stream = input_pipeline.train_dataset(config, source, seed=0).as_numpy_iterator()
  epochs = [np.concatenate([next(stream)['label'] for _ in range(3)]) for _ in range(3)]
  for order in epochs:
    np.testing.assert_array_equal(np.sort(order), np.arange(num_examples))
  assert len({tuple(order) for order in epochs}) == 3, epochs  # each epoch its own order
  assert not any(np.array_equal(order, np.arange(num_examples)) for order in epochs)


def test_global_batch_does_not_depend_on_process_count(folder, monkeypatch):
  whole = next(input_pipeline.create_train_iterator(folder, seed=1, num_classes=2))
  halves = []
  for index in range(2):
    as_processes(monkeypatch, index, 2)
    halves.append(next(input_pipeline.create_train_iterator(folder, seed=1, num_classes=2)))
  for key in ('image', 'label', 'lighting'):
    np.testing.assert_array_equal(np.concatenate([h[key] for h in halves]), whole[key])


def eval_examples(config):
  batches = list(input_pipeline.create_eval_iterator(config, seed=0, num_classes=2))
  keys = [hashlib.sha1(image.tobytes()).hexdigest() + str(label)
          for b in batches for image, label, m in zip(b['image'], b['label'], b['mask']) if m]
  return len(batches), keys


def test_eval_counts_every_example_once_across_two_processes(folder, monkeypatch):
  folder.eval_crops = 10
  _, single = eval_examples(folder)
  assert len(single) == len(set(single)) == 7
  per_process = []
  for index in range(2):
    as_processes(monkeypatch, index, 2)
    per_process.append(eval_examples(folder))
  (batches_0, keys_0), (batches_1, keys_1) = per_process
  assert batches_0 == batches_1 == 2  # ceil(7 / 4), the same on every process
  assert sorted(keys_0 + keys_1) == sorted(single)


def test_eval_pads_with_masked_rows_and_ten_crops(folder):
  folder.eval_crops = 10
  batches = list(input_pipeline.create_eval_iterator(folder, seed=0, num_classes=2))
  assert batches[0]['image'].shape == (4, 10, 16, 16, 3) and batches[0]['image'].dtype == np.uint8
  np.testing.assert_array_equal(batches[-1]['mask'], [True, True, True, False])


def test_held_out_fraction_of_an_unsplit_folder(tmp_path):
  write_folder(tmp_path / 'flat', {'a': 6, 'b': 4})
  config = data_config(name=f'folder:{tmp_path / "flat"}', data_dir=str(tmp_path / 'tfds'),
                       train_split='train[:80%]', eval_split='train[80%:]')
  info = input_pipeline.get_dataset_info(config, num_classes=2)
  assert (info.num_train_examples, info.num_eval_examples) == (8, 2)
  with pytest.raises(DataError, match=r"eval_split='train\[90%:\]'"):
    input_pipeline.get_dataset_info(data_config(name=f'folder:{tmp_path / "flat"}'), num_classes=2)


def test_corrupt_image_is_named_or_skipped_and_counted(folder, caplog):
  bad = os.path.join(folder.name[len('folder:'):], 'train', 'dog', 'broken.jpg')
  with open(bad, 'wb') as f:
    f.write(b'\xff\xd8\xff\xe0 not really a jpeg')
  with pytest.raises(DataError, match='broken.jpg.*on_corrupt=skip'):
    input_pipeline.get_dataset_info(folder, num_classes=2)
  folder.on_corrupt = 'skip'
  assert input_pipeline.get_dataset_info(folder, num_classes=2).num_train_examples == 9
  assert 'Skipping 1 corrupt image' in caplog.text
  next(input_pipeline.create_train_iterator(folder, seed=0, num_classes=2))


def test_missing_imagenet_files_message_names_file_and_folder(tmp_path):
  config = data_config(name='imagenet2012', data_dir=str(tmp_path), manual_dir=str(tmp_path / 'in'))
  with pytest.raises(DataError, match=r'alexnet_jax.tools.prepare.*ILSVRC2012_img_train.tar.*'
                                      + str(tmp_path / 'in')) as error:
    input_pipeline.get_dataset_info(config, num_classes=1000)
  assert '\n' not in str(error.value)


def test_unknown_dataset_name(tmp_path):
  with pytest.raises(ValueError, match="'nosuchdataset'.*folder:/path"):
    input_pipeline.get_dataset_info(data_config(name='nosuchdataset', data_dir=str(tmp_path)),
                                    num_classes=2)


def test_synthetic_source_ships_what_the_real_sources_ship():
  """uint8 pixels, int32 labels and a zero lighting offset, standardised as any photo is."""
  config = data_config(name='synthetic')
  batch = next(input_pipeline.create_train_iterator(config, seed=0, num_classes=5))
  assert batch['image'].shape == (4, 16, 16, 3) and batch['image'].dtype == np.uint8
  assert batch['label'].dtype == np.int32 and set(batch['label']) <= set(range(5))
  np.testing.assert_array_equal(batch['lighting'], np.zeros((4, 3), np.float32))
  assert batch['lighting'].dtype == np.float32
  assert len(np.unique(batch['image'])) > 100  # pixels, not a few levels
  mean, std = np.array(model_lib.IMAGENET_MEAN_RGB), np.array(model_lib.IMAGENET_STD_RGB)
  np.testing.assert_allclose(model_lib.standardize(batch['image'], batch['lighting']),
                             (batch['image'] / 255.0 - mean) / std, rtol=1e-5, atol=1e-5)
  evaluation = list(input_pipeline.create_eval_iterator(config, seed=0, num_classes=5))
  assert all(b['image'].dtype == np.uint8 and 'lighting' not in b for b in evaluation)
  assert sum(b['mask'].sum() for b in evaluation) == input_pipeline.SYNTHETIC_EVAL_EXAMPLES


def test_synthetic_batches_depend_on_seed_and_step_only(monkeypatch):
  """The global batch is the same for any process count, and a resumed run sees the same batches."""
  config = data_config(name='synthetic')
  full = take(input_pipeline.create_train_iterator(config, seed=1, num_classes=5), 7)
  resumed = take(input_pipeline.create_train_iterator(config, seed=1, num_classes=5,
                                                      start_step=5), 2)
  for a, b in zip(full[5:], resumed):
    for key in ('image', 'label', 'lighting'):
      np.testing.assert_array_equal(a[key], b[key])
  halves = []
  for index in (0, 1):
    as_processes(monkeypatch, index, 2)
    halves.append(next(input_pipeline.create_train_iterator(config, seed=1, num_classes=5)))
  for key in ('image', 'label', 'lighting'):
    np.testing.assert_array_equal(np.concatenate([h[key] for h in halves]), full[0][key])


def test_folder_jpegs_are_trained_and_evaluated_upright_per_their_exif_orientation(tmp_path):
  """Class k holds a 48 x 64 photo with EXIF orientation k + 1: at resize_ratio 1 both the train
  crop (no flip) and the eval crop are its upright central 48 x 48, as exif_transpose turns it."""
  expected = {}
  for orientation, (jpeg, upright_HWC) in exif_turned_jpegs(48, 64).items():
    (tmp_path / 'photos' / 'train' / f'turn{orientation}').mkdir(parents=True)
    (tmp_path / 'photos' / 'train' / f'turn{orientation}' / 'photo.jpg').write_bytes(jpeg)
    expected[orientation - 1] = upright_HWC[:, 8:56].astype(int)
  config = data_config(name=f'folder:{tmp_path / "photos"}', data_dir=str(tmp_path / 'tfds'),
                       image_size=48, resize_ratio=1.0, batch_size=8, flip=False,
                       eval_split='train')
  train = next(input_pipeline.create_train_iterator(config, seed=0, num_classes=8))
  [evaluation] = input_pipeline.create_eval_iterator(config, seed=0, num_classes=8)
  for batch in (train, evaluation):
    assert sorted(batch['label']) == list(range(8))
    for image, label in zip(batch['image'].astype(int), batch['label']):
      diff = np.abs(image - expected[label])  # JPEG: TF's fast inverse DCT against PIL's
      assert diff.max() <= 8 and diff.mean() < 1.5, (label + 1, diff.max(), diff.mean())
