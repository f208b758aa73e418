"""Cold start of the Lambda package: ``import lambda_handler`` from the unzipped x86_64 zip.

    python benchmarks/lambda_cold_import.py [--zip dist/lambda/asyncrawl-lambda-py3.13-x86_64.zip]
        [--runs 7]

Builds the x86_64 zip when ``--zip`` is not given (the one this machine can run), unzips it,
and times ``import lambda_handler`` in a fresh Python 3.13 process per run, as a cold start
does: ``-I -S`` (nothing from this machine's site-packages) and ``-B`` (``/var/task`` is
read-only, so nothing can be written beside the sources). It then removes every ``__pycache__``
and times the same import again: that is the zip without bytecode, where every cold start
compiles ~600 modules. Prints the median and the spread of each; the target is <= 0.7 s with
bytecode. On a shared, loaded machine the figures rise with the load: compare the two.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from asyncrawl.aws.package import build_package, find_target_python

_TIMED_IMPORT = (
    "import sys, time; sys.path.insert(0, sys.argv[1]); t = time.perf_counter(); "
    "import lambda_handler; print(time.perf_counter() - t)"
)
TARGET_S = 0.7


def _time_imports(python: str, task_root: Path, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        # Our own interpreter and script, fixed arguments, no shell.
        result = subprocess.run(  # noqa: S603
            [python, "-I", "-S", "-B", "-c", _TIMED_IMPORT, str(task_root)],
            capture_output=True,
            text=True,
            check=True,
            env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"},
        )
        times.append(float(result.stdout.strip()))
    return times


def _summary(times: list[float]) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "max_s": round(max(times), 3),
    }


def main() -> int:
    """Build (or take) the zip, time the imports, print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, default=None, help="an x86_64 package to measure")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    python = find_target_python("3.13")
    with tempfile.TemporaryDirectory(prefix="asyncrawl-cold-") as tmp:
        work = Path(tmp)
        package = args.zip
        if package is None:
            package = build_package(out_dir=work / "dist", arch="x86_64").path
        task = work / "task"
        with zipfile.ZipFile(package) as archive:
            archive.extractall(task)
        with_pyc = _time_imports(python, task, args.runs)
        for cache in sorted(task.rglob("__pycache__"), reverse=True):
            shutil.rmtree(cache)
        without_pyc = _time_imports(python, task, args.runs)
    report = {
        "zip": str(package),
        "python": python,
        "runs": args.runs,
        "with_pyc": _summary(with_pyc),
        "without_pyc": _summary(without_pyc),
        "target_s": TARGET_S,
        "speedup": round(statistics.median(without_pyc) / statistics.median(with_pyc), 2),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
