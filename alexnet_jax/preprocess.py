"""Image preprocessing as pure tf ops: decode fused with crop and resize, flip, PCA lighting, eval crops.

Every random choice is a stateless op of a per-example seed (shape [2] int), so the same seed gives
the same augmentation anywhere. Images come out uint8; the float work (scale to [0, 1], add the PCA
lighting offset, mean/std) runs on the device in model.standardize: 4x fewer bytes, no float pass here.
"""
from __future__ import annotations

from alexnet_jax import errors
from alexnet_jax import tf_import

tf = tf_import.lazy('tensorflow')  # imported at the first use (tf_import.py)


RESIZE_RATIO = 256 / 224  # the paper resizes to 256 and crops 224 (data.resize_ratio)
# ImageNet RGB covariance on [0, 1] images (fb.resnet.torch); rows of EIGVEC are R, G, B.
EIGVAL = (0.2175, 0.0188, 0.0045)
EIGVEC = ((-0.5675, 0.7192, 0.4009),
          (-0.5808, -0.0045, -0.8140),
          (-0.5836, -0.6948, 0.4203))
INCEPTION_AREA = (0.08, 1.0)
INCEPTION_ASPECT = (3 / 4, 4 / 3)
DCT_RATIOS = (1, 2, 4, 8)  # libjpeg decodes at 1/2, 1/4, 1/8 scale in the DCT domain
# EXIF orientation 1-8 -> (transpose, then flip rows, then flip columns) that turn the stored pixels
# upright, as PIL.ImageOps.exif_transpose does (6: ROTATE_270, a quarter turn clockwise).
ORIENTATIONS = ((False, False, False), (False, False, True), (False, True, True),
                (False, True, False), (True, False, False), (True, False, True),
                (True, True, True), (True, True, False))
EXIF_BYTES = 65535  # an Exif block's most: it is one JPEG segment
ORIENTATION_TAG = 0x0112
MAX_IFD_ENTRIES = 64  # IFD0's entries searched for the orientation tag (it is about the 10th)


def resize_side(size: int, ratio: float = RESIZE_RATIO) -> int:
  """Shorter side the image is resized to before a crop of `size` (256 for 224).

  ratio is data.resize_ratio: the paper's 256/224; 32/24 takes cuda-convnet's 24-px crops of
  CIFAR-10's 32-px photos without resampling; 1 keeps the whole image.
  """
  return round(size * ratio)


def to_uint8(image_HWC):
  return tf.cast(image_HWC + 0.5, tf.uint8)  # bilinear stays in [0, 255]: +0.5 then truncate rounds


