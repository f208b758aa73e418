"""`pip install asyncrawl` on Amazon MWAA: the caller alone, within Airflow 2.10's constraints.

MWAA installs a ``requirements.txt`` with the constraints file of its Airflow version, so a
requirement that constraints cannot satisfy fails the whole environment update, and one that
pulls aioboto3 -> aiobotocore would fight Airflow's pinned botocore. The committed copy
``constraints/airflow-2.10.1-python3.11.txt`` is Airflow's own file (MWAA's 2.10 environments
run Python 3.11). Resolution here is exact and offline: every requirement of the base install
must name a distribution the constraints pin, at a version its specifier accepts; pip would
then install nothing but our wheel (boto3, botocore and their dependencies are pinned as
Airflow's own, and the constraints file is self-consistent).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints" / "airflow-2.10.1-python3.11.txt"
# Never in the caller's install: aiobotocore pins botocore narrowly, the rest is crawler-only.
CRAWLER_ONLY = {"aiohttp", "aioboto3", "aiobotocore", "tenacity", "orjson", "rich"}


def _project() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        project: dict[str, object] = tomllib.load(file)["project"]
    return project


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def _base() -> list[Requirement]:
    dependencies = _project()["dependencies"]
    assert isinstance(dependencies, list)
    return [Requirement(text) for text in dependencies]


def test_the_constraints_copy_is_airflow_2_10s() -> None:
    head = CONSTRAINTS.read_text().splitlines()[0]
    assert head.endswith("constraints-2.10.1/constraints-3.11.txt")
    pins = _pins()
    assert pins["boto3"] == Version("1.35.7")
    assert pins["botocore"] == Version("1.35.7")


def test_the_base_install_resolves_within_airflow_2_10s_constraints() -> None:
    pins = _pins()
    unmet = []
    for requirement in _base():
        if requirement.marker is not None and not requirement.marker.evaluate(
            {"python_version": "3.11", "sys_platform": "linux", "platform_system": "Linux"}
        ):
            continue
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None or not requirement.specifier.contains(pinned, prereleases=True):
            unmet.append(f"{requirement} (constraints pin {pinned})")
    assert unmet == []


def test_the_base_install_is_the_caller_and_nothing_of_the_crawler() -> None:
    names = {canonicalize_name(r.name) for r in _base()}
    assert names == {"boto3"}
    assert not names & CRAWLER_ONLY


def test_the_crawler_extra_holds_what_the_lambda_and_the_cli_need() -> None:
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    crawler = {canonicalize_name(Requirement(r).name) for r in extras["crawler"]}
    assert crawler == {"aiohttp", "aioboto3", "tenacity", "orjson"}
    cli = [Requirement(r) for r in extras["cli"]]
    assert {canonicalize_name(r.name) for r in cli} == {"asyncrawl", "rich"}
    # `make test` and `make demo` install the crawler and the CLI with the test tools.
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet -e '.[crawler,cli,dev]' -c requirements/lambda.lock" in makefile


def test_the_lambda_lock_pins_every_crawler_requirement() -> None:
    lock = (ROOT / "requirements" / "lambda.lock").read_text().splitlines()
    pinned = {
        canonicalize_name(line.split("==")[0]): Version(line.split("==")[1].split(";")[0].strip())
        for line in lock
        if "==" in line and not line.lstrip().startswith("#")
    }
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    for text in [*_base(), *(Requirement(r) for r in extras["crawler"])]:
        requirement = text if isinstance(text, Requirement) else Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} is not in requirements/lambda.lock: run `make lock`"
        assert requirement.specifier.contains(pinned[name]), f"{requirement} vs {pinned[name]}"
