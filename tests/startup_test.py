"""Paths that never read images through tf.data run with TensorFlow, TFDS and Keras blocked."""
import subprocess
import sys

from alexnet_jax.tools import workers
from tests.conftest import tiny_flags  # pylint: disable=g-bad-import-order

# A process in which importing tensorflow, tensorflow_datasets or keras raises ImportError.
BLOCKED = ("import runpy, sys\n"
           "for name in ('tensorflow', 'tensorflow_datasets', 'keras'): sys.modules[name] = None\n"
           "sys.argv = sys.argv[1:]\n"
           "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n")


def _run_blocked(module, *args):
  done = subprocess.run([sys.executable, '-c', BLOCKED, module, *args], cwd=workers.ROOT,
                        capture_output=True, text=True, timeout=600)
  # absl's --help exits with status 1 after printing the flags.
  assert done.returncode == (1 if args == ('--help',) else 0), done.stderr[-3000:]
  assert 'Traceback' not in done.stderr, done.stderr[-3000:]
  return done


def test_synthetic_training_and_the_tools_of_a_run_never_import_tensorflow(tmp_path):
  workdir = tmp_path / 'run'
  _run_blocked('alexnet_jax.main', '--config=configs/default.py', f'--workdir={workdir}',
               *tiny_flags(total_steps=2, **{'checkpoint.every_steps': 2}))
  assert list(workdir.glob('events.out.tfevents*')) and (workdir / 'checkpoints').is_dir()
  _run_blocked('alexnet_jax.tools.report', f'--output={tmp_path / "report"}', str(workdir))
  _run_blocked('alexnet_jax.tools.filters', f'--workdir={workdir}',
               f'--output={tmp_path / "filters.png"}')
  _run_blocked('alexnet_jax.tools.export', f'--workdir={workdir}',
               f'--output={tmp_path / "model.jax"}', '--platforms=cpu')
  assert (tmp_path / 'filters.png').stat().st_size and (tmp_path / 'model.jax').stat().st_size
  for tool in ('predict', 'evaluate', 'neighbours'):  # their flags before TensorFlow's import
    assert '--workdir' in _run_blocked(f'alexnet_jax.tools.{tool}', '--help').stdout
