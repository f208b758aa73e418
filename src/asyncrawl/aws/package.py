"""Build the Lambda deployment zip (Python 3.13, arm64 or x86_64) without Docker.

    python -m asyncrawl.aws.package --out dist/lambda [--arch arm64|x86_64]
        [--python-version 3.13] [--target-python PATH] [--lock FILE] [--pip-cache-dir DIR]

pip downloads the function's dependencies (``[project].dependencies`` plus the ``crawler``
extra of ``pyproject.toml``, pinned by the committed lock file ``requirements/lambda.lock``) as
binary wheels for the target (``--platform``, ``--python-version``, ``--implementation cp``,
``--only-binary=:all:``), so aiohttp, multidict, yarl, frozenlist and orjson arrive compiled
for Linux on the chosen CPU whatever machine builds the zip. The architecture is in the file
name (``asyncrawl-lambda-py3.13-arm64.zip``) and must match the function's ``Architectures``
(deploy/template.yaml): an arm64 zip on an x86_64 function fails at init with ``No module named
'orjson.orjson'``.

Bytecode: every module is compiled by the *target* interpreter (a Python 3.13 found on PATH, under
pyenv, or given by ``--target-python`` / ``ASYNCRAWL_TARGET_PYTHON``; the build fails naming
those if there is none) in ``unchecked-hash`` mode. ``/var/task`` is read-only, so without
``.pyc`` files every cold start compiles ~600 modules (``import lambda_handler`` 2.0-2.5 s
instead of ~0.6 s); unchecked-hash files are used without comparing the source's time, which
the zip fixes at 1980 anyway. They are reproducible: compiled with ``PYTHONHASHSEED=0`` (set
constants are ordered by string hashes) and file names rooted at ``/var/task``, not the build
directory. Bytecode depends on the Python version only, not on the CPU.

What is left out, and why:

* ``asyncrawl/testing/`` and the command-line-only modules (``cli``, ``demo``, ``progress``,
  ``__main__``): the handler imports none of them, and ``demo`` needs ``testing``;
* rich, pygments, markdown-it, mdurl (~6.5 MB): the CLI's progress bar; they are not in the
  ``crawler`` extra, and are removed if a dependency ever brings them;
* dependencies' ``tests``/``test`` folders;
* ``bin/``: console scripts with the build machine's interpreter path in their first line;
* ``*.dist-info/RECORD``, ``INSTALLER``, ``REQUESTED``, ``direct_url.json``: pip's own notes
  about this one installation (the metadata packages read at run time stays).

boto3 and botocore are **included**, although the Lambda runtime has its own: aiobotocore
(under aioboto3) patches botocore's internals and pins it to a narrow range, while the
runtime's copy is whatever version AWS ships that month. The zip's copies come first on
``sys.path``, so the function runs the versions the tests ran (~13 MB of the 50 MB allowed).

The zip is reproducible: entries sorted, every timestamp 1980-01-01 00:00, every file mode
0644, the same compression level, so the same inputs (the lock file pins them) give the same
bytes and sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import AsyncrawlError

__all__ = [
    "ARCHITECTURES",
    "MAX_UNZIPPED_BYTES",
    "MAX_ZIPPED_BYTES",
    "PackageError",
    "PackageInfo",
    "build_package",
    "check_lambda_limits",
    "find_target_python",
    "main",
]

#: Lambda's limit on a zip uploaded directly (50 MB).
MAX_ZIPPED_BYTES = 50 * 1024 * 1024
#: Lambda's limit on the unzipped deployment package, layers included (250 MB).
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
#: Lambda's architecture name -> the manylinux wheel platform pip downloads for it.
ARCHITECTURES: Mapping[str, str] = {
    "arm64": "manylinux2014_aarch64",
    "x86_64": "manylinux2014_x86_64",
}

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_PIP_NOTES = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})
_HANDLER = "lambda_handler.py"
_LOCK = Path("requirements/lambda.lock")
# The function's code runs from here; tracebacks name these paths, not the build directory.
_TASK_ROOT = "/var/task"
# The command line's progress bar and what it pulls in: never imported by the handler.
_CLI_ONLY_DISTRIBUTIONS = ("rich", "pygments", "markdown_it", "mdurl")
# asyncrawl's own modules that only the command line uses (demo needs asyncrawl.testing).
_CLI_ONLY_MODULES = ("cli.py", "demo.py", "progress.py", "__main__.py")
_TEST_FOLDERS = frozenset({"tests", "test"})
_TARGET_PYTHON_ENV = "ASYNCRAWL_TARGET_PYTHON"


class PackageError(AsyncrawlError):
    """The package cannot be built, or breaks Lambda's size limits."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PackageInfo:
    """The built zip: where it is, how big (zipped and unzipped), and its sha256."""

    path: Path
    size: int
    unzipped_size: int
    sha256: str
    files: int


