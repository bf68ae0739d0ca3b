"""How commands choose their compute precision, on this CPU and on lesser ones simulated with
oneDNN's ONEDNN_MAX_CPU_ISA: auto takes bf16 only where the CPU has AMX-BF16, or is an AMD one
with AVX512-BF16 (on Intel's AVX512-BF16 alone oneDNN's bf16 is native but slower than f32;
on AMD's Zen 4 it is faster: results/README.md), an explicit bf16 runs with AVX512-BF16 or
AMX and is refused without them with a clear error (exit 1), and no configuration runs a oneDNN
reference primitive. Uses `bench` on a tiny model.

usage: precision_choice.py BUILD_DIR
"""
import os
import re
import subprocess
import sys

TINY = ["--arch", "r18", "--height", "32", "--width", "64", "--batch", "2", "--warmup", "0",
        "--steps", "1", "--infer-batches", "1", "--threads", "2"]


def bench(build, precision, isa=None):
    env = dict(os.environ)
    if isa:
        env["ONEDNN_MAX_CPU_ISA"] = isa
    result = subprocess.run([os.path.join(build, "bench"), *TINY, "--precision", precision],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(f"ONEDNN_MAX_CPU_ISA={isa or '(native)'} --precision {precision}: exit "
          f"{result.returncode}\n  " + result.stdout.strip().replace("\n", "\n  "))
    return result.returncode, result.stdout


def cpu_flag(*names):
    flags = open("/proc/cpuinfo").read()
    return any(re.search(rf"\b{name}\b", flags) for name in names)


def amd():
    return re.search(r"^vendor_id\s*:\s*AuthenticAMD", open("/proc/cpuinfo").read(), re.M)


def main():
    build = os.path.abspath(sys.argv[1])
    failures = []

    def expect(condition, what):
        if not condition:
            failures.append(what)

    # (isa limit, bf16 runs natively under it, bf16 is what auto takes under it)
    amd_bf16 = bool(amd()) and cpu_flag("avx512_bf16")
    cases = [(None, cpu_flag("avx512_bf16", "amx_bf16"), cpu_flag("amx_bf16") or amd_bf16),
             ("AVX512_CORE_BF16", cpu_flag("avx512_bf16", "amx_bf16"), amd_bf16),
             ("AVX512_CORE", False, False), ("AVX2", False, False)]
    for isa, native, preferred in cases:
        code, out = bench(build, "auto", isa)
        expect(code == 0, f"{isa}: auto failed")
        expect(f"precision={'bf16' if preferred else 'fp32'} " in out,
               f"{isa}: auto did not take {'bf16' if preferred else 'fp32'}")
        expect("reference_primitives=0" in out, f"{isa}: auto used reference primitives")
        code, out = bench(build, "bf16", isa)
        if native:
            expect(code == 0 and "precision=bf16 " in out and "train_img_s=" in out and
                   "infer_img_s=" in out, f"{isa}: explicit bf16 did not run")
            expect("reference_primitives=0" in out, f"{isa}: bf16 used reference primitives")
        else:
            expect(code == 1 and "is not available on backend" in out,
                   f"{isa}: explicit bf16 was not refused with exit 1 and a reason")
    code, out = bench(build, "fp16")
    expect(code == 1 and "precision fp16" in out and "is not available on backend cpu" in out and
           "does not compute in f16" in out, "fp16 on the CPU was not refused with its reason")
    code, out = bench(build, "fp8")
    expect(code == 1 and "must be auto, fp32, bf16 or fp16" in out,
           "an unknown precision was accepted")
    for failure in failures:
        print("FAIL:", failure)
    print("precision choice: " + ("FAIL" if failures else "ok"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
