#!/usr/bin/env bash
# Runs alexnet_jax.main on every host of a Cloud TPU VM slice, one process per host.
#
#   launch/tpu_pod.sh TPU_NAME ZONE --config=configs/default.py --workdir=/mnt/shared/alexnet \
#       --config.data.data_dir=gs://BUCKET/tensorflow_datasets
#
# Needs: this repository at REMOTE_DIR (default ~/alexnet_jax) on every worker with its requirements
# and jax[tpu] installed (SYNC=1 copies this checkout there first), and a workdir every host can
# write (NFS or a gcsfuse mount): all hosts write checkpoint shards, process 0 writes the metrics.
# Each worker reads its index and the workers' addresses from the TPU metadata server (the keys
# jax's own Cloud TPU detection reads) and hands them to main.py as JAX_PROCESS_ID,
# JAX_NUM_PROCESSES and JAX_COORDINATOR_ADDRESS. PROJECT selects the gcloud project.
# Untested here (no TPU); the same flow runs on CPU in launch/local_multiprocess.sh.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 TPU_NAME ZONE [alexnet_jax.main flags...]" >&2
  exit 2
fi
tpu=$1; zone=$2; shift 2
remote_dir=${REMOTE_DIR:-'~/alexnet_jax'}
gcloud_args=(--zone="$zone" ${PROJECT:+--project="$PROJECT"})

if [[ ${SYNC:-0} == 1 ]]; then
  gcloud compute tpus tpu-vm ssh "$tpu" "${gcloud_args[@]}" --worker=all --command="mkdir -p $remote_dir"
  gcloud compute tpus tpu-vm scp --recurse "$(dirname "$0")/.."/{alexnet_jax,configs,launch,requirements.txt} \
    "$tpu:$remote_dir" "${gcloud_args[@]}" --worker=all
fi

read -r -d '' setup <<'REMOTE' || true
md() { curl -sf -H 'Metadata-Flavor: Google' \
  "http://metadata.google.internal/computeMetadata/v1/instance/attributes/$1"; }
endpoints=$(md worker-network-endpoints)  # unknown:unknown:IP,unknown:unknown:IP,...
export JAX_PROCESS_ID=$(md agent-worker-number)
export JAX_NUM_PROCESSES=$(tr ',' '\n' <<<"$endpoints" | wc -l)
export JAX_COORDINATOR_ADDRESS=$(cut -d, -f1 <<<"$endpoints" | cut -d: -f3):8476
REMOTE

gcloud compute tpus tpu-vm ssh "$tpu" "${gcloud_args[@]}" --worker=all --command="$setup
cd $remote_dir && python3 -m alexnet_jax.main $(printf '%q ' "$@")"