def _project_root() -> Path:
    # An editable install runs from the repository: src/asyncrawl/aws/package.py -> root.
    here = Path(__file__).resolve().parents[3]
    for candidate in (Path.cwd(), here):
        if (candidate / "pyproject.toml").is_file() and (candidate / "src/asyncrawl").is_dir():
            return candidate
    raise PackageError(
        "cannot find the project (pyproject.toml beside src/asyncrawl); "
        "run from the repository root or pass --project-root"
    )


def _dependencies(root: Path) -> list[str]:
    """The function's requirements: the base dependencies plus the ``crawler`` extra."""
    with (root / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file).get("project", {})
    dependencies = project.get("dependencies", [])
    crawler = project.get("optional-dependencies", {}).get("crawler", [])
    requirements = [*dependencies, *crawler]
    if not all(isinstance(d, str) for d in requirements):
        raise PackageError(
            f"{root / 'pyproject.toml'}: [project].dependencies and the 'crawler' extra "
            "must be lists of requirement strings"
        )
    return requirements


def _python_version_of(executable: str) -> str | None:
    try:
        # A Python interpreter we located ourselves, fixed arguments, no shell.
        result = subprocess.run(  # noqa: S603
            [executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def find_target_python(version: str, *, explicit: str | Path | None = None) -> str:
    """The path of a Python ``version`` interpreter to compile the bytecode with.

    Looks at ``explicit`` (``--target-python``), then ``$ASYNCRAWL_TARGET_PYTHON``, then
    ``python{version}`` on PATH, then pyenv's ``~/.pyenv/versions/{version}.*``. Raises
    :class:`PackageError` naming those places when none is that version: bytecode compiled by
    another version is ignored by the runtime (its magic number differs), which would silently
    bring the slow cold start back.
    """
    candidates: list[str] = []
    chosen = explicit if explicit is not None else os.environ.get(_TARGET_PYTHON_ENV)
    if chosen:
        candidates.append(str(chosen))
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(on_path)
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if pyenv.is_dir():

        def patch_level(path: Path) -> tuple[int, ...]:
            return tuple(int(n) if n.isdigit() else -1 for n in path.name.split("."))

        found = [p for p in pyenv.glob(f"{version}.*") if re.fullmatch(r"[\d.]+", p.name)]
        for install in sorted(found, key=patch_level, reverse=True):
            candidates.append(str(install / "bin" / f"python{version}"))
    for candidate in candidates:
        if _python_version_of(candidate) == version:
            return candidate
    if chosen:
        raise PackageError(
            f"{chosen} is not a working Python {version} (from --target-python or "
            f"{_TARGET_PYTHON_ENV}); the bytecode must be compiled by the Lambda runtime's version"
        )
    raise PackageError(
        f"no Python {version} found (looked for python{version} on PATH and under {pyenv}); "
        f"the .pyc files must be compiled by the Lambda runtime's version: install it "
        f"(e.g. `pyenv install {version}`) or pass --target-python / set {_TARGET_PYTHON_ENV}"
    )


def _pip_install(
    target: Path,
    requirements: Sequence[str],
    *,
    python_version: str,
    platform: str,
    cache_dir: Path | None,
    constraint: Path | None,
) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--platform",
        platform,
        "--target",
        str(target),
    ]
    if cache_dir is not None:
        command += ["--cache-dir", str(cache_dir)]
    if constraint is not None:
        command += ["--constraint", str(constraint)]
    # The command is this interpreter's pip with arguments built above, no shell.
    result = subprocess.run(  # noqa: S603
        [*command, *requirements], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise PackageError(
            f"pip could not install the dependencies for Python {python_version} on {platform}:\n"
            + (result.stderr.strip() or result.stdout.strip())
        )


def _prune(build: Path) -> None:
    shutil.rmtree(build / "bin", ignore_errors=True)
    for name in _CLI_ONLY_DISTRIBUTIONS:
        shutil.rmtree(build / name, ignore_errors=True)
        for info in build.glob(f"{name}-*.dist-info"):
            shutil.rmtree(info)
    for path in sorted(build.rglob("*"), reverse=True):
        if not path.exists():  # inside a folder removed a moment ago
            continue
        if path.is_dir() and (path.name == "__pycache__" or path.name in _TEST_FOLDERS):
            shutil.rmtree(path)
        elif path.is_file() and (
            path.suffix in (".pyc", ".pyo")
            or (path.parent.name.endswith(".dist-info") and path.name in _PIP_NOTES)
        ):
            path.unlink()


def _copy_project(root: Path, build: Path) -> None:
    shutil.copytree(
        root / "src/asyncrawl",
        build / "asyncrawl",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".DS_Store"),
    )
    shutil.rmtree(build / "asyncrawl" / "testing")
    for module in _CLI_ONLY_MODULES:
        (build / "asyncrawl" / module).unlink(missing_ok=True)
    shutil.copyfile(root / _HANDLER, build / _HANDLER)


def _compile(build: Path, target_python: str) -> None:
    """Compile every module with the target interpreter, reproducibly, for a read-only task root."""
    command = [
        target_python,
        "-m",
        "compileall",
        "-q",
        "--invalidation-mode",
        "unchecked-hash",
        "-s",
        str(build),
        "-p",
        _TASK_ROOT,
        str(build),
    ]
    # Set constants in code objects are ordered by their strings' hashes: fix the seed.
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    # The target interpreter found by find_target_python, fixed arguments, no shell.
    result = subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, check=False, env=environment
    )
    if result.returncode != 0:
        raise PackageError(
            f"{target_python} could not compile the package:\n"
            + (result.stdout.strip() or result.stderr.strip())
        )


