#!/bin/bash
# Plain-sbatch template: one heal-batch stage as a Slurm array, one shard per array task.
# For sites where submitit cannot run on the login node. Resources come from the #SBATCH lines
# below (print the ones for your profile with `heal-batch run ... --dry-run`), and options given
# to sbatch on the command line override them. Rerunning a task is safe: finished shards are kept.
#
#   STAGE=generate CONFIG=jobs/demo.yaml WORKDIR=runs/demo \
#     sbatch --array=0-99%64 --export=ALL slurm/sbatch-task.sh
#
# Lines starting with "##SBATCH" are off; remove one "#" to turn them on.
#SBATCH --job-name=heal-batch
#SBATCH --output=slurm-%A_%a.out
#SBATCH --time=60
#SBATCH --cpus-per-task=1
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
##SBATCH --partition=PARTITION
##SBATCH --account=ACCOUNT
##SBATCH --qos=QOS
##SBATCH --mem=16GB
##SBATCH --gpus-per-node=1
set -euo pipefail
: "${STAGE:?set STAGE (a stage name, e.g. generate)}"
: "${CONFIG:?set CONFIG (the experiment YAML)}"
: "${WORKDIR:?set WORKDIR (the run directory)}"
exec heal-batch stage "$STAGE" --config "$CONFIG" --workdir "$WORKDIR" --task "$SLURM_ARRAY_TASK_ID"
