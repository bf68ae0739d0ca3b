#!/bin/sh
# Every C, C++ and CUDA source under version control is laid out as .clang-format says, by
# clang-format 14 (Debian 12's; other versions lay some constructs out differently, so with
# another version, or none, the check is skipped: exit 77). Fix with
#   git ls-files '*.c' '*.h' '*.cpp' '*.cu' '*.cuh' | xargs clang-format -i
#   tests/format_check.sh SOURCE_DIR
set -u
source_dir=${1:?usage: format_check.sh SOURCE_DIR}
version=$(clang-format --version 2>/dev/null |
  sed -n 's/.*clang-format version \([0-9]*\)\..*/\1/p')
if [ "$version" != 14 ]; then
  echo "SKIP: clang-format 14 not found (found: ${version:-none})"
  exit 77
fi
cd "$source_dir" || exit 1
if ! files=$(git ls-files '*.c' '*.h' '*.cpp' '*.cu' '*.cuh' 2>/dev/null); then
  echo "SKIP: $source_dir is not a git checkout (the check covers the tracked files)"
  exit 77
fi
# shellcheck disable=SC2086
unformatted=$(clang-format --dry-run -Werror $files 2>&1 |
  sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: error:.*/\1/p' | sort -u)
for file in $unformatted; do
  echo "FAIL: $file is not clang-formatted (clang-format --dry-run $file shows where)"
done
count=$(echo "$unformatted" | grep -c .)
echo "$(echo "$files" | wc -w) files checked, $count not formatted"
exit $((count > 0))
