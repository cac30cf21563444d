"""The CLI: overrides, their rejection in one line, and an end-to-end run on synthetic data."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--config.data.name=synthetic', '--config.data.image_size=64', '--config.data.batch_size=16',
        '--config.model.num_classes=16', '--config.model.fc_width=64', '--config.total_steps=4',
        '--config.log_every_steps=2', '--config.eval_every_steps=0',
        '--config.checkpoint.every_steps=4']


def run_main(workdir, *overrides, devices=8, config='configs/default.py'):
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}',
             TF_CPP_MIN_LOG_LEVEL='2')
  return subprocess.run([sys.executable, '-m', 'alexnet_jax.main', f'--config={config}',
                         f'--workdir={workdir}', *overrides], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize('override, expected', [
    ('--config.model.lrnn=False', 'Did you mean "lrn"'),
    ('--config.data.batch_size=abc', '--config.data.batch_size=abc'),
    ('--config.model.lrn=maybe', '--config.model.lrn'),
    ('--config.mesh.data=3', 'mesh.data'),
    ('--config.model.variant=vgg', 'model.variant'),
])
def test_bad_overrides_end_in_one_line_and_touch_nothing(tmp_path, override, expected):
  workdir = tmp_path / 'run'
  result = run_main(workdir, *TINY, override)
  assert result.returncode != 0
  errors = [l for l in result.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]
  assert 'Traceback' not in result.stderr
  assert not workdir.exists()


def test_cli_trains_with_overrides_and_writes_the_workdir(tmp_path):
  workdir = tmp_path / 'run'
  # XLA_FLAGS from the caller decide the device count: a 1x2 mesh needs exactly 2 devices.
  result = run_main(workdir, *TINY, '--config.mesh.model=2', '--config.model.lrn=False', devices=2)
  assert result.returncode == 0, result.stderr[-3000:]
  records = [json.loads(l) for l in (workdir / 'metrics.jsonl').read_text().splitlines()]
  train = [r for r in records if r['split'] == 'train']
  assert [r['step'] for r in train] == [2, 4]
  for r in train:
    for key in ('loss', 'top1', 'top5', 'learning_rate', 'images_per_sec'):
      assert isinstance(r[key], float) and r[key] >= 0, (key, r)
  (evaluation,) = [r for r in records if r['split'] == 'eval']
  assert evaluation['step'] == 4 and evaluation['count'] == 256
  config = json.loads((workdir / 'config.json').read_text())
  assert config['model']['lrn'] is False and config['mesh']['model'] == 2
  assert any(f.startswith('events.out.tfevents') for f in os.listdir(workdir))
  assert 'step 4/4' in result.stderr and 'ETA' in result.stderr
