#!/usr/bin/env python3
"""Tornado 6 peer of squall's public HTTP contract, for the benchmarks.

Written for this repository as a plain, idiomatic Tornado 6 application (what
a Tornado user would write from the demos), single process, one IOLoop:

- ``/hello`` (13-byte ``Hello, world!``), ``/healthz``, ``/metrics``;
- accounts: ``/auth/register``, ``/auth/login``, ``/auth/logout`` with the
  signed ``user`` cookie and XSRF on every POST;
- the long-poll chat of ``demos/chat`` extended with rooms: ``/``,
  ``/room/<name>``, ``POST /a/message/new``, ``POST /a/message/updates``
  (a ``tornado.locks.Condition`` per room, ``{"messages": [...]}``, cursor =
  id of the last message seen, an unknown cursor gets the whole cache);
- ``/chatsocket?room=<name>``: WebSocket chat in the same rooms, same
  message objects;
- the book's shopping cart: ``/cart``, ``POST /cart`` (JSON with
  ``inventoryCount``, 409 when sold out), ``/cart/status?count=`` long-poll,
  ``/cart/socket``.

Passwords use a salted SHA-256, not a slow KDF: the benchmarks measure the
reactor, not password hashing. Everything lives in memory.

    python app.py --port 8889
"""

import argparse
import asyncio
import hashlib
import json
import os
import re
import time
import uuid

import tornado.escape
import tornado.locks
import tornado.web
import tornado.websocket

CACHE_SIZE = 200
MAX_BODY = 4096
ROOM_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")

# Gauges for /metrics (the loadgen reads squall_chat_waiters to know when
# every long-poll waiter is parked).
stats = {"chat_waiters": 0, "cart_waiters": 0, "ws_clients": 0}


class Room:
    """One chat room: the last 200 messages, long-poll waiters, sockets."""

    def __init__(self, name):
        self.name = name
        self.cache = []
        self.cond = tornado.locks.Condition()
        self.sockets = set()

    def messages_since(self, cursor):
        """Messages after ``cursor``; an unknown (or no) cursor gets them all."""
        if cursor:
            for i in range(len(self.cache) - 1, -1, -1):
                if self.cache[i]["id"] == cursor:
                    return self.cache[i + 1 :]
        return list(self.cache)

    def add_message(self, message):
        self.cache.append(message)
        if len(self.cache) > CACHE_SIZE:
            self.cache = self.cache[-CACHE_SIZE:]
        self.cond.notify_all()
        payload = tornado.escape.json_encode(message)
        for socket in list(self.sockets):
            try:
                socket.write_message(payload)
            except tornado.websocket.WebSocketClosedError:
                self.sockets.discard(socket)


rooms = {}


def get_room(name):
    if not ROOM_RE.match(name or ""):
        raise tornado.web.HTTPError(404, "bad room name")
    room = rooms.get(name)
    if room is None:
        room = rooms[name] = Room(name)
    return room


users = {}  # lower-cased name -> (name, salt, digest)


def hash_password(salt, password):
    return hashlib.sha256(salt + password.encode()).hexdigest()


def safe_next(url):
    """Only local paths are followed (no open redirect)."""
    if url and url.startswith("/") and not url.startswith("//") and "\\" not in url:
        return url
    return "/"


class BaseHandler(tornado.web.RequestHandler):
    def get_current_user(self):
        name = self.get_signed_cookie("user")
        if not name:
            return None
        name = name.decode()
        return name if name.lower() in users else None


class HelloHandler(tornado.web.RequestHandler):
    def get(self):
        self.write("Hello, world!")


class HealthHandler(tornado.web.RequestHandler):
    def get(self):
        self.write("ok")


class MetricsHandler(tornado.web.RequestHandler):
    def get(self):
        self.set_header("Content-Type", "text/plain; version=0.0.4")
        lines = []
        for key in ("chat_waiters", "cart_waiters", "ws_clients"):
            lines.append("# TYPE squall_%s gauge" % key)
            lines.append("squall_%s %d" % (key, stats[key]))
        lines.append("squall_chat_rooms %d" % len(rooms))
        self.write("\n".join(lines) + "\n")


