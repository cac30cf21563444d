#!/usr/bin/env bash
# NPROC local CPU processes standing in for NPROC hosts, each with DEVICES_PER_PROC virtual devices.
#
#   launch/local_multiprocess.sh 2 4 --config=configs/quickstart.py --workdir=/tmp/run
#
# Every process runs `python -m alexnet_jax.main "$@" --coordinator_address=127.0.0.1:PORT
# --num_processes=NPROC --process_id=i`; collectives go over gloo (jax's CPU default). The script
# waits for all of them and exits with the first failing status, after stopping the others.
# Environment: PYTHON (default python), PORT (default: a free one), LOG_DIR (if set, process i
# writes LOG_DIR/process_i.log instead of the terminal), KILL_AFTER (seconds between the TERM and
# the KILL sent to the others after a failure; default 10).
set -u

if [[ $# -lt 2 ]]; then
  echo "usage: $0 NPROC DEVICES_PER_PROC [alexnet_jax.main flags...]" >&2
  exit 2
fi
nproc=$1; devices=$2; shift 2
python=${PYTHON:-python}
port=${PORT:-$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
export PYTHONPATH="$(cd "$(dirname "$0")/.." && pwd)${PYTHONPATH:+:$PYTHONPATH}"

pids=()
declare -A index  # pid -> process id
stop_all() {  # TERM first; KILL after KILL_AFTER seconds whoever still hangs in a collective
  kill "${pids[@]}" 2>/dev/null
  for ((t = 0; t < ${KILL_AFTER:-10}; t++)); do
    [[ -z $(jobs -rp) ]] && return 0
    sleep 1
  done
  kill -KILL "${pids[@]}" 2>/dev/null
}
trap 'stop_all; exit 143' INT TERM

for ((i = 0; i < nproc; i++)); do
  (
    if [[ -n ${LOG_DIR:-} ]]; then mkdir -p "$LOG_DIR"; exec >"$LOG_DIR/process_$i.log" 2>&1; fi
    other_flags=$(sed 's/--xla_force_host_platform_device_count=[0-9]*//g' <<<"${XLA_FLAGS:-}")
    export XLA_FLAGS="$other_flags --xla_force_host_platform_device_count=$devices"
    exec env JAX_PLATFORMS=cpu "$python" -m alexnet_jax.main "$@" \
      --coordinator_address="127.0.0.1:$port" --num_processes="$nproc" --process_id="$i"
  ) &
  pids+=($!)
  index[$!]=$i
done

status=0
running=("${pids[@]}")
while ((${#running[@]})); do
  wait -n -p finished "${running[@]}" 2>/dev/null  # quiet: bash would print the killed job's source
  code=$?
  [[ -n ${finished:-} ]] || break  # nothing left to wait for
  rest=()
  for pid in "${running[@]}"; do [[ $pid == "$finished" ]] || rest+=("$pid"); done
  running=("${rest[@]}")
  if ((code != 0)); then
    status=$code
    echo "local_multiprocess: process ${index[$finished]} (pid $finished) exited with status $code;" \
      "stopping the others." >&2
    stop_all
    wait 2>/dev/null
    break
  fi
done
exit "$status"
