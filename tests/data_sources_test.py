"""Example sources: split strings, and a prepared TFDS dataset's recorded corrupt images."""
import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from alexnet_jax import data_sources
from alexnet_jax import input_pipeline
from alexnet_jax.data_sources import DataError
from alexnet_jax.tools import prepare
from conftest import data_config


@pytest.mark.parametrize('split, expected', [
    ('train', ('train', 0.0, 1.0)), ('val[10%:20%]', ('val', 0.1, 0.2)),
    ('train[-10%:]', ('train', 0.9, 1.0)), ('train[:-25%]', ('train', 0.0, 0.75)),
    ('train[-30%:-10%]', ('train', 0.7, 0.9)), ('train[-100%:]', ('train', 0.0, 1.0)),
])
def test_percent_slices_negative_ones_from_the_end(split, expected):
  assert data_sources._parse_split(split) == pytest.approx(expected)  # pylint: disable=protected-access


@pytest.mark.parametrize('split, message', [
    ('train[:50]', 'not understood'),  # an example count, which TFDS takes it for: not a percent
    ('train[10%]', 'not understood'), ('train[%:]', 'not understood'),
    ('train[:90%', 'not understood'), ('train+val', 'not understood'),
    ('train[:150%]', 'not understood'), ('train[-150%:]', 'not understood'),
    ('train[50%:10%]', 'is empty'), ('train[:-100%]', 'is empty'),
])
def test_malformed_or_empty_slices_are_one_line_errors(split, message):
  with pytest.raises(DataError, match=message) as error:
    data_sources._parse_split(split)  # pylint: disable=protected-access
  assert split in str(error.value) and '\n' not in str(error.value)


def _png(value: int) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(buffer, format='PNG')
  return buffer.getvalue()


class AlexnetJaxCorruptTest(tfds.core.GeneratorBasedBuilder):
  """Six 8x8 PNGs, image i grey 40 i with label i, but image 0 is not a PNG. Registered by name."""
  VERSION = tfds.core.Version('1.0.0')

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(None, None, 3), encoding_format='png'),
            'label': tfds.features.ClassLabel(num_classes=6)}),
        supervised_keys=('image', 'label'))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {'train': self._generate_examples()}

  def _generate_examples(self):
    for i in range(6):
      payload = b'\x89PNG\r\n not an image' if i == 0 else _png(40 * i)
      yield i, {'image': io.BytesIO(payload), 'label': i}


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
  """(data_dir, the corrupt image's index in the prepared dataset, which TFDS shuffled)."""
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  corrupt = prepare.prepare('alexnet_jax_corrupt_test', data_dir=data_dir, splits=['train'])
  builder = data_sources.tfds_builder('alexnet_jax_corrupt_test', data_dir)
  records = builder.as_data_source('train', decoders={'image': tfds.decode.SkipDecoding()})
  (index,) = [i for i in range(6) if records[i]['label'] == 0]
  assert index < 5  # TFDS's order puts it before the last: a skip that does not remap shows
  assert corrupt == {'train': [index]}
  with open(os.path.join(builder.data_dir, data_sources.CORRUPT_FILE)) as f:
    assert json.load(f) == corrupt  # beside the dataset, for training to read
  return data_dir, index


def test_recorded_corrupt_image_stops_the_run_with_its_index(prepared):
  data_dir, index = prepared
  config = data_config(name='alexnet_jax_corrupt_test', data_dir=data_dir, on_corrupt='error')
  with pytest.raises(DataError, match=rf'alexnet_jax_corrupt_test train\[{index}\].*on_corrupt=skip'):
    data_sources.open_source(config, 'train')


def test_recorded_corrupt_image_is_skipped_and_counted(prepared, caplog):
  data_dir, index = prepared
  config = data_config(name='alexnet_jax_corrupt_test', data_dir=data_dir, on_corrupt='skip',
                       train_split='train', eval_split='train')
  source = data_sources.open_source(config, 'train')
  assert source.num_examples == 5 and 'Skipping 1 corrupt image' in caplog.text
  payloads, labels = source.records(tf.range(5, dtype=tf.int64))
  assert sorted(labels.numpy().tolist()) == [1, 2, 3, 4, 5]
  pixels = [int(tf.io.decode_png(p)[0, 0, 0]) for p in payloads.numpy()]
  assert pixels == [40 * label for label in labels.numpy()]
  names = {source.describe(i) for i in range(5)}  # the dataset's own indices, the corrupt one out
  assert names == {f'alexnet_jax_corrupt_test train[{i}]' for i in range(6) if i != index}
  batch = next(input_pipeline.create_train_iterator(config, seed=0, num_classes=6))
  assert batch['image'].shape == (4, 16, 16, 3)
  assert input_pipeline.get_dataset_info(config, num_classes=6).num_train_examples == 5
