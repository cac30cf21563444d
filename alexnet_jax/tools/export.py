"""Serialises a trained run's classifier with jax.export: uint8 images in, logits out, weights inside.

  python -m alexnet_jax.tools.export --workdir=runs/cats_dogs --output=alexnet.jaxexport

Any Python with jax (this project not needed) serves it:

  import jax, numpy as np
  exported = jax.export.deserialize(bytearray(open('alexnet.jaxexport', 'rb').read()))
  logits = exported.call(images)  # uint8 [batch, S, S, 3], S = the run's data.image_size

The batch dimension is symbolic: one file serves any batch size. Images are standardised inside
(ImageNet mean and std), as in training; crop and resize them as evaluation does first. The class
names are written beside it (OUTPUT.classes.json). StableHLO keeps at least 6 months of backward
compatibility (JAX's export docs).
"""
from __future__ import annotations

import json
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np
from absl import flags
from etils import epy

from alexnet_jax import cli

with epy.lazy_imports():  # loaded at their first use: --help answers before JAX's import
  import jax
  import jax.numpy as jnp
  from alexnet_jax import inference
  from alexnet_jax import model as model_lib

FLAGS = flags.FLAGS


def export(clf: inference.Classifier, platforms=('cpu',)) -> jax.export.Exported:
  """The classifier's uint8 [b, S, S, 3] -> float32 [b, K] function, parameters as constants."""
  params = jax.tree.map(np.asarray, clf.params)
  model = clf.model

  def serve(images_BHWC):
    return model.apply({'params': params}, model_lib.standardize(images_BHWC), train=False)
  size = clf.image_size
  images = jax.ShapeDtypeStruct(jax.export.symbolic_shape(f'b, {size}, {size}, 3'), jnp.uint8)
  return jax.export.export(jax.jit(serve), platforms=platforms)(images)


def main(argv):
  cli.quiet_logs()
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}.')
  if os.path.exists(FLAGS.output) and not FLAGS.overwrite:
    cli.fail(f'--output={FLAGS.output} exists: give another file, or pass --overwrite.')
  clf = inference.load(FLAGS.workdir, cli.step(), ema=FLAGS.ema)
  exported = export(clf, tuple(FLAGS.platforms))
  data = exported.serialize()
  classes_json = json.dumps({'names': clf.class_names, 'ids': clf.class_ids,
                             'image_size': clf.image_size, 'step': clf.step})
  with cli.output(FLAGS.output):  # each file whole or not at all; no OUTPUT.tmp left behind
    for path, content in ((FLAGS.output, data), (FLAGS.output + '.classes.json',
                                                 classes_json.encode())):
      try:
        with open(path + '.tmp', 'wb') as f:
          f.write(content)
        os.replace(path + '.tmp', path)
      finally:
        if os.path.exists(path + '.tmp'):
          os.remove(path + '.tmp')
  cli.wrote(FLAGS.output, f'{FLAGS.workdir} step {clf.step}, {len(data) / 2**20:.1f} MiB; input '
            f'uint8 [b, {clf.image_size}, {clf.image_size}, 3], platforms '
            f'{",".join(exported.platforms)}')


if __name__ == '__main__':
  cli.define_run_flags()
  flags.DEFINE_string('output', None, 'The file to write.')
  flags.DEFINE_list('platforms', ['cpu', 'cuda', 'tpu'], 'Platforms to lower for (cpu, cuda, rocm, tpu): the file runs on any of them.')
  flags.DEFINE_bool('overwrite', False, 'Replace an existing --output file.')
  flags.mark_flag_as_required('output')
  cli.run(main)
