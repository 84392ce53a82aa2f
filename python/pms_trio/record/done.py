"""What runs when a recording ends, sans-IO: ``record.execRecordDone`` made into a shell command.

Owns: substituting ``{file}`` and ``{stream}`` (each shell-quoted, so a name with spaces or quotes
stays one word and cannot inject a command) and the environment (``PMS_RECORD_FILE``,
``PMS_RECORD_STREAM``) the command runs with. Running it (in the server's working folder, with a
time limit, logging its exit code and output) is the recording service's job.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping


def done_command(template: str, file: str, stream: str) -> str:
    """The shell command line for ``template`` with ``{file}``/``{stream}`` replaced by the quoted
    path and stream name. Other braces are left as they are (a shell ``${VAR}`` keeps working)."""
    return template.replace("{file}", shlex.quote(file)).replace("{stream}", shlex.quote(stream))


def done_environment(base: Mapping[str, str], file: str, stream: str) -> dict[str, str]:
    env = dict(base)
    env["PMS_RECORD_FILE"] = file
    env["PMS_RECORD_STREAM"] = stream
    return env
