"""Writes a generated ImageNet in the real archive format (alexnet_jax.fake_imagenet), to prepare.

  python -m alexnet_jax.tools.fake_imagenet --manual_dir=/tmp/fake --num_classes=10 \\
      --train_per_class=100 --val_per_class=10
  python -m alexnet_jax.tools.prepare --dataset=imagenet2012 --manual_dir=/tmp/fake
"""
from absl import flags

from alexnet_jax import cli
from alexnet_jax import fake_imagenet

FLAGS = flags.FLAGS


def main(argv):
  del argv
  fake_imagenet.write(FLAGS.manual_dir, num_classes=FLAGS.num_classes,
                      train_per_class=FLAGS.train_per_class, val_per_class=FLAGS.val_per_class,
                      image_px=FLAGS.image_px, seed=FLAGS.seed)
  print(f'Wrote ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar to {FLAGS.manual_dir}; prepare '
        f'with python -m alexnet_jax.tools.prepare --dataset=imagenet2012 '
        f'--manual_dir={FLAGS.manual_dir}')


if __name__ == '__main__':
  flags.DEFINE_string('manual_dir', None, 'Folder for the two archives.', required=True)
  flags.DEFINE_integer('num_classes', 10, 'Classes K: the first K synsets.')
  flags.DEFINE_integer('train_per_class', 100, 'Training images per class.')
  flags.DEFINE_integer('val_per_class', 10, 'Validation images: K x this many.')
  flags.DEFINE_integer('image_px', 80, 'Shorter side of the images.')
  flags.DEFINE_integer('seed', 0, 'Seed of the drawings.')
  cli.run(main, uses_jax=False)  # no JAX here
