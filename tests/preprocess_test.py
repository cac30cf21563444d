"""Augmentation shapes and ranges, PCA lighting statistics, eval crop geometry."""
import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from alexnet_jax import preprocess

SIZE = 32


def encode(image: np.ndarray, format_: str) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format=format_, **({'quality': 95} if format_ == 'JPEG' else {}))
  return buffer.getvalue()


def random_image(height, width, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def denormalize(image):
  return np.asarray(image) * np.array(preprocess.STD_RGB) * 255 + np.array(preprocess.MEAN_RGB) * 255


@pytest.mark.parametrize('format_', ['JPEG', 'PNG'])
@pytest.mark.parametrize('crop', ['paper', 'inception'])
def test_train_image_shape_dtype_and_range(format_, crop):
  image_bytes = encode(random_image(45, 60), format_)
  for seed in range(4):
    image = preprocess.train_image(tf.constant(image_bytes), tf.constant([seed, 7], tf.int64),
                                   size=SIZE, crop=crop)
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == tf.float32
    pixels = denormalize(image)  # lighting shifts by a few hundredths of the range at most
    assert pixels.min() > -30 and pixels.max() < 285


def test_train_image_is_a_function_of_its_seed():
  image_bytes = tf.constant(encode(random_image(50, 70), 'JPEG'))
  first = preprocess.train_image(image_bytes, tf.constant([1, 2], tf.int64), size=SIZE)
  again = preprocess.train_image(image_bytes, tf.constant([1, 2], tf.int64), size=SIZE)
  other = preprocess.train_image(image_bytes, tf.constant([1, 3], tf.int64), size=SIZE)
  np.testing.assert_array_equal(first, again)
  assert not np.array_equal(first, other)


def test_grayscale_jpeg_decodes_to_three_channels():
  gray = np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(gray).save(buffer, format='JPEG')
  image = preprocess.eval_image(tf.constant(buffer.getvalue()), size=SIZE)
  assert image.shape == (SIZE, SIZE, 3)


def test_pca_lighting_has_the_imagenet_covariance():
  std = 0.1
  shifts = np.stack([preprocess.lighting_shift(std, tf.constant([s, 0], tf.int64))
                     for s in range(3000)])
  eigvec, eigval = np.array(preprocess.EIGVEC), np.array(preprocess.EIGVAL)
  expected = eigvec @ np.diag((std * eigval) ** 2) @ eigvec.T
  np.testing.assert_allclose(shifts.mean(0), 0, atol=3 * np.sqrt(expected.diagonal().max() / 3000))
  np.testing.assert_allclose(np.cov(shifts.T), expected, atol=0.08 * expected.max())


def test_paper_window_lies_in_the_central_square():
  for seed in range(20):
    y, x, h, w = preprocess.paper_window(tf.constant([300, 500]), 224, tf.constant([seed, 0])).numpy()
    assert h == w == 262  # 300 * 224 / 256
    assert 100 <= x and x + w <= 400 and 0 <= y and y + h <= 300


def coordinate_image(side):
  """PNG (lossless) whose red channel is the column and green channel the row."""
  yy, xx = np.mgrid[:side, :side]
  return np.stack([xx, yy, np.zeros_like(xx)], -1).astype(np.uint8)


def test_ten_crop_takes_corners_centre_and_mirrors():
  full = preprocess.resize_side(SIZE)  # the image is already at the resized size: no resampling
  crops = denormalize(preprocess.ten_crop(tf.constant(encode(coordinate_image(full), 'PNG')),
                                          size=SIZE))
  assert crops.shape == (10, SIZE, SIZE, 3)
  far, mid = full - SIZE, (full - SIZE) // 2
  for crop, (y, x) in zip(crops[:5], [(0, 0), (0, far), (far, 0), (far, far), (mid, mid)]):
    np.testing.assert_allclose(crop[0, 0, :2], [x, y], atol=0.01)
    np.testing.assert_allclose(crop[-1, -1, :2], [x + SIZE - 1, y + SIZE - 1], atol=0.01)
  np.testing.assert_allclose(crops[5:], crops[:5, :, ::-1], atol=1e-4)


def test_centre_crop_is_centred():
  full = preprocess.resize_side(SIZE)
  image = denormalize(preprocess.eval_image(tf.constant(encode(coordinate_image(full), 'PNG')),
                                            size=SIZE))
  mid = (full - SIZE) // 2
  np.testing.assert_allclose(image[0, 0, :2], [mid, mid], atol=0.01)
