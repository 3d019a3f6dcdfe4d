#!/usr/bin/env bash
# Run the GPU check on a machine with its own torch and no package index (README, "GPU check"):
# install the bundle of bench/gpu_prepare.sh into a private folder and run bench/gpu.py from the
# source tree. Arguments go to bench/gpu.py (e.g. --small).
#
#   bash bench/gpu_run.sh [ARGS...]       # GPU_BUNDLE: the bundle's folder (default .gpu)
set -euo pipefail

bundle=${GPU_BUNDLE:-.gpu}
site=${GPU_SITE:-/tmp/posetransfer-site}
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

shopt -s nullglob
cp "$bundle"/wheels/*.whl "$work"/ 2>/dev/null || true
for first in "$bundle"/wheels/*.whl.part-00; do  # wheels cut in parts: join them again
    wheel=${first%.part-00}
    cat "$wheel".part-* > "$work/$(basename "$wheel")"
done
wheels=("$work"/*.whl)
if [ ${#wheels[@]} -gt 0 ]; then
    "$python" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" "${wheels[@]}"
fi
export PYTHONPATH="$site:src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$python" bench/gpu.py "$@"
