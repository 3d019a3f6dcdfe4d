#!/usr/bin/env bash
# Build the bundle that bench/gpu.py needs on a GPU machine with Python 3.12, its own torch and
# no package index: wheels of the dependencies such an image lacks (README, "GPU check").
#
#   bash bench/gpu_prepare.sh [DEST]      # DEST defaults to .gpu (git-ignored)
#
# Wheels larger than PART_MB (default 48 MiB) are cut into parts NAME.whl.part-00, -01, ..., so
# that no file, and no group of files sent together, exceeds a 64 MiB transfer limit;
# bench/gpu_run.sh joins them again. Versions are this project's pins (pyproject.toml).
set -euo pipefail

dest=${1:-.gpu}
part_mb=${PART_MB:-48}
python=${PYTHON:-python3}
# Not in a stock PyTorch image: the config validator (jsonschema and its own needs), the MS-SSIM
# term (pytorch-msssim), the body model (anny, roma) and the rasteriser (warp-lang). numpy, h5py,
# opencv, PyYAML, tqdm, attrs, matplotlib, torchvision come with such images; carry them too where
# yours lacks them.
core=(jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1
      pytorch-msssim==1.0.0 roma==1.8.0)
full=(anny==0.6.2 warp-lang==1.19.0)

platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$tag")
done

rm -rf "$dest"
mkdir -p "$dest/wheels"
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d "$dest/wheels" "${core[@]}" "${full[@]}"

limit=$((part_mb * 1024 * 1024))
for wheel in "$dest"/wheels/*.whl; do
    if [ "$(stat -c %s "$wheel")" -gt "$limit" ]; then
        split -d -b "$limit" "$wheel" "$wheel.part-"
        rm "$wheel"
    fi
done

echo "bundle in $dest ($(du -sh "$dest" | cut -f1)):"
ls -l "$dest/wheels" | tail -n +2 | awk '{printf "  %6.1f MiB  %s\n", $5 / 1048576, $9}'
echo "on the GPU machine, from the repository root with $dest beside it: bash bench/gpu_run.sh"
