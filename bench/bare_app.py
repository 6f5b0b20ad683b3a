"""The floor: a bare ASGI app that reads the body and answers 202. Ingest is measured as a ratio of it."""


async def app(scope, receive, send):
    if scope["type"] != "http":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 202, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


class _Rsgi:
    """The same floor on Granian's RSGI, the protocol `strana serve` speaks (collector/rsgi.py)."""

    async def __rsgi__(self, scope, protocol):
        await protocol()
        protocol.response_bytes(202, [("content-type", "text/plain")], b"ok")


rsgi = _Rsgi()
