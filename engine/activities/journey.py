"""`JourneyActivities`: one class holding the ports, one method per activity.

Every side effect is idempotent on a key the workflow made: a send key has at most one delivery
row, and a send whose row already says ``sent`` is never handed to a connector again.

Delivery guarantee (``connectors.base``): a send through an ``idempotent`` connector is simply
retried (the provider drops a repeat of the key). A send through an ``at_most_once`` connector
first claims its row (``attempting``, written through the same group commit as the outcomes);
a retry that finds the claim without an outcome never calls the provider again but logs the send
``unknown``, and so does an attempt whose provider may have taken the message without answering.
An ``unknown`` send keeps its cap reservation and its budget share: it may have reached the
person.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from connectors.base import (
    UNSUBSCRIBE_URL,
    ConnectorConfigError,
    ConnectorError,
    DeliveryReceipt,
    OutboundMessage,
    PermanentSendError,
    RetryableSendError,
    delivery_guarantee,
)
from connectors.limits import admitted
from connectors.registry import ConnectorRegistry
from engine.activities.batching import Coalescer
from engine.caps.budgets import budget_scopes
from engine.caps.checker import CapChecker, CapRequest, CapStoreUnavailable
from engine.conditions.branch import first_match
from engine.conditions.errors import UnknownTier
from engine.domain import Delivery, DeliveryStatus, EnrollmentEnd, JourneyVersion, Profile
from engine.dsl.models import Budget, Journey, SendStep
from engine.dsl.tiers import Tiers
from engine.metrics import EngineMetrics
from engine.store import ProfileNotFound, SendFacts, SendLookup, Store
from engine.templates import TemplateError, render_message
from engine.workflow.messages import (
    BranchInput,
    BranchResult,
    FinishInput,
    GiveUpInput,
    SendInput,
    SendResult,
    UpdateInput,
)

log = structlog.get_logger(__name__)

_REFUSED: dict[str, DeliveryStatus] = {
    "defer": "deferred",
    "expire": "expired",
    "skip": "suppressed",
    "exit": "suppressed",
}

_DECIDED: frozenset[str] = frozenset({"sent", "failed", "suppressed", "expired", "unknown"})
"""Statuses a retried send returns as they are: the send was decided."""

INTERRUPTED = "interrupted"
"""Reason of an ``unknown`` send whose earlier attempt reached an at-most-once provider and never
recorded what the provider answered (its worker died, or the attempt timed out)."""

ADDRESS_ATTRIBUTES = {
    "email": "email",
    "sms": "phone",
    "wecom": "wecom_external_userid",
    "push": "push_token",
}
"""Where a channel finds the person's address; other channels address the profile id."""


def _logger(input: SendInput) -> Any:
    """The send's logger, bound to its context; made only when there is something to say."""
    return log.bind(
        journey_id=input.journey_id,
        profile_id=input.profile_id,
        step=input.step_id,
        send_key=input.send_key,
    )


def _budgets(input: SendInput) -> tuple[str, ...]:
    """The budgets a send may hold a share of, to give back when it fails for good."""
    return budget_scopes(input.journey_id, input.tags)


def _options(input: SendInput) -> dict[str, str]:
    """The send step's settings for its connector."""
    if input.webhook is None:
        return {}
    options = {"webhook_url": input.webhook.url}
    if input.webhook.secret_env is not None:
        options["webhook_secret_env"] = input.webhook.secret_env
    return options


def address_for(channel: str, profile: Profile) -> str | None:
    attribute = ADDRESS_ATTRIBUTES.get(channel)
    if attribute is None:
        return profile.id
    value = profile.attributes.get(attribute)
    return str(value) if value else None


