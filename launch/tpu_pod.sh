#!/usr/bin/env bash
# Runs alexnet_jax.main on every host of a Cloud TPU VM slice, one process per host.
#
#   SYNC=1 CLEAN=1 launch/tpu_pod.sh TPU_NAME ZONE --config=configs/default.py \
#       --workdir=gs://BUCKET/runs/alexnet --config.data.data_dir=gs://BUCKET/tensorflow_datasets
#
# Needs: this repository at REMOTE_DIR on every worker with its requirements and jax[tpu] installed,
# and a workdir every host can write (gs:// or a shared mount): all hosts write checkpoint shards.
# Each worker reads its index and the workers' addresses from the TPU metadata server (the keys
# jax's own Cloud TPU detection reads; GCE_METADATA_IP as jax honours it) and hands them to main.py
# as JAX_PROCESS_ID, JAX_NUM_PROCESSES and JAX_COORDINATOR_ADDRESS. Environment:
#   SYNC=1            copy alexnet_jax/, configs/, launch/ and requirements.txt to REMOTE_DIR first
#   CLEAN=1           first, on every worker: stop this project's processes left by a killed run
#                     (alexnet_jax.main running in REMOTE_DIR) and remove libtpu's lock file;
#                     either makes the next start fail with "TPU in use" otherwise
#   REMOTE_DIR        default ~/alexnet_jax (inserted into the remote command: ~ expands there)
#   LOG_DIR           local folder for each worker's output, worker_<i>.log; default
#                     logs/TPU_NAME-<date>-<time>. Each worker also keeps it in REMOTE_DIR/logs/.
#   LIBTPU_LOCKFILE   default /tmp/libtpu_lockfile;  COORDINATOR_PORT  default 8476
#   PROJECT           the gcloud project, if not gcloud's default
# Exits with the run's status once every worker's log is here. Tested with a fake gcloud that runs
# the remote commands locally (tests/tpu_pod_test.py); creating the slice: README.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: [SYNC=1] [CLEAN=1] $0 TPU_NAME ZONE [alexnet_jax.main flags...]" >&2
  exit 2
fi
tpu=$1; zone=$2; shift 2
remote_dir=${REMOTE_DIR:-'~/alexnet_jax'}
lockfile=${LIBTPU_LOCKFILE:-/tmp/libtpu_lockfile}
run_name=$tpu-$(date +%Y%m%d-%H%M%S)
log_dir=${LOG_DIR:-logs/$run_name}
gcloud_args=(--zone="$zone" ${PROJECT:+--project="$PROJECT"})
on_all() { gcloud compute tpus tpu-vm ssh "$tpu" "${gcloud_args[@]}" --worker=all --command="$1"; }

if [[ ${CLEAN:-0} == 1 ]]; then
  # Only processes whose working directory is this checkout: other jobs on the host are left alone.
  # The [.] keeps this command's own shell out of pgrep's match.
  on_all "here=\$(cd $remote_dir 2>/dev/null && pwd -P)
stale=()
for pid in \$(pgrep -f 'alexnet_jax[.]main'); do
  [[ -n \$here && \$(readlink /proc/\$pid/cwd) == \"\$here\" ]] && stale+=(\$pid)
done
if ((\${#stale[@]})); then
  echo \"\$(hostname): stopping stale alexnet_jax processes \${stale[*]}\"
  kill \${stale[*]} 2>/dev/null
  for t in 1 2 3 4 5 6 7 8 9 10; do kill -0 \${stale[*]} 2>/dev/null || break; sleep 1; done
  kill -KILL \${stale[*]} 2>/dev/null
fi
rm -f $(printf '%q' "$lockfile") 2>/dev/null || sudo rm -f $(printf '%q' "$lockfile")
true"
fi

if [[ ${SYNC:-0} == 1 ]]; then
  on_all "mkdir -p $remote_dir"
  gcloud compute tpus tpu-vm scp --recurse "$(dirname "$0")/.."/{alexnet_jax,configs,launch,requirements.txt} \
    "$tpu:$remote_dir" "${gcloud_args[@]}" --worker=all
fi

read -r -d '' setup <<'REMOTE' || true
md() { curl -sf -H 'Metadata-Flavor: Google' \
  "http://${GCE_METADATA_IP:-metadata.google.internal}/computeMetadata/v1/instance/attributes/$1"; }
endpoints=$(md worker-network-endpoints)  # unknown:unknown:IP,unknown:unknown:IP,...
export JAX_PROCESS_ID=$(md agent-worker-number)
export JAX_NUM_PROCESSES=$(tr ',' '\n' <<<"$endpoints" | wc -l)
REMOTE

remote_logs="$remote_dir/logs/$run_name"
status=0
on_all "set -o pipefail
$setup
export JAX_COORDINATOR_ADDRESS=\$(cut -d, -f1 <<<\"\$endpoints\" | cut -d: -f3):${COORDINATOR_PORT:-8476}
cd $remote_dir && mkdir -p logs/$run_name &&
python3 -m alexnet_jax.main $(printf '%q ' "$@") 2>&1 | tee logs/$run_name/worker_\$JAX_PROCESS_ID.log" \
  || status=$?

mkdir -p "$log_dir"
gcloud compute tpus tpu-vm scp "$tpu:$remote_logs/worker_*.log" "$log_dir/" "${gcloud_args[@]}" \
  --worker=all || echo "tpu_pod: could not copy every worker's log to $log_dir" >&2
echo "tpu_pod: exit status $status; logs in $log_dir" >&2
exit "$status"
