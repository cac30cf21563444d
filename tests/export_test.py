"""tools.export: a jax.export file that serves the checkpoint's logits without this project."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np

from alexnet_jax import inference
from conftest import error_line
from conftest import run_module
from conftest import run_modules

SERVE = """
import json, sys
import jax, numpy as np
try:
  import alexnet_jax
  sys.exit('the project is importable here')
except ImportError:
  pass
exported = jax.export.deserialize(bytearray(open(sys.argv[1], 'rb').read()))
for batch in (1, 5):  # one file, any batch size
  images = np.random.default_rng(batch).integers(0, 256, (batch, 64, 64, 3), dtype=np.uint8)
  np.save(f'{sys.argv[2]}_{batch}.npy', np.asarray(exported.call(images)))
"""


def test_exported_file_serves_the_checkpoints_logits_in_a_bare_python(trained_run, tmp_path):
  workdir, _ = trained_run
  output = tmp_path / 'alexnet.jaxexport'
  result = run_module('alexnet_jax.tools.export', f'--workdir={workdir}', f'--output={output}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'platforms cpu,cuda,tpu' in result.stderr
  assert json.load(open(f'{output}.classes.json'))['names'][:2] == ['class0', 'class1']
  script = tmp_path / 'serve.py'
  script.write_text(SERVE)
  # -I: no PYTHONPATH, no user site; run from a folder without the project in it.
  subprocess.run([sys.executable, '-I', str(script), str(output), str(tmp_path / 'logits')],
                 cwd=tmp_path, check=True, env={'PATH': os.environ['PATH'],
                                                'XLA_FLAGS': os.environ['XLA_FLAGS']})
  clf = inference.load(workdir)
  for batch in (1, 5):
    images = np.random.default_rng(batch).integers(0, 256, (batch, 64, 64, 3), dtype=np.uint8)
    np.testing.assert_allclose(np.load(tmp_path / f'logits_{batch}.npy'), clf.logits(images),
                               rtol=1e-5, atol=1e-6)


def test_an_existing_output_is_kept(trained_run, tmp_path):
  output = tmp_path / 'model.bin'
  output.write_bytes(b'keep me')
  damaged = tmp_path / 'damaged_run'  # the run with a torn class_names.json
  shutil.copytree(trained_run[0], damaged)
  (damaged / 'class_names.json').write_text('{"names": ["a", ')
  (tmp_path / 'a_file').write_text('')
  exists, no_workdir, no_folder, torn, torn_predict = run_modules(
      ('alexnet_jax.tools.export', f'--workdir={trained_run[0]}', f'--output={output}'),
      ('alexnet_jax.tools.export', f'--workdir={tmp_path / "none"}', f'--output={tmp_path / "x"}'),
      ('alexnet_jax.tools.export', f'--workdir={trained_run[0]}', '--platforms=cpu',
       f'--output={tmp_path / "a_file" / "model.bin"}'),
      ('alexnet_jax.tools.export', f'--workdir={damaged}', f'--output={tmp_path / "y"}'),
      ('alexnet_jax.tools.predict', f'--workdir={damaged}', str(output)))
  assert 'exists' in error_line(exists)
  assert output.read_bytes() == b'keep me'
  assert 'no such workdir' in error_line(no_workdir)
  assert not (tmp_path / 'x').exists()
  assert 'cannot write' in error_line(no_folder) and 'a_file' in error_line(no_folder)
  for result in (torn, torn_predict):
    assert 'class_names.json is damaged' in error_line(result)
  assert not (tmp_path / 'y').exists() and not (tmp_path / 'y.tmp').exists()
