"""Smoke test of tools/benchmark (tiny, not timed) and of the XLA flags it and main.py apply."""
import json
import subprocess
import sys
import time

import pytest

from alexnet_jax import xla_flags
from alexnet_jax.tools import benchmark, workers


def test_xla_flags_are_added_unless_the_caller_set_them():
  environ = {'XLA_FLAGS': '--xla_force_host_platform_device_count=8'}
  xla_flags.apply(environ)
  assert environ['XLA_FLAGS'].split() == ['--xla_force_host_platform_device_count=8'] + [
      f'--{name}={value}' for name, value in xla_flags.FLAGS.items()]
  environ = {'XLA_FLAGS': '--xla_cpu_experimental_ynn_fusion_type='}
  xla_flags.apply(environ)
  assert environ['XLA_FLAGS'] == '--xla_cpu_experimental_ynn_fusion_type='


def test_train_flops_match_torchvision_macs():
  # torchvision's AlexNet: 0.714 GMAC per 224x224 image forward; training adds both gradients
  # (no input gradient for conv1: 70.3 M MACs).
  forward_macs = 714.188e6
  assert benchmark.train_flops_per_image(224) == pytest.approx(2 * (3 * forward_macs - 70.276e6),
                                                               rel=1e-3)


def test_the_step_and_the_benchmark_import_without_tensorflow():
  # An accelerator machine may have jax, flax, optax and torch but no TensorFlow (README, GPU).
  code = ("import sys; sys.modules['tensorflow'] = sys.modules['tensorflow_datasets'] = None\n"
          "from alexnet_jax.tools import benchmark\n"
          "from alexnet_jax import cli, compile_cache, model, optim, parallel, train_step\n"
          "benchmark.jax_worker\n"
          "from alexnet_jax import input_pipeline\n"  # imports; TensorFlow loads at first use
          "input_pipeline.tf.data")  # ...and here the check bites
  done = subprocess.run([sys.executable, '-c', code], cwd=workers.ROOT, capture_output=True,
                        text=True, timeout=300)
  # Lines 1-5 ran; the first failing line is the pipeline's first use, and it fails on TensorFlow.
  assert done.returncode == 1 and 'File "<string>", line 6, in <module>' in done.stderr, (
      done.stderr[-2000:])
  assert 'import of tensorflow halted; None in sys.modules' in done.stderr, done.stderr[-2000:]


# The tool runs of this module's tests, each one round of one step with no warm-up. Most of a run
# is one core importing and compiling, in one worker process after another, so the runs go at once
# (`tool_runs`): their figures are checked here, not timed. The MFU's peak comes from a 256^2
# matmul, not 4096^2 (its two calls cost ~3 CPU-s each).
ONCE = ('--steps=1', '--rounds=1', '--warmup=0')
RUNS = {
    'alexnet': ('alexnet_jax.tools.benchmark', '--batch=2', '--forward_batch=4', '--image_size=64',
                '--matmul_size=256', *ONCE),
    'cifar': ('alexnet_jax.tools.benchmark', '--network=cifar18pct', '--batch=4', '--modes=train',
              *ONCE),
    'layers': ('alexnet_jax.tools.layer_profile', '--batch=2', '--image_size=64', '--reps=1',
               '--rounds=1'),
}
USES = {'test_benchmark_writes_every_figure_of_every_row': 'alexnet',
        'test_benchmark_runs_a_cifar_network_beside_its_torch_twin': 'cifar',
        'test_layer_profile_times_every_layer_in_both_frameworks': 'layers'}


@pytest.fixture(scope='module')
def tool_runs(request, tmp_path_factory):
  """result(name): the JSON of RUNS[name], once it ends; the runs of the selected tests all start
  at the first call's setup."""
  pytest.importorskip('torch')
  root = tmp_path_factory.mktemp('tool_runs')
  names = {USES[item.name] for item in request.session.items
           if item.module is request.module and item.name in USES}
  started = {}
  for name in sorted(names):
    module, *args = RUNS[name]
    with open(root / f'{name}.log', 'w') as log:
      started[name] = subprocess.Popen(
          [sys.executable, '-m', module, *args, f'--json={root / name}.json'], cwd=workers.ROOT,
          stdout=log, stderr=subprocess.STDOUT)
  deadline = time.time() + 900

  def result(name):
    code = started[name].wait(max(1, deadline - time.time()))
    assert code == 0, (root / f'{name}.log').read_text()[-3000:]
    return json.loads((root / f'{name}.json').read_text())
  yield result
  for process in started.values():
    if process.poll() is None:
      process.kill()
      process.wait()


def test_benchmark_writes_every_figure_of_every_row(tool_runs):
  result = tool_runs('alexnet')
  assert result['rows']['train']['matmul_gflops'] > 0 and len(result['load_average']) == 3
  assert list(result['rows']) == ['train', 'train_bf16', 'forward']
  assert [row['batch'] for row in result['rows'].values()] == [2, 2, 4]
  for mode, row in result['rows'].items():
    assert row['ratio'] > 0 and row['cpu_time_ratio'] > 0
    for name in ('jax', 'torch'):
      figures = row[name]
      assert figures['params'] == 61_100_840
      for key in ('images_per_sec', 'step_ms', 'cpu_ms_per_image', 'first_step_s',
                  'peak_rss_mib') + (('mfu', 'first_step_warm_s') if mode == 'train' else ()):
        assert figures[key] > 0, (mode, name, key)
  # The warm JAX worker loaded its programs from the cold one's cache and compiled none.
  train = result['rows']['train']['jax']
  assert train['cache']['compiled'] > 0 and train['cache']['loaded'] == 0
  assert train['cache_warm'] == {'loaded': train['cache']['compiled'], 'compiled': 0}


def test_layer_profile_times_every_layer_in_both_frameworks(tool_runs):
  from alexnet_jax.tools import layer_profile  # pylint: disable=g-import-not-at-top
  result = tool_runs('layers')
  names = [layer['name'] for layer in layer_profile.layers(64)]
  assert names == ['conv1', 'pool1', 'conv2', 'pool2', 'conv3', 'conv4', 'conv5', 'pool5',
                   'fc6', 'fc7', 'fc8']
  for framework in ('jax', 'torch'):
    assert list(result[framework]) == names
    assert all(ms > 0 for ms in result[framework].values())


def test_a_worker_that_hangs_on_exit_is_killed_after_its_last_reply(tmp_path, monkeypatch):
  (tmp_path / 'hanging_worker.py').write_text(
      'import json, sys, time\n'
      'print(json.dumps({"ready": 1}), flush=True)\n'
      'sys.stdin.readline()\n'
      'print(json.dumps({"peak_rss_mib": 1.0}), flush=True)\n'
      'time.sleep(600)\n')
  monkeypatch.setenv('PYTHONPATH', str(tmp_path))
  worker = workers.Worker('hanging', 'hanging_worker')
  assert worker.info == {'ready': 1}
  assert worker.close(timeout=2) == {'peak_rss_mib': 1.0}
  assert worker.process.returncode is not None and worker.process.returncode < 0  # killed


def test_benchmark_runs_a_cifar_network_beside_its_torch_twin(tool_runs):
  result = tool_runs('cifar')
  row = result['rows']['train']
  assert result['network'] == 'cifar18pct' and result['image_size'] == 32 and row['batch'] == 4
  # The same network on both sides: cuda-convnet's 18pct file has 89,578 parameters.
  assert row['jax']['params'] == row['torch']['params'] == 89_578
  assert row['ratio'] > 0 and 'mfu' not in row['jax'] and 'matmul_gflops' not in row
