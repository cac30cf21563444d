"""tools.bench_predict: JSON alone on stdout with --json, its temporary files removed."""
import json
import os
import subprocess
import sys

from alexnet_jax.tools import workers


def test_json_alone_on_stdout_and_no_temporary_files_left(tmp_path):
  env = dict(os.environ, TMPDIR=str(tmp_path),  # tempfile's folder: what it leaves shows here
             # 2 devices, not conftest's 8 (the last flag counts): fewer programs to compile.
             XLA_FLAGS=os.environ['XLA_FLAGS'] + ' --xla_force_host_platform_device_count=2')
  done = subprocess.run([sys.executable, '-m', 'alexnet_jax.tools.bench_predict', '--images=3',
                         '--size=32', '--rounds=1', '--batch=8', '--json', '--classes=10',
                         '--fc_width=64'], cwd=workers.ROOT,
                        env=env, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  result = json.loads(done.stdout)  # the whole of stdout is one JSON object
  assert result['images'] == 3 and len(result['rounds']) == 1 and result['median_ratio'] > 0
  assert result['devices'] == 2 and 'round 0: bare' in done.stderr
  assert not [p for p in os.listdir(tmp_path) if p.startswith('bench_predict_')]
