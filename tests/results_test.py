"""launch/results.py and launch/cifar10.py: a failing tool's error line reaches the user; runs
resume and are reused."""
import os
import sys

import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, 'launch'))
import results  # pylint: disable=g-import-not-at-top,wrong-import-position  # launch/results.py


def test_a_failing_tool_stops_the_script_with_its_error_line():
  failing = [sys.executable, '-c', "import sys; print('progress', file=sys.stderr); "
             "print('error: no such workdir x', file=sys.stderr); sys.exit(3)"]
  with pytest.raises(SystemExit) as stopped:
    results.shell(failing, capture_output=True, text=True)
  assert str(stopped.value).endswith('\nerror: no such workdir x')
  assert str(stopped.value).startswith('failed (3): ')
  assert results.shell([sys.executable, '-c', 'print(1)'], capture_output=True,
                       text=True).stdout == '1\n'
