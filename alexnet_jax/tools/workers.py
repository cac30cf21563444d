"""The worker-process protocol of tools/benchmark and tools/layer_profile.

Each framework runs in a process of its own (its own thread pools, peak RSS and time to first
step). The parent writes one command a line on the worker's stdin; the worker answers each with
one JSON line on its own copy of stdout, while library chatter goes to stderr.
"""
import json
import os
import platform
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def timed(fn, *args) -> dict:
  """Wall seconds, and CPU seconds of this process (all threads; less disturbed by other load)."""
  wall, cpu = time.perf_counter(), time.process_time()
  fn(*args)
  return {'seconds': time.perf_counter() - wall, 'cpu_seconds': time.process_time() - cpu}


def cpu_name() -> str:
  with open('/proc/cpuinfo') if os.path.exists('/proc/cpuinfo') else open(os.devnull) as f:
    names = [l.split(':', 1)[1].strip() for l in f if l.startswith('model name')]
  return names[0] if names else platform.processor() or platform.machine()


def serve(setup) -> None:
  """Worker side: info, handle = setup(); answers info, then handle(command words) per line.

  'done' (or the end of stdin) answers the peak RSS and ends the loop.
  """
  out = os.fdopen(os.dup(1), 'w')
  os.dup2(2, 1)  # library chatter goes to stderr, the protocol alone to `out`
  sys.path.insert(0, ROOT)
  reply, handle = setup()
  while True:
    out.write(json.dumps(reply) + '\n')
    out.flush()
    command = sys.stdin.readline().split() or ['done']
    if command[0] == 'done':
      out.write(json.dumps({'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                            / 1024}) + '\n')  # ru_maxrss is in KiB on Linux
      out.close()
      return
    reply = handle(command)


class Worker:
  """A worker process (python -m MODULE --worker=NAME ARGS): setup, then one command at a time.

  `started` (time.time() when the process was launched) is passed as --started, so that the worker
  can count its time to first step from its launch, imports included.
  """

  def __init__(self, name: str, module: str, args=(), env=None):
    self.name = name
    self.started = time.time()
    argv = [sys.executable, '-m', module, f'--worker={name}', f'--started={self.started}', *args]
    env = dict(os.environ, **(env or {}))
    env['PYTHONPATH'] = os.pathsep.join([ROOT, os.environ.get('PYTHONPATH', '')])
    self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    text=True, cwd=ROOT, env=env)
    self.info = self._read()

  def _read(self) -> dict:
    line = self.process.stdout.readline()
    if not line:
      raise RuntimeError(f'the {self.name} worker exited with {self.process.wait()} '
                         f'(its stderr is above).')
    return json.loads(line)

  def ask(self, command: str) -> dict:
    self.process.stdin.write(command + '\n')
    self.process.stdin.flush()
    return self._read()

  def close(self, timeout: float = 60.0) -> dict:
    """Ends the worker: its last reply; a worker that hangs on its way out is killed after timeout.

    Every figure has been read by then, so a hang at interpreter exit (seen once under load)
    costs the run nothing.
    """
    reply = self.ask('done')
    try:
      self.process.wait(timeout)
    except subprocess.TimeoutExpired:
      print(f'the {self.name} worker did not exit {timeout:.0f} s after its last reply; killed.',
            file=sys.stderr)
      self.process.kill()
      self.process.wait()
    return reply
