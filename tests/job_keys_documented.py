"""Every job-file key a command accepts (its --help table, made from the schema) has a row in
the document users read for it, with the same default: train's keys in jobs/README.md,
parse_catalog's in docs/parse_catalog.md. A key added to a schema without its documentation
fails here.

usage: job_keys_documented.py BUILD_DIR SOURCE_DIR"""
import os
import re
import subprocess
import sys


def schema_keys(program):
    """{key: default} from the program's --help table of job-file keys."""
    text = subprocess.run([program, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True).stdout
    keys = {}
    for line in text.splitlines():
        m = re.match(r"^  ([a-z_]+\.[a-z_0-9]+)\s+(string|int|float|bool|enum)\s+(\S+)", line)
        if m:
            keys[m.group(1)] = m.group(3).strip('"')
    return keys


def documented_rows(path):
    """{key: default column} of the markdown table rows whose first cell names one or more
    `key`s (a row may document several, e.g. "`model.height`, `model.width`")."""
    rows = {}
    for line in open(path, encoding="utf-8"):
        m = re.match(r"^\| ((?:`[a-z_]+\.[a-z_0-9]+`(?:, )?)+) \| [^|]* \| ([^|]*) \|", line)
        if m:
            for key in re.findall(r"`([^`]+)`", m.group(1)):
                rows[key] = m.group(2).strip().strip("`")
    return rows


def same_default(schema, documented):
    """An empty string default reads "(empty)", "" or, for a key that must be set, "required"."""
    if schema == "":
        return documented in ("", '""', "(empty)", "required")
    return documented == schema


def main():
    build, source = sys.argv[1], sys.argv[2]
    failures = []
    for program, doc in (("train", "jobs/README.md"), ("parse_catalog", "docs/parse_catalog.md")):
        keys = schema_keys(os.path.join(build, program))
        rows = documented_rows(os.path.join(source, doc))
        if len(keys) < 10:
            failures.append(f"{program} --help listed only {len(keys)} keys: the table's format "
                            "changed, fix this test")
        for key, default in keys.items():
            if key not in rows:
                failures.append(f"{program}: key {key} has no row in {doc}")
            elif not same_default(default, rows[key]):
                failures.append(f"{program}: key {key}: default {default!r} in the schema, "
                                f"{rows[key]!r} in {doc}")
        print(f"{program}: {len(keys)} keys, {len(rows)} documented rows in {doc}")
    for f in failures:
        print("FAIL: " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
