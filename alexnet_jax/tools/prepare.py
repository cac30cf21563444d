"""Prepares a dataset once, before training, and finds its corrupt images.

  python -m alexnet_jax.tools.prepare --dataset=imagenet2012 --manual_dir=/data/imagenet [--data_dir=...]
  python -m alexnet_jax.tools.prepare --dataset=cifar10          # downloads, where the network allows
  python -m alexnet_jax.tools.prepare --dataset=folder:/photos --splits=train,validation
  python -m alexnet_jax.tools.prepare --dataset=imagenet2012 --manual_dir=... --downsample_for=224

TFDS datasets are built as array_record (random access, as the input pipeline needs); then every
image is decoded once and the corrupt ones are listed beside the dataset, so that training with
data.on_corrupt='skip' leaves them out and 'error' names them before the first step. With
--downsample_for=S it also writes the paper's down-sampled copy that training with
data.image_size=S and data.downsample=True reads (else written on that run's first use), one per
split as named in --splits (a slice such as 'train[:90%]' is a split of its own here).
"""
import time

import ml_collections
from absl import flags

from alexnet_jax import cli
from alexnet_jax import data_sources
from alexnet_jax import downsample

FLAGS = flags.FLAGS
flags.DEFINE_string('dataset', 'imagenet2012', "A TFDS name or 'folder:/path'.")
flags.DEFINE_string('manual_dir', '', 'Folder with the manually downloaded archives (ImageNet).')
flags.DEFINE_string('data_dir', '', "TFDS data_dir ('': ~/tensorflow_datasets).")
flags.DEFINE_list('splits', ['train', 'validation'], 'Splits to check for corrupt images.')
flags.DEFINE_bool('verify', True, 'Decode every image once to find corrupt ones.')
flags.DEFINE_integer('downsample_for', 0, 'Crop size S: also write the down-sampled copy '
                     '(squares of 256/224 x S) for data.downsample=True; 0: none.')


def prepare(dataset: str, *, manual_dir: str = '', data_dir: str = '',
            splits=('train', 'validation'), verify: bool = True, downsample_for: int = 0) -> dict:
  """Builds (TFDS) and checks the dataset, and writes down-sampled copies if asked.

  Returns {split: [corrupt index, ...]} (empty for folders and without verify).
  """
  config = ml_collections.ConfigDict(dict(name=dataset, manual_dir=manual_dir, data_dir=data_dir,
                                          on_corrupt='skip'))
  if not dataset.startswith('folder:'):
    start = time.time()
    print(f'Preparing {dataset} in {data_sources.tfds_builder(dataset, data_dir).data_dir} ...')
    data_sources.prepare_tfds(dataset, data_dir, manual_dir)
    print(f'Prepared in {time.time() - start:.0f} s.')
  corrupt = {}
  if verify and dataset.startswith('folder:'):  # a folder checks itself (skips logged), cached
    for split in splits:
      print(f'{split}: {data_sources.open_source(config, split).num_examples} readable images')
  elif verify:
    print(f'Decoding every image of {", ".join(splits)} once to find corrupt ones ...')
    corrupt = data_sources.record_corrupt(config, list(splits))
    for split, indices in corrupt.items():
      print(f'{split}: {len(indices)} corrupt image(s)' +
            (f', indices {indices[:10]}' if indices else ''))
  if downsample_for:
    config.update(dict(downsample=True, image_size=downsample_for))
    for split in splits:
      start, source = time.time(), downsample.open_source(config, split)
      print(f'{split}: down-sampled copy of {source.num_examples} images for data.image_size='
            f'{downsample_for} ready ({time.time() - start:.0f} s)')
  return corrupt


def main(argv):
  del argv  # a DataError (a missing archive, an unknown dataset) ends as one line (cli.run)
  prepare(FLAGS.dataset, manual_dir=FLAGS.manual_dir, data_dir=FLAGS.data_dir,
          splits=FLAGS.splits, verify=FLAGS.verify, downsample_for=FLAGS.downsample_for)


if __name__ == '__main__':
  cli.run(main, uses_jax=False)  # no JAX here
