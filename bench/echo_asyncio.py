#!/usr/bin/env python3
"""Baseline for bench/parts/echo.sh: a Python asyncio echo server.

  echo_asyncio.py PORT    listen on 127.0.0.1:PORT (0 picks one, printed)

It uses asyncio's Protocol callbacks (data_received -> transport.write), the
fastest way plain asyncio echoes, so netsh is compared with asyncio at its best.
"""
import asyncio
import socket
import sys


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def main(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", port, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
