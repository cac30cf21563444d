"""JAX's persistent compilation cache, so that a second run or a resume loads its programs.

Turned on by the CLI and the tools (`enable(config.compilation_cache_dir)` before the first
compile); importing the library changes nothing. JAX's own JAX_COMPILATION_CACHE_DIR, when set,
wins over the folder given here, as XLA_FLAGS set by the caller win over xla_flags.py.
"""
import os

from absl import logging

# A size cap turns on JAX's file lock around every read and write of the folder (without one,
# entries are written in place and a concurrent run could read half a file); least recently
# used entries go beyond it. AlexNet's train step is a few MB.
MAX_BYTES = 4 << 30
_HIT = '/jax/compilation_cache/cache_hits'
_REQUEST = '/jax/compilation_cache/compile_requests_use_cache'
_counts = {_HIT: 0, _REQUEST: 0}
_listening = []


def _count(event: str, **_) -> None:
  if event in _counts:
    _counts[event] += 1


def enable(directory: str) -> str | None:
  """Caches every compiled program under `directory` ('' turns the cache off); returns the folder.

  Programs are cached whatever their compile time (JAX's default skips those under 1 s, and a
  run's many small programs add up). In a multi-process run only process 0 writes (JAX's rule).
  """
  import jax  # pylint: disable=g-import-not-at-top  # the caller applies XLA flags first
  if not directory:
    jax.config.update('jax_enable_compilation_cache', False)
    return None
  folder = os.environ.get('JAX_COMPILATION_CACHE_DIR') or os.path.expanduser(directory)
  jax.config.update('jax_enable_compilation_cache', True)
  jax.config.update('jax_compilation_cache_dir', folder)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  jax.config.update('jax_compilation_cache_max_size', MAX_BYTES)
  if not _listening:
    jax.monitoring.register_event_listener(_count)
    _listening.append(_count)
  return folder


def stats() -> dict:
  """{'loaded': programs read from the cache, 'compiled': the others} since enable()."""
  return {'loaded': _counts[_HIT], 'compiled': _counts[_REQUEST] - _counts[_HIT]}


def log_stats(folder: str | None) -> None:
  if folder:
    logging.info('Compilation cache %s: %d programs loaded, %d compiled.', folder,
                 *stats().values())
