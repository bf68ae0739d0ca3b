"""Every shipped parse_catalog job file loads and validates (`--check`), and
--help lists the keys. Usage: job_files.py PARSE_CATALOG JOBFILE..."""
import subprocess
import sys


def main():
    program, jobs = sys.argv[1], sys.argv[2:]
    assert jobs, "no job files in jobs/catalog"
    for job in jobs:
        result = subprocess.run([program, job, "--check"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        assert result.returncode == 0, f"{job}:\n{result.stdout}"
        assert "[catalog]" in result.stdout and "source =" in result.stdout, result.stdout
        print(f"{job}: ok")
    result = subprocess.run([program, "--help"], stdout=subprocess.PIPE, text=True)
    assert result.returncode == 0
    for key in ("catalog.source", "model.checkpoint", "output.dir", "schedule.chunk",
                "prior.table", "nightly.previous"):
        assert key in result.stdout, f"--help lacks {key}"
    result = subprocess.run([program, jobs[0], "--check", "schedule.chunk=0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert result.returncode == 1 and "schedule.chunk" in result.stdout, result.stdout


main()
