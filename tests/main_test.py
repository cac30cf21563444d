"""The CLI: overrides rejected in one line, an end-to-end run, and cluster detection."""
import json
import os

import jax
import pytest

from alexnet_jax import cluster
from conftest import run_module
from conftest import tiny_flags
from tests import fake_gcloud

def run_main(workdir, *overrides, devices=8, config='configs/default.py'):
  """The CLI on `devices` virtual CPU devices."""
  return run_module('alexnet_jax.main', f'--config={config}', f'--workdir={workdir}', *overrides,
                    env={'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}'})


@pytest.mark.parametrize('override, expected', [
    ('--config.model.lrnn=False', 'Did you mean "lrn"'),
    ('--config.data.batch_size=abc', '--config.data.batch_size=abc'),
    ('--config.model.lrn=maybe', '--config.model.lrn'),
    ('--config.mesh.data=3', 'mesh.data'),
    ('--config.model.variant=vgg', 'model.variant'),
    ('--config.data.resize_ratio=0.5', 'data.resize_ratio=0.5 is out of range'),
])
def test_bad_overrides_end_in_one_line_and_touch_nothing(tmp_path, override, expected):
  workdir = tmp_path / 'run'
  result = run_main(workdir, *tiny_flags(), override)
  assert result.returncode != 0
  errors = [l for l in result.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]
  assert 'Traceback' not in result.stderr
  assert not workdir.exists()


def test_cli_trains_with_overrides_and_writes_the_workdir(tmp_path):
  workdir = tmp_path / 'run'
  # XLA_FLAGS from the caller decide the device count: a 1x2 mesh needs exactly 2 devices.
  result = run_main(workdir, *tiny_flags(), '--config.mesh.model=2', '--config.model.lrn=False',
                    devices=2)
  assert result.returncode == 0, result.stderr[-3000:]
  records = [json.loads(l) for l in (workdir / 'metrics.jsonl').read_text().splitlines()]
  train = [r for r in records if r['split'] == 'train']
  assert [r['step'] for r in train] == [2, 4]
  for r in train:
    for key in ('loss', 'top1', 'top5', 'learning_rate', 'images_per_sec'):
      assert isinstance(r[key], float) and r[key] >= 0, (key, r)
  (evaluation,) = [r for r in records if r['split'] == 'eval']
  assert evaluation['step'] == 4 and evaluation['count'] == 256
  config = json.loads((workdir / 'config.json').read_text())
  assert config['model']['lrn'] is False and config['mesh']['model'] == 2
  assert any(f.startswith('events.out.tfevents') for f in os.listdir(workdir))
  assert 'step 4/4' in result.stderr and 'ETA' in result.stderr


def test_cli_writes_a_profile_of_the_chosen_steps(tmp_path):
  # One device: with XLA:CPU's virtual devices, a profiled run was seen to abort in a collective's
  # rendezvous (2 runs of 6 on a 1x2 mesh, none of 3 without the profiler); see README.
  workdir = tmp_path / 'run'
  result = run_main(workdir, *tiny_flags(), '--config.profile.start_step=2',
                    '--config.profile.num_steps=1', devices=1)
  assert result.returncode == 0, result.stderr[-3000:]
  (trace,) = (workdir / 'plugins' / 'profile').glob('*/*.xplane.pb')  # step 3's trace
  assert trace.stat().st_size > 0 and 'Profiling steps 3..3.' in result.stderr


SLURM = {'SLURM_JOB_ID': '77', 'SLURM_STEP_NODELIST': 'node[1-2]', 'SLURM_NTASKS': '2',
         'SLURM_PROCID': '1', 'SLURM_LOCALID': '0'}
OPEN_MPI = {'OMPI_MCA_orte_hnp_uri': '1531576320.0;tcp://10.0.0.1:34911',
            'OMPI_COMM_WORLD_SIZE': '4', 'OMPI_COMM_WORLD_RANK': '1',
            'OMPI_COMM_WORLD_LOCAL_RANK': '1'}
