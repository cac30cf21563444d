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
