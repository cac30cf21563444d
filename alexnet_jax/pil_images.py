"""Evaluation's centre crop of a few images with PIL and numpy, so that predicting them never waits
for TensorFlow's import (several seconds, against a fraction of one for the images themselves).

The steps are preprocess.eval_image's: the same window in original pixels, JPEGs decoded inside it
at the same DCT scale (1/2, 1/4, 1/8 while the window stays >= the crop) and resized bilinearly
without antialiasing, other formats decoded whole and resized with TensorFlow's antialiasing
triangle filter; float32 arithmetic, rounded as to_uint8 rounds. What differs is the JPEG
decoder's inverse DCT (PIL's libjpeg uses its accurate integer one, TensorFlow the fast one):
pixels within a few levels, tested in tests/pil_images_test.py beside the tf.data path. A JPEG is
turned upright per its EXIF orientation as there (PIL also finds an Exif segment that does not
come first, after SOI or JFIF's APP0, which preprocess.jpeg_orientation leaves unread).
"""
import io
import math

import numpy as np
from PIL import Image

from alexnet_jax import errors
from alexnet_jax import preprocess as constants  # its constants; TensorFlow stays unimported


TF_FORMATS = ('JPEG', 'MPO', 'PNG', 'BMP', 'GIF', 'WEBP')  # tf.io.decode_image's, as PIL names them
# (MPO: a JPEG with more pictures after the first, as phones write them; TF decodes the first)


class UnreadableImage(errors.Error, ValueError):
  """PIL cannot read the file as an image."""


def _center_window(height: int, width: int, size: int, ratio: float):
  """preprocess.center_window: (y, x, h, w) in original pixels, with its float32 arithmetic."""
  side = min(height, width)
  y0, x0 = (height - side) // 2, (width - side) // 2
  crop = max(1, int(np.float32(side) * np.float32(size) / np.float32(
      constants.resize_side(size, ratio))))
  return y0 + (side - crop) // 2, x0 + (side - crop) // 2, crop, crop


def _weights(in_size: int, out_size: int, antialias: bool) -> np.ndarray:
  """[out, in] float32 interpolation weights of tf.image.resize('bilinear', half-pixel centres):
  a triangle kernel, widened by the downscale factor when antialias, normalised over the pixels
  inside the image (which at the edges is bilinear's clamping)."""
  scale = in_size / out_size
  centres = (np.arange(out_size, dtype=np.float64) + 0.5) * scale  # in input pixel units
  if antialias:
    radius = max(scale, 1.0)
  else:  # bilinear: radius 1, the sample point clamped into [0.5, in - 0.5]
    radius, centres = 1.0, np.clip(centres, 0.5, in_size - 0.5)
  taps = np.arange(in_size, dtype=np.float64) + 0.5
  w = np.maximum(0.0, 1.0 - np.abs(taps[None, :] - centres[:, None]) / radius)
  return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def _resize(image_HWC: np.ndarray, size: int, antialias: bool) -> np.ndarray:
  rows = _weights(image_HWC.shape[0], size, antialias)
  cols = _weights(image_HWC.shape[1], size, antialias)
  out = np.einsum('oh,hwc,pw->opc', rows, image_HWC.astype(np.float32), cols, dtype=np.float32)
  return np.clip(np.floor(out + np.float32(0.5)), 0, 255).astype(np.uint8)


def _orientation(image: Image.Image) -> int:
  """A JPEG's EXIF orientation (1-8) as PIL.ImageOps.exif_transpose reads it; 1 without one."""
  try:
    value = image.getexif().get(constants.ORIENTATION_TAG, 1)
  except (OSError, ValueError, SyntaxError):  # a damaged Exif block: the pixels are still there
    return 1
  return value if value in range(1, 9) else 1


def _stored_center_window(height: int, width: int, size: int, ratio: float, turn):
  """The centre window of the upright picture, in the stored pixels (height x width), as
  preprocess._resize_turned_jpeg maps it; turn: preprocess.ORIENTATIONS' row."""
  transpose, flip_rows, flip_cols = turn
  up_h, up_w = (width, height) if transpose else (height, width)
  y, x, h, w = _center_window(up_h, up_w, size, ratio)
  y, x = (up_h - y - h if flip_rows else y), (up_w - x - w if flip_cols else x)
  return (x, y, w, h) if transpose else (y, x, h, w)


