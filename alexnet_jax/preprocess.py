"""Image preprocessing as pure tf ops: decode fused with crop, flip, PCA lighting, normalise, eval crops.

Every random choice is a stateless op of a per-example seed (shape [2] int), so the same seed gives
the same augmentation anywhere. Images come out float32 [S, S, 3], normalised with ImageNet's mean/std.
"""
import tensorflow as tf

RESIZE_RATIO = 256 / 224  # the paper resizes to 256 and crops 224
MEAN_RGB = (0.485, 0.456, 0.406)  # on [0, 1] images
STD_RGB = (0.229, 0.224, 0.225)
# ImageNet RGB covariance on [0, 1] images (fb.resnet.torch); rows of EIGVEC are R, G, B.
EIGVAL = (0.2175, 0.0188, 0.0045)
EIGVEC = ((-0.5675, 0.7192, 0.4009),
          (-0.5808, -0.0045, -0.8140),
          (-0.5836, -0.6948, 0.4203))
INCEPTION_AREA = (0.08, 1.0)
INCEPTION_ASPECT = (3 / 4, 4 / 3)


def resize_side(size: int) -> int:
  """Shorter side the image is resized to before a crop of `size` (256 for 224)."""
  return round(size * RESIZE_RATIO)


def image_shape(image_bytes):
  """(height, width) int32, from the header alone for JPEG."""
  return tf.cond(tf.io.is_jpeg(image_bytes),
                 lambda: tf.image.extract_jpeg_shape(image_bytes)[:2],
                 lambda: tf.shape(_decode_any(image_bytes))[:2])


def _decode_any(image_bytes):
  image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
  image.set_shape([None, None, 3])
  return image


def decode_crop(image_bytes, window):
  """Decodes only `window` = [y, x, h, w] of a JPEG; other formats are decoded, then cropped."""
  def jpeg():
    return tf.io.decode_and_crop_jpeg(image_bytes, window, channels=3, dct_method='INTEGER_FAST')

  def other():
    return tf.image.crop_to_bounding_box(_decode_any(image_bytes), *tf.unstack(window))
  image = tf.cond(tf.io.is_jpeg(image_bytes), jpeg, other)
  image.set_shape([None, None, 3])
  return image


def _central_square(shape_hw):
  side = tf.reduce_min(shape_hw)
  return (shape_hw[0] - side) // 2, (shape_hw[1] - side) // 2, side


def paper_window(shape_hw, size: int, seed):
  """The paper's crop, in original pixels: a random `size` crop of the central square at 256/224."""
  y0, x0, side = _central_square(shape_hw)
  crop = tf.maximum(1, tf.cast(tf.cast(side, tf.float32) * size / resize_side(size), tf.int32))
  offsets = tf.random.stateless_uniform([2], seed, minval=0, maxval=side - crop + 1, dtype=tf.int32)
  return tf.stack([y0 + offsets[0], x0 + offsets[1], crop, crop])


def inception_window(shape_hw, seed):
  """Inception-style random-resized crop: 8%-100% of the area, aspect 3/4-4/3."""
  begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
      tf.concat([shape_hw, [3]], 0), tf.zeros([0, 0, 4]), seed,
      min_object_covered=0.0, aspect_ratio_range=INCEPTION_ASPECT, area_range=INCEPTION_AREA,
      max_attempts=10, use_image_if_no_bounding_boxes=True)
  return tf.stack([begin[0], begin[1], extent[0], extent[1]])


def center_window(shape_hw, size: int):
  """The central crop that becomes `size` after resizing the shorter side to 256/224 of it."""
  y0, x0, side = _central_square(shape_hw)
  crop = tf.maximum(1, tf.cast(tf.cast(side, tf.float32) * size / resize_side(size), tf.int32))
  return tf.stack([y0 + (side - crop) // 2, x0 + (side - crop) // 2, crop, crop])


def lighting_shift(alpha_std: float, seed):
  """Fancy PCA: an RGB shift EIGVEC @ (alpha * EIGVAL), alpha ~ N(0, alpha_std), on [0, 1] images."""
  alpha_3 = tf.random.stateless_normal([3], seed, stddev=alpha_std)
  return tf.linalg.matvec(tf.constant(EIGVEC), alpha_3 * tf.constant(EIGVAL))


def normalize(image_HWC, shift_rgb=0.0):
  """uint8-range pixels (+ a [0, 1]-scale RGB shift) -> (x / 255 + shift - mean) / std, one multiply-add."""
  std = tf.constant(STD_RGB)
  offset = (shift_rgb - tf.constant(MEAN_RGB)) / std
  return tf.nn.bias_add(tf.cast(image_HWC, tf.float32) * (1.0 / (255.0 * std)), offset)


def train_image(image_bytes, seed, *, size: int, crop: str = 'paper', flip: bool = True,
                pca_lighting_std: float = 0.1):
  """Training augmentation of one encoded image -> float32 [size, size, 3]."""
  crop_seed, flip_seed, light_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
  shape_hw = image_shape(image_bytes)
  if crop == 'paper':
    window = paper_window(shape_hw, size, crop_seed)
  elif crop == 'inception':
    window = inception_window(shape_hw, crop_seed)
  else:
    raise ValueError(f"data.crop={crop!r} is unknown; use 'paper' or 'inception'.")
  image = decode_crop(image_bytes, window)
  if flip:
    image = tf.image.stateless_random_flip_left_right(image, flip_seed)
  image = tf.image.resize(image, [size, size], method='bilinear')
  shift = lighting_shift(pca_lighting_std, light_seed) if pca_lighting_std > 0 else 0.0
  return normalize(image, shift)


def eval_image(image_bytes, *, size: int):
  """Centre crop -> float32 [size, size, 3]."""
  image = decode_crop(image_bytes, center_window(image_shape(image_bytes), size))
  return normalize(tf.image.resize(image, [size, size], method='bilinear'))


def ten_crop(image_bytes, *, size: int):
  """The paper's test crops -> float32 [10, size, size, 3]: 4 corners and centre, then their mirrors.

  The image is resized to 256/224 x size on its shorter side and its central square kept, as the paper.
  """
  y0, x0, side = _central_square(image_shape(image_bytes))
  square = decode_crop(image_bytes, tf.stack([y0, x0, side, side]))
  full = resize_side(size)
  square = tf.image.resize(square, [full, full], method='bilinear')
  far, mid = full - size, (full - size) // 2
  corners = [(0, 0), (0, far), (far, 0), (far, far), (mid, mid)]
  crops_NHWC = tf.stack([square[y:y + size, x:x + size] for y, x in corners])
  crops_NHWC = tf.concat([crops_NHWC, tf.reverse(crops_NHWC, axis=[2])], axis=0)
  return normalize(crops_NHWC)
