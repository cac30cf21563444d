"""The command-line layer of main.py and every tool: one start-up path (cli.run), the project's
errors as one line, the flags every tool that reads a trained run shares, and one output
convention.

Output convention: stdout carries what the user asked for (a table, JSON lines, predictions), so
that it can be piped; progress, warnings and `wrote PATH ...` lines (cli.wrote) go to stderr.
--output always names a file; a folder is --output_dir (report), a new run --output_workdir (average).
"""
import contextlib
import functools
import importlib
import os
import re
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from alexnet_jax import errors


def fail(message: str) -> None:
  """Prints `error: message` on stderr, on a line of its own, and exits with status 1."""
  # Background threads (Orbax's, tensorstore's) may have left a partial line on stderr, some
  # behind Python's back: start a new line, and write it in one write(2) that none can split.
  line = f'\nerror: {message}\n'
  sys.stderr.flush()
  try:
    os.write(sys.stderr.fileno(), line.encode(errors='backslashreplace'))
  except (AttributeError, OSError, ValueError):  # a stderr without a descriptor (io.StringIO)
    sys.stderr.write(line)
  sys.exit(1)


def wrote(path: str, detail: str = '') -> None:
  """The `wrote PATH[: detail]` line of a tool that wrote a file or folder, on stderr."""
  print(f'wrote {path}' + (f': {detail}' if detail else ''), file=sys.stderr, flush=True)


class OutputError(errors.Error, OSError):
  """A tool's output could not be written (a full disk, a missing or read-only folder)."""

  def __str__(self):
    return self.strerror


@contextlib.contextmanager
def output(path: str, flag: str = '--output'):
  """Raises an OSError met writing a tool's output as a one-line OutputError naming the path."""
  try:
    yield
  except OSError as e:
    if isinstance(e, errors.Error):
      raise
    raise OutputError(e.errno, f'cannot write {e.filename or path}: {e.strerror or e}; give a '
                      f'{flag} in a writable folder with space.') from e


def define_run_flags(*, several: bool = False, required: bool = True, step: bool = True) -> None:
  """--workdir, --step and --ema: how every tool that reads a trained run names it.

  several: --workdir may be repeated (an ensemble of runs); FLAGS.workdir is then a list.
  step=False: --workdir alone (a tool that picks its own steps).
  """
  where = 'A trained run (or one of its checkpoints/<step> folders)'
  if several:
    flags.DEFINE_multi_string('workdir', None, where + '; repeat it for an ensemble of runs.')
  else:
    flags.DEFINE_string('workdir', None, where + '.')
  if required:
    flags.mark_flag_as_required('workdir')
  if not step:
    return
  flags.DEFINE_string('step', '', "Checkpoint step: '' the newest good one, N, or 'best'.")
  flags.DEFINE_bool('ema', False, 'The moving average of the parameters (a run trained with '
                    'optimizer.ema_decay) instead of the parameters.')


def step():
  """--step as load functions take it: None (the newest good one), 'best' or a number."""
  return parse_step(flags.FLAGS.step)


def parse_step(text: str):
  """--step: '' -> None (the newest good one), 'best' -> 'best', '1200' -> 1200."""
  if text in ('', 'best'):
    return text or None
  if not text.isdigit():
    fail(f"--step={text} is not a step: give a number, 'best', or leave it out for the newest.")
  return int(text)


def asks_for_help(argv) -> bool:
  """Whether the command line asks absl for its help (which needs no --workdir)."""
  return any(a in ('--help', '-h', '--helpshort', '--helpfull', '-?') for a in argv[1:])


def parse_flags(argv):
  """absl flag parsing in which an unknown config key ends in one line, not a traceback."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(str(e))
  except (AttributeError, KeyError) as e:  # ml_collections: unknown key ('Did you mean ...?')
    _unknown_key(e, argv)


def _unknown_key(error: Exception, argv) -> None:
  text = str(error).encode().decode('unicode_escape')
  names = re.findall(r"'(\w+)'", text)
  hint = re.search(r'Did you mean "\w+" instead of "\w+"\?', text)
  fail(f'unknown config key {names[0] if names else text!r} in {config_overrides(argv)}' +
       (f'. {hint.group(0)}' if hint else ''))


def define_config_dict(config, argv, help_text: str) -> None:
  """--config holding `config`, each key overridable (--config.KEY=VALUE); bad keys: one line."""
  try:
    config_flags.DEFINE_config_dict('config', config, help_text, lock_config=True)
  except (AttributeError, KeyError) as e:  # the overrides are matched against the keys here
    _unknown_key(e, argv)


def config_overrides(argv) -> list[str]:
  """The --config.KEY=VALUE arguments of a command line, as given."""
  return [a for a in argv if a.startswith('--config.')]


def overridden_values(config, argv) -> dict:
  """{dotted key: its value in config} of the keys that argv's --config.KEY=VALUE arguments set."""
  keys = [a[len('--config.'):].partition('=')[0] for a in config_overrides(argv)]
  return {key: functools.reduce(getattr, key.split('.'), config) for key in keys}


class _NoOrbaxNotes(logging.logging.Filter):
  """Drops Orbax's notes about read-only managers (a tool reads checkpoints, never writes)."""

  def filter(self, record):
    return record.levelno >= logging.logging.ERROR or 'orbax' not in record.pathname


def quiet_logs() -> None:
  """Tools print their own output: library INFO logs only with --verbosity=0 given explicitly."""
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
    logging.get_absl_handler().addFilter(_NoOrbaxNotes())


def load_config_file(name: str):
  """get_config() of configs/<name>.py in this checkout, whatever the current directory."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  if root not in sys.path:
    sys.path.insert(0, root)
  return importlib.import_module(f'configs.{name}').get_config()


def start_jax(cache_dir: str | None = None) -> str | None:
  """The XLA flags (before JAX initialises its backend; imports alone do not) and the persistent
  compilation cache (default: configs/default.py's folder); returns the cache's folder."""
  from alexnet_jax import compile_cache, xla_flags  # pylint: disable=g-import-not-at-top
  xla_flags.apply()
  if cache_dir is None:
    cache_dir = load_config_file('default').compilation_cache_dir
  return compile_cache.enable(cache_dir)  # '' (a config's choice): the cache off


def run(main, *, uses_jax: bool = True) -> None:
  """absl's app.run for main.py and every tool, the one start-up path: flags parsed with one-line
  errors; then (after the flags, so that --help answers without importing JAX) the XLA flags and
  the compilation cache unless uses_jax=False (main.py starts them itself, from its config); then
  main, whose errors.Error ends as one `error:` line, exit 1. Other exceptions are bugs: they keep
  their traceback."""

  def start(argv):
    if uses_jax:
      start_jax()
    try:
      return main(argv)
    except errors.Error as e:
      fail(errors.first_line(e))
  app.run(start, flags_parser=parse_flags)
