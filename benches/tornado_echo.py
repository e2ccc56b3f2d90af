"""Tornado line echo server, the comparison point for benches/echo.sh.

Same behaviour as Tornado's demos/tcpecho/server.py (a TCPServer whose
handle_stream loops read_until(b"\n") -> write until the client goes away),
written as a native coroutine and without the demo's per-line INFO log,
which would measure logging rather than the reactor. Like squall's echo
server it waits for nothing but the next line (the write is not awaited;
IOStream buffers it).

    python benches/tornado_echo.py --port 8898
"""
import argparse

from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.tcpserver import TCPServer


class EchoServer(TCPServer):
    async def handle_stream(self, stream, address):
        stream.set_nodelay(True)
        try:
            while True:
                line = await stream.read_until(b"\n", max_bytes=self.max_line)
                stream.write(line)
        except StreamClosedError:
            pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8898)
    parser.add_argument("--max-line", type=int, default=1 << 20)
    args = parser.parse_args()
    server = EchoServer()
    server.max_line = args.max_line
    server.listen(args.port, address="127.0.0.1", backlog=4096)
    IOLoop.current().start()


if __name__ == "__main__":
    main()
