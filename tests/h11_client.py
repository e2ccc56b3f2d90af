"""Strict black-box HTTP/1.1 client for squall's tests, built on h11.

Usage: python3 tests/h11_client.py HOST PORT < requests.json

requests.json is a list of {"method", "target", "headers": [[k, v]...],
"body": str | null, "chunks": [str...] | null}. All requests go over one
connection, one after another (keep-alive); h11 validates every response
(status line, header syntax, framing, keep-alive rules) and raises on any
violation. Prints a JSON list of {"status", "informational": [codes],
"headers": {lowercased: value}, "body": latin-1 text}, plus a final
{"closed_by_server": bool} describing the connection after the last one.
"""

import json
import socket
import sys

import h11


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    requests = json.load(sys.stdin)
    sock = socket.create_connection((host, port), timeout=10)
    conn = h11.Connection(our_role=h11.CLIENT)

    def send(event):
        data = conn.send(event)
        if data:
            sock.sendall(data)

    def receive():
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
                continue
            return event

    results = []
    for req in requests:
        headers = [("Host", "test")] + [tuple(h) for h in req.get("headers", [])]
        body = req.get("body")
        chunks = req.get("chunks")
        if body is not None:
            headers.append(("Content-Length", str(len(body.encode("latin-1")))))
        if chunks is not None:
            headers.append(("Transfer-Encoding", "chunked"))
        send(h11.Request(method=req["method"], target=req["target"], headers=headers))
        expect_continue = any(
            k.lower() == "expect" and v.lower() == "100-continue" for k, v in headers
        )
        informational = []
        if expect_continue:
            # Wait for the 100 before sending a byte of the body.
            event = receive()
            assert isinstance(event, h11.InformationalResponse), event
            informational.append(event.status_code)
        if body:
            send(h11.Data(data=body.encode("latin-1")))
        for chunk in chunks or []:
            send(h11.Data(data=chunk.encode("latin-1")))
        send(h11.EndOfMessage())
        event = receive()
        while isinstance(event, h11.InformationalResponse):
            informational.append(event.status_code)
            event = receive()
        assert isinstance(event, h11.Response), event
        data = b""
        while True:
            part = receive()
            if isinstance(part, h11.Data):
                data += part.data
            elif isinstance(part, h11.EndOfMessage):
                break
            else:
                raise AssertionError(f"unexpected {part!r}")
        results.append(
            {
                "status": event.status_code,
                "informational": informational,
                "headers": {k.decode().lower(): v.decode() for k, v in event.headers},
                "body": data.decode("latin-1"),
            }
        )
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            break
        conn.start_next_cycle()

    closed = False
    if conn.their_state in (h11.MUST_CLOSE, h11.CLOSED):
        closed = sock.recv(1) == b""
    results.append({"closed_by_server": closed})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
