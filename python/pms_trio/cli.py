"""The ``pms-trio`` command (SPEC section 1).

- ``pms-trio run -c FILE [--ready-file PATH]``: start every enabled service; exit 0 after a graceful
  stop (SIGINT/SIGTERM), 2 for an invalid config (before any port is bound), 1 when the server cannot
  start (a port in use, the media core missing...).
- ``pms-trio check -c FILE``: print the resolved settings as JSON and exit 0; an invalid config prints
  every error line on stderr and exits 2.

Owns argument parsing, exit statuses, and the process-wide set-up done before the app runs: logging
and the open-file limit.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from functools import partial

from . import __version__
from . import config as config_mod
from . import logs

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2

log = logging.getLogger("pms_trio")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pms-trio", description="WebRTC SFU, RTSP server and GB28181 gateway.")
    parser.add_argument("--version", action="version", version=f"pms-trio {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run the server")
    run.add_argument("-c", "--config", default="conf/pms.conf", help="config file (JSON or YAML; default %(default)s)")
    run.add_argument("--ready-file", metavar="PATH",
                     help="once every service is bound, write its addresses here as JSON")
    check = commands.add_parser("check", help="validate a config and print the resolved settings")
    check.add_argument("-c", "--config", default="conf/pms.conf", help="config file (default %(default)s)")
    token = commands.add_parser("token", help="print a token (JWT) signed with the config's auth.jwtSecret")
    token.add_argument("-c", "--config", default="conf/pms.conf", help="config file (default %(default)s)")
    token.add_argument("--stream", required=True, help="a stream name, or a glob: cam* (* and ? stop at /)")
    token.add_argument("--publish", action="store_true", help="allow publishing")
    token.add_argument("--play", action="store_true", help="allow playing")
    token.add_argument("--ttl", type=float, default=3600.0, help="seconds it stays valid (default %(default)s)")
    token.add_argument("--rtsp", action="store_true",
                       help="print RTSP Digest/Basic credentials USER:PASSWORD instead of a JWT")
    return parser


def _load(path: str) -> tuple[config_mod.Config, list[str]] | None:
    try:
        return config_mod.load(path)
    except config_mod.ConfigError as e:
        print(f"pms-trio: invalid config {path}:", file=sys.stderr)
        for message in e.messages:
            print(message, file=sys.stderr)
        return None


def cmd_check(path: str) -> int:
    loaded = _load(path)
    if loaded is None:
        return EXIT_BAD_CONFIG
    config, warnings = loaded
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(json.dumps(config.to_dict(), indent=2))
    return EXIT_OK


def cmd_token(path: str, stream: str, publish: bool, play: bool, ttl: float, rtsp: bool = False) -> int:
    loaded = _load(path)
    if loaded is None:
        return EXIT_BAD_CONFIG
    config, _ = loaded
    if not config.auth.jwt_secret:
        print(f"pms-trio: {path} has no auth.jwtSecret: tokens are not needed, and none can be signed",
              file=sys.stderr)
        return EXIT_FAILED
    if not (publish or play):
        print("pms-trio: give --publish, --play or both", file=sys.stderr)
        return EXIT_FAILED
    if not ttl > 0:
        print("pms-trio: --ttl must be a positive number of seconds", file=sys.stderr)
        return EXIT_FAILED
    from .auth import rtsp_credentials, sign

    if rtsp:
        user, password = rtsp_credentials(config.auth.jwt_secret, stream, publish=publish, play=play, ttl=ttl)
        print(f"{user}:{password}")
    else:
        print(sign(config.auth.jwt_secret, stream, publish=publish, play=play, ttl=ttl))
    return EXIT_OK


def raise_open_file_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit: every session holds sockets."""
    try:
        import resource
    except ImportError:  # not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= target:
        log.info("open-file limit: %s", "unlimited" if soft == resource.RLIM_INFINITY else soft)
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        log.info("open-file limit raised from %d to %d", soft, target)
    except (ValueError, OSError) as e:
        log.warning("open-file limit stays %d (could not raise it to %d: %s)", soft, target, e)


def cmd_run(path: str, ready_file: str | None) -> int:
    loaded = _load(path)
    if loaded is None:
        return EXIT_BAD_CONFIG
    config, warnings = loaded
    try:
        logs.setup(config.log)
    except OSError as e:
        print(f"pms-trio: log.file: cannot open {config.log.file}: {e.strerror or e}", file=sys.stderr)
        return EXIT_FAILED
    log.info("pms-trio %s starting with %s", __version__, path)
    for warning in warnings:
        log.warning("config: %s", warning)
    raise_open_file_limit()

    import trio  # the run path only: `check` works without trio's start-up cost

    from . import app

    try:
        trio.run(partial(app.run, config, ready_file=ready_file))
    except app.StartupError as e:
        log.error("%s", e)
        return EXIT_FAILED
    except KeyboardInterrupt:  # a second Ctrl-C before the handlers were installed
        return EXIT_OK
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check":
        return cmd_check(args.config)
    if args.command == "token":
        return cmd_token(args.config, args.stream, args.publish, args.play, args.ttl, args.rtsp)
    return cmd_run(args.config, args.ready_file)


if __name__ == "__main__":
    sys.exit(main())
