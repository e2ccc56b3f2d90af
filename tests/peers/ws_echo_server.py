#!/usr/bin/env python3
"""Black-box WebSocket echo server for squall's client tests, built on the
`websockets` package (its sync API).

Usage: ws_echo_server.py

Listens on 127.0.0.1 on a free port and prints the port on the first line.
Echoes every message; a text message "close <code> <reason>" makes it close
with that code instead. Exits when its standard input is closed (so it
never outlives the test that started it).
"""
import sys
import threading

from websockets.sync.server import serve


def echo(ws) -> None:
    for message in ws:
        if isinstance(message, str) and message.startswith("close "):
            _, code, reason = message.split(" ", 2)
            ws.close(int(code), reason)
            return
        ws.send(message)


def main() -> None:
    with serve(echo, "127.0.0.1", 0, max_size=None, compression=None) as server:
        print(server.socket.getsockname()[1], flush=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        sys.stdin.read()  # returns at EOF: the test is over
        server.shutdown()


if __name__ == "__main__":
    main()
