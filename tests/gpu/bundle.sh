#!/bin/bash
# Makes the pipeline bundle that lets tests/gpu/run.sh run `train` and `parse_catalog` end to end
# on the GPU machine, which has no HDF5, MPI, oneDNN or image libraries and no installer: on a
# machine with our Debian packages and the CUDA toolkit (nvcc, cuDNN, cuBLAS, NCCL), it
#   1. builds train, evaluate, parse_catalog, compare_masters and the NCCL collective test
#      (Release, sm_90 and sm_80; and ingest, run here for the data);
#   2. collects every shared library they load except glibc's and CUDA's own (cudart, cuDNN,
#      cuBLAS, NCCL: the GPU machine's wheels and toolkit provide those), the gcc runtime apart
#      (used only where the machine has none), Open MPI's component plugins (a singleton
#      process needs no launcher), and the highest glibc symbol version they need;
#   3. adds the data: CCP ingested at 288x192 (the first 64 annotated photos, for train) and
#      the first 256 CCP photos (JPEG, for parse_catalog);
#   4. writes it all as one archive, BUNDLE_DIR/pipeline.tar.xz (about 40 MB).
# BUNDLE_DIR defaults to .gpu-bundle in the repository root (ignored by git); name it in the
# device tool's `carry` and run.sh finds it there. tests/gpu/pipeline.sh is what runs it.
# Usage: tests/gpu/bundle.sh [BUNDLE_DIR]   Environment: CCP_DIR (default ../shared/data/ccp)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUNDLE_DIR=$(mkdir -p "${1:-$ROOT/.gpu-bundle}" && cd "${1:-$ROOT/.gpu-bundle}" && pwd)
CCP=${CCP_DIR:-$ROOT/../shared/data/ccp}
BUILD=$ROOT/build-bundle
mkdir -p "$BUILD"
[ -d "$CCP/photos" ] || { echo "bundle.sh: no CCP photos in '$CCP' (set CCP_DIR)" >&2; exit 1; }

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CUDA_ARCHITECTURES=80;90" \
  >"$BUILD/configure.log" 2>&1 || { cat "$BUILD/configure.log"; exit 1; }
grep -q 'CUDA toolkit with cuDNN, cuBLAS and NCCL found' "$BUILD/configure.log" || {
  echo "bundle.sh: this machine's build has no CUDA backend (see $BUILD/configure.log)" >&2
  exit 1
}
cmake --build "$BUILD" -j "$(nproc)" --target train evaluate parse_catalog compare_masters \
  test_collective_nccl ingest \
  >"$BUILD/build.log" 2>&1 || { grep -m 10 -A 5 -E 'error|Error' "$BUILD/build.log"; exit 1; }

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/lib" "$STAGE/gcc-runtime" "$STAGE/data/photos"
cp "$BUILD/train" "$BUILD/evaluate" "$BUILD/parse_catalog" "$BUILD/compare_masters" \
  "$BUILD/tests/collective/test_collective_nccl" "$STAGE/bin/"
MPI_LIB=$(ldd "$BUILD/parse_catalog" | awk '/libmpi\.so/ {print $3}')
MPI_PLUGINS=$(dirname "$MPI_LIB")/openmpi/lib/openmpi3
[ -d "$MPI_PLUGINS" ] || MPI_PLUGINS=$(find /usr/lib -type d -name openmpi3 | head -1)
cp -r "$MPI_PLUGINS" "$STAGE/openmpi-plugins"

# The libraries the programs and the plugins load, resolved here. Plugins whose own
# libraries are not installed here (network fabrics) fail to load here too: not needed.
glibc_libraries='/(libc|libm|libpthread|libdl|librt|libresolv|libutil|ld-linux[^/]*)\.so'
skip="$glibc_libraries|libcuda\.so|libcudart|libcudnn|libcublas|libnccl"
for object in "$STAGE"/bin/* "$STAGE"/openmpi-plugins/*.so; do
  ldd "$object" 2>/dev/null | awk '/=> \// {print $3}'
done | sort -u | grep -vE "$skip" | while read -r library; do
  case $(basename "$library") in
    libstdc++.so.*|libgcc_s.so.*|libgomp.so.*) cp -L "$library" "$STAGE/gcc-runtime/" ;;
    *) cp -L "$library" "$STAGE/lib/" ;;
  esac
done
glibc=$(objdump -T "$STAGE"/bin/* "$STAGE"/lib/* "$STAGE"/openmpi-plugins/*.so 2>/dev/null |
  grep -oE 'GLIBC_[0-9]+\.[0-9]+' | sort -t. -k2 -n -u | tail -1)

"$BUILD/ingest" ccp --root "$CCP" --limit 64 --height 288 --width 192 \
  --out "$STAGE/data/ccp_288x192.h5" >"$BUILD/ingest.log" 2>&1 ||
  { tail -5 "$BUILD/ingest.log"; exit 1; }
rm -f "$STAGE/data/ccp_288x192_tags.h5"
mapfile -t photos < <(find "$CCP/photos" -maxdepth 1 -name '*.jpg' | sort)
cp "${photos[@]:0:256}" "$STAGE/data/photos/"

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
git -C "$ROOT" diff --quiet HEAD 2>/dev/null || commit="$commit (with local changes)"
cat >"$STAGE/BUNDLE" <<EOF
commit $commit
made $(date -u +%Y-%m-%dT%H:%MZ) on $(. /etc/os-release && echo "$PRETTY_NAME"),
  $(ldd --version | head -1)
needs glibc ${glibc#GLIBC_} or later
libraries $(ls "$STAGE/lib" | wc -l) + gcc runtime $(ls "$STAGE/gcc-runtime" | tr '\n' ' ')
photos $(ls "$STAGE/data/photos" | wc -l); dataset data/ccp_288x192.h5 (ingest ccp --limit 64)
EOF
tar -C "$STAGE" -cf - . | xz -T "$(nproc)" -6 >"$BUNDLE_DIR/pipeline.tar.xz.part"
mv "$BUNDLE_DIR/pipeline.tar.xz.part" "$BUNDLE_DIR/pipeline.tar.xz"
cat "$STAGE/BUNDLE"
echo "bundle: $BUNDLE_DIR/pipeline.tar.xz ($(du -h "$BUNDLE_DIR/pipeline.tar.xz" | cut -f1))"
