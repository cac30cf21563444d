"""The paper's down-sampled copy (data.downsample): written once, faithful, used by the pipeline."""
import ast
import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from alexnet_jax import data_sources
from alexnet_jax import downsample, input_pipeline, preprocess
from alexnet_jax.data_sources import DataError
from alexnet_jax import fake_imagenet
from conftest import data_config
from conftest import write_photos


SIZE = 64
SIDE = preprocess.resize_side(SIZE)  # 73: the copy's squares


def write_folder(root, counts, *, seed=0):
  """root/<class>/<i>.{jpg,png}: drawn shapes (smooth enough for JPEG), JPEG and PNG in turn."""
  write_photos(str(root), counts, seed=seed, size=(80, 96), formats=('jpg', 'png'), drawn=True)


@pytest.fixture
def photos(tmp_path):
  write_folder(tmp_path / 'photos' / 'train', {'cat': 5, 'dog': 4})
  write_folder(tmp_path / 'photos' / 'val', {'cat': 3, 'dog': 4}, seed=1)
  return data_config(name=f'folder:{tmp_path / "photos"}', data_dir=str(tmp_path / 'tfds'),
                     image_size=SIZE)


def copy_folder(config):
  root = os.path.join(config.data_dir, downsample.DOWNSAMPLED_FOLDER)
  return [os.path.join(root, f) for f in sorted(os.listdir(root)) if not f.startswith('.')]


def test_copy_holds_the_central_square_of_every_image_with_its_label(photos):
  original = data_sources.open_source(photos, 'train')
  photos.downsample = True
  copy = downsample.open_source(photos, 'train')
  assert copy.num_examples == original.num_examples == 9
  indices = np.arange(9)
  jpegs, labels = copy.records(indices)
  payloads, original_labels = original.records(indices)
  np.testing.assert_array_equal(labels, original_labels)
  for jpeg, payload in zip(jpegs.numpy(), payloads.numpy()):
    stored = np.asarray(Image.open(io.BytesIO(jpeg)))
    assert Image.open(io.BytesIO(jpeg)).format == 'JPEG' and stored.shape == (SIDE, SIDE, 3)
    expected = preprocess.decode_resized(original.image_bytes(tf.constant(payload)),
                                         preprocess.square_window, SIDE).numpy()
    assert np.abs(stored.astype(float) - expected).mean() < 8  # JPEG, 4:2:0 chroma: not bit-exact


def test_copy_is_written_once_and_reused(photos):
  photos.downsample = True
  downsample.open_source(photos, 'train')
  (folder,) = copy_folder(photos)
  stamp = os.path.getmtime(os.path.join(folder, 'images.bin'))
  downsample.open_source(photos, 'train')
  assert copy_folder(photos) == [folder]
  assert os.path.getmtime(os.path.join(folder, 'images.bin')) == stamp
  downsample.open_source(photos, 'validation')  # another split: its own copy
  assert len(copy_folder(photos)) == 2


def test_changed_images_get_a_new_copy(photos, tmp_path):
  photos.downsample = True
  downsample.open_source(photos, 'train')
  write_folder(tmp_path / 'photos' / 'train', {'cat': 6})  # one more cat
  assert downsample.open_source(photos, 'train').num_examples == 10
  assert len(copy_folder(photos)) == 2


def test_damaged_copy_is_a_one_line_error(photos):
  photos.downsample = True
  downsample.open_source(photos, 'train')
  (folder,) = copy_folder(photos)
  images = os.path.join(folder, 'images.bin')
  with open(images, 'rb') as f:
    data = f.read()
  with open(images, 'wb') as f:
    f.write(data[:-100])  # truncated
  with pytest.raises(DataError, match='damaged.*delete that folder'):
    downsample.open_source(photos, 'train')
  os.remove(os.path.join(folder, 'labels.npy'))
  with pytest.raises(DataError, match='damaged.*delete that folder'):
    downsample.open_source(photos, 'train')


