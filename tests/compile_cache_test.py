"""The compilation cache through the CLI: a second run of a config loads, '' turns it off."""
import os
import re

from conftest import run_module
from conftest import tiny_flags


def _run(tmp_path, name, *overrides, env_cache=None, devices=2):
  # Not conftest's session cache: env_cache or none, so that config.compilation_cache_dir decides.
  # 2 devices: sharded programs, and fewer of them to compile than on conftest's 8 (32, not 110).
  result = run_module('alexnet_jax.main', '--config=configs/default.py',
                      f'--workdir={tmp_path / name}', *tiny_flags(), *overrides,
                      env={'JAX_COMPILATION_CACHE_DIR': env_cache,
                           'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}'})
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stderr


def _loaded_compiled(log: str) -> tuple[int, int]:
  (match,) = re.findall(r'(\d+) programs loaded, (\d+) compiled', log)
  return int(match[0]), int(match[1])


def test_second_run_of_a_config_loads_every_program_from_the_cache(tmp_path):
  cache = tmp_path / 'cache'
  first = _run(tmp_path, 'first', f'--config.compilation_cache_dir={cache}')
  entries = sorted(os.listdir(cache))
  loaded, compiled = _loaded_compiled(first)
  assert loaded == 0 and compiled > 0
  assert any(name.startswith('jit_') and 'train_step' in name for name in entries), entries
  second = _run(tmp_path, 'second', f'--config.compilation_cache_dir={cache}')
  # Every program of the second run is read back (none rejected and compiled again) and
  # nothing new is written.
  assert _loaded_compiled(second) == (compiled, 0)
  assert sorted(os.listdir(cache)) == entries


def test_empty_key_turns_the_cache_off_even_with_jax_env_variable(tmp_path):
  env_cache = tmp_path / 'env_cache'
  # One device: a cold compile of fewer programs (6, not 32), as many as it takes to see a write.
  log = _run(tmp_path, 'off', '--config.compilation_cache_dir=', env_cache=str(env_cache),
             devices=1)
  assert not env_cache.exists()
  assert 'programs loaded' not in log

