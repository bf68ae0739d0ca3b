#!/usr/bin/env bash
# One-step set-up on a fresh Debian machine: installs the Debian packages the
# project needs (cmake/debian-packages.txt) if any is missing, configures and
# builds into build/ (or $BUILD_DIR), then
#   --demo  ingests a small part of CCP and trains and evaluates jobs/demo.ini
#   --test  runs the whole test suite with ctest, a test per core at a time
# Extra arguments after the mode go to ctest (--test) or are ignored.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
build_dir="${BUILD_DIR:-build}"
mode="${1:-}"

sudo_cmd=""
if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
missing=()
while read -r package; do
  case "$package" in ''|'#'*) continue ;; esac
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done < cmake/debian-packages.txt
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing Debian packages: ${missing[*]}"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# h5py reads our zstd-compressed masks through PyPI's hdf5plugin (Debian's
# python3-hdf5plugin ships no compiled filters). Only the analyst-facing tests need it.
if ! /usr/bin/python3 -c "import hdf5plugin" 2>/dev/null; then
  /usr/bin/python3 -m pip install -q --break-system-packages hdf5plugin \
    || echo "warning: could not install hdf5plugin from PyPI; the h5py tests will be skipped"
fi

echo "== configuring and building in $build_dir"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
cmake --build "$build_dir" -j "$(nproc)"

export CCP_DIR="${CCP_DIR:-$root/../shared/data/ccp}"
case "$mode" in
  --test)
    shift
    cd "$build_dir"
    # as many tests at once as there are cores: tests that share files hold a RESOURCE_LOCK
    ctest --output-on-failure --timeout 1500 -j "$(nproc)" "$@"
    ;;
  --demo)
    bash "$root/jobs/demo.sh" "$build_dir"
    ;;
  "") ;;
  *) echo "usage: cmake/bootstrap.sh [--demo|--test [ctest args]]" >&2; exit 2 ;;
esac
