"""A small ASGI app served through collector.rsgi's bridge, for tests/test_interfaces.py: it streams, reads
bodies chunk by chunk, fails, and answers nothing, which Strana's own Litestar routes never do all of."""

from __future__ import annotations

import json

from collector.rsgi import AsgiOverRsgi


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started"] = "yes"
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for part in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif path == "/fail":
        raise RuntimeError("a bug in the app")
    elif path == "/fail-after-start":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("a bug after the start")
    elif path == "/silent":
        return
    else:  # echo what the app was given
        chunks, size = 0, 0
        while True:
            message = await receive()
            chunks += 1
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = json.dumps({
            "path": path, "raw_path": scope["raw_path"].decode(), "query": scope["query_string"].decode(),
            "method": scope["method"], "client": list(scope["client"]), "size": size, "chunks": chunks,
            "headers": {k.decode(): v.decode() for k, v in scope["headers"]}, "state": scope["state"],
        }).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"x-multi", b"1"), (b"x-multi", b"2")]})
        await send({"type": "http.response.body", "body": body})


class App:
    """What Granian loads: the bridge's RSGI call and its lifespan hooks."""

    def __init__(self):
        self.bridge = AsgiOverRsgi(asgi)

    async def __rsgi__(self, scope, protocol):
        await self.bridge(scope, protocol)

    def __rsgi_init__(self, loop):
        self.bridge.startup(loop)

    def __rsgi_del__(self, loop):
        self.bridge.shutdown(loop)


app = App()
