"""DAG-import check on pinned Airflow 2.10 and 3.x, each in its own cached virtual environment.

    python3 .ci/airflow_check.py [--cache ~/.cache/asyncrawl-ci] [--only 2.10]

Each Airflow version gets a virtual environment under the cache directory, named by a hash of
what it installs, and reused while that stays the same (a marker file says the install
finished). Airflow 2.10.1 is installed with its own constraints file (the copy committed in
constraints/, the one MWAA applies); 3.x by exact pins. The versions are checked in parallel;
each runs .ci/dag_check.py on dags/ with the repository's src/ on PYTHONPATH (the DAGs need
only the boto3-only caller). Standard library only: it runs before any project venv exists.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints" / "airflow-2.10.1-python3.11.txt"
VERSIONS: dict[str, list[str]] = {
    "2.10": [
        "apache-airflow==2.10.1",
        "apache-airflow-providers-amazon==8.28.0",
        "--constraint",
        str(CONSTRAINTS),
    ],
    "3.3": [
        "apache-airflow==3.3.2",
        "apache-airflow-providers-amazon==9.39.0",
    ],
}


def _venv(cache: Path, name: str, requirements: list[str], python: str) -> Path:
    spec = "\n".join(requirements) + (
        CONSTRAINTS.read_text() if "--constraint" in requirements else ""
    )
    key = hashlib.sha256(f"{python}\n{spec}".encode()).hexdigest()[:12]
    venv = cache / f"airflow-{name}-{key}"
    ready = venv / ".ready"
    if ready.is_file():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    # Fixed commands built here (this interpreter, our pins), no shell.
    subprocess.run([python, "-m", "venv", str(venv)], check=True)  # noqa: S603
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)  # noqa: S603
    subprocess.run([*pip, *requirements], check=True)  # noqa: S603
    ready.write_text(spec)
    return venv


def _check(cache: Path, name: str, python: str) -> tuple[str, int, str, float]:
    started = time.monotonic()
    try:
        venv = _venv(cache, name, VERSIONS[name], python)
    except subprocess.CalledProcessError as error:
        return name, 1, f"installing Airflow {name} failed: {error}", time.monotonic() - started
    with tempfile.TemporaryDirectory(prefix=f"airflow-{name}-") as home:
        env = {
            **os.environ,
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "PYTHONPATH": str(ROOT / "src"),
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        result = subprocess.run(  # noqa: S603 - the venv's python on our own script
            [str(venv / "bin" / "python"), str(ROOT / ".ci" / "dag_check.py"), str(ROOT / "dags")],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=600,
        )
    output = (result.stdout + result.stderr).strip()
    return name, result.returncode, output, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "asyncrawl-ci")
    parser.add_argument("--only", choices=sorted(VERSIONS), action="append")
    parser.add_argument("--python", default=shutil.which("python3.11") or sys.executable)
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    names = args.only or sorted(VERSIONS)
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        results = list(pool.map(lambda n: _check(args.cache, n, args.python), names))
    failed = 0
    for name, code, output, seconds in results:
        verdict = "ok" if code == 0 else "FAILED"
        print(f"== Airflow {name}: {verdict} ({seconds:.0f} s)")
        if output:
            print(output)
        failed += code != 0
    print(f"airflow-check: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
