"""The Lambda zip: CPython 3.13 binaries for arm64 and x86_64, .pyc compiled by 3.13 in
unchecked-hash mode, no test or command-line-only code, Lambda's limits, reproducible.

Building downloads wheels from the package index with pip (the one place a test reaches past
loopback: the package registry is how the zip gets its dependencies). pip's download cache is
kept inside the virtual environment, so only the first run on a machine downloads.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
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
    find_target_python,
    main,
)

ROOT = Path(__file__).resolve().parents[1]
PIP_CACHE = Path(sys.prefix) / ".cache" / "asyncrawl-lambda-pip"
ZIP_NAME = "asyncrawl-lambda-py3.13-arm64.zip"
X86_ZIP_NAME = "asyncrawl-lambda-py3.13-x86_64.zip"


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
    # Bytecode only as 3.13's own __pycache__ files (checked below), never the builder's.
    stray = [
        n
        for n in names
        if n.endswith((".pyc", ".pyo"))
        and not re.fullmatch(r"(.*/)?__pycache__/[^/]+\.cpython-313\.pyc", n)
    ]
    assert stray == []
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


# --- what Lambda runs: 3.13 bytecode, nothing for tests or the command line -----------------

CLI_ONLY = ("rich", "pygments", "markdown_it", "mdurl")


@pytest.fixture(scope="module")
def target_python() -> str:
    return find_target_python("3.13")


@pytest.fixture(scope="module")
def x86_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The x86_64 zip: the one this machine can run."""
    out = tmp_path_factory.mktemp("lambda-x86_64")
    info = build_package(out_dir=out, project_root=ROOT, pip_cache_dir=PIP_CACHE, arch="x86_64")
    return info.path


@pytest.fixture(scope="module")
def unzipped_x86(x86_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("task")
    with zipfile.ZipFile(x86_zip) as archive:
        archive.extractall(root)
    return root


def test_every_module_has_unchecked_hash_bytecode_for_313(
    names: list[str], built: Path, target_python: str
) -> None:
    magic = subprocess.run(
        [target_python, "-c", "import importlib.util as u; print(u.MAGIC_NUMBER.hex())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    present = set(names)
    sources = [n for n in names if n.endswith(".py")]
    assert "asyncrawl/aws/handler.py" in sources
    missing = [
        n
        for n in sources
        if f"{n.rpartition('/')[0]}/__pycache__/{n.rpartition('/')[2][:-3]}.cpython-313.pyc".lstrip(
            "/"
        )
        not in present
    ]
    assert missing == []
    with zipfile.ZipFile(built) as archive:
        header = archive.read("asyncrawl/aws/__pycache__/handler.cpython-313.pyc")[:8]
        handler_pyc = archive.read("__pycache__/lambda_handler.cpython-313.pyc")[:8]
    assert header[:4].hex() == magic
    # PEP 552 flags: bit 0 hash-based, bit 1 check_source; unchecked-hash is exactly 0b01.
    assert int.from_bytes(header[4:8], "little") == 0b01
    assert int.from_bytes(handler_pyc[4:8], "little") == 0b01


def test_no_test_or_command_line_code_is_shipped(names: list[str]) -> None:
    assert not [n for n in names if n.startswith("asyncrawl/testing/")]
    for module in ("cli", "demo", "progress", "__main__"):
        assert f"asyncrawl/{module}.py" not in names
    assert not [n for n in names if n.split("/")[0] in CLI_ONLY]
    assert not [n for n in names if re.match(r"(rich|pygments|markdown_it_py|mdurl)-", n)]
    folders = {part for n in names for part in n.split("/")[:-1]}
    assert not folders & {"tests", "test"}


def test_the_x86_64_zip_is_named_for_and_built_for_x86_64(x86_zip: Path) -> None:
    assert x86_zip.name == X86_ZIP_NAME
    with zipfile.ZipFile(x86_zip) as archive:
        extensions = [n for n in archive.namelist() if n.endswith(".so")]
    assert any(re.fullmatch(r"orjson/.*\.cpython-313-x86_64-linux-gnu\.so", n) for n in extensions)
    assert not [n for n in extensions if "aarch64" in n]


_IMPORT_THE_HANDLER = """
import json, sys
sys.path.insert(0, sys.argv[1])
import lambda_handler
task = sys.argv[1]
compiled_here = []
for name, module in list(sys.modules.items()):
    origin = getattr(getattr(module, "__spec__", None), "origin", None) or ""
    cached = getattr(getattr(module, "__spec__", None), "cached", None)
    if origin.startswith(task) and origin.endswith(".py"):
        import os
        if not cached or not os.path.exists(cached):
            compiled_here.append(name)
print(json.dumps({
    "cli_only": sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[2:]),
    "testing": sorted(m for m in sys.modules if m.startswith("asyncrawl.testing")),
    "compiled_here": sorted(compiled_here),
    "handler": lambda_handler.handler.__module__,
}))
"""


def test_the_handler_imports_from_the_unzipped_package_with_its_bytecode(
    unzipped_x86: Path, target_python: str
) -> None:
    # -I -S: nothing from the building machine's site-packages; -B: /var/task is read-only,
    # so nothing may need writing there. Every module the handler imports has its .pyc.
    result = subprocess.run(
        [target_python, "-I", "-S", "-B", "-c", _IMPORT_THE_HANDLER, str(unzipped_x86), *CLI_ONLY],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"},
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["handler"] == "asyncrawl.aws.handler"
    assert seen["cli_only"] == []
    assert seen["testing"] == []
    assert seen["compiled_here"] == []


def test_a_missing_target_python_fails_the_build_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.delenv("ASYNCRAWL_TARGET_PYTHON", raising=False)
    with pytest.raises(PackageError, match=r"no Python 3\.13 found.*pyenv install 3\.13"):
        find_target_python("3.13")
    with pytest.raises(PackageError, match=r"is not a working Python 3\.13"):
        find_target_python("3.13", explicit=sys.executable)


def test_a_missing_lock_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match=r"lambda\.lock is missing.*make lock"):
        build_package(out_dir=tmp_path, project_root=ROOT, lock=tmp_path / "lambda.lock")
