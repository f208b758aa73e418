"""The Lambda zip: arm64 / CPython 3.13 binaries, the handler, Lambda's limits, reproducible.

Building downloads wheels from the package index with pip (the one place a test reaches past
loopback: the package registry is how the zip gets its dependencies). pip's download cache is
kept inside the virtual environment, so only the first run on a machine downloads.
"""

from __future__ import annotations

import hashlib
import io
import re
import sys
import zipfile
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from asyncrawl.aws.package import (
    MAX_UNZIPPED_BYTES,
    MAX_ZIPPED_BYTES,
    PackageError,
    PackageInfo,
    build_package,
    check_lambda_limits,
    main,
)

ROOT = Path(__file__).resolve().parents[1]
PIP_CACHE = Path(sys.prefix) / ".cache" / "asyncrawl-lambda-pip"
ZIP_NAME = "asyncrawl-lambda-py3.13-arm64.zip"


@dataclass(frozen=True)
class Built:
    zip: Path
    printed: str


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The zip built once through the command line, as ``make package`` builds it."""
    out = tmp_path_factory.mktemp("lambda")
    printed = io.StringIO()
    with redirect_stdout(printed):
        code = main(
            ["--out", str(out), "--project-root", str(ROOT), "--pip-cache-dir", str(PIP_CACHE)]
        )
    assert code == 0
    return Built(zip=out / ZIP_NAME, printed=printed.getvalue())


@pytest.fixture(scope="module")
def built(build: Built) -> Path:
    return build.zip


@pytest.fixture(scope="module")
def names(built: Path) -> list[str]:
    with zipfile.ZipFile(built) as archive:
        return archive.namelist()


def test_the_zip_fits_lambdas_limits(built: Path) -> None:
    zipped, unzipped = check_lambda_limits(built)
    assert 0 < zipped <= MAX_ZIPPED_BYTES
    assert zipped < unzipped <= MAX_UNZIPPED_BYTES


def test_the_zip_holds_the_handler_and_the_package(names: list[str]) -> None:
    assert "lambda_handler.py" in names
    assert "asyncrawl/__init__.py" in names
    assert "asyncrawl/py.typed" in names
    assert "asyncrawl/aws/event.py" in names
    # The runtime imports from the zip's root: nothing may sit under src/.
    assert not any(name.startswith("src/") for name in names)


def test_compiled_dependencies_are_for_cpython_313_on_arm64(names: list[str]) -> None:
    assert any(re.fullmatch(r"aiohttp/.*\.cpython-313-aarch64-linux-gnu\.so", n) for n in names)
    assert any(re.fullmatch(r"orjson/.*\.cpython-313-aarch64-linux-gnu\.so", n) for n in names)
    extensions = [name for name in names if name.endswith(".so") or ".so." in name]
    assert extensions
    wrong = [n for n in extensions if "x86_64" in n or re.search(r"cpython-3(?!13)\d+", n)]
    assert wrong == []


def test_dependencies_include_a_pinned_botocore_for_aiobotocore(names: list[str]) -> None:
    for package in ("aioboto3", "aiobotocore", "botocore", "boto3", "tenacity", "yarl"):
        assert f"{package}/__init__.py" in names


def test_build_noise_is_left_out(names: list[str]) -> None:
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
    assert not [n for n in names if n.startswith("bin/")]
    notes = ("/RECORD", "/INSTALLER", "/REQUESTED", "/direct_url.json")
    assert not [n for n in names if ".dist-info/" in n and n.endswith(notes)]
    # Package metadata read at run time stays.
    assert any(re.fullmatch(r"aiohttp-[^/]+\.dist-info/METADATA", n) for n in names)


def test_entries_are_sorted_with_fixed_times_and_modes(built: Path) -> None:
    with zipfile.ZipFile(built) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}


def test_building_again_gives_the_same_bytes(built: Path, tmp_path: Path) -> None:
    again = build_package(out_dir=tmp_path, project_root=ROOT, pip_cache_dir=PIP_CACHE)
    assert isinstance(again, PackageInfo)
    assert again.path == tmp_path / ZIP_NAME
    assert again.path.read_bytes() == built.read_bytes()
    assert again.sha256 == hashlib.sha256(built.read_bytes()).hexdigest()
    assert again.size == built.stat().st_size
    assert again.files == len(zipfile.ZipFile(built).namelist())


def test_the_command_prints_path_sizes_and_sha256(build: Built) -> None:
    data = build.zip.read_bytes()
    with zipfile.ZipFile(build.zip) as archive:
        unzipped = sum(info.file_size for info in archive.infolist())
    assert f"zip:      {build.zip}\n" in build.printed
    assert f"size:     {len(data):,} bytes" in build.printed
    assert f"unzipped: {unzipped:,} bytes" in build.printed
    assert f"sha256:   {hashlib.sha256(data).hexdigest()}\n" in build.printed


def test_the_command_reports_a_failure_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--out", str(tmp_path / "out"), "--project-root", str(tmp_path)])
    assert code == 1
    assert "lambda_handler.py is missing" in capsys.readouterr().err


def test_a_project_without_lambda_handler_is_refused(tmp_path: Path) -> None:
    (tmp_path / "src/asyncrawl").mkdir(parents=True)
    (tmp_path / "src/asyncrawl/__init__.py").write_text("")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = []\n')
    with pytest.raises(PackageError, match=r"lambda_handler\.py is missing"):
        build_package(out_dir=tmp_path / "out", project_root=tmp_path)
    assert not (tmp_path / "out" / ZIP_NAME).exists()


def test_limits_are_enforced(built: Path) -> None:
    zipped, unzipped = check_lambda_limits(built)
    with pytest.raises(PackageError, match="zipped exceeds"):
        check_lambda_limits(built, max_zipped=zipped - 1)
    with pytest.raises(PackageError, match="unzipped exceeds"):
        check_lambda_limits(built, max_unzipped=unzipped - 1)
