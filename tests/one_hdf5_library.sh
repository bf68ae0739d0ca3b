#!/bin/sh
# Every program that uses HDF5 loads exactly one HDF5 library (Debian's serial build, the one
# libmatio links): two (say libhdf5_openmpi and libhdf5_serial, as ingest once did) share
# symbol names with separate global state.
#   tests/one_hdf5_library.sh BUILD_DIR
set -u
build=${1:?usage: one_hdf5_library.sh BUILD_DIR}
failures=0
for program in train parse_catalog ingest evaluate compare_masters; do
  libraries=$(ldd "$build/$program" | awk '{print $1}' | grep -E '^libhdf5[a-z_]*\.so' | sort -u)
  count=$(printf '%s\n' "$libraries" | grep -c .)
  if [ "$count" -ne 1 ]; then
    echo "FAIL: $program loads $count HDF5 libraries: $(echo $libraries)"
    failures=$((failures + 1))
  else
    echo "$program: $libraries"
  fi
done
exit $((failures > 0))
