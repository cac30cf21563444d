"""pil_images reads a few images as the tf.data eval path does, within a stated pixel tolerance:
JPEGs within 6 levels (mean under 1.5: PIL's accurate inverse DCT against TensorFlow's fast one),
every other format within 1 level (float rounding); predictions agree within 1e-3."""
import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from alexnet_jax import inference
from alexnet_jax import input_pipeline
from alexnet_jax import pil_images
from alexnet_jax import preprocess
from conftest import exif_turned_jpegs


def _photo(rng, h, w):
  y, x = np.mgrid[0:h, 0:w]
  base = np.stack([128 + 100 * np.sin(x / 7.0), 128 + 100 * np.cos(y / 11.0), (x + y) % 256], -1)
  return np.clip(base + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)


def _encode(image, fmt, **kwargs):
  out = io.BytesIO()
  image.save(out, fmt, **kwargs)
  return out.getvalue()


def awkward_files() -> dict:
  """{name: encoded bytes}: the formats people's photos come in."""
  rng = np.random.default_rng(0)
  rgb = Image.fromarray(_photo(rng, 150, 200))
  grey16 = (np.asarray(rgb.convert('L')).astype(np.uint16) * 257
            + rng.integers(0, 200, (150, 200))).astype(np.uint16)
  return {'jpeg': _encode(rgb, 'JPEG', quality=90),
          'large jpeg (DCT-scaled)': _encode(Image.fromarray(_photo(rng, 600, 800)), 'JPEG'),
          'progressive jpeg': _encode(rgb, 'JPEG', quality=90, progressive=True),
          'cmyk jpeg': _encode(rgb.convert('CMYK'), 'JPEG', quality=90),
          'grayscale jpeg': _encode(rgb.convert('L'), 'JPEG', quality=90),
          'tiny jpeg (upscaled)': _encode(Image.fromarray(_photo(rng, 20, 30)), 'JPEG'),
          'png': _encode(rgb, 'PNG'), 'rgba png': _encode(rgb.convert('RGBA'), 'PNG'),
          'palette png': _encode(rgb.convert('P'), 'PNG'),
          'grayscale png': _encode(rgb.convert('L'), 'PNG'),
          '16-bit png': _encode(Image.fromarray(grey16), 'PNG'),
          'webp': _encode(rgb, 'WEBP', quality=90), 'gif': _encode(rgb.convert('P'), 'GIF'),
          'bmp': _encode(rgb, 'BMP')}


@pytest.mark.parametrize('size', [64, 48])
def test_pixels_match_the_tf_eval_crop(size):
  for name, data in awkward_files().items():
    ours = pil_images.eval_image(data, size=size).astype(int)
    theirs = preprocess.eval_image(tf.constant(data), size=size).numpy().astype(int)
    diff = np.abs(ours - theirs)
    if 'jpeg' in name:
      assert diff.max() <= 6 and diff.mean() < 1.5, (name, diff.max(), diff.mean())
    else:
      assert diff.max() <= 1 and diff.mean() < 0.01, (name, diff.max(), diff.mean())


def test_unreadable_bytes_raise():
  with pytest.raises(pil_images.UnreadableImage):
    pil_images.eval_image(b'not an image', size=64)


def test_a_few_files_predict_as_many_do(trained_run, tmp_path):
  clf = inference.load(trained_run[0])
  files = []
  for i, (name, data) in enumerate(awkward_files().items()):
    files.append(str(tmp_path / f'{i:02d}{".jpg" if "jpeg" in name else ".img"}'))
    with open(files[-1], 'wb') as f:
      f.write(data)
  # Each alone goes through PIL; all of them, repeated past PIL_MAX_IMAGES, through tf.data.
  many = clf.predict(files * 2, top_k=4)[:len(files)]
  assert len(files) * 2 > inference.PIL_MAX_IMAGES
  for path, reference in zip(files, many):
    [alone] = clf.predict([path], top_k=4)
    assert ([p['label'] for p in alone['predictions']] ==
            [p['label'] for p in reference['predictions']]), path
    np.testing.assert_allclose([p['probability'] for p in alone['predictions']],
                               [p['probability'] for p in reference['predictions']], atol=1e-3)


def test_folder_walks_find_webp(tmp_path):
  from alexnet_jax import data_sources  # pylint: disable=g-import-not-at-top
  data = awkward_files()
  for name, suffix, key in (('a', '.webp', 'webp'), ('b', '.jpg', 'jpeg'), ('c', '.txt', 'png')):
    (tmp_path / 'train' / 'cat').mkdir(parents=True, exist_ok=True)
    (tmp_path / 'train' / 'cat' / f'{name}{suffix}').write_bytes(data[key])
  found = inference.find_images([str(tmp_path)])
  assert [os.path.basename(p) for p in found] == ['a.webp', 'b.jpg']
  _, files = data_sources._list_images(str(tmp_path / 'train'), str(tmp_path / 'train'))  # pylint: disable=protected-access
  assert [os.path.basename(p) for p, _ in files] == ['a.webp', 'b.jpg']


def test_predict_reads_jpegs_upright_per_their_exif_orientation(tmp_path):
  """Both of predict's readers (a few files: PIL; many: tf.data) turn every EXIF orientation as
  PIL.ImageOps.exif_transpose does: the 48 x 64 picture's central 48 x 48, not resized."""
  files, expected = [], []
  for orientation, (jpeg, upright_HWC) in exif_turned_jpegs(48, 64).items():
    files.append(str(tmp_path / f'{orientation}.jpg'))
    with open(files[-1], 'wb') as f:
      f.write(jpeg)
    expected.append(upright_HWC[:, 8:56].astype(int))
  for reader, tolerance in ((pil_images.image_batches, 0), (input_pipeline.image_batches, 8)):
    [(indices, images, bad)] = reader(files, size=48, batch_size=8, resize_ratio=1.0)
    assert indices.tolist() == list(range(8)) and not bad
    for orientation, image, upright in zip(range(1, 9), images.astype(int), expected):
      diff = np.abs(image - upright)  # JPEG: TF's fast inverse DCT against PIL's accurate one
      assert diff.max() <= tolerance and diff.mean() < 1.5, (reader.__module__, orientation)
