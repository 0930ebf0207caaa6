"""Connecting to Temporal the way every part of the engine must: same converter, same ids."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter

JOURNEY_ID = SearchAttributeKey.for_keyword("JourneyId")
JOURNEY_VERSION = SearchAttributeKey.for_keyword("JourneyVersion")
PROFILE_ID = SearchAttributeKey.for_keyword("ProfileId")
JOURNEY_STEP = SearchAttributeKey.for_keyword("JourneyStep")
SEARCH_ATTRIBUTE_KEYS = (JOURNEY_ID, JOURNEY_VERSION, PROFILE_ID, JOURNEY_STEP)

DATA_CONVERTER = pydantic_data_converter
"""Workers, clients and the replayer must share it, or payloads will not decode."""


def workflow_id(journey_id: str, profile_id: str) -> str:
    """One live run per (journey, person): ``journey:<journey_id>:<profile_id>``."""
    return f"journey:{journey_id}:{profile_id}"


def run_search_attributes(
    journey_id: str, version: int, profile_id: str, step: str | None = None
) -> TypedSearchAttributes:
    """A new run's attributes; ``step``: its ``JourneyStep`` from the start (its first rest)."""
    pairs: list[SearchAttributePair[str]] = [
        SearchAttributePair(JOURNEY_ID, journey_id),
        SearchAttributePair(JOURNEY_VERSION, str(version)),
        SearchAttributePair(PROFILE_ID, profile_id),
    ]
    if step is not None:
        pairs.append(SearchAttributePair(JOURNEY_STEP, step))
    return TypedSearchAttributes(pairs)


async def run_chain(
    client: Client, workflow_id: str, first_run_id: str
) -> list[tuple[str, WorkflowHistory]]:
    """(run id, history) of every run from ``first_run_id`` on, first to last: a long or looping
    journey continues as new, and each run's last event names the next."""
    chain: list[tuple[str, WorkflowHistory]] = []
    run_id = first_run_id
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        chain.append((run_id, history))
        last = history.events[-1] if history.events else None
        continued = (
            last is not None
            and last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        )
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last is not None and continued
            else ""
        )
    return chain


class TemporalUnavailable(RuntimeError):
    """Temporal cannot be reached; the message names the address and what to do."""


async def connect(address: str, namespace: str = "default") -> Client:
    """A client with the engine's data converter. Raises TemporalUnavailable."""
    try:
        return await Client.connect(address, namespace=namespace, data_converter=DATA_CONVERTER)
    except RuntimeError as exc:
        raise TemporalUnavailable(
            f"cannot reach Temporal at {address}: start `journey dev`, or set "
            f"JOURNEY_TEMPORAL_ADDRESS ({exc})"
        ) from exc