def _resize_jpeg(image_bytes, window, size: int):
  """Decodes only `window` of a JPEG, at the smallest DCT scale still >= size, then bilinear."""
  shortest = tf.reduce_min(window[2:])
  # k: how often the window halves and stays >= size. The DCT scaling is cheaper than decoding at
  # full size, and it filters, so bilinear never downscales by more than 2 (little aliasing).
  k = tf.reduce_sum(tf.cast(shortest >= size * tf.constant(DCT_RATIOS[1:]), tf.int32))

  def branch(ratio):
    def decode():
      scaled = tf.concat([window[:2] // ratio, tf.maximum(window[2:] // ratio, 1)], 0)
      image = tf.io.decode_and_crop_jpeg(image_bytes, scaled, channels=3, ratio=ratio,
                                         dct_method='INTEGER_FAST')
      resized = lambda: to_uint8(tf.image.resize(image, [size, size], method='bilinear'))
      if ratio > 1:
        return resized()
      # A window of exactly size x size (a crop of a down-sampled copy): the resize is the identity.
      return tf.cond(tf.reduce_all(tf.shape(image)[:2] == size), lambda: image, resized)
    return decode
  return tf.switch_case(k, [branch(r) for r in DCT_RATIOS])


def _tiff_orientation(tiff):
  """The orientation tag of an Exif block's first IFD (tiff: its bytes from the TIFF header on)."""
  order = tf.strings.substr(tiff, 0, 4)
  little = tf.equal(order, b'II*\0')

  def numbers(data, dtype, count: int):  # in the block's byte order, zeros past its end
    size = count * dtype.size
    return tf.where(little, tf.io.decode_raw(data, dtype, little_endian=True, fixed_length=size),
                    tf.io.decode_raw(data, dtype, little_endian=False, fixed_length=size))
  ifd = tf.clip_by_value(numbers(tf.strings.substr(tiff, 4, 4), tf.int32, 1)[0], 0,
                         tf.strings.length(tiff))
  words = numbers(tf.strings.substr(tiff, ifd, 2 + 12 * MAX_IFD_ENTRIES), tf.uint16,
                  1 + 6 * MAX_IFD_ENTRIES)
  # An entry's six words: tag, type, count (2), value (2; a SHORT in the first).
  entries = tf.reshape(tf.cast(words[1:], tf.int32), [MAX_IFD_ENTRIES, 6])
  found = ((tf.range(MAX_IFD_ENTRIES) < tf.cast(words[0], tf.int32)) &
           tf.equal(entries[:, 0], ORIENTATION_TAG) & tf.equal(entries[:, 1], 3))  # a SHORT
  value = tf.reduce_max(tf.where(found, entries[:, 4], 0))
  valid = (little | tf.equal(order, b'MM\0*')) & (value >= 1) & (value <= 8)
  return tf.where(valid, value, 1)


def jpeg_orientation(image_bytes):
  """A JPEG's EXIF orientation, 1-8 as PIL.ImageOps.exif_transpose reads it; 1 without one.

  The Exif segment is looked for where cameras and phones write it: right after SOI, or after
  JFIF's APP0 segment (about 20 scalar ops for a JPEG without one; measured in docs/data.md).
  """
  length = tf.strings.length(image_bytes)
  at = lambda pos, n: tf.strings.substr(image_bytes, tf.minimum(pos, length), n)
  app0_length = tf.io.decode_raw(at(4, 2), tf.uint16, little_endian=False, fixed_length=2)[0]
  start = tf.where(tf.equal(at(2, 2), b'\xff\xe0'), 4 + tf.cast(app0_length, tf.int32), 2)
  found = tf.equal(at(start, 2), b'\xff\xe1') & tf.equal(at(start + 4, 6), b'Exif\0\0')
  return tf.cond(found, lambda: _tiff_orientation(at(start + 10, EXIF_BYTES)),
                 lambda: tf.constant(1))


def _resize_turned_jpeg(image_bytes, window_fn, size: int, orientation):
  """_resize_jpeg of the upright picture of a JPEG with EXIF orientation 2-8: the window is taken
  of the upright picture, decoded from the stored pixels, and the size x size result transposed
  and flipped (resizing commutes with both)."""
  transpose, flip_rows, flip_cols = tf.unstack(tf.gather(tf.constant(ORIENTATIONS),
                                                         orientation - 1))
  stored_hw = tf.image.extract_jpeg_shape(image_bytes)[:2]
  shape_hw = tf.where(transpose, stored_hw[::-1], stored_hw)
  y, x, h, w = tf.unstack(window_fn(shape_hw))
  y = tf.where(flip_rows, shape_hw[0] - y - h, y)
  x = tf.where(flip_cols, shape_hw[1] - x - w, x)
  image = _resize_jpeg(image_bytes, tf.where(transpose, tf.stack([x, y, w, h]),
                                             tf.stack([y, x, h, w])), size)
  image = tf.transpose(image, tf.where(transpose, [1, 0, 2], [0, 1, 2]))
  return tf.reverse(image, tf.reshape(tf.where(tf.stack([flip_rows, flip_cols])), [-1]))


def decode_resized(image_bytes, window_fn, size: int):
  """Encoded image -> uint8 [size, size, 3]: the window_fn(shape_hw) = [y, x, h, w] crop, resized.

  A JPEG is decoded inside the window only (its shape comes from the header), upright per its EXIF
  orientation (window_fn sees the upright shape); other formats (PNG, BMP, GIF, WebP) are decoded
  once, cropped and resized with an antialiasing filter, as stored (tf.io.decode_image reads no
  EXIF; they rarely carry it).
  """
  def jpeg():
    orientation = jpeg_orientation(image_bytes)
    as_stored = lambda: _resize_jpeg(
        image_bytes, window_fn(tf.image.extract_jpeg_shape(image_bytes)[:2]), size)
    return tf.cond(tf.equal(orientation, 1), as_stored,
                   lambda: _resize_turned_jpeg(image_bytes, window_fn, size, orientation))

  def other():
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    y, x, h, w = tf.unstack(window_fn(tf.shape(image)[:2]))
    return to_uint8(tf.image.resize(image[y:y + h, x:x + w], [size, size], antialias=True))
  image = tf.cond(tf.io.is_jpeg(image_bytes), jpeg, other)
  image.set_shape([size, size, 3])
  return image


def _central_square(shape_hw):
  side = tf.reduce_min(shape_hw)
  return (shape_hw[0] - side) // 2, (shape_hw[1] - side) // 2, side


def _crop_side(side, size: int, ratio: float):
  return tf.maximum(1, tf.cast(tf.cast(side, tf.float32) * size / resize_side(size, ratio),
                               tf.int32))


def paper_window(shape_hw, size: int, seed, ratio: float = RESIZE_RATIO):
  """The paper's crop, in original pixels: a random `size` crop of the central square at 256/224."""
  y0, x0, side = _central_square(shape_hw)
  crop = _crop_side(side, size, ratio)
  offsets = tf.random.stateless_uniform([2], seed, minval=0, maxval=side - crop + 1, dtype=tf.int32)
  return tf.stack([y0 + offsets[0], x0 + offsets[1], crop, crop])


def inception_window(shape_hw, seed):
  """Inception-style random-resized crop: 8%-100% of the area, aspect 3/4-4/3."""
  begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
      tf.concat([shape_hw, [3]], 0), tf.zeros([0, 0, 4]), seed,
      min_object_covered=0.0, aspect_ratio_range=INCEPTION_ASPECT, area_range=INCEPTION_AREA,
      max_attempts=10, use_image_if_no_bounding_boxes=True)
  return tf.stack([begin[0], begin[1], extent[0], extent[1]])


def center_window(shape_hw, size: int, ratio: float = RESIZE_RATIO):
  """The central crop that becomes `size` after resizing the shorter side to 256/224 of it."""
  y0, x0, side = _central_square(shape_hw)
  crop = _crop_side(side, size, ratio)
  return tf.stack([y0 + (side - crop) // 2, x0 + (side - crop) // 2, crop, crop])


def square_window(shape_hw):
  y0, x0, side = _central_square(shape_hw)
  return tf.stack([y0, x0, side, side])


def lighting_shift(alpha_std: float, seed):
  """Fancy PCA: an RGB shift EIGVEC @ (alpha * EIGVAL), alpha ~ N(0, alpha_std), on [0, 1] images."""
  if alpha_std <= 0:
    return tf.zeros([3])
  alpha_3 = tf.random.stateless_normal([3], seed, stddev=alpha_std)
  return tf.linalg.matvec(tf.constant(EIGVEC), alpha_3 * tf.constant(EIGVAL))


def train_image(image_bytes, seed, *, size: int, crop: str = 'paper', flip: bool = True,
                pca_lighting_std: float = 0.1, resize_ratio: float = RESIZE_RATIO):
  """Training augmentation of one encoded image -> (uint8 [size, size, 3], lighting float32 [3]).

  The lighting offset is on the [0, 1] pixel scale, added on the device (model.standardize).
  """
  crop_seed, flip_seed, light_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
  if crop == 'paper':
    window_fn = lambda shape_hw: paper_window(shape_hw, size, crop_seed, resize_ratio)
  elif crop == 'inception':
    window_fn = lambda shape_hw: inception_window(shape_hw, crop_seed)
  else:
    raise errors.ConfigError(f"data.crop={crop!r} is unknown; use 'paper' or 'inception'.")
  image = decode_resized(image_bytes, window_fn, size)
  if flip:  # after the resize: the smallest image to mirror
    mirror = tf.random.stateless_uniform([], flip_seed) < 0.5
    image = tf.cond(mirror, lambda: tf.reverse(image, [1]), lambda: image)
  return image, lighting_shift(pca_lighting_std, light_seed)


def eval_image(image_bytes, *, size: int, resize_ratio: float = RESIZE_RATIO):
  """Centre crop -> uint8 [size, size, 3]."""
  return decode_resized(image_bytes, lambda shape_hw: center_window(shape_hw, size, resize_ratio),
                        size)


def ten_crop(image_bytes, *, size: int, resize_ratio: float = RESIZE_RATIO):
  """The paper's test crops -> uint8 [10, size, size, 3]: 4 corners and centre, then their mirrors.

  The image is resized to 256/224 x size on its shorter side and its central square kept, as the paper.
  """
  full = resize_side(size, resize_ratio)
  square = decode_resized(image_bytes, square_window, full)
  far, mid = full - size, (full - size) // 2
  corners = [(0, 0), (0, far), (far, 0), (far, far), (mid, mid)]
  crops_NHWC = tf.stack([square[y:y + size, x:x + size] for y, x in corners])
  return tf.concat([crops_NHWC, tf.reverse(crops_NHWC, axis=[2])], axis=0)