class RegisterHandler(BaseHandler):
    def get(self):
        self.render("login.html", action="register", error=None, next=self.get_argument("next", "/"))

    def post(self):
        name = self.get_argument("name", "").strip()
        password = self.get_argument("password", "")
        nxt = self.get_argument("next", "/")
        if not NAME_RE.match(name) or not password:
            self.set_status(400)
            return self.render("login.html", action="register", error="Bad name or password", next=nxt)
        if name.lower() in users:
            self.set_status(409)
            return self.render("login.html", action="register", error="Name taken", next=nxt)
        salt = os.urandom(16)
        users[name.lower()] = (name, salt, hash_password(salt, password))
        self.set_signed_cookie("user", name)
        self.redirect(safe_next(nxt))


class LoginHandler(BaseHandler):
    def get(self):
        self.render("login.html", action="login", error=None, next=self.get_argument("next", "/"))

    def post(self):
        name = self.get_argument("name", "").strip()
        password = self.get_argument("password", "")
        nxt = self.get_argument("next", "/")
        record = users.get(name.lower())
        if record is None or hash_password(record[1], password) != record[2]:
            self.set_status(403)
            return self.render("login.html", action="login", error="Wrong name or password", next=nxt)
        self.set_signed_cookie("user", record[0])
        self.redirect(safe_next(nxt))


class LogoutHandler(BaseHandler):
    def get(self):
        self.clear_cookie("user")
        self.redirect("/auth/login")


class RoomHandler(BaseHandler):
    @tornado.web.authenticated
    def get(self, name="lobby"):
        room = get_room(name)
        self.render("room.html", room=room, messages=room.cache)


def make_message(handler, body):
    message = {
        "id": str(uuid.uuid4()),
        "from": handler.current_user,
        "body": body,
        "time": time.time(),
    }
    message["html"] = tornado.escape.to_unicode(handler.render_string("message.html", message=message))
    return message


class MessageNewHandler(BaseHandler):
    @tornado.web.authenticated
    def post(self):
        body = self.get_argument("body", "")
        if not body.strip() or len(body) > MAX_BODY:
            raise tornado.web.HTTPError(400, "empty or oversized body")
        room = get_room(self.get_argument("room", "lobby"))
        message = make_message(self, body)
        if self.get_argument("next", None):
            self.redirect(safe_next(self.get_argument("next")))
        else:
            self.write(message)
        room.add_message(message)


class MessageUpdatesHandler(BaseHandler):
    """Long-polling: answer with the messages after ``cursor``, or wait."""

    wait_future = None

    @tornado.web.authenticated
    async def post(self):
        room = get_room(self.get_argument("room", "lobby"))
        cursor = self.get_argument("cursor", None)
        messages = room.messages_since(cursor)
        while not messages:
            self.wait_future = room.cond.wait()
            stats["chat_waiters"] += 1
            try:
                await self.wait_future
            except asyncio.CancelledError:
                return
            finally:
                stats["chat_waiters"] -= 1
            messages = room.messages_since(cursor)
        if self.request.connection.stream.closed():
            return
        self.write(dict(messages=messages))

    def on_connection_close(self):
        if self.wait_future is not None:
            self.wait_future.cancel()


class ChatSocketHandler(tornado.websocket.WebSocketHandler):
    room = None

    def get_current_user(self):
        return BaseHandler.get_current_user(self)

    def prepare(self):
        if not self.current_user:
            raise tornado.web.HTTPError(403)
        self.room = get_room(self.get_argument("room", "lobby"))

    def open(self):
        self.room.sockets.add(self)
        stats["ws_clients"] += 1

    def on_close(self):
        if self in self.room.sockets:
            self.room.sockets.discard(self)
        stats["ws_clients"] -= 1

    def on_message(self, text):
        try:
            body = tornado.escape.json_decode(text).get("body", "")
        except (ValueError, AttributeError):
            return
        if not isinstance(body, str) or not body.strip() or len(body) > MAX_BODY:
            return
        self.room.add_message(make_message(self, body))


