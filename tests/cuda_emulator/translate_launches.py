#!/usr/bin/env python3
"""Rewrites a CUDA source for the host emulator (tests/cuda_emulator/README.md):

  kernel<T><<<grid, block, shared, stream>>>(a, b)
    -> emu::launch(emu::config(grid, block, shared, stream), "kernel<T>", &kernel<T>, a, b)
  extern __shared__ double name[];
    -> double *name = (double *)emu::dynamic_shared();

Usage: translate_launches.py SOURCE.cu OUTPUT.cpp. Anything else is copied unchanged, with a
#line directive so that compiler messages name the original file and line."""
import re
import sys

EXTERN_SHARED = re.compile(r"extern\s+__shared__\s+([\w:]+)\s+(\w+)\s*\[\s*\]\s*;")


def kernel_start(text, end):
    """Start of the kernel expression ending just before `end` (a name, maybe <template args>)."""
    i = end
    while i > 0 and text[i - 1].isspace():
        i -= 1
    if text[i - 1] == ">":
        depth = 0
        while True:
            i -= 1
            if text[i] == ">":
                depth += 1
            elif text[i] == "<":
                depth -= 1
                if depth == 0:
                    break
    while i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_:"):
        i -= 1
    return i


def translate(text):
    out, pos = [], 0
    while True:
        launch = text.find("<<<", pos)
        if launch < 0:
            out.append(text[pos:])
            return "".join(out)
        start = kernel_start(text, launch)
        kernel = " ".join(text[start:launch].split())
        close = text.index(">>>", launch)
        geometry = text[launch + 3:close]
        paren = close + 3
        while text[paren].isspace():
            paren += 1
        if text[paren] != "(":
            sys.exit(f"translate_launches: no arguments after the launch of {kernel}")
        after = paren + 1
        rest = text[after:].lstrip()
        separator = "" if rest.startswith(")") else ", "
        out.append(text[pos:start])
        # keep the line count: the launch's own newlines stay inside the call
        newlines = "\n" * text[start:after].count("\n")
        out.append(f'emu::launch(emu::config({geometry}), "{kernel}", &{kernel}{separator}{newlines}')
        pos = after


def main():
    source, output = sys.argv[1], sys.argv[2]
    with open(source) as f:
        text = f.read()
    text = EXTERN_SHARED.sub(r"\1 *\2 = (\1 *)emu::dynamic_shared();", text)
    with open(output, "w") as f:
        f.write(f'#line 1 "{source}"\n' + translate(text))


if __name__ == "__main__":
    main()
