"""structlog configured for JSON lines on stderr, with secrets scrubbed as a last line of defence."""

from __future__ import annotations

import logging
import re
import sys

import structlog

# VK user tokens start with "vk1.a." or are 85 hex-ish characters; API tokens start "vkcp_".
_SECRET = re.compile(r"(vk1\.a\.[\w\-.]+|vkcp_[\w\-]+|access_token=[^&\s\"']+|Bearer\s+[\w\-.]+)")


def _scrub(_, __, event_dict):
    for key, value in list(event_dict.items()):
        if isinstance(value, str) and _SECRET.search(value):
            event_dict[key] = _SECRET.sub("[secret]", value)
    return event_dict


def configure_logging(level: str = "INFO", *, json: bool | None = None) -> None:
    if json is None:
        json = not sys.stderr.isatty()
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level.upper(), force=True)
    for noisy in ("httpx", "httpcore", "arq.worker"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level.upper())) if noisy != "arq.worker" else logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _scrub,
            structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
