"""TensorFlow and TFDS, imported at their first use, without Keras and without TF's banner.

TensorFlow only reads, decodes and resizes images here (tf.data); paths that never read images
(synthetic data, export, filters, report, the benchmarks) never import it. When it is imported,
Keras is kept out (TensorFlow's __init__ loads it eagerly inside a try that tolerates its absence:
about a second of start-up), and so are its oneDNN notice and C++ info lines, since no TensorFlow
matmul or convolution runs here.

  from alexnet_jax import tf_import
  tf, tfds = tf_import.lazy('tensorflow'), tf_import.lazy('tensorflow_datasets')
"""
import importlib
import os
import sys
import types


def load(name: str = 'tensorflow') -> types.ModuleType:
  """Imports `name` (tensorflow or tensorflow_datasets), TensorFlow first as described above."""
  if sys.modules.get('tensorflow') is None:
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')  # its notice; decode and resize ignore it
    keep_out = 'keras' not in sys.modules
    if keep_out:
      sys.modules['keras'] = None  # an ImportError inside TensorFlow's own try
    try:
      importlib.import_module('tensorflow')
    finally:
      if keep_out and 'keras' in sys.modules and sys.modules['keras'] is None:
        del sys.modules['keras']  # a user's own later `import keras` works as usual
  return importlib.import_module(name)


class _Lazy(types.ModuleType):
  """Stands for a module until its first attribute is read, then imports it through load()."""

  def __getattr__(self, attribute):
    module = load(self.__name__)
    self.__dict__.update(module.__dict__)  # later reads skip __getattr__
    return getattr(module, attribute)


def lazy(name: str) -> types.ModuleType:
  """A stand-in for `import name` that imports at the first attribute read."""
  return _Lazy(name)
