"""A real one-node SLURM cluster on this machine for the tests: munged, slurmctld and slurmd with
a configuration, state, spool and logs in a temporary folder, on free ports.

Debian's slurm-wlm and munge (apt-get install slurm-wlm munge), as README's test command installs
them; no systemd, no /etc changes: its own munge key and socket. The daemons run as this user
(root in CI, which slurmd needs to start jobs as their owners). The configuration is the one
checked in ../shared/FACTS.md: proctrack/linuxproc and task/none (no cgroups needed).
"""
import getpass
import os
import random
import shutil
import socket
import subprocess
import time

DAEMONS = ('munged', 'slurmctld', 'slurmd')
TOOLS = ('sbatch', 'squeue', 'scancel', 'scontrol', 'sinfo', 'srun')
ENDED = ('COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'PREEMPTED', 'OUT_OF_MEMORY',
         'BOOT_FAIL', 'DEADLINE')


def missing() -> list[str]:
  """The SLURM and munge programs this machine lacks."""
  return [name for name in DAEMONS + TOOLS if not shutil.which(name)]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _memory_mb() -> int:
  with open('/proc/meminfo') as f:
    total_kb = next(int(line.split()[1]) for line in f if line.startswith('MemTotal:'))
  return total_kb // 1024 * 9 // 10  # slurmd drains a node that claims more than it has


class Cluster:
  """Start with start(), stop with stop(); env holds SLURM_CONF for the SLURM commands."""

  def __init__(self, folder: str):
    self.folder = folder
    self.host = socket.gethostname().split('.')[0]
    self.conf = os.path.join(folder, 'slurm.conf')
    self.env = {'SLURM_CONF': self.conf}
    self._daemons = []

  def _configure(self) -> None:
    f = self.folder
    for name in ('state', 'spool'):
      os.makedirs(os.path.join(f, name), exist_ok=True)
    with open(os.path.join(f, 'munge.key'), 'wb') as key:
      key.write(os.urandom(1024))
    os.chmod(os.path.join(f, 'munge.key'), 0o400)
    user = getpass.getuser()
    # jax.distributed's coordinator port is 61440 + job id % 4096 (jax/_src/clusters): a random
    # first job id keeps two test sessions on one machine off each other's ports.
    lines = [
        f'ClusterName=test{random.randrange(10**6)}', f'SlurmctldHost={self.host}(127.0.0.1)',
        f'SlurmctldPort={_free_port()}', f'SlurmdPort={_free_port()}',
        f'FirstJobId={random.randrange(1, 4096) * 100}',
        'AuthType=auth/munge', f'AuthInfo=socket={f}/munge.socket', 'CredType=cred/munge',
        'ProctrackType=proctrack/linuxproc', 'TaskPlugin=task/none', 'MpiDefault=none',
        'JobAcctGatherType=jobacct_gather/none', 'AccountingStorageType=accounting_storage/none',
        'SelectType=select/cons_tres', 'SelectTypeParameters=CR_Core',
        f'SlurmUser={user}', f'SlurmdUser={user}', 'ReturnToService=2', 'KillWait=5',
        f'StateSaveLocation={f}/state', f'SlurmdSpoolDir={f}/spool',
        f'SlurmctldPidFile={f}/slurmctld.pid', f'SlurmdPidFile={f}/slurmd.pid',
        f'SlurmctldLogFile={f}/slurmctld.log', f'SlurmdLogFile={f}/slurmd.log',
        f'NodeName={self.host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} '
        f'RealMemory={_memory_mb()} State=UNKNOWN',
        # FORCE:2: two jobs may share a core (two 2-task jobs at once on 2 cores) without asking.
        f'PartitionName=test Nodes={self.host} Default=YES MaxTime=INFINITE State=UP '
        'OverSubscribe=FORCE:2',
    ]
    with open(self.conf, 'w') as conf:
      conf.write('\n'.join(lines) + '\n')

  def _command(self, *args, timeout=30) -> subprocess.CompletedProcess:
    return subprocess.run(args, env={**os.environ, **self.env}, capture_output=True, text=True,
                          timeout=timeout, check=False)

  def start(self, timeout=60) -> None:
    """Starts the three daemons in the foreground (children of this process) and waits until the
    node is idle."""
    self._configure()
    f = self.folder
    env = {**os.environ, **self.env}
    for command in (
        ['munged', '--foreground', '--force', f'--socket={f}/munge.socket',
         f'--key-file={f}/munge.key', f'--pid-file={f}/munged.pid', f'--log-file={f}/munged.log',
         f'--seed-file={f}/munged.seed'],
        ['slurmctld', '-D', '-i'],
        ['slurmd', '-D', '-N', self.host]):
      with open(os.path.join(f, f'{command[0]}.out'), 'w') as out:
        self._daemons.append(subprocess.Popen(command, env=env, stdout=out,
                                              stderr=subprocess.STDOUT))
      if command[0] == 'munged':
        self._wait(lambda: os.path.exists(f'{f}/munge.socket'), 'munged', timeout)
    self._wait(lambda: self._command('sinfo', '--noheader', '--format=%T').stdout.strip() ==
               'idle', 'an idle node', timeout)

  def _wait(self, done, what: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while not done():
      dead = [p.args[0] for p in self._daemons if p.poll() is not None]
      if dead or time.time() > deadline:
        raise RuntimeError(f'SLURM: no {what} ({", ".join(dead) or "timeout"}); logs in '
                           f'{self.folder}:\n{self.logs()}')
      time.sleep(0.1)

  def logs(self) -> str:
    tails = []
    for name in ('munged.log', 'slurmctld.log', 'slurmd.log', 'slurmctld.out', 'slurmd.out'):
      path = os.path.join(self.folder, name)
      if os.path.exists(path):
        with open(path, errors='replace') as f:
          tails.append(f'== {name}\n' + ''.join(f.readlines()[-15:]))
    return '\n'.join(tails)

  def job(self, job_id: str) -> dict:
    """scontrol's fields of a job (JobState, ExitCode, ...); {} once SLURM has forgotten it."""
    result = self._command('scontrol', '--oneliner', 'show', 'job', job_id)
    fields = {}
    for word in result.stdout.split():
      key, _, value = word.partition('=')
      fields.setdefault(key, value)
    return fields

  def queued(self, job_id: str) -> str:
    """squeue's lines of the job (of each array task left): '' once it has ended."""
    return self._command('squeue', '--noheader', '--array', f'--jobs={job_id}').stdout.strip()

  def wait_for(self, job_id: str, timeout=300) -> dict:
    """The job's fields once it has ended (every array task, for an array); cancelled after
    timeout seconds."""
    deadline = time.time() + timeout
    while queued := self.queued(job_id):
      if time.time() > deadline:
        self._command('scancel', job_id)
        raise TimeoutError(f'SLURM job {job_id} still queued or running after {timeout} s:\n'
                           f'{queued}')
      time.sleep(0.2)
    return self.job(job_id)

  def stop(self) -> None:
    """Cancels every job left, then stops the daemons (TERM, KILL after 10 s)."""
    if any(p.poll() is None for p in self._daemons):
      self._command('scancel', f'--user={getpass.getuser()}')
      deadline = time.time() + 15
      while (self._command('squeue', '--noheader').stdout.strip() and
             time.time() < deadline):
        time.sleep(0.2)
    for process in reversed(self._daemons):
      process.terminate()
      try:
        process.wait(10)
      except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    self._daemons = []
