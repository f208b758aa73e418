"""Jobs: a named crawl (a Source, how to plan it, where its results go) the run layer runs.

A job is what a Lambda function or a command line runs by name. The run layer
(:func:`asyncrawl.runs.run.run_resumable`) does the rest for every job alike: the lease, the
journal, the engine, the sink, the summary, the budget and the continuation. The Lambda picks
the job from ``CRAWL_JOB`` (default ``opendart``); a second job is one :func:`register_job`
call in a module listed in ``CRAWL_JOB_MODULES`` (or imported by the function's entry
point): nothing in ``asyncrawl.aws`` changes.

What a job supplies (:class:`Job`):

- ``configure(environ)``: its own settings from the environment, ``ConfigError`` naming the
  variable (the function is misconfigured: 500);
- ``plan(event, config, store)``: a fresh :class:`Plan` from the event's job fields
  (``EventError`` naming the field: 400) -- the hook where plan modes, company lists (files,
  S3, Athena) and default years plug in;
- ``resume(params, keys, config)``: the plan rebuilt from a continuation: the job's own
  ``params`` (opaque JSON it wrote with ``token_params``) and the remaining seed keys;
- ``token_params(plan, remaining_keys)``: what the next part needs to rebuild those keys
  (keep it small: only what the remaining keys need);
- ``open_source(config)``: the Source (secrets are loaded here, once per cold start);
- ``data_key(result)``: where an item's rows are stored;
- ``describe(plan, summary)``: extra answer fields (for example ``total_companies`` and a
  human message), given the run's merged summary.

Two optional steps, for jobs that need them (the handler looks them up with ``getattr``):

- ``refine(plan, config, store, *, run_id, fetcher, limiter, crawl_config)``: a fresh plan's
  second step that asks the upstream first (OpenDART's filing search), through the run's
  fetcher (``None``: make one) and limiter, within ``crawl_config``'s deadline; it returns the
  plan to crawl. Not called for a continuation, whose plan was refined by the first part;
- ``finish(plan, config, store, *, run_id)``: once the run's last part is done with nothing
  remaining and no stop (OpenDART records the fetched reports' filings); a failure is logged,
  never turned into an error answer (the crawled data is stored already).

Items a Source discovers while crawling are not rebuilt by the job: the run layer carries them
in the token through the Source's ``dump_item``/``load_item`` (the ItemCodec protocol).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from ..errors import ConfigError
from ..results import ItemResult
from ..sinks.base import BlobStore
from ..source import Source

__all__ = ["Job", "Plan", "get_job", "job_names", "register_job", "unregister_job"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan(Generic[T]):
    """One part's work: the items, and what the job needs to hand the rest over."""

    #: The items to crawl, in order (a sequence: the run layer lists unstarted ones).
    items: Sequence[T]
    #: The job's parameters, JSON-able; the job reads them back in ``resume``.
    params: Mapping[str, Any] = field(default_factory=dict)
    #: A short label of this plan (OpenDART: the crawler type); answers and metrics carry it.
    label: str = ""
    #: Facts about the plan for answers, e.g. ``{"total_companies": 10}``.
    facts: Mapping[str, Any] = field(default_factory=dict)


class Job(Protocol[T]):
    """A named crawl the run layer can run, plan and resume (see the module docstring)."""

    #: The registered name (``CRAWL_JOB``).
    name: str
    #: Event keys the job reads, beyond the run layer's ``run_id`` and ``continuation``.
    event_keys: tuple[str, ...]

    def configure(self, environ: Mapping[str, str]) -> Any: ...

    def label(self, config: Any) -> str: ...

    async def plan(self, event: Mapping[str, Any], config: Any, store: BlobStore) -> Plan[T]: ...

    def resume(self, params: Mapping[str, Any], keys: Sequence[str], config: Any) -> Plan[T]: ...

    def token_params(self, plan: Plan[T], remaining_keys: Sequence[str]) -> Mapping[str, Any]: ...

    def open_source(self, config: Any) -> Source[T]: ...

    def data_key(self, result: ItemResult[Any]) -> str: ...

    def describe(self, plan: Plan[T], summary: Mapping[str, Any]) -> Mapping[str, Any]: ...


_registry: dict[str, Job[Any]] = {}
# Jobs that ship with asyncrawl, imported on first use (they pull in their Source).
_BUILTIN = {"opendart": "asyncrawl.jobs.opendart"}


def register_job(job: Job[Any], *, replace: bool = False) -> Job[Any]:
    """Make ``job`` runnable by its name; returns it (usable as a decorator's tail)."""
    name = getattr(job, "name", None)
    if not isinstance(name, str) or not name:
        raise ConfigError("job.name", "a job needs a non-empty name")
    if name in _registry and not replace and _registry[name] is not job:
        raise ConfigError("job.name", f"a job named {name!r} is already registered")
    _registry[name] = job
    return job


def unregister_job(name: str) -> None:
    """Forget the job called ``name`` (tests register throw-away jobs)."""
    _registry.pop(name, None)


def get_job(name: str, *, field: str = "CRAWL_JOB", modules: Sequence[str] = ()) -> Job[Any]:
    """The job registered as ``name``; imports ``modules`` (and built-ins) to find it."""
    if name not in _registry:
        for module in (*modules, _BUILTIN.get(name, "")):
            if module:
                try:
                    importlib.import_module(module)
                except ImportError as error:
                    raise ConfigError(field, f"cannot import {module}: {error}") from None
    job = _registry.get(name)
    if job is None:
        known = ", ".join(sorted({*_registry, *_BUILTIN})) or "none"
        raise ConfigError(field, f"no job named {name!r} is registered (known: {known})")
    return job


def job_names() -> list[str]:
    """The names of the registered jobs."""
    return sorted(_registry)
