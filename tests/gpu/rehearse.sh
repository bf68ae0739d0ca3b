#!/bin/bash
# Rehearses tests/gpu/run.sh on a machine without a GPU, in a bare Debian root that has what the
# GPU machine has and nothing more: gcc, cmake, ninja, a Python with PyTorch and its nvidia-*
# wheels (cuDNN in nvidia/cudnn, cuBLAS in nvidia/cu13, NCCL in nvidia/nccl), and a CUDA toolkit
# with nvcc but without cuDNN, cuBLAS or NCCL (the hardest case: all three from the wheels).
# No HDF5, MPI, oneDNN or image libraries. Everything up to the GPU runs is checked for real:
# library discovery, configure, build, the twins' PyTorch references; the GPU tests skip (77),
# so the script ends reporting them skipped, as it must without a GPU.
# Usage (root; needs debootstrap, network for Debian and PyPI, ~5 GB in ROOTFS):
#   tests/gpu/rehearse.sh [ROOTFS]    (default /tmp/gpu-rehearsal; kept for the next run)
# Environment: TORCH_VERSION (default 2.11.0, the GPU machine's), CUDA_TOOLKIT (/usr/local/cuda).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ROOTFS=${1:-/tmp/gpu-rehearsal}
TORCH_VERSION=${TORCH_VERSION:-2.11.0}
TOOLKIT=$(readlink -f "${CUDA_TOOLKIT:-/usr/local/cuda}")
in_root() { chroot "$ROOTFS" env -i PATH=/usr/local/cuda/bin:/usr/bin:/bin:/usr/sbin:/sbin \
  HOME=/root "$@"; }

if [ ! -x "$ROOTFS/opt/py/bin/python" ]; then
  debootstrap --variant=minbase \
    --include=gcc,g++,cmake,ninja-build,python3,python3-dev,python3-venv,ca-certificates,procps \
    bookworm "$ROOTFS" http://deb.debian.org/debian
  mkdir -p "$ROOTFS/usr/local/cuda-toolkit"
  tar -C "$TOOLKIT" -cf - --exclude='*cudnn*' --exclude='*nccl*' --exclude='*cublas*' . |
    tar -C "$ROOTFS/usr/local/cuda-toolkit" -xf -
  ln -sfn cuda-toolkit "$ROOTFS/usr/local/cuda"
  # the wheels are fetched out here, where pip has this machine's certificates and index
  python3 -m pip download -q --only-binary=:all: -d "$ROOTFS/opt/wheels" \
    "torch==$TORCH_VERSION" numpy
  in_root bash -c "python3 -m venv /opt/py &&
    /opt/py/bin/pip install -q --no-index --find-links /opt/wheels torch==$TORCH_VERSION numpy"
fi
mountpoint -q "$ROOTFS/proc" || mount -t proc proc "$ROOTFS/proc"
rm -rf "$ROOTFS/src" && mkdir -p "$ROOTFS/src/main"
(cd "$ROOT" && git ls-files -co --exclude-standard | tar -cf - -T - | tar -C "$ROOTFS/src/main" -xf -)
# the pipeline bundle travels as the device tool's `carry` takes it (tests/gpu/bundle.sh)
[ -d "$ROOT/.gpu-bundle" ] && cp -r "$ROOT/.gpu-bundle" "$ROOTFS/src/main/"
rc=0
in_root PYTHON=/opt/py/bin/python OUT=/src/out FP_COMMIT="$(git -C "$ROOT" rev-parse --short HEAD)" \
  bash /src/main/tests/gpu/run.sh --quick || rc=$?
echo "rehearsal report: $ROOTFS/src/out/gpu_report.md (run.sh exit $rc; 1 is expected: no GPU)"
