"""Which cluster this process runs in (Cloud TPU VM, SLURM, Open MPI, GKE) and the distributed
runtime it needs: jax.distributed.initialize() from the flags, or from what the cluster sets."""
import glob
import importlib.util
import os
import urllib.request

from absl import logging

from alexnet_jax import errors


class UsageError(errors.Error):
  """A cluster set up so that it cannot run: printed as one line that names the fix."""


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
