"""structlog configured for JSON lines on stderr, with secrets scrubbed as a last line of defence.

Every logger goes through one handler on the root logger: structlog's own events and the
standard library's (Alembic, uvicorn, arq, pymorphy3, websockets) are rendered by structlog's
``ProcessorFormatter``, so each line of stderr is one JSON object (readable text on a terminal).
"""

from __future__ import annotations

import logging
import re
import sys

import structlog

# VK user tokens start with "vk1.a." or are 85 hex-ish characters; API tokens start "vkcp_".
_SECRET = re.compile(r"(vk1\.a\.[\w\-.]+|vkcp_[\w\-]+|access_token=[^&\s\"']+|Bearer\s+[\w\-.]+)")

# Libraries whose INFO lines are chatter: Alembic's (its plugin list, its context, each step:
# ``database.migrated`` says what was applied), every HTTP request httpx sends to VK. Their
# warnings still show.
_QUIET = ("httpx", "httpcore", "alembic", "websockets")


def _scrub(_, __, event_dict):
    for key, value in list(event_dict.items()):
        if isinstance(value, str) and _SECRET.search(value):
            event_dict[key] = _SECRET.sub("[secret]", value)
    return event_dict


def configure_logging(level: str = "INFO", *, json: bool | None = None) -> None:
    if json is None:
        json = not sys.stderr.isatty()
    level_no = logging.getLevelName(level.upper())
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            # Records from the standard library get what structlog's own events have.
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                timestamper,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _scrub,
                structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False),
            ],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_no)
    logging.captureWarnings(True)  # Python's warnings too: lines of their own on stderr otherwise
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, level_no))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "arq", "alembic"):
        # uvicorn's own config (when one is given) adds handlers; ours is the root's alone.
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamper,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
