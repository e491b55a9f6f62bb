"""The ``crucible`` command: ``serve``, ``submit``, ``status``, ``cancel``."""

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import aiohttp
import pydantic

from dispatcher import client as api
from dispatcher.settings import DispatcherSettings

DEFAULT_URL = "http://127.0.0.1:8080"
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crucible", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the dispatcher (settings: CRUCIBLE_* env)")
    serve.add_argument("--backend", choices=["local", "kubernetes"])
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

    submit = commands.add_parser("submit", help="submit code or a command")
    source = submit.add_mutually_exclusive_group()
    source.add_argument("code", nargs="?", help="Python code; '-' reads it from stdin")
    source.add_argument("-f", "--file", help="read the code from this file")
    submit.add_argument(
        "--command", dest="argv", nargs=argparse.REMAINDER, help="run this command (the rest)"
    )
    submit.add_argument("--image")
    submit.add_argument("--timeout", type=float, help="seconds")
    submit.add_argument("--memory", help="e.g. 512Mi")
    submit.add_argument("--cpu", help="e.g. 500m")
    submit.add_argument("--eval-id")
    submit.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    submit.add_argument("--watch", action="store_true", help="stream output until it ends")

    for name, text in (("status", "show an evaluation"), ("cancel", "cancel an evaluation")):
        command = commands.add_parser(name, help=text)
        command.add_argument("eval_id")
    for command in (submit, *(commands.choices[n] for n in ("status", "cancel"))):
        command.add_argument("--url", default=os.environ.get("CRUCIBLE_URL", DEFAULT_URL))
        command.add_argument("--token", default=os.environ.get("CRUCIBLE_TOKEN"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    try:
        return asyncio.run(_client_command(args))
    except api.ApiError as e:
        for line in e.lines:
            print(f"crucible: {line}" if line is e.lines[0] else line, file=sys.stderr)
        return EXIT_USAGE if e.status == 422 else 1
    except aiohttp.ClientError as e:
        print(f"crucible: cannot reach {args.url}: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print(f"crucible: {e}", file=sys.stderr)
        return EXIT_USAGE


def _serve(args: argparse.Namespace) -> int:
    from dispatcher.serve import serve

    overrides = {k: v for k in ("backend", "host", "port") if (v := getattr(args, k)) is not None}
    try:
        settings = DispatcherSettings(**overrides)
    except pydantic.ValidationError as e:
        print(f"crucible: invalid settings:\n{e}", file=sys.stderr)
        return EXIT_USAGE
    serve(settings)
    return 0


async def _client_command(args: argparse.Namespace) -> int:
    async with aiohttp.ClientSession() as session:
        client = api.Client(session, args.url, args.token)
        if args.command == "status":
            _print_json(await client.status(args.eval_id))
            return 0
        if args.command == "cancel":
            _print_json(await client.cancel(args.eval_id))
            return 0
        record = await client.submit(submission_body(args))
        if not args.watch:
            _print_json(record)
            return 0
        print(f"crucible: submitted {record['eval_id']}", file=sys.stderr, flush=True)
        return await api.watch(client, record["eval_id"])


def submission_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if args.file:
        with open(args.file, encoding="utf-8") as f:
            body["code"] = f.read()
    elif args.code == "-":
        body["code"] = sys.stdin.read()
    elif args.code is not None:
        body["code"] = args.code
    if args.argv:
        body["command"] = args.argv
    optional = {
        "image": args.image,
        "timeout_seconds": args.timeout,
        "eval_id": args.eval_id,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    resources = {k: v for k, v in (("memory", args.memory), ("cpu", args.cpu)) if v is not None}
    if resources:
        body["resources"] = resources
    if args.env:
        body["env"] = dict(_env_pair(item) for item in args.env)
    return body


def _env_pair(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep:
        raise ValueError(f"--env {item!r}: expected NAME=VALUE")
    return name, value


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))
