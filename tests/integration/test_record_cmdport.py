"""The record command port on its own (no media core): one port answers the seed's JSON commands
over HTTP (POST /) and over WebSocket, with real clients (httpx, trio-websocket), and survives
garbage, oversize commands and half-open connections."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from pms_trio.record import cmdport
from pms_trio.record.protocol import CommandError, build_reply, error_reply, parse_command


async def _execute(body: bytes) -> str:
    try:
        cmd = parse_command(body)
    except CommandError as e:
        return error_reply(e)
    if cmd.stream == "busy":
        return build_reply("record.start", stream=cmd.stream, err=409, err_msg="already recording")
    return build_reply(type(cmd).__name__, {"stream": cmd.stream}, stream=cmd.stream)


async def _start(nursery):
    host, port = await nursery.start(cmdport.serve, "127.0.0.1", 0, _execute)
    return f"127.0.0.1:{port}"


@pytest.mark.trio
async def test_http_and_websocket_on_one_port():
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            addr = await _start(nursery)
            async with httpx.AsyncClient(base_url=f"http://{addr}") as client:
                r = await client.post("/", content=json.dumps(
                    {"stream": "a", "method": "record.start", "data": {"fileName": "a.webm"}}))
                assert r.status_code == 200 and r.json()["err"] == 0 and r.json()["data"] == {"stream": "a"}
                # keep-alive: a second command on the same connection
                r = await client.post("/", content=b'{"stream": "a", "method": "record.stop", "data": {}}')
                assert r.status_code == 200 and r.json()["method"] == "StopRecording"
                r = await client.post("/", content=b'{"stream": "busy", "method": "record.start", '
                                                     b'"data": {"fileName": "b.mkv"}}')
                assert r.status_code == 409 and r.json()["err"] == 409
                r = await client.post("/", content=b'{"stream": "a", "method": "record.start", '
                                                     b'"data": {"fileName": "../x.mkv"}}')
                assert r.status_code == 400 and "path separator" in r.json()["err_msg"]
                r = await client.post("/", content=b"garbage")
                assert r.status_code == 400 and r.json()["method"] == "ack"
                r = await client.post("/", content=b"x" * (70 * 1024))
                assert r.status_code == 413
            async with httpx.AsyncClient(base_url=f"http://{addr}") as client:
                assert (await client.get("/")).status_code == 405
                assert (await client.post("/nope", content=b"{}")).status_code == 404

            async with open_websocket_url(f"ws://{addr}/") as ws:
                await ws.send_message(json.dumps({"stream": "c", "method": "record.start",
                                                  "data": {"fileName": "c.mp4"}}))
                reply = json.loads(await ws.get_message())
                assert reply["err"] == 0 and reply["method"] == "StartRecording"
                await ws.send_message("not json")
                assert json.loads(await ws.get_message())["err"] == 400
                await ws.send_message(b'{"stream": "c", "method": "record.stop"}')
                assert json.loads(await ws.get_message())["err"] == 0
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_garbage_and_half_open_connections_do_not_stop_the_port():
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            addr = await _start(nursery)
            port = int(addr.rsplit(":", 1)[1])
            silent = await trio.open_tcp_stream("127.0.0.1", port)  # says nothing, stays open
            for junk in (b"\x16\x03\x01\x00\xff" * 50, b"GET / HTTP/1.1\r\nHost: x\r\n" + b"A: " + b"b" * 70000,
                         b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", b"\r\n\r\n\r\n"):
                s = await trio.open_tcp_stream("127.0.0.1", port)
                await s.send_all(junk)
                with trio.move_on_after(3):
                    while await s.receive_some(4096):
                        pass
                await s.aclose()
            async with httpx.AsyncClient(base_url=f"http://{addr}") as client:
                r = await client.post("/", content=b'{"stream": "a", "method": "record.stop"}')
                assert r.status_code == 200
            await silent.aclose()
            nursery.cancel_scope.cancel()
