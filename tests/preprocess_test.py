"""Augmentation shapes and dtypes, flips, PCA lighting statistics, DCT-scaled decoding, eval crops."""
import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from alexnet_jax import preprocess
from conftest import exif_turned_jpegs

SIZE = 32


def encode(image: np.ndarray, format_: str) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format=format_, **({'quality': 95} if format_ == 'JPEG' else {}))
  return buffer.getvalue()


def random_image(height, width, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize('format_', ['JPEG', 'PNG'])
@pytest.mark.parametrize('crop', ['paper', 'inception'])
def test_train_image_is_uint8_with_a_small_lighting_offset(format_, crop):
  image_bytes = encode(random_image(45, 60), format_)
  for seed in range(4):
    image, lighting = preprocess.train_image(tf.constant(image_bytes),
                                             tf.constant([seed, 7], tf.int64), size=SIZE, crop=crop)
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == tf.uint8
    assert lighting.shape == (3,) and lighting.dtype == tf.float32
    assert 0 < np.abs(lighting).max() < 0.2  # alpha std 0.1 times eigenvalues of at most 0.22
  _, off = preprocess.train_image(tf.constant(image_bytes), tf.constant([0, 7], tf.int64),
                                  size=SIZE, pca_lighting_std=0.0)
  np.testing.assert_array_equal(off, np.zeros(3))


def test_train_image_is_a_function_of_its_seed():
  image_bytes = tf.constant(encode(random_image(50, 70), 'JPEG'))
  first = preprocess.train_image(image_bytes, tf.constant([1, 2], tf.int64), size=SIZE)
  again = preprocess.train_image(image_bytes, tf.constant([1, 2], tf.int64), size=SIZE)
  other = preprocess.train_image(image_bytes, tf.constant([1, 3], tf.int64), size=SIZE)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  assert not np.array_equal(first[0], other[0]) and not np.array_equal(first[1], other[1])


def test_flip_mirrors_about_half_of_the_images():
  image_bytes = tf.constant(encode(random_image(40, 40), 'PNG'))
  mirrored = 0
  for seed in range(40):
    seed_2 = tf.constant([seed, 0], tf.int64)
    plain, _ = preprocess.train_image(image_bytes, seed_2, size=SIZE, flip=False)
    flipped, _ = preprocess.train_image(image_bytes, seed_2, size=SIZE, flip=True)
    assert np.array_equal(flipped, plain) or np.array_equal(flipped, plain[:, ::-1])
    mirrored += not np.array_equal(flipped, plain)
  assert 10 <= mirrored <= 30


def smooth_image(height, width):
  """Gradients and a low-frequency wave: JPEG keeps them, resizers agree on them."""
  yy, xx = np.mgrid[:height, :width] / max(height, width)
  return np.stack([255 * xx, 255 * yy, 127 + 100 * np.sin(6 * xx + 4 * yy)], -1).astype(np.uint8)


@pytest.mark.parametrize('height,width', [(240, 300), (70, 90)])  # DCT scale 1/4 and 1/1
def test_jpeg_decoded_at_dct_scale_matches_full_decode_and_resize(height, width):
  pixels = smooth_image(height, width)
  window = lambda shape_hw: tf.constant([10, 30, height - 20, height - 20])
  got = preprocess.decode_resized(tf.constant(encode(pixels, 'JPEG')), window, SIZE).numpy()
  crop = pixels[10:height - 10, 30:30 + height - 20]
  expected = tf.image.resize(crop, [SIZE, SIZE], antialias=True).numpy()
  assert np.abs(got - expected).mean() < 3  # JPEG and resampling differences, in 0..255 levels


def test_grayscale_jpeg_decodes_to_three_channels():
  gray = np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(gray).save(buffer, format='JPEG')
  image = preprocess.eval_image(tf.constant(buffer.getvalue()), size=SIZE)
  assert image.shape == (SIZE, SIZE, 3)


def test_pca_lighting_has_the_imagenet_covariance():
  std = 0.1
  shift = tf.function(lambda seed: preprocess.lighting_shift(std, seed))
  shifts = np.stack([shift(tf.constant([s, 0], tf.int64)) for s in range(3000)])
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
  crops = preprocess.ten_crop(tf.constant(encode(coordinate_image(full), 'PNG')), size=SIZE).numpy()
  assert crops.shape == (10, SIZE, SIZE, 3) and crops.dtype == np.uint8
  far, mid = full - SIZE, (full - SIZE) // 2
  for crop, (y, x) in zip(crops[:5], [(0, 0), (0, far), (far, 0), (far, far), (mid, mid)]):
    np.testing.assert_array_equal(crop[0, 0, :2], [x, y])
    np.testing.assert_array_equal(crop[-1, -1, :2], [x + SIZE - 1, y + SIZE - 1])
  np.testing.assert_array_equal(crops[5:], crops[:5, :, ::-1])


def test_centre_crop_is_centred():
  full = preprocess.resize_side(SIZE)
  image = preprocess.eval_image(tf.constant(encode(coordinate_image(full), 'PNG')), size=SIZE)
  mid = (full - SIZE) // 2
  np.testing.assert_array_equal(image[0, 0, :2], [mid, mid])


@pytest.mark.parametrize('format_', ['PNG', 'JPEG'])
def test_cifar_crops_are_windows_of_the_photo_not_resampled(format_):
  """data.resize_ratio=32/24: cuda-convnet's 24-px crops of a 32-px photo, its pixels as decoded;
  1.0 at 32 px: the whole photo. (A JPEG window decoded alone differs from the whole decode by
  libjpeg's chroma upsampling at the window's edges: measured 0.33 levels on average, here <= 1.)"""
  photo = encode(random_image(32, 32), format_)
  pixels = tf.io.decode_image(photo, channels=3).numpy().astype(int)
  near = lambda a, b: np.abs(a.astype(int) - b).mean() <= (1.0 if format_ == 'JPEG' else 0.0)
  ratio = 32 / 24
  seen = set()
  for seed in range(12):
    crop, _ = preprocess.train_image(tf.constant(photo), tf.constant([seed, 3], tf.int64), size=24,
                                     flip=False, pca_lighting_std=0.0, resize_ratio=ratio)
    crop = crop.numpy()
    offsets = [(y, x) for y in range(9) for x in range(9) if near(crop, pixels[y:y + 24, x:x + 24])]
    assert offsets, seed
    seen.add(offsets[0])
  assert len(seen) > 4  # random windows
  centre = preprocess.eval_image(tf.constant(photo), size=24, resize_ratio=ratio).numpy()
  assert near(centre, pixels[4:28, 4:28])
  crops = preprocess.ten_crop(tf.constant(photo), size=24, resize_ratio=ratio).numpy()
  assert near(crops[3], pixels[8:, 8:]) and near(crops[0], pixels[:24, :24])
  whole, _ = preprocess.train_image(tf.constant(photo), tf.constant([0, 0], tf.int64), size=32,
                                    flip=False, pca_lighting_std=0.0, resize_ratio=1.0)
  assert near(whole.numpy(), pixels)


@pytest.mark.parametrize('height,width,window,size', [
    (48, 64, (2, 5, 40, 40), 40),  # decoded at full scale, not resized: pixel for pixel
    (200, 264, (10, 30, 170, 150), 40)])  # DCT scale 1/2, then bilinear
def test_jpeg_windows_are_taken_of_the_upright_picture(height, width, window, size):
  """An off-centre window of each EXIF orientation's upright picture: window_fn sees the upright
  shape, and the pixels are exif_transpose's there."""
  seen = []

  def window_fn(shape_hw):
    seen.append(tuple(shape_hw.numpy()))
    return tf.constant(window)
  y, x, h, w = window
  for orientation, (jpeg, upright_HWC) in exif_turned_jpegs(height, width).items():
    assert int(preprocess.jpeg_orientation(tf.constant(jpeg))) == orientation
    got = preprocess.decode_resized(tf.constant(jpeg), window_fn, size).numpy().astype(int)
    crop = upright_HWC[y:y + h, x:x + w]
    expected = crop if h == w == size else tf.image.resize(crop, [size, size], antialias=True)
    diff = np.abs(got - np.asarray(expected))  # TF's fast inverse DCT, bilinear against antialias
    assert diff.mean() < (1.5 if h == w == size else 3), (orientation, diff.mean())
  assert seen == [(height, width)] * 8


def test_jpeg_orientation_of_damaged_or_missing_exif_is_1():
  stored, _ = exif_turned_jpegs(16, 16)[6]
  exif = stored.index(b'Exif')
  for data in (b'\xff\xd8', b'\xff\xd8\xff\xe0', stored[:exif + 12], stored[:exif + 24],
               stored[:exif + 6] + b'MM\0*\x7f\xff\xff\xff' + stored[exif + 14:],  # IFD past end
               stored[:exif + 6] + b'XX\0*' + stored[exif + 10:],  # no byte order
               encode(random_image(16, 16), 'JPEG')):
    assert int(preprocess.jpeg_orientation(tf.constant(data))) == 1, data[:exif + 14]
