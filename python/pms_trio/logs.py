"""Logging set-up (SPEC section 2, ``log``): console and file handlers, and the core's log events.

Owns the mapping of the config's level names (``debug``/``info``/``warn``/``error``/``none``) to
:mod:`logging` levels, the two handlers, and :func:`core_log`, which turns a core ``("log", level,
tag, message)`` event into a record of the ``pms_trio.core`` logger. The core filters its own records
by ``workerLevel``/``workerTags`` (passed to ``Core(log_level=..., log_tags=...)`` by ``app``); the
console and file levels then apply to them like to any other record.
"""

from __future__ import annotations

import logging
import os
import sys

from .config import LogConfig

_NONE = logging.CRITICAL + 10
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "warning": logging.WARNING,
          "error": logging.ERROR, "none": _NONE}
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

core_logger = logging.getLogger("pms_trio.core")


def to_level(name: str) -> int:
    return LEVELS.get(name.lower(), logging.INFO)


def setup(config: LogConfig, *, console_stream=None) -> None:
    """Install the console handler and, when ``log.file`` is set, the file handler (its folder is
    created). Raises ``OSError`` when the file cannot be opened."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter(FORMAT)
    levels = []
    console = logging.StreamHandler(console_stream or sys.stderr)
    console.setLevel(to_level(config.console_level))
    console.setFormatter(formatter)
    root.addHandler(console)
    levels.append(console.level)
    if config.file and to_level(config.file_level) < _NONE:
        folder = os.path.dirname(config.file)
        if folder:
            os.makedirs(folder, exist_ok=True)
        file_handler = logging.FileHandler(config.file, encoding="utf-8")
        file_handler.setLevel(to_level(config.file_level))
        file_handler.setFormatter(formatter)
        root.addHandler(file_handler)
        levels.append(file_handler.level)
    root.setLevel(min(levels))
    # trio-websocket logs every frame at debug level: keep that out even at consoleLevel debug.
    logging.getLogger("trio-websocket").setLevel(max(logging.INFO, root.level))


def core_log(level: str, tag: str, message: str) -> None:
    """Forward one core log event to the ``pms_trio.core`` logger."""
    core_logger.log(to_level(level) if level != "none" else logging.DEBUG, "[%s] %s", tag, message)