def _delivery(
    input: SendInput,
    status: DeliveryStatus,
    reason: str | None,
    *,
    provider_message_id: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> Delivery:
    return Delivery(
        send_key=input.send_key,
        journey_id=input.journey_id,
        journey_version=input.version,
        profile_id=input.profile_id,
        step_id=input.step_id,
        channel=input.channel,
        template=input.template,
        category=input.category,
        status=status,
        created_at=input.at,
        reason=reason,
        provider_message_id=provider_message_id,
        detail=dict(detail or {}),
    )


def _result(stored: Delivery) -> SendResult:
    """What the workflow learns from a delivery row."""
    status = stored.status
    if status == "attempting":
        raise ValueError("an attempting row is not a send result")
    return SendResult(
        status=status, reason=stored.reason, provider_message_id=stored.provider_message_id
    )


def _error_kind(answer: DeliveryReceipt | ConnectorError) -> str | None:
    """How a provider call failed, as the connector-errors label (None: it was answered)."""
    if isinstance(answer, DeliveryReceipt):
        return None
    if isinstance(answer, RetryableSendError):
        return "no_answer" if answer.outcome_unknown else "retryable"
    if isinstance(answer, PermanentSendError):
        return "permanent"
    return "error"


class JourneyActivities:
    def __init__(
        self,
        store: Store,
        caps: CapChecker,
        connectors: ConnectorRegistry,
        unsubscribe_link: Callable[[str, str], str] | None = None,
        tiers: Tiers | None = None,
        metrics: EngineMetrics | None = None,
    ) -> None:
        """``unsubscribe_link(profile_id, channel)`` makes the signed one-click link that every
        marketing message carries (email turns it into List-Unsubscribe headers). ``metrics``
        counts every delivery outcome and times the cap checks and provider calls."""
        self._store = store
        self._metrics = metrics if metrics is not None else EngineMetrics()
        self._caps = caps
        self._connectors = connectors
        self._unsubscribe_link = unsubscribe_link
        self._tiers = tiers
        self._versions: dict[tuple[str, int], JourneyVersion] = {}
        self._spends: dict[tuple[str, int], tuple[Budget | None, dict[str, int]]] = {}
        # Concurrent sends share their reads and their delivery-log commits.
        self._facts = Coalescer[SendLookup, SendFacts](self._read_facts)
        self._deliveries = Coalescer[Delivery, Delivery](store.record_deliveries)
        # A wave's runs end together: their ledger writes share a transaction, so the local
        # activity (and the workflow task it holds open) does not queue for SQLite's write lock
        # once per run.
        self._endings = Coalescer[EnrollmentEnd, bool](store.finish_enrollments)

    async def _read_facts(self, lookups: Sequence[SendLookup]) -> list[SendFacts]:
        facts = await self._store.send_facts(lookups)
        return [facts[lookup] for lookup in lookups]

    def all(self) -> list[Callable[..., Any]]:
        """The activity callables to register on a worker."""
        return [
            self.send,
            self.give_up_send,
            self.evaluate_branch,
            self.update_profile,
            self.finish_run,
        ]

    def local(self) -> list[Callable[..., Any]]:
        """The ones the journey workflow runs as local activities: on its own worker, always."""
        return [self.evaluate_branch, self.update_profile, self.finish_run]

    async def _version(self, journey_id: str, version: int) -> JourneyVersion:
        # Versions are immutable, so caching them forever is safe.
        key = (journey_id, version)
        if key not in self._versions:
            self._versions[key] = await self._store.get_version(journey_id, version)
        return self._versions[key]

    async def _spend(self, input: SendInput) -> tuple[Budget | None, int]:
        """The journey's budget and what this send step's message is worth against it (from the
        pinned version: a redeploy never changes a run's budget)."""
        key = (input.journey_id, input.version)
        if key not in self._spends:
            version = await self._version(*key)
            journey = Journey.model_validate(version.definition)
            values = {s.id: s.send.value for s in journey.steps if isinstance(s, SendStep)}
            self._spends[key] = (journey.budget, values)
        budget, values = self._spends[key]
        return budget, values.get(input.step_id, 0)

    @activity.defn(name="send")
    async def send(self, input: SendInput) -> SendResult:
        """Caps, render, connector, delivery log — one activity per send attempt."""
        facts = await self._facts(SendLookup(input.send_key, input.profile_id, input.channel))
        stored = facts.delivery
        if stored is not None and stored.status in _DECIDED:
            return _result(stored)
        if stored is not None and stored.status == "attempting":
            # The provider may have the message: never call it again for this key.
            return await self._lost(input)
        profile = facts.profile
        if profile is None:
            return await self._record(input, "suppressed", "profile_missing")
        address = address_for(input.channel, profile)
        if address is None:
            return await self._record(input, "suppressed", f"no_address:{input.channel}")
        if input.category == "marketing" and facts.unsubscribed:
            return await self._record(input, "suppressed", f"unsubscribed:{input.channel}")
        # Caps count the person, not the run's id: a run started before a OneID merge asks
        # for the survivor, whose counters also hold the merged ids' touches.
        person = profile.id
        merged = person != input.profile_id
        budget, value = await self._spend(input)
        checking = time.perf_counter()
        try:
            decision = await self._caps.reserve(
                CapRequest(
                    send_key=input.send_key,
                    profile_id=person,
                    journey_id=input.journey_id,
                    channel=input.channel,
                    priority=input.priority,
                    at=input.at,
                    # The run's timezone was its own profile's; a merged one is gone.
                    timezone=profile.timezone if merged else input.timezone,
                    journey_caps=tuple(input.caps),
                    tags=tuple(input.tags),
                    transactional=input.category == "transactional",
                    first_attempt_at=input.first_attempt_at,
                    defer_allowed=input.defer_allowed,
                    held=input.held,
                    merged_ids=facts.merged,
                    value=value,
                    budget=budget,
                )
            )
        except CapStoreUnavailable as exc:
            # Fail closed: Temporal retries with backoff; nothing leaves unchecked.
            _logger(input).warning("cap_store_unavailable", error=str(exc))
            raise ApplicationError(str(exc), type="CapStoreUnavailable") from exc
        finally:
            self._metrics.cap_check_seconds.observe(time.perf_counter() - checking)
        if not decision.allowed:
            if decision.action == "arbitrate":
                return SendResult(status="arbitrating", retry_at=decision.retry_at)
            status: DeliveryStatus = _REFUSED[decision.action]
            result = await self._record(
                input, status, decision.rule, retry_at=decision.retry_at, detail=decision.detail
            )
            return result.model_copy(update={"exit_run": decision.action == "exit"})

        version = await self._version(input.journey_id, input.version)
        try:
            content = render_message(
                version.templates,
                input.template,
                profile,
                {"journey": {"id": input.journey_id}, "step": {"id": input.step_id}},
            )
        except TemplateError as exc:
            await self._caps.release(input.send_key, person, _budgets(input))
            _logger(input).warning("template_failed", template=input.template, error=str(exc))
            return await self._record(input, "failed", f"template:{input.template}: {exc}")

        try:
            connector = self._connectors.for_channel(input.channel)
        except ConnectorConfigError as exc:
            await self._caps.release(input.send_key, person, _budgets(input))
            _logger(input).error("channel_not_configured", channel=input.channel, error=str(exc))
            return await self._record(input, "failed", f"channel_not_configured:{input.channel}")
        message = OutboundMessage(
            send_key=input.send_key,
            channel=input.channel,
            to=address,
            content=content,
            metadata=self._metadata(input),
            options=_options(input),
        )
        at_most_once = delivery_guarantee(connector) == "at_most_once"
        # The claim comes once the connector's rate limit lets the send through: a worker dying
        # while sends wait for tokens must not leave them all unknown.
        async with admitted(connector) as provider:
            if at_most_once:
                claimed = await self._claim(input)
                if claimed is not None:
                    return claimed
            started = time.perf_counter()
            try:
                answer: DeliveryReceipt | ConnectorError = await provider.send(message)
            except ConnectorError as exc:
                answer = exc  # recorded below, once the provider's slot is free
            self._metrics.connector_call(
                provider.name, input.channel, time.perf_counter() - started, _error_kind(answer)
            )
        return await self._outcome(input, answer, at_most_once, person)

    async def _claim(self, input: SendInput) -> SendResult | None:
        """Record the attempt before an at-most-once provider call; None when this attempt holds
        the claim, else what the send key's row says (another attempt holds it or decided it)."""
        attempt = uuid.uuid4().hex
        row = await self._deliveries(
            _delivery(input, "attempting", None, detail={"attempt": attempt})
        )
        if row.status == "attempting" and row.detail.get("attempt") == attempt:
            return None
        if row.status in _DECIDED:
            return _result(row)
        return await self._lost(input)

    async def _lost(self, input: SendInput) -> SendResult:
        """An attempt reached the provider and its outcome is not known: ``unknown``, never
        sent again, its cap reservation kept."""
        _logger(input).warning("send_outcome_unknown", channel=input.channel, reason=INTERRUPTED)
        return await self._record(input, "unknown", INTERRUPTED)

    async def _outcome(
        self,
        input: SendInput,
        answer: DeliveryReceipt | ConnectorError,
        at_most_once: bool,
        person: str,
    ) -> SendResult:
        """The provider's answer in the delivery log (or a retry, for a retryable error);
        ``person`` is whom the caps counted (the survivor of a OneID merge)."""
        if isinstance(answer, DeliveryReceipt):
            return await self._record(
                input, "sent", None, provider_message_id=answer.provider_message_id
            )
        if isinstance(answer, RetryableSendError):
            if at_most_once and answer.outcome_unknown:
                # Keep the reservation: the provider may have taken it.
                _logger(input).warning(
                    "send_outcome_unknown", channel=input.channel, code=answer.code
                )
                return await self._record(input, "unknown", f"no_answer:{answer.code or 'error'}")
            if at_most_once:
                # The provider did not take it: the retry may claim and send again.
                await self._store.release_attempt(input.send_key)
            # Keep the reservation: the retry uses the same send key and must not count twice.
            _logger(input).warning("send_retry", channel=input.channel, code=answer.code)
            raise ApplicationError(
                f"{input.channel} is temporarily unavailable: {answer}",
                type="RetryableSendError",
                next_retry_delay=(
                    timedelta(seconds=answer.retry_after)
                    if answer.retry_after is not None
                    else None
                ),
            ) from answer
        if isinstance(answer, PermanentSendError):
            await self._caps.release(input.send_key, person, _budgets(input))
            _logger(input).warning("send_failed", channel=input.channel, code=answer.code)
            return await self._record(input, "failed", f"provider:{answer.code or 'refused'}")
        # Neither retryable nor permanent by its own account: retry, the safer side (for an
        # at-most-once connector the retry finds the claim and logs the send unknown).
        _logger(input).warning("send_retry", channel=input.channel, error=type(answer).__name__)
        raise ApplicationError(str(answer), type=type(answer).__name__) from answer

    @activity.defn(name="give_up_send")
    async def give_up_send(self, input: GiveUpInput) -> SendResult:
        """A send that kept failing until its deadline: logged ``failed`` with the reason, its cap
        reservation given back. A send that did go out meanwhile stays ``sent``; one whose attempt
        reached an at-most-once provider without an outcome is ``unknown`` and stays counted."""
        send = input.send
        facts = await self._facts(SendLookup(send.send_key, send.profile_id, send.channel))
        stored = facts.delivery
        if stored is not None and stored.status in ("attempting", "unknown"):
            # An attempt reached the provider: the touch stays counted, the send is unknown.
            return _result(stored) if stored.status == "unknown" else await self._lost(send)
        _logger(send).warning("send_given_up", reason=input.reason)
        result = await self._record(send, "failed", input.reason)
        if result.status == "sent":
            return result  # a late attempt got through: its touch stays counted
        try:
            await self._caps.release(send.send_key, send.profile_id, _budgets(send))
        except CapStoreUnavailable as exc:
            # The touch stays counted: the person may get one message fewer, never one more.
            _logger(send).warning("cap_release_failed", error=str(exc))
        return result

    def _metadata(self, input: SendInput) -> dict[str, str]:
        metadata = {
            "journey_id": input.journey_id,
            "step_id": input.step_id,
            "profile_id": input.profile_id,
            "template": input.template,
        }
        if input.category == "marketing" and self._unsubscribe_link is not None:
            metadata[UNSUBSCRIBE_URL] = self._unsubscribe_link(input.profile_id, input.channel)
        return metadata

    async def _record(
        self,
        input: SendInput,
        status: DeliveryStatus,
        reason: str | None,
        *,
        retry_at: datetime | None = None,
        provider_message_id: str | None = None,
        detail: Mapping[str, str] | None = None,
    ) -> SendResult:
        log.info(
            "delivery_recorded",
            journey_id=input.journey_id,
            profile_id=input.profile_id,
            step=input.step_id,
            send_key=input.send_key,
            channel=input.channel,
            status=status,
            reason=reason,
        )
        stored = await self._deliveries(
            _delivery(
                input,
                status,
                reason,
                provider_message_id=provider_message_id,
                detail={
                    **(detail or {}),
                    **({"retry_at": retry_at.isoformat()} if retry_at else {}),
                },
            )
        )
        if stored.status == status:  # else an earlier attempt decided, and was counted
            self._metrics.delivery(input.journey_id, input.channel, status, reason)
        return _result(stored).model_copy(update={"retry_at": retry_at})

    @activity.defn(name="evaluate_branch")
    async def evaluate_branch(self, input: BranchInput) -> BranchResult:
        """Index of the first condition the person satisfies at the run's time (none for a
        missing profile); reads only the profile and the events the conditions name."""
        at = input.at or datetime.now(UTC)
        try:
            index = await first_match(
                self._store, input.conditions, input.profile_id, at, rules=self._tiers
            )
        except UnknownTier as exc:
            # A tier the rules do not define: retrying cannot help; the run fails visibly.
            raise ApplicationError(str(exc), type="UnknownTier", non_retryable=True) from exc
        return BranchResult(index=index)

    @activity.defn(name="update_profile")
    async def update_profile(self, input: UpdateInput) -> None:
        try:
            await self._store.update_profile(
                input.profile_id,
                attributes=input.update.attributes,
                add_tags=input.update.add_tags,
                remove_tags=input.update.remove_tags,
            )
        except ProfileNotFound:
            # Deleted mid-run: nothing to update, and retrying would never succeed.
            log.warning("profile_missing", profile_id=input.profile_id, step="update")

    @activity.defn(name="finish_run")
    async def finish_run(self, input: FinishInput) -> None:
        """Close the enrollment in the ledger (re-entry and reports read it)."""
        found = await self._endings(
            EnrollmentEnd(
                input.enrollment_id,
                status=input.status,
                ended_at=input.ended_at.astimezone(UTC),
                exit_step=input.exit_step,
                path=tuple(input.path),
                variants=dict(input.variants),
                exit_reason=input.reason,
            )
        )
        if not found:
            # The starter removed the row after a start it thought had failed; the run is real,
            # so say so loudly rather than retry for ever.
            log.error("enrollment_missing", enrollment_id=input.enrollment_id)