class ShoppingCart:
    """The book's cart: 10 in stock, one per session, never below 0."""

    total_inventory = 10

    def __init__(self):
        self.carts = set()
        self.cond = tornado.locks.Condition()
        self.sockets = set()

    @property
    def count(self):
        return self.total_inventory - len(self.carts)

    def add(self, session):
        if session in self.carts:
            return True
        if self.count <= 0:
            return False
        self.carts.add(session)
        self.changed()
        return True

    def remove(self, session):
        if session in self.carts:
            self.carts.discard(session)
            self.changed()

    def changed(self):
        self.cond.notify_all()
        for socket in list(self.sockets):
            try:
                socket.write_message({"inventoryCount": self.count})
            except tornado.websocket.WebSocketClosedError:
                self.sockets.discard(socket)


cart = ShoppingCart()


class CartPageHandler(tornado.web.RequestHandler):
    def get(self):
        self.render("cart.html", session=str(uuid.uuid4()), count=cart.count)

    def post(self):
        action = self.get_argument("action", "")
        session = self.get_argument("session", "")
        if not session or action not in ("add", "remove"):
            raise tornado.web.HTTPError(400)
        if action == "add" and not cart.add(session):
            self.set_status(409)
            return self.write({"error": "sold out", "inventoryCount": cart.count})
        if action == "remove":
            cart.remove(session)
        self.write({"inventoryCount": cart.count})


class CartStatusHandler(tornado.web.RequestHandler):
    wait_future = None

    async def get(self):
        try:
            last = int(self.get_argument("count", "-1"))
        except ValueError:
            raise tornado.web.HTTPError(400)
        while cart.count == last:
            self.wait_future = cart.cond.wait()
            stats["cart_waiters"] += 1
            try:
                await self.wait_future
            except asyncio.CancelledError:
                return
            finally:
                stats["cart_waiters"] -= 1
        if self.request.connection.stream.closed():
            return
        self.write({"inventoryCount": cart.count})

    def on_connection_close(self):
        if self.wait_future is not None:
            self.wait_future.cancel()


class CartSocketHandler(tornado.websocket.WebSocketHandler):
    def open(self):
        cart.sockets.add(self)
        self.write_message({"inventoryCount": cart.count})

    def on_close(self):
        cart.sockets.discard(self)


def make_app():
    here = os.path.dirname(os.path.abspath(__file__))
    return tornado.web.Application(
        [
            (r"/hello", HelloHandler),
            (r"/healthz", HealthHandler),
            (r"/metrics", MetricsHandler),
            (r"/", RoomHandler),
            (r"/room/([^/]+)", RoomHandler),
            (r"/auth/register", RegisterHandler),
            (r"/auth/login", LoginHandler),
            (r"/auth/logout", LogoutHandler),
            (r"/a/message/new", MessageNewHandler),
            (r"/a/message/updates", MessageUpdatesHandler),
            (r"/chatsocket", ChatSocketHandler),
            (r"/cart", CartPageHandler),
            (r"/cart/status", CartStatusHandler),
            (r"/cart/socket", CartSocketHandler),
        ],
        # A fixed secret: this is a benchmark peer, not a deployment.
        cookie_secret="squall-bench-peer-not-a-secret",
        login_url="/auth/login",
        template_path=os.path.join(here, "templates"),
        xsrf_cookies=True,
    )


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8889)
    parser.add_argument("--address", default="127.0.0.1")
    args = parser.parse_args()
    app = make_app()
    # Tornado's defaults throughout (listen backlog 128, no xheaders).
    app.listen(args.port, address=args.address)
    print("tornado %s peer listening on %s:%d" % (tornado.version, args.address, args.port), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