def _upright(image_HWC: np.ndarray, turn) -> np.ndarray:
  """Stored pixels as the picture stands; turn: preprocess.ORIENTATIONS' row."""
  transpose, flip_rows, flip_cols = turn
  if transpose:
    image_HWC = image_HWC.transpose(1, 0, 2)
  return np.ascontiguousarray(image_HWC[::-1 if flip_rows else 1, ::-1 if flip_cols else 1])


def _rgb(image: Image.Image) -> np.ndarray:
  """uint8 [H, W, 3] as tf.io.decode_image(channels=3) gives it: 16-bit samples scaled down, grey
  replicated, alpha dropped, a palette looked up."""
  if image.mode in ('I;16', 'I;16B', 'I;16L', 'I'):  # 16-bit grey: TF keeps the high byte
    grey = (np.asarray(image, np.uint32) >> 8).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)
  return np.asarray(image.convert('RGB'), np.uint8)


def eval_image(data: bytes, *, size: int, resize_ratio: float = constants.RESIZE_RATIO):
  """Encoded image -> uint8 [size, size, 3], as preprocess.eval_image; UnreadableImage if PIL
  cannot decode it."""
  try:
    image = Image.open(io.BytesIO(data))
    if image.format not in TF_FORMATS:  # PIL reads TIFF and more; the tf.data path would not
      raise UnreadableImage(f'{image.format} is not one of the formats TensorFlow decodes')
    width, height = image.size
    if image.format in ('JPEG', 'MPO'):
      turn = constants.ORIENTATIONS[_orientation(image) - 1]
      y, x, h, w = _stored_center_window(height, width, size, resize_ratio, turn)
      ratio = constants.DCT_RATIOS[sum(min(h, w) >= size * r for r in constants.DCT_RATIOS[1:])]
      # PIL takes the largest scale whose image is at least this big: libjpeg's 1/ratio scale,
      # ceil(width / ratio) x ceil(height / ratio), as TensorFlow's decode at `ratio`.
      image.draft('RGB', (max(width // ratio, 1), max(height // ratio, 1)))
      if image.size != (math.ceil(width / ratio), math.ceil(height / ratio)):
        raise UnreadableImage(f'PIL decoded a {width}x{height} JPEG at {image.size}, not 1/{ratio}')
      pixels = np.asarray(image.convert('RGB'), np.uint8)
      pixels = pixels[y // ratio:y // ratio + max(h // ratio, 1),
                      x // ratio:x // ratio + max(w // ratio, 1)]
      if ratio == 1 and pixels.shape[:2] == (size, size):
        return _upright(pixels, turn)
      return _upright(_resize(pixels, size, antialias=False), turn)
    y, x, h, w = _center_window(height, width, size, resize_ratio)
    return _resize(_rgb(image)[y:y + h, x:x + w], size, antialias=True)
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    raise UnreadableImage(str(e)) from e


def _array_image(array_HWC: np.ndarray, size: int, resize_ratio: float) -> np.ndarray:
  """A uint8 [H, W, 3] array as input_pipeline.image_batches reads one (as a lossless PNG)."""
  y, x, h, w = _center_window(array_HWC.shape[0], array_HWC.shape[1], size, resize_ratio)
  return _resize(array_HWC[y:y + h, x:x + w], size, antialias=True)


def image_batches(items, *, size: int, batch_size: int,
                  resize_ratio: float = constants.RESIZE_RATIO):
  """input_pipeline.image_batches for a few items, without TensorFlow: (indices, uint8 images,
  unreadable indices) per batch, in input order. Arrays must be uint8 [H, W, 3] (checked by the
  caller, as there)."""
  for start in range(0, len(items), batch_size):
    indices, images, bad = [], [], []
    for index in range(start, min(start + batch_size, len(items))):
      item = items[index]
      try:
        if isinstance(item, str):
          with open(item, 'rb') as f:
            images.append(eval_image(f.read(), size=size, resize_ratio=resize_ratio))
        else:
          images.append(_array_image(np.asarray(item), size, resize_ratio))
        indices.append(index)
      except (OSError, UnreadableImage):
        bad.append(index)
    yield (np.asarray(indices, np.int64),
           np.stack(images) if images else np.zeros([0, size, size, 3], np.uint8), bad)
