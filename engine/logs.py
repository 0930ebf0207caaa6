"""Logging, configured once per process by the composition root (the ``journey`` CLI, which
runs the worker, the API and every other command).

    configure_logging(LogSettings())

- ``JOURNEY_LOG_FORMAT``: ``json`` (one JSON object per line) or ``console`` (readable lines);
  by default ``console`` when stderr is a terminal, ``json`` otherwise.
- ``JOURNEY_LOG_LEVEL``: ``debug``, ``info``, ``warning`` or ``error``; by default ``info``
  (``default_level`` lets a command whose output is the product, ``journey simulate``, ask for
  fewer lines unless the level is set).

Every line has ``timestamp`` (UTC, ISO 8601), ``level``, ``event`` and ``logger``, plus the keys
bound where they apply (``journey_id``, ``profile_id``, ``send_key``...). Lines go to stderr:
stdout is the commands' output (``--json`` must stay parseable). The standard library's loggers
(Temporal's SDK, uvicorn) and the Temporal core's own lines come out the same way.

Personal data: the code logs fingerprints, never addresses (`connectors.base.fingerprint`). As a
last guard, any logged value that looks like an e-mail address or a phone number is replaced by
its fingerprint before it is written (and an unsubscribe link's token by ``***``), and the
database drivers' debug lines (which carry statement parameters: profile attributes) are never
shown.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any, Literal, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

from connectors.base import fingerprint
from engine.settings import LogSettings
from engine.telemetry import install_temporal_runtime

Level = Literal["debug", "info", "warning", "error"]

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{8,15}|1[3-9]\d{9})(?!\w)")
_UNSUBSCRIBE_TOKEN = re.compile(r"/u/[\w.=-]+")
"""A one-click unsubscribe link's signed token (in a request line, a URL)."""


def _mask(text: str) -> str:
    if "@" in text:
        text = _EMAIL.sub(lambda m: fingerprint(m.group(0)), text)
    if "/u/" in text:
        text = _UNSUBSCRIBE_TOKEN.sub("/u/***", text)
    return _PHONE.sub(lambda m: fingerprint(m.group(0)), text)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return _mask(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_masked(v) for v in value)
    return value


def mask_personal_data(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Replace e-mail addresses and phone numbers in every value by their fingerprints."""
    return {key: _masked(value) for key, value in event_dict.items()}


class _Stderr(logging.StreamHandler[TextIO]):
    """Writes to the current ``sys.stderr`` (test runners and CLI runners swap it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


_TRACEBACKS = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
"""Exceptions as dicts in JSON lines: type, message, frames (file, line, function)."""

_HANDLER_NAME = "journey"
_CHATTY = ("alembic", "httpx", "uvicorn.access")
_OWN_HANDLERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
"""Loggers that uvicorn's default log config gives handlers of their own."""
"""Libraries that log routine work at info (every migration step, every HTTP request made or
served): shown from debug on."""
_LEAKY = ("aiosqlite", "sqlalchemy.engine")
"""Libraries whose debug lines carry statement parameters, i.e. profile attributes and
addresses: never below warning."""


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


class _Quiet(logging.Filter):
    """Below warning, drops the lines of `_LEAKY` libraries always and of `_CHATTY` ones unless
    the level is debug. A filter on our handler, not a level on their loggers: other handlers
    (a test's log capture) still see everything."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self._chatty = level > logging.DEBUG

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        if _within(record.name, _LEAKY):
            return False
        return not (self._chatty and _within(record.name, _CHATTY))


def configure_logging(
    settings: LogSettings, *, default_level: Level = "info", file: Path | None = None
) -> None:
    """Configure structlog and the standard library's logging for this process (again: replace).

    ``file``: lines go there (appended, JSON unless ``JOURNEY_LOG_FORMAT`` says otherwise) and
    only errors to stderr too, for a command whose terminal shows progress (``journey demo``)."""
    level = logging.getLevelNamesMapping()[(settings.log_level or default_level).upper()]
    on_terminal = sys.stderr.isatty() and file is None
    kind = settings.log_format or ("console" if on_terminal else "json")
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        mask_personal_data,
    ]
    renderer: Processor
    if kind == "json":
        # Without frame locals: they are unmasked values (addresses, profile attributes), and
        # rendering them inside the workflow sandbox failed (a restricted `os` call), turning
        # the SDK's "Failed activation" warning into a logging error.
        shared.append(_TRACEBACKS)
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=on_terminal)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a later configure (tests, a second command in one process) takes effect.
        cache_logger_on_first_use=False,
    )
    handlers: list[logging.Handler] = [_Stderr()]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers[0].setLevel(logging.ERROR)
        handlers.append(logging.FileHandler(file, encoding="utf-8"))
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        handler.set_name(_HANDLER_NAME)
        handler.addFilter(_Quiet(level))
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level)
    # A uvicorn started in this process with its own log config (a test's stub server) gives
    # its loggers handlers of their own and stops them propagating: their lines would bypass
    # the masking and the format. Route them through ours again.
    for name in _OWN_HANDLERS:
        library = logging.getLogger(name)
        for own in list(library.handlers):
            library.removeHandler(own)
        library.propagate = True
    # The Temporal core (Rust) prints its warnings to stdout unless told otherwise: route them
    # through logging. Possible only before the process's first Temporal client or worker.
    install_temporal_runtime()
