#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A database "10 ms away" for the fleet bench (docs/performance.md, "The fleet row"): a TCP proxy on
loopback that holds every chunk for DELAY ms in each direction before passing it on, in order.

Why not `tc qdisc … netem delay`: the kernels these benches run on have no sch_netem (`tc qdisc add
dev lo root netem delay 5ms` answers "qdisc kind is unknown", and modules cannot be loaded). A
userspace hop adds its own cost (≈ 0.1 ms per chunk in asyncio), small beside 5 ms each way.

    delay_proxy.py --listen 127.0.0.1:PORT --upstream-unix /path/.s.PGSQL.5432 --delay-ms 5

Prints `ready PORT` on stdout once listening; runs until killed (by PID)."""
from __future__ import annotations

import argparse
import asyncio
import sys
import time


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copies reader to writer, each chunk leaving `delay` seconds after it arrived (order kept)."""
    queue: asyncio.Queue = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.ensure_future(send())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            queue.put_nowait((time.monotonic() + delay, data))
    except ConnectionError:
        pass
    queue.put_nowait((0.0, None))
    try:
        await sender
    except ConnectionError:
        pass


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True, help="HOST:PORT (PORT 0: any free port)")
    ap.add_argument("--upstream-unix", required=True, help="the server's Unix socket")
    ap.add_argument("--delay-ms", type=float, default=5.0, help="one-way delay in each direction")
    args = ap.parse_args()
    delay = args.delay_ms / 1000

    async def connected(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_unix_connection(args.upstream_unix)
        except OSError:
            client_w.close()
            return
        sock = client_w.get_extra_info("socket")
        if sock is not None:
            import socket
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(pump(client_r, server_w, delay), pump(server_r, client_w, delay))

    host, port = args.listen.rsplit(":", 1)
    server = await asyncio.start_server(connected, host, int(port))
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