def _write_zip(build: Path, destination: Path) -> int:
    """Zip ``build`` reproducibly into ``destination``; returns the unzipped size."""
    files = sorted(
        (path.relative_to(build).as_posix(), path) for path in build.rglob("*") if path.is_file()
    )
    unzipped = 0
    partial = destination.with_name(destination.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, path in files:
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.create_system = 3  # Unix, so external_attr holds the mode below
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            unzipped += len(data)
            archive.writestr(info, data, compresslevel=9)
    os.replace(partial, destination)
    return unzipped


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_lambda_limits(
    zip_path: Path | str,
    *,
    max_zipped: int = MAX_ZIPPED_BYTES,
    max_unzipped: int = MAX_UNZIPPED_BYTES,
) -> tuple[int, int]:
    """``(zipped, unzipped)`` sizes of ``zip_path``; raises :class:`PackageError` past the limits.

    Lambda refuses a directly uploaded zip over 50 MB and a package over 250 MB unzipped.
    """
    path = Path(zip_path)
    zipped = path.stat().st_size
    with zipfile.ZipFile(path) as archive:
        unzipped = sum(info.file_size for info in archive.infolist())
    if zipped > max_zipped:
        raise PackageError(
            f"{path}: {zipped:,} bytes zipped exceeds Lambda's {max_zipped:,}; "
            "upload through S3 or move dependencies to a layer"
        )
    if unzipped > max_unzipped:
        raise PackageError(
            f"{path}: {unzipped:,} bytes unzipped exceeds Lambda's {max_unzipped:,}; "
            "drop dependencies or use a container image"
        )
    return zipped, unzipped


def build_package(
    *,
    out_dir: Path | str,
    project_root: Path | str | None = None,
    python_version: str = "3.13",
    arch: str = "arm64",
    pip_cache_dir: Path | str | None = None,
    lock: Path | str | None = None,
    target_python: Path | str | None = None,
) -> PackageInfo:
    """Build the Lambda zip into ``out_dir`` and check it against Lambda's limits.

    The zip is named ``asyncrawl-lambda-py{version}-{arch}.zip``; ``arch`` is Lambda's name,
    ``arm64`` or ``x86_64``. ``lock`` defaults to the project's ``requirements/lambda.lock``.
    Raises :class:`PackageError` when the project has no ``lambda_handler.py``, the lock file
    or the target Python is missing, pip or the compiler fails, or the zip is too big.
    """
    root = Path(project_root) if project_root is not None else _project_root()
    if not (root / _HANDLER).is_file():
        raise PackageError(f"{root / _HANDLER} is missing: the function's entry point is required")
    if not (root / "src/asyncrawl/__init__.py").is_file():
        raise PackageError(f"{root / 'src/asyncrawl'} is missing: nothing to package")
    if arch not in ARCHITECTURES:
        raise PackageError(f"arch: {arch!r} is not one of Lambda's {', '.join(ARCHITECTURES)}")
    lock_file = Path(lock) if lock is not None else root / _LOCK
    if not lock_file.is_file():
        raise PackageError(
            f"{lock_file} is missing: the build installs the versions it pins; "
            "regenerate it with `make lock`"
        )
    compiler = find_target_python(python_version, explicit=target_python)
    requirements = _dependencies(root)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    destination = out / f"asyncrawl-lambda-py{python_version}-{arch}.zip"
    with tempfile.TemporaryDirectory(prefix="asyncrawl-lambda-") as tmp:
        build = Path(tmp) / "build"
        _pip_install(
            build,
            requirements,
            python_version=python_version,
            platform=ARCHITECTURES[arch],
            cache_dir=Path(pip_cache_dir) if pip_cache_dir is not None else None,
            constraint=lock_file,
        )
        _prune(build)
        _copy_project(root, build)
        _compile(build, compiler)
        unzipped = _write_zip(build, destination)
        files = sum(1 for path in build.rglob("*") if path.is_file())
    size, _ = check_lambda_limits(destination)
    return PackageInfo(
        path=destination,
        size=size,
        unzipped_size=unzipped,
        sha256=_sha256(destination),
        files=files,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """The ``python -m asyncrawl.aws.package`` command; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m asyncrawl.aws.package",
        description="Build the AWS Lambda zip (no Docker needed).",
    )
    parser.add_argument("--out", required=True, type=Path, help="directory for the zip")
    parser.add_argument(
        "--arch", default="arm64", choices=sorted(ARCHITECTURES), help="Lambda architecture"
    )
    parser.add_argument("--python-version", default="3.13", help="Lambda runtime's Python")
    parser.add_argument(
        "--target-python", default=None, help="that Python's interpreter, to compile bytecode"
    )
    parser.add_argument("--project-root", type=Path, default=None, help="repository root")
    parser.add_argument("--pip-cache-dir", type=Path, default=None, help="pip's download cache")
    parser.add_argument("--lock", type=Path, default=None, help="lock file (pip constraints)")
    args = parser.parse_args(argv)
    try:
        info = build_package(
            out_dir=args.out,
            project_root=args.project_root,
            python_version=args.python_version,
            arch=args.arch,
            pip_cache_dir=args.pip_cache_dir,
            lock=args.lock,
            target_python=args.target_python,
        )
    except PackageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"zip:      {info.path}")
    print(f"size:     {info.size:,} bytes (limit {MAX_ZIPPED_BYTES:,})")
    print(f"unzipped: {info.unzipped_size:,} bytes (limit {MAX_UNZIPPED_BYTES:,})")
    print(f"files:    {info.files}")
    print(f"sha256:   {info.sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
