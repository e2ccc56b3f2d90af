#!/usr/bin/env python3
"""Black-box WebSocket client for squall's tests, built on the `websockets`
package (its sync API): an independent RFC 6455 implementation.

Usage: ws_client.py URL

Runs the exchange below against an echo endpoint and prints one line per
step; any failed check raises (exit status 1). The last line is the close
code and reason the server answered our close with.
"""
import sys

from websockets.sync.client import connect


def main(url: str) -> None:
    with connect(
        url,
        subprotocols=["chat"],
        max_size=None,
        open_timeout=10,
        close_timeout=10,
        proxy=None,
        compression=None,
    ) as ws:
        assert ws.subprotocol == "chat", ws.subprotocol
        print("subprotocol chat")
        for size in (0, 125, 126, 65535, 65536, 1 << 20):
            text = "é" * (size // 2) + "x" * (size % 2)
            ws.send(text)
            assert ws.recv(timeout=10) == text, f"text of {size} bytes"
            data = bytes(i % 251 for i in range(size))
            ws.send(data)
            assert ws.recv(timeout=10) == data, f"binary of {size} bytes"
            print(f"echo {size}")
        # An iterable is sent as a fragmented message.
        ws.send(["frag", "ment", "ed ", "κόσμε"])
        assert ws.recv(timeout=10) == "fragmented κόσμε"
        ws.send([b"\x00\x01", b"", b"\x02"])
        assert ws.recv(timeout=10) == b"\x00\x01\x02"
        print("fragmented")
        pong = ws.ping(b"python ping")
        assert pong.wait(10), "no pong"
        print("pong")
        ws.close(4000, "python bye")
        print(f"closed {ws.close_code} {ws.close_reason!r}")


if __name__ == "__main__":
    main(sys.argv[1])
