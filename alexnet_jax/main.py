"""Entry point: python -m alexnet_jax.main --config=configs/default.py --workdir=DIR [--config.KEY=VALUE].

Every config key can be overridden on the command line; an unknown key or a value of the wrong
type stops the run before anything runs, with one line naming the key.
"""
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TF's start-up chatter, before TF loads

from absl import flags
from absl import logging
from ml_collections import config_flags

from alexnet_jax import cli
from alexnet_jax import cluster

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'A configs/*.py file.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and the resolved config.')
flags.DEFINE_string('coordinator_address', os.environ.get('JAX_COORDINATOR_ADDRESS'),
                    'host:port of process 0, when started as one of several processes.')
flags.DEFINE_integer('num_processes', int(os.environ.get('JAX_NUM_PROCESSES', '1')),
                     'Number of processes (hosts) in the run.')
flags.DEFINE_integer('process_id', int(os.environ.get('JAX_PROCESS_ID', '0')),
                     'Index of this process, 0..num_processes-1.')
flags.DEFINE_bool('distributed', None,
                  'Force (True) or skip (False) jax.distributed.initialize(); by default it is '
                  'called when a multi-host Cloud TPU VM, SLURM, Open MPI or GKE job is detected.')
flags.mark_flags_as_required(['config', 'workdir'])


class _QuietLibraries(logging.logging.Filter):
  """Keeps Orbax's per-save INFO chatter out of the run log; its warnings and errors still show,
  in one line each (a failed save's cause ends the run as main's own one-line error)."""

  def filter(self, record):
    if 'orbax' not in record.pathname:
      return True
    record.exc_info, record.exc_text = None, None
    return record.levelno >= logging.logging.WARNING


def main(argv):
  logging.get_absl_handler().addFilter(_QuietLibraries())
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}; config keys are set as --config.KEY=VALUE.')
  from alexnet_jax import compile_cache  # pylint: disable=g-import-not-at-top
  cache_folder = cli.start_jax(FLAGS.config.compilation_cache_dir)
  cluster.initialize_distributed(
      distributed=FLAGS.distributed, num_processes=FLAGS.num_processes,
      coordinator_address=FLAGS.coordinator_address, process_id=FLAGS.process_id)
  from alexnet_jax import train  # pylint: disable=g-import-not-at-top
  train.train_and_evaluate(FLAGS.config, FLAGS.workdir)  # errors.Error: one line (cli.run)
  compile_cache.log_stats(cache_folder)


if __name__ == '__main__':
  cli.run(main, uses_jax=False)  # the XLA flags and the cache start above, from the config