def test_pipeline_crops_the_copy_without_resizing(photos):
  """From a copy at resize_side(size), the paper's crop window is size x size: no resampling."""
  photos.downsample = True
  photos.flip = False
  batch = next(input_pipeline.create_train_iterator(photos, seed=0, num_classes=2))
  assert batch['image'].shape == (4, SIZE, SIZE, 3) and batch['image'].dtype == np.uint8
  copy = downsample.open_source(photos, 'train')
  squares = [tf.io.decode_jpeg(j, dct_method='INTEGER_FAST').numpy().astype(int)
             for j in copy.records(np.arange(9))[0].numpy()]
  # Every training image is a size x size sub-array of some stored square (up to the JPEG
  # decoder's chroma upsampling at the window's edge), not a resampling of it.
  for image in batch['image']:
    errors = [np.abs(square[y:y + SIZE, x:x + SIZE] - image).mean() for square in squares
              for y in range(SIDE - SIZE + 1) for x in range(SIDE - SIZE + 1)]
    assert min(errors) < 0.5
  evaluation = next(input_pipeline.create_eval_iterator(photos, seed=0, num_classes=2))
  assert evaluation['image'].shape == (4, SIZE, SIZE, 3)


def test_undecodable_image_while_writing_the_copy_is_a_one_line_error(tmp_path):
  good = fake_imagenet.encode_jpeg(fake_imagenet.draw_image(np.random.default_rng(0), 0, 40, 50))
  images = tf.constant([good, b'\xff\xd8 not a jpeg', good])
  source = data_sources.Source(
      num_examples=3, num_classes=1,
      records=lambda idx: (tf.gather(images, idx), tf.zeros(tf.shape(idx), tf.int32)),
      image_bytes=lambda payload: payload, describe=lambda i: f'photo{i}.jpg', fingerprint='three')
  with pytest.raises(DataError, match=r'photo1.jpg could not be down-sampled.*on_corrupt=skip'):
    downsample.downsampled_source(source, side=SIDE, data_dir=str(tmp_path))
  assert not copy_folder(data_config(data_dir=str(tmp_path)))  # no partial copy left behind


def test_copy_of_a_gs_data_dir_stays_on_the_local_disk(tmp_path):
  """The copy is read by memory map: never a local folder named 'gs:' nor an object store."""
  home = os.path.expanduser('~/tensorflow_datasets')
  assert downsample.copy_root('gs://bucket/tfds') == os.path.join(home, 'alexnet_jax_downsampled')
  assert downsample.copy_root('') == os.path.join(home, 'alexnet_jax_downsampled')
  assert downsample.copy_root(str(tmp_path)) == str(tmp_path / 'alexnet_jax_downsampled')


def _library_imports(module: str) -> set:
  """The alexnet_jax modules that alexnet_jax/<module>.py imports, at its top or inside a function."""
  package = os.path.dirname(downsample.__file__)
  found = set()
  with open(os.path.join(package, f'{module}.py')) as f:
    for node in ast.walk(ast.parse(f.read())):
      if isinstance(node, ast.ImportFrom) and node.module == 'alexnet_jax':
        found.update(alias.name for alias in node.names)
      elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith('alexnet_jax.'):
        found.add(node.module.split('.')[1])
      elif isinstance(node, ast.Import):
        found.update(a.name.split('.')[1] for a in node.names if a.name.startswith('alexnet_jax.'))
  return {m for m in found if os.path.exists(os.path.join(package, f'{m}.py'))}


@pytest.mark.parametrize('module', ['data_sources', 'downsample'])
def test_sources_and_their_copy_import_no_cycle(module):
  """downsample builds on data_sources, never the other way: no module imports itself back."""
  reached, todo = set(), list(_library_imports(module))
  while todo:
    name = todo.pop()
    if name not in reached:
      reached.add(name)
      todo += _library_imports(name)
  assert module not in reached
