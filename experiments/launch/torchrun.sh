#!/bin/bash
# Multi-node training with torchrun (no SLURM): run this on every node, with the same
# MASTER_ADDR (the first node's address), NNODES and CONFIG, and NODE_RANK = 0..NNODES-1.
#
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash experiments/launch/torchrun.sh experiments/daino/imagenet_1percent.yaml
#
# The rendezvous address is the one you give (127.0.0.1 by default, for one node); sslzoo never
# replaces it. The global batch is nodes x devices x the per-process batch in the config.
# `--ckpt_path auto` resumes from the run folder's last.ckpt when there is one (a restarted job),
# and starts the run otherwise. SIGTERM to torchrun reaches every process: they save last.ckpt at
# the same step and exit non-zero.
set -euo pipefail
CONFIG=${1:?usage: torchrun.sh CONFIG [extra sslzoo arguments]}
shift
NNODES=${NNODES:-1}
if [ -z "${NPROC_PER_NODE:-}" ]; then
    NPROC_PER_NODE=$(nvidia-smi -L 2>/dev/null | wc -l)
    [ "$NPROC_PER_NODE" -gt 0 ] || NPROC_PER_NODE=1  # no GPU: one CPU process (set NPROC_PER_NODE for more)
fi
torchrun --nnodes "$NNODES" --nproc-per-node "$NPROC_PER_NODE" --node-rank "${NODE_RANK:-0}" \
    --rdzv-backend c10d --rdzv-endpoint "${MASTER_ADDR:-127.0.0.1}:${MASTER_PORT:-29500}" \
    -m sslzoo.cli fit --config "$CONFIG" --ckpt_path auto \
    --trainer.num_nodes "$NNODES" --trainer.devices "$NPROC_PER_NODE" --trainer.strategy ddp "$@"
