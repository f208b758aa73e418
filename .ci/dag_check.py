"""Runs INSIDE an Airflow virtual environment: the DAGs import, with the expected task graph.

    AIRFLOW_HOME=... PYTHONPATH=src <venv>/bin/python .ci/dag_check.py dags

Prints one line per DAG and exits non-zero on an import error or an unexpected graph. Also
checks the crawler run ids the DAGs derive from Airflow's run ids (manual runs included).
"""

from __future__ import annotations

import sys
import warnings

EXPECTED = {
    "crawl_opendart": {
        "l0_ingestion": set(),
        "l0_crawler": {"l0_ingestion"},
        "l1_transform": {"l0_crawler"},
    },
    "crawl_opendart_sharded": {
        "plan_shards": set(),
        "l0_ingestion": {"plan_shards"},
        "report": {"l0_ingestion"},
    },
}


def _dagbag(folder: str):  # type: ignore[no-untyped-def]
    try:
        from airflow.models.dagbag import DagBag
    except ImportError:  # moved in later 3.x releases
        from airflow.dag_processing.dagbag import DagBag  # type: ignore[no-redef]
    import inspect

    # Airflow 3.3's DagBag no longer takes include_examples (examples come from the config).
    if "include_examples" in inspect.signature(DagBag).parameters:
        return DagBag(dag_folder=folder, include_examples=False)
    return DagBag(dag_folder=folder)


def main() -> int:
    import airflow

    folder = sys.argv[1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = _dagbag(folder)
    problems = [f"import error in {path}: {error}" for path, error in bag.import_errors.items()]
    deprecated = [
        str(w.message)
        for w in caught
        if "airflow.decorators" in str(w.message) or "airflow.models.param" in str(w.message)
    ]
    if airflow.__version__.startswith("3") and deprecated:
        problems.append(f"deprecated imports on Airflow 3: {deprecated}")
    for dag_id, graph in EXPECTED.items():
        dag = bag.dags.get(dag_id)
        if dag is None:
            problems.append(f"{dag_id}: missing")
            continue
        seen = {t.task_id: set(t.upstream_task_ids) for t in dag.tasks}
        if seen != graph:
            problems.append(f"{dag_id}: task graph {seen} != {graph}")
        pools = {t.task_id: t.pool for t in dag.tasks}
        if pools["l0_ingestion"] != "opendart":
            problems.append(f"{dag_id}: l0_ingestion runs in pool {pools['l0_ingestion']!r}")
        if dag_id == "crawl_opendart":
            for task_id in ("l0_crawler", "l1_transform"):
                if not getattr(dag.get_task(task_id), "deferrable", False):
                    problems.append(f"{dag_id}.{task_id} is not deferrable")
        print(f"airflow {airflow.__version__}: {dag_id}: {sorted(seen)}")
    module = sys.modules.get("unusual_prefix_crawl_opendart") or next(
        (m for n, m in sys.modules.items() if n.endswith("crawl_opendart")), None
    )
    if module is None:
        problems.append("the DAG module was not found in sys.modules: run ids not checked")
    else:
        a = module._run_id("crawl_opendart", "manual__2026-12-01T04:00:00.1+00:00", {})
        b = module._run_id("crawl_opendart", "manual__2026-12-01T04:00:00.2+00:00", {})
        resumed = module._run_id("crawl_opendart", "x", {"resume_run_id": "earlier-run"})
        if a == b or resumed != "earlier-run":
            problems.append(f"run ids: {a!r} {b!r} {resumed!r}")
        else:
            print(f"airflow {airflow.__version__}: run ids {a} / {b}; resume: {resumed}")
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
