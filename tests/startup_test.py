"""Paths that never read images through tf.data run with TensorFlow, TFDS and Keras blocked;
every tool's --help answers without importing JAX."""
import concurrent.futures
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from alexnet_jax.tools import bench_startup
from alexnet_jax.tools import workers
from tests.conftest import tiny_flags  # pylint: disable=g-bad-import-order

# A process in which importing tensorflow, tensorflow_datasets or keras raises ImportError.
BLOCKED = ("import runpy, sys\n"
           "for name in sys.argv.pop(1).split(','): sys.modules[name] = None\n"
           "sys.argv = sys.argv[1:]\n"
           "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n")


def _run_blocked(module, *args, blocked='tensorflow,tensorflow_datasets,keras', env=None):
  done = subprocess.run([sys.executable, '-c', BLOCKED, blocked, module, *args], cwd=workers.ROOT,
                        capture_output=True, text=True, timeout=600, env=env)
  # absl's --help exits with status 1 after printing the flags.
  assert done.returncode == (1 if args == ('--help',) else 0), done.stderr[-3000:]
  assert 'Traceback' not in done.stderr, done.stderr[-3000:]
  return done


def test_synthetic_training_and_the_tools_of_a_run_never_import_tensorflow(tmp_path):
  # One CPU device: which modules load does not depend on the count, and a run on conftest's 8
  # compiles many more programs.
  env = dict(os.environ, XLA_FLAGS=os.environ['XLA_FLAGS'] +
             ' --xla_force_host_platform_device_count=1')  # the last one counts
  workdir = tmp_path / 'run'
  _run_blocked('alexnet_jax.main', '--config=configs/default.py', f'--workdir={workdir}',
               *tiny_flags(total_steps=2, **{'checkpoint.every_steps': 2}), env=env)
  assert list(workdir.glob('events.out.tfevents*')) and (workdir / 'checkpoints').is_dir()
  # A few photos are read with PIL: predicting them never waits for TensorFlow.
  photo = tmp_path / 'photo.jpg'
  Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 120, 3), np.uint8)).save(photo)
  calls = [('alexnet_jax.tools.report', f'--output_dir={tmp_path / "report"}', str(workdir)),
           ('alexnet_jax.tools.filters', f'--workdir={workdir}',
            f'--output={tmp_path / "filters.png"}'),
           ('alexnet_jax.tools.export', f'--workdir={workdir}', f'--output={tmp_path / "model.jax"}',
            '--platforms=cpu'),
           ('alexnet_jax.tools.comm_report', '--config=configs/default.py', '--devices=2',
            '--config.mesh.data=2', *tiny_flags()),
           ('alexnet_jax.tools.predict', f'--workdir={workdir}', '--json', str(photo))]
  # The run's tools at once: they only read it, and most of each is one core importing.
  with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
    done = list(pool.map(lambda call: _run_blocked(*call, env=env), calls))
  assert (tmp_path / 'filters.png').stat().st_size and (tmp_path / 'model.jax').stat().st_size
  assert json.loads(done[-1].stdout.splitlines()[0])['path'] == str(photo)


@pytest.mark.parametrize('tool', bench_startup.TOOLS)
def test_help_answers_without_importing_jax_or_tensorflow(tool):
  done = _run_blocked(tool, '--help', blocked='jax,jaxlib,flax,tensorflow,tensorflow_datasets,keras')
  assert 'flags:' in done.stdout, done.stdout[-2000:]


def test_bench_startup_reads_import_times_from_importtime_lines():
  # -X importtime prints children before parents, indented by 2 per level; a lazy import at run
  # time shows as several outermost lines.
  stderr = '\n'.join([
      'import time: self [us] | cumulative | imported package',
      'import time:       100 |        100 |     jaxlib.xla',
      'import time:       300 |        400 |   jaxlib',
      'import time:       200 |        900 | jax',
      'import time:        50 |         50 |   alexnet_jax.model',
      'import time:        20 |         70 | alexnet_jax.cli',
      'import time:      1000 |       1000 |     keras.src',
      'import time:      2000 |       3000 |   tensorflow.python',
      'import time:        10 |       3010 | alexnet_jax.input_pipeline',
      'import time:       500 |        500 | tensorflow._api.v2',
      'import time:       250 |        250 | tensorflow_datasets'])
  assert bench_startup.import_times(stderr) == pytest.approx(
      {'jax': 0.0009, 'tensorflow': 0.00375, 'project': 0.00008})


def test_tensorflow_loads_at_first_use_without_keras_or_its_banner():
  code = ("import sys\n"
          "from alexnet_jax import input_pipeline\n"
          "assert 'tensorflow' not in sys.modules\n"
          "input_pipeline.tf.data.Dataset.range(3)\n"  # the first use imports it
          "assert 'tensorflow' in sys.modules and 'keras' not in sys.modules\n"
          "import keras\n"  # a user's own import still works afterwards
          "print('ok')")
  done = subprocess.run([sys.executable, '-c', code], cwd=workers.ROOT, capture_output=True,
                        text=True, timeout=300)
  assert done.returncode == 0 and done.stdout.strip() == 'ok', done.stderr[-2000:]
  assert 'oneDNN' not in done.stderr and 'cpu_feature_guard' not in done.stderr, done.stderr
