"""Build the Lambda deployment zip (Python 3.13 on arm64) without Docker.

    python -m asyncrawl.aws.package --out dist/lambda [--python-version 3.13]
        [--platform manylinux2014_aarch64] [--pip-cache-dir DIR] [--constraint FILE]

pip downloads the project's dependencies (``[project].dependencies`` of ``pyproject.toml``) as
binary wheels for the target (``--platform``, ``--python-version``, ``--implementation cp``,
``--only-binary=:all:``), so aiohttp, multidict, yarl, frozenlist and orjson arrive compiled
for Linux on Graviton whatever machine builds the zip. Then ``src/asyncrawl`` and
``lambda_handler.py`` are copied beside them and the tree is zipped.

What is left out, and why:

* ``__pycache__`` and ``.pyc``: they would be compiled by the building interpreter, not 3.13;
* ``bin/``: console scripts with the build machine's interpreter path in their first line;
* ``*.dist-info/RECORD``, ``INSTALLER``, ``REQUESTED``, ``direct_url.json``: pip's own notes
  about this one installation (the metadata packages read at run time stays).

boto3 and botocore are **included**, although the Lambda runtime has its own: aiobotocore
(under aioboto3) patches botocore's internals and pins it to a narrow range (e.g.
``botocore>=1.40.46,<1.40.62``), while the runtime's copy is whatever version AWS ships that
month. The zip's copies come first on ``sys.path``, so the function runs the versions the
tests ran. They cost about 13 MB of the 50 MB allowed (botocore's service models), which is
the price of never meeting a botocore that aiobotocore does not support.

The zip is reproducible: entries sorted, every timestamp 1980-01-01 00:00, every file mode
0644, the same compression level, so the same inputs give the same bytes and sha256. The
inputs include the versions pip resolves; pass ``--constraint`` (a pip constraints file, e.g.
``pip freeze`` of a tested environment) to pin them.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import AsyncrawlError

__all__ = [
    "MAX_UNZIPPED_BYTES",
    "MAX_ZIPPED_BYTES",
    "PackageError",
    "PackageInfo",
    "build_package",
    "check_lambda_limits",
    "main",
]

#: Lambda's limit on a zip uploaded directly (50 MB).
MAX_ZIPPED_BYTES = 50 * 1024 * 1024
#: Lambda's limit on the unzipped deployment package, layers included (250 MB).
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_PIP_NOTES = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})
_HANDLER = "lambda_handler.py"


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
    with (root / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file).get("project", {})
    dependencies = project.get("dependencies")
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise PackageError(f"{root / 'pyproject.toml'}: [project].dependencies is not a list")
    return dependencies


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
    for path in sorted(build.rglob("*"), reverse=True):
        if path.is_dir() and path.name == "__pycache__":
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
    shutil.copyfile(root / _HANDLER, build / _HANDLER)


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
    platform: str = "manylinux2014_aarch64",
    pip_cache_dir: Path | str | None = None,
    constraint: Path | str | None = None,
) -> PackageInfo:
    """Build the Lambda zip into ``out_dir`` and check it against Lambda's limits.

    The zip is named ``asyncrawl-lambda-py{version}-{arch}.zip``. Raises
    :class:`PackageError` when the project has no ``lambda_handler.py``, pip fails, or the zip
    is too big.
    """
    root = Path(project_root) if project_root is not None else _project_root()
    if not (root / _HANDLER).is_file():
        raise PackageError(f"{root / _HANDLER} is missing: the function's entry point is required")
    if not (root / "src/asyncrawl/__init__.py").is_file():
        raise PackageError(f"{root / 'src/asyncrawl'} is missing: nothing to package")
    requirements = _dependencies(root)
    arch = "arm64" if "aarch64" in platform else "x86_64"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    destination = out / f"asyncrawl-lambda-py{python_version}-{arch}.zip"
    with tempfile.TemporaryDirectory(prefix="asyncrawl-lambda-") as tmp:
        build = Path(tmp) / "build"
        _pip_install(
            build,
            requirements,
            python_version=python_version,
            platform=platform,
            cache_dir=Path(pip_cache_dir) if pip_cache_dir is not None else None,
            constraint=Path(constraint) if constraint is not None else None,
        )
        _prune(build)
        _copy_project(root, build)
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
    parser.add_argument("--python-version", default="3.13", help="Lambda runtime's Python")
    parser.add_argument("--platform", default="manylinux2014_aarch64", help="wheel platform tag")
    parser.add_argument("--project-root", type=Path, default=None, help="repository root")
    parser.add_argument("--pip-cache-dir", type=Path, default=None, help="pip's download cache")
    parser.add_argument("--constraint", type=Path, default=None, help="pip constraints file")
    args = parser.parse_args(argv)
    try:
        info = build_package(
            out_dir=args.out,
            project_root=args.project_root,
            python_version=args.python_version,
            platform=args.platform,
            pip_cache_dir=args.pip_cache_dir,
            constraint=args.constraint,
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