GKE_TPU = {'TPU_WORKER_HOSTNAMES': 'job-0.svc,job-1.svc', 'TPU_WORKER_ID': '1'}


@pytest.fixture
def tpu_vm(tmp_path, monkeypatch):
  """A Cloud TPU VM: a TPU device file and a metadata server; yields (env, its attributes)."""
  (tmp_path / 'accel0').touch()
  monkeypatch.setattr(cluster, 'TPU_DEVICE_GLOBS', (str(tmp_path / 'accel[0-9]*'),))
  with fake_gcloud.metadata_server({'agent-worker-number': 0}) as (address, attributes):
    yield {'GCE_METADATA_IP': address}, attributes


@pytest.fixture
def initialize_calls(monkeypatch):
  calls = []
  monkeypatch.setattr(jax.distributed, 'initialize', lambda *args: calls.append(args))
  return calls


def _init(env, distributed=None, num_processes=1):
  cluster.initialize_distributed(distributed=distributed, num_processes=num_processes,
                              coordinator_address='10.0.0.1:1234', process_id=1, env=env)


@pytest.mark.parametrize('env, expected', [(SLURM, 'SLURM'), (OPEN_MPI, 'Open MPI'),
                                           (GKE_TPU, 'GKE (TPU)')])
def test_clusters_are_detected_and_initialised_without_flags(env, expected, initialize_calls):
  assert cluster.detect_cluster(env) == expected
  _init(env)
  assert initialize_calls == [()]  # no arguments: jax reads the cluster itself


@pytest.mark.parametrize('env, jax_cluster', [(SLURM, 'SlurmCluster'), (OPEN_MPI, 'OmpiCluster')])
def test_detected_variables_are_the_ones_jax_reads(env, jax_cluster, monkeypatch):
  from jax._src import clusters  # pylint: disable=g-import-not-at-top
  for name, value in env.items():
    monkeypatch.setenv(name, value)
  assert getattr(clusters, jax_cluster).is_env_present()
  assert getattr(clusters, jax_cluster).get_process_count() > 1


def test_cloud_tpu_vm_slice_is_detected_from_the_metadata_server(tpu_vm, initialize_calls):
  env, metadata = tpu_vm
  metadata['worker-network-endpoints'] = 'unknown:unknown:10.0.0.1,unknown:unknown:10.0.0.2'
  assert cluster.detect_cluster(env) == 'Cloud TPU VM'
  _init(env)
  assert initialize_calls == [()]
  metadata['worker-network-endpoints'] = 'unknown:unknown:10.0.0.1'  # one host (v4-8): no runtime
  assert cluster.detect_cluster(env) is None


@pytest.mark.parametrize('env', [
    {}, {'SLURM_NTASKS': '1', 'SLURM_STEP_NODELIST': 'node1'}, {'TPU_WORKER_HOSTNAMES': 'one'},
    {'SLURM_NTASKS': '4'},  # an sbatch allocation outside srun: no step, no processes to join
])
def test_one_cpu_machine_starts_without_a_distributed_runtime(env, initialize_calls):
  assert cluster.detect_cluster(env) is None
  _init(env)
  assert initialize_calls == []


def test_flags_override_detection(initialize_calls):
  _init(SLURM, distributed=False)
  assert initialize_calls == []
  _init({}, distributed=True)
  assert initialize_calls == [()]
  _init({}, num_processes=2)
  assert initialize_calls[1] == ('10.0.0.1:1234', 2, 1)


def test_gke_job_without_the_kubernetes_package_names_the_fix(monkeypatch):
  monkeypatch.setattr(cluster.importlib.util, 'find_spec', lambda name: None)
  with pytest.raises(cluster.UsageError, match=r"jax\[k8s\]"):
    cluster.detect_cluster({'KUBERNETES_SERVICE_HOST': '10.0.0.1', 'JOB_COMPLETION_INDEX': '0'})
