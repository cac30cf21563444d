"""Entry point: python -m alexnet_jax.main --config=configs/default.py --workdir=DIR [--config.KEY=VALUE].

Every config key can be overridden on the command line; an unknown key or a value of the wrong
type stops the run before anything runs, with one line naming the key.
"""
import glob
import importlib.util
import os
import urllib.request

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
flags.DEFINE_bool('distributed', None,
                  'Force (True) or skip (False) jax.distributed.initialize(); by default it is '
                  'called when a multi-host Cloud TPU VM, SLURM, Open MPI or GKE job is detected.')
flags.mark_flags_as_required(['config', 'workdir'])


class UsageError(Exception):
  """A problem with the command line or the input that the user can fix; printed as one line."""


# TPU chips as a Cloud TPU VM exposes them (v2-v4: /dev/accel*, newer: /dev/vfio/<n>).
TPU_DEVICE_GLOBS = ('/dev/accel[0-9]*', '/dev/vfio/[0-9]*')


def _count(text: str | None) -> int:
  return len([part for part in (text or '').split(',') if part.strip()])


def _tpu_vm_workers(env) -> int:
  """Hosts of this Cloud TPU VM slice from the metadata server (GCE_METADATA_IP, as jax reads)."""
  if not any(glob.glob(pattern) for pattern in TPU_DEVICE_GLOBS):
    return 0
  host = env.get('GCE_METADATA_IP', 'metadata.google.internal')
  request = urllib.request.Request(
      f'http://{host}/computeMetadata/v1/instance/attributes/worker-network-endpoints',
      headers={'Metadata-Flavor': 'Google'})
  try:
    with urllib.request.urlopen(request, timeout=10) as response:
      return _count(response.read().decode())
  except OSError:
    return 0  # a TPU machine outside GCE: one host


def detect_cluster(env=os.environ) -> str | None:
  """The multi-process cluster that jax.distributed.initialize() can read here, or None.

  The variables are those jax's own detection reads (jax/_src/clusters); a cluster of one
  process (a single-host TPU VM, `srun -n 1`) needs no distributed runtime.
  """
  if int(env.get('SLURM_NTASKS', '1')) > 1 and 'SLURM_STEP_NODELIST' in env:
    return 'SLURM'
  if 'OMPI_MCA_orte_hnp_uri' in env and int(env.get('OMPI_COMM_WORLD_SIZE', '1')) > 1:
    return 'Open MPI'
  if _count(env.get('TPU_PROCESS_ADDRESSES') or env.get('TPU_WORKER_HOSTNAMES')) > 1:
    return 'GKE (TPU)'
  if 'KUBERNETES_SERVICE_HOST' in env and 'JOB_COMPLETION_INDEX' in env:  # JobSet, indexed Job
    if importlib.util.find_spec('kubernetes') is None:
      raise UsageError("a GKE job needs the kubernetes package for jax's cluster detection: "
                       "pip install 'jax[k8s]', or run one process with --nodistributed.")
    return 'GKE (indexed Job)'
  if _tpu_vm_workers(env) > 1:
    return 'Cloud TPU VM'
  return None


def initialize_distributed(*, distributed: bool | None, num_processes: int,
                           coordinator_address: str | None, process_id: int,
                           env=os.environ) -> None:
  """jax.distributed.initialize() as the flags say, or as the detected cluster needs."""
  import jax  # pylint: disable=g-import-not-at-top
  if num_processes > 1:
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
  elif distributed or (distributed is None and (cluster := detect_cluster(env))):
    logging.info('jax.distributed.initialize() for %s.',
                 '--distributed' if distributed else cluster)
    jax.distributed.initialize()  # JAX reads the coordinator and process ids from the environment
  if jax.process_count() > 1:
    logging.info('Process %d of %d.', jax.process_index(), jax.process_count())


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
  from alexnet_jax import xla_flags  # pylint: disable=g-import-not-at-top
  xla_flags.apply()  # before jax initialises its backend
  from alexnet_jax import compile_cache  # pylint: disable=g-import-not-at-top
  cache_folder = compile_cache.enable(FLAGS.config.compilation_cache_dir)
  try:
    initialize_distributed(distributed=FLAGS.distributed, num_processes=FLAGS.num_processes,
                           coordinator_address=FLAGS.coordinator_address,
                           process_id=FLAGS.process_id)
  except UsageError as e:
    cli.fail(str(e))
  from alexnet_jax import train  # pylint: disable=g-import-not-at-top
  from alexnet_jax import workdir  # pylint: disable=g-import-not-at-top
  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    compile_cache.log_stats(cache_folder)
  except (ValueError, FileNotFoundError, train.NonFiniteLossError, workdir.WriteError) as e:
    cli.fail(str(e).splitlines()[0] if str(e) else type(e).__name__)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
