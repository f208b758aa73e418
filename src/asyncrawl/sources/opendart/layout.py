"""Where an item's rows are stored: the data key layout shared by every sink.

``data/year={bsns_year}/report={reprt_code}/fs={fs_div}/{corp_code}.jsonl.gz``: Hive-style
partitions that a Glue crawler or an Athena/DuckDB/Spark table can point at. The partition
names deliberately differ from the row fields (``bsns_year``, ``reprt_code``, ``fs_div``):
Athena rejects a table whose partition keys repeat a column.
"""

from __future__ import annotations

from ...sinks.layout import DATA_PREFIX, partitioned_key
from .items import StatementItem

__all__ = [
    "DATA_PREFIX",
    "data_key",
]


def data_key(item: StatementItem) -> str:
    """The key (relative to the output root) of ``item``'s gzip-compressed JSON Lines file."""
    partitions = (
        ("year", str(item.bsns_year)),
        ("report", item.reprt_code),
        ("fs", item.fs_div),
    )
    return partitioned_key(partitions, f"{item.company.corp_code}.jsonl.gz")
