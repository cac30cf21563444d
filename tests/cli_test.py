"""cli: the tools' one-line errors."""
import subprocess
import sys

from conftest import REPO

_PARTIAL_THEN_FAIL = """
import os, sys
from alexnet_jax import cli
sys.stderr.write('a thread wrote this through sys.stderr, no newline yet')
os.write(2, b'and this behind Python, on fd 2, also without one')
cli.fail('the run failed')
"""


def test_error_starts_its_own_line_after_a_partial_line_on_stderr():
  result = subprocess.run([sys.executable, '-c', _PARTIAL_THEN_FAIL], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 1, result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith('error: ')]
  assert errors == ['error: the run failed'], result.stderr


_RAISES = """
from alexnet_jax import cli, errors
def main(argv):
  raise {error}('line one of the message\\nline two')
cli.run(main, uses_jax=False)
"""


def _run(error: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, '-c', _RAISES.format(error=error)], cwd=REPO,
                        capture_output=True, text=True, timeout=120)


def test_the_projects_errors_are_one_line_and_a_bug_keeps_its_traceback():
  own, config, bug = _run('errors.Error'), _run('errors.ConfigError'), _run('ValueError')
  for result in own, config:
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == 'error: line one of the message'
    assert 'Traceback' not in result.stderr
  # A ValueError that is not the project's (a bug here, in Flax or in JAX) is not dressed up as a
  # user's mistake: its traceback shows.
  assert bug.returncode == 1 and 'Traceback' in bug.stderr and 'error: ' not in bug.stderr


def _project_error_classes():
  import importlib  # pylint: disable=g-import-not-at-top
  import inspect  # pylint: disable=g-import-not-at-top
  import pkgutil  # pylint: disable=g-import-not-at-top
  import alexnet_jax  # pylint: disable=g-import-not-at-top
  import alexnet_jax.tools  # pylint: disable=g-import-not-at-top
  found = {}
  for package in (alexnet_jax, alexnet_jax.tools):
    for info in pkgutil.iter_modules(package.__path__):
      name = f'{package.__name__}.{info.name}'
      if name in ('alexnet_jax.main',) or info.name.startswith(('bench', 'torch_nets')):
        continue  # main parses flags at import; the benchmarks import torch
      module = importlib.import_module(name)
      for cls_name, cls in inspect.getmembers(module, inspect.isclass):
        if issubclass(cls, Exception) and cls.__module__ == name:
          found[f'{name}.{cls_name}'] = cls
  return found


def test_every_error_class_of_the_project_derives_from_the_one_base():
  from alexnet_jax import errors  # pylint: disable=g-import-not-at-top
  found = _project_error_classes()
  assert len(found) >= 14, sorted(found)
  assert not [name for name, cls in found.items() if not issubclass(cls, errors.Error)]


def test_one_start_up_path_and_one_definition_of_the_run_flags():
  import glob  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  import re  # pylint: disable=g-import-not-at-top
  sources = {path: open(path).read() for path in glob.glob(os.path.join(REPO, 'alexnet_jax', '**',
                                                                          '*.py'), recursive=True)}
  runs = [p for p, text in sources.items() if re.search(r'\bapp\.run\(', text)]
  assert [os.path.basename(p) for p in runs] == ['cli.py']
  entry_points = [p for p, text in sources.items() if "if __name__ == '__main__':" in text]
  assert len(entry_points) >= 18
  assert all('cli.run(main' in sources[p] for p in entry_points), [
      p for p in entry_points if 'cli.run(main' not in sources[p]]
  # --step and --ema: defined once, in cli.define_run_flags.
  for flag in ('step', 'ema'):
    defined = [os.path.basename(p) for p, text in sources.items()
               if re.search(rf"DEFINE_\w+\('{flag}'", text)]
    assert defined == ['cli.py'], (flag, defined)
