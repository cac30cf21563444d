"""docs/alexnet_jax.ipynb, run top to bottom in a Jupyter kernel as a user runs it."""
import os

import nbformat
from conftest import REPO
from nbclient import NotebookClient

NOTEBOOK = os.path.join(REPO, 'docs', 'alexnet_jax.ipynb')


def _text(cell) -> str:
  return ''.join(out.get('text', '') for out in cell.get('outputs', [])
                 if out['output_type'] == 'stream' and out['name'] == 'stdout')


def _has_picture(cell) -> bool:
  return any('image/png' in out.get('data', {}) for out in cell.get('outputs', []))


def test_notebook_runs_offline_and_shows_every_step(monkeypatch):
  # One CPU device, as on a user's laptop (the kernel inherits this process's variables): the
  # pictures and numbers are the same, and far fewer programs compile than on conftest's 8.
  monkeypatch.setenv('XLA_FLAGS', os.environ['XLA_FLAGS'] +
                     ' --xla_force_host_platform_device_count=1')  # the last one counts
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  assert not any(cell.get('outputs') for cell in notebook.cells if cell.cell_type == 'code'), (
      'commit the notebook without outputs')
  NotebookClient(notebook, timeout=600, kernel_name='python3',
                 resources={'metadata': {'path': os.path.join(REPO, 'docs')}}).execute()
  code = [cell for cell in notebook.cells if cell.cell_type == 'code']
  sources = {i: cell.source for i, cell in enumerate(code)}
  find = lambda text: code[next(i for i, s in sources.items() if text in s)]
  assert _text(find('jax.device_count()')).rstrip().endswith(' x 1')
  assert "'count': 24" in _text(find('train.train_and_evaluate'))  # 20% of 120 images held out
  assert 'step 12, 4 classes, 64-px inputs' in _text(find('inference.load(WORKDIR)'))
  for marker in ('clf.predict', 'filter_grid', 'neighbours.draw'):  # top-5, Figure 3, Figure 4
    assert _has_picture(find(marker)), marker
  evaluated = _text(find('evaluate.evaluate')).splitlines()
  assert [line.split(':')[0] for line in evaluated] == [' 1 crop(s)', '10 crop(s)']
  assert all('on 24 images (step 12)' in line for line in evaluated)
