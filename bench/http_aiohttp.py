#!/usr/bin/env python3
"""The JSON handler of bench/parts/http.sh written for aiohttp, as a user
would: `|req| #{ok: true, n: req.query.n}` in Python.

  http_aiohttp.py PORT    listen on 127.0.0.1:PORT (0 picks one, printed)
"""
import asyncio
import sys

from aiohttp import web


async def handle(request):
    return web.json_response({"ok": True, "n": request.query.get("n")})


async def main(port):
    app = web.Application()
    app.router.add_get("/", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
