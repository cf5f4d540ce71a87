#!/usr/bin/env bash
# One-GPU check (H100/H200), under 8 minutes: generate vs bare vLLM, scorer vs plain forward,
# a ZeRO-2 step's tokens/s and MFU, lm-eval vllm on 50 GSM8K problems, vLLM + scorer memory.
#
#     bash tests/bench/gpu_check.sh            # from the repository root; results in $OUT or /tmp
#
# Installs nothing unless vllm does not import: then `pip install -e '.[gpu]'` (vllm, liger-kernel).
# Each section runs in its own process under its own time limit; a failed or timed-out section is
# reported and the others still run. The summary is the RESULT lines, one JSON object per section.
set -uo pipefail
cd "$(dirname "$0")/../.."
LOG_DIR="${OUT:-/tmp}/gpu_check"
mkdir -p "$LOG_DIR"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if ! python -c "import vllm" 2>/dev/null; then
  echo "vllm does not import: pip install -e '.[gpu]'"
  pip install -q -e '.[gpu]' || { echo "install failed"; exit 1; }
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python -c "from heal_batch.backends.models import resolve_model as r; print(r('smollm2-135m-instruct'))"

# section and its limit in seconds (sum 450 s, plus start-up: under 8 minutes)
status=0
for spec in generate:150 scorer:60 train:120 lmeval:120; do
  section="${spec%%:*}" limit="${spec##*:}"
  start=$(date +%s)
  timeout --kill-after=10 "$limit" python tests/bench/gpu_check.py "$section" \
    >"$LOG_DIR/$section.log" 2>&1
  rc=$?
  echo "== $section: exit $rc after $(( $(date +%s) - start )) s (log $LOG_DIR/$section.log)"
  if ! grep '^RESULT ' "$LOG_DIR/$section.log"; then
    status=1
    tail -n 15 "$LOG_DIR/$section.log"
  fi
done
echo "== summary"
grep -h '^RESULT ' "$LOG_DIR"/*.log
exit $status
