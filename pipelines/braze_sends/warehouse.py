"""Reading back from the warehouse: which given pairs are archived sends.

Archived sends (finished for `registry.ARCHIVE_AFTER`) leave pipeline state: dlt holds ~17x its
state in memory at every step of every load, and re-encodes it each time, so a state that grew
with every send ever captured made each load slower and bigger (`make bench`: 100,000 archived
sends as text in state, 2.8 s and 256 MB per load, against 0.8 s and 171 MB without; a million,
measured once, +700 MB and +22 s). Their record is already in the `sends` table, loaded final
with the state that finished them. So when a sends file lists a pair again that the registry no
longer holds, and its campaign has archived sends, this asks the `sends` table whether it is
finished there. Only a run given pairs asks, once: scheduled runs without a sends file never read
the warehouse. The query names the campaigns (up to `CAMPAIGNS_PER_QUERY`, else it reads the
finished sends once), and rows are streamed, so memory follows what was given, not the history.

SQL destinations (DuckDB, Postgres, BigQuery, ...) answer through dlt's SQL client; a lake (dlt's
filesystem destination, Delta tables) through `deltalake`, batch by batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import dlt
import pyarrow as pa
import pyarrow.compute as pc

from braze_sends import lifecycle
from braze_sends.destinations import is_lake
from braze_sends.errors import DestinationError
from braze_sends.settings import SENDS_TABLE

logger = logging.getLogger(__name__)

Pair = tuple[str, str]
# Up to this many campaigns are named in the query; more, and the finished sends are scanned once.
CAMPAIGNS_PER_QUERY = 500
ROWS_PER_FETCH = 10_000  # rows held at once while reading


def finished_pairs(pipeline: dlt.Pipeline, candidates: Iterable[Pair]) -> set[Pair]:
    """Those of `candidates` whose row in the `sends` table is final or expired.

    Raises:
        DestinationError: the warehouse could not be read (nothing is registered then).
    """
    wanted = set(candidates)
    if not wanted:
        return set()
    campaigns = sorted({campaign_id for campaign_id, _ in wanted})
    if pipeline.destination is None:
        logger.warning(
            "the pipeline has no destination to read archived sends from: %d given pairs of "
            "campaigns with archived sends are registered again",
            len(wanted),
        )
        return set()
    try:
        read = _from_lake if is_lake(pipeline.destination) else _from_sql
        # Kept only if asked about: a scan of many campaigns reads all their finished sends.
        return {pair for pair in read(pipeline, campaigns) if pair in wanted}
    except DestinationError:
        raise
    except Exception as exc:
        raise DestinationError(
            f"could not read the `{SENDS_TABLE}` table of dataset `{pipeline.dataset_name}` "
            f"to tell archived sends from new ones ({type(exc).__name__}: {exc}); nothing was "
            "registered or pulled. Check the destination (reachable, and its `sends` table with "
            "campaign_id, send_id and status) and run again."
        ) from exc


def _from_sql(pipeline: dlt.Pipeline, campaigns: list[str]) -> Iterator[Pair]:
    """The finished pairs of `campaigns`, streamed: one query naming them, or, for more than
    `CAMPAIGNS_PER_QUERY`, one scan of the finished sends (filtered by the caller)."""
    from dlt.destinations.exceptions import DatabaseUndefinedRelation

    done = sorted(lifecycle.DONE)
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name(SENDS_TABLE)
        query = f"SELECT campaign_id, send_id FROM {table} WHERE status IN ({_marks(done)})"
        params = done
        if len(campaigns) <= CAMPAIGNS_PER_QUERY:
            query += f" AND campaign_id IN ({_marks(campaigns)})"
            params = [*done, *campaigns]
        try:
            with client.execute_query(query, *params) as cursor:
                while rows := cursor.fetchmany(ROWS_PER_FETCH):
                    yield from ((campaign_id, send_id) for campaign_id, send_id in rows)
        except DatabaseUndefinedRelation:
            return  # no `sends` table (yet): nothing archived there


def _marks(values: list[str]) -> str:
    return ", ".join(["%s"] * len(values))


def _from_lake(pipeline: dlt.Pipeline, campaigns: list[str]) -> Iterator[Pair]:
    from dlt.common.libs.deltalake import get_delta_tables

    try:
        table = get_delta_tables(pipeline, SENDS_TABLE)[SENDS_TABLE]
    except ValueError:
        return  # `sends` is not in the schema yet: nothing archived there
    # Batch by batch, filtered here: bounded memory, and no pushed-down filter to trip over the
    # lake's string_view columns.
    done, wanted = pa.array(sorted(lifecycle.DONE)), pa.array(campaigns)
    for batch in table.to_pyarrow_dataset().to_batches(
        columns=["campaign_id", "send_id", "status"]
    ):
        campaign_id, send_id, status = (batch.column(i).cast(pa.string()) for i in range(3))
        keep = pc.and_(pc.is_in(status, done), pc.is_in(campaign_id, wanted))
        yield from zip(
            campaign_id.filter(keep).to_pylist(), send_id.filter(keep).to_pylist(), strict=True
        )
