"""Stands in for `python -m alexnet_jax.main` in launch/sweep.py's tests: a run in no time.

  python tests/fake_main.py --config=... --workdir=W [--config.seed=S] [--config.total_steps=N]

FAKE_PLAN (a JSON file {seed: what}) says what the run with that seed does: 'finish' (the default:
config.json and metrics.jsonl up to step N, as train.py leaves a finished run), 'fail' (exit 3),
'stop' (metrics up to step N // 2, exit 0: preempted), 'wait' (until FAKE_GATE exists, then
finish). Each call appends one JSON line to FAKE_CALLS: the seed, start and end times, and the
devices it was given (CUDA_VISIBLE_DEVICES, XLA_FLAGS).
"""
import json
import os
import sys
import time


def main():
  args = dict(a[2:].split('=', 1) for a in sys.argv[1:] if a.startswith('--') and '=' in a)
  seed, total = int(args.get('config.seed', 0)), int(args.get('config.total_steps', 4))
  with open(os.environ['FAKE_PLAN']) as f:
    what = json.load(f).get(str(seed), 'finish')
  start = time.time()
  time.sleep(float(os.environ.get('FAKE_SECONDS', '0')))
  while what == 'wait' and not os.path.exists(os.environ['FAKE_GATE']):
    time.sleep(0.05)
  workdir = args['workdir']
  os.makedirs(workdir, exist_ok=True)
  if what != 'fail':
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
      json.dump({'seed': seed, 'total_steps': total}, f)
    last = total // 2 if what == 'stop' else total
    with open(os.path.join(workdir, 'metrics.jsonl'), 'w') as f:
      for step in range(1, last + 1):
        f.write(json.dumps({'step': step, 'split': 'train', 'loss': 1.0 / step, 'top1': 0.5}) +
                '\n')
      if last == total:
        f.write(json.dumps({'step': total, 'split': 'eval', 'loss': 1.0, 'top1': 0.5,
                            'top5': 0.9, 'count': 8}) + '\n')
  with open(os.environ['FAKE_CALLS'], 'a') as f:
    f.write(json.dumps({'seed': seed, 'what': what, 'start': start, 'end': time.time(),
                        'CUDA_VISIBLE_DEVICES': os.environ.get('CUDA_VISIBLE_DEVICES'),
                        'XLA_FLAGS': os.environ.get('XLA_FLAGS')}) + '\n')
  return 3 if what == 'fail' else 0


if __name__ == '__main__':
  sys.exit(main())
