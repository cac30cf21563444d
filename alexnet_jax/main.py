"""Entry point: python -m alexnet_jax.main --config=configs/default.py --workdir=DIR [--config.KEY=VALUE].

Every config key can be overridden on the command line; an unknown key or a value of the wrong
type stops the run before anything runs, with one line naming the key.
"""
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TF's start-up chatter, before TF loads

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from alexnet_jax import cli

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'A configs/*.py file.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and the resolved config.')
flags.DEFINE_string('coordinator_address', os.environ.get('JAX_COORDINATOR_ADDRESS'),
                    'host:port of process 0, when started as one of several processes.')
flags.DEFINE_integer('num_processes', int(os.environ.get('JAX_NUM_PROCESSES', '1')),
                     'Number of processes (hosts) in the run.')
flags.DEFINE_integer('process_id', int(os.environ.get('JAX_PROCESS_ID', '0')),
                     'Index of this process, 0..num_processes-1.')
flags.DEFINE_bool('distributed', False,
                  'Call jax.distributed.initialize() with the cluster read from the environment '
                  '(TPU pod slices, GKE); SLURM jobs of several tasks are detected without it.')
flags.mark_flags_as_required(['config', 'workdir'])


def _initialize_distributed() -> None:
  import jax  # pylint: disable=g-import-not-at-top
  if FLAGS.num_processes > 1:
    jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  elif FLAGS.distributed or int(os.environ.get('SLURM_NTASKS', '1')) > 1:
    jax.distributed.initialize()  # SLURM, TPU pods: JAX reads the cluster from the environment
  if jax.process_count() > 1:
    logging.info('Process %d of %d.', jax.process_index(), jax.process_count())


class _QuietLibraries(logging.logging.Filter):
  """Keeps Orbax's per-save INFO chatter out of the run log; its warnings still show."""

  def filter(self, record):
    return record.levelno >= logging.logging.WARNING or 'orbax' not in record.pathname


def main(argv):
  logging.get_absl_handler().addFilter(_QuietLibraries())
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}; config keys are set as --config.KEY=VALUE.')
  from alexnet_jax import xla_flags  # pylint: disable=g-import-not-at-top
  xla_flags.apply()  # before jax initialises its backend
  _initialize_distributed()
  from alexnet_jax import train  # pylint: disable=g-import-not-at-top
  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except (ValueError, FileNotFoundError, train.NonFiniteLossError) as e:
    cli.fail(str(e).splitlines()[0] if str(e) else type(e).__name__)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
