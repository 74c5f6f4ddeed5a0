"""The console's HTTP side: static pages, JSON endpoints, the throughput history, the safety checks.

Routes (on the ``kbroker.http.listeners`` listener, beside ``/metrics``):

- ``GET /`` the single page (``static/index.html``), ``GET /static/<file>`` its script and style;
- ``GET /api/...`` reads: overview, throughput, topics, topic, messages, tail, groups, group,
  transactions, producers, acls, users, delayed; ``GET /api/session``: who is logged in;
- ``POST /api/...`` changes: create topic, delete topic, alter configs, produce, reset offsets,
  create/delete ACL, add/delete SCRAM user; ``POST /api/login``, ``POST /api/logout``.

Safety:

- When the broker has a SASL_PLAINTEXT or SASL_SSL listener with PLAIN or SCRAM, every endpoint but the
  session ones needs a login (:mod:`kbroker.console.sessions`): the console's Kafka requests then
  authenticate as that user, so the broker's authorizer applies that principal's ACLs to each.

- Every state-changing endpoint is POST only, with a JSON body (``Content-Type:
  application/json``) and the header ``X-Kbroker-Console: 1``; a browser sends neither cross-site
  without a CORS preflight, which this server never grants. When the browser says where the
  request comes from (``Origin``, ``Sec-Fetch-Site``), it must be this very origin. So another
  site open in the same browser cannot make the console change anything (CSRF).
- When the listener is on loopback, the ``Host`` header must name a loopback host (a DNS
  rebinding page's requests carry its own host name and are refused).
- Pages are static; all data goes into the page as JSON and is put into text nodes by the script
  (never ``innerHTML``), under a Content-Security-Policy that allows only this origin's script and
  no inline script: a record value, topic name, header or group id of ``<script>...`` shows as text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

from kbroker import __version__
from kbroker.console import access, delayed_view, groups, ops, records
from kbroker.console.client import AuthenticationFailed, BrokerUnreachable, KafkaClient, KafkaError
from kbroker.console.sessions import (
    ConsoleBroker,
    LoginListener,
    Session,
    Sessions,
    clear_cookie,
    cookie_token,
    local_address,
    login_listener,
    set_cookie,
)
from kbroker.server.http import HttpError, Response, is_loopback

if TYPE_CHECKING:
    from kbroker.json_types import JsonObject

log = logging.getLogger("kbroker.console")

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}
SAMPLE_INTERVAL = 5.0
HISTORY_POINTS = 180  # 15 minutes of 5 s samples


class Throughput:
    """This broker's byte and message counters (the per-partition counters ``/metrics`` reports,
    summed), sampled every few seconds and kept for the last minutes as rates."""

    def __init__(self, totals: Callable[[], dict[str, float]]) -> None:
        self.totals = totals
        self.samples: deque[tuple[float, dict[str, float]]] = deque(maxlen=HISTORY_POINTS + 1)
        self.task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        self.samples.append((time.time(), self.totals()))

    def start(self) -> None:
        if self.task is None:
            self.sample()
            self.task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL)
            self.sample()

    def series(self) -> dict[str, object]:
        """Per-second rates between consecutive samples, and the rate since the last sample."""
        points = list(self.samples)
        now_t, now = time.time(), self.totals()
        rates = []
        for (t0, a), (t1, b) in zip(points, points[1:], strict=False):
            dt = max(t1 - t0, 1e-3)
            rates.append({"t": t1, **{k: max(0.0, (b[k] - a[k]) / dt) for k in a}})
        current = None
        if points:
            t0, a = points[-1]
            dt = now_t - t0
            if dt >= 0.5:
                current = {k: max(0.0, (now[k] - a[k]) / dt) for k in a}
            elif rates:
                current = {k: rates[-1][k] for k in a}
        return {"interval_s": SAMPLE_INTERVAL, "points": rates, "current": current, "totals": now}


class Console:
    """Answers the console's routes; a Kafka client of the broker's own listener."""

    def __init__(self, broker: ConsoleBroker, totals: Callable[[], dict[str, float]], listeners_loopback: bool) -> None:
        self.broker = broker
        self.loopback = listeners_loopback
        self.sessions = Sessions()
        # A SASL_PLAINTEXT or SASL_SSL listener with PLAIN or SCRAM: logins required (kbroker.console.sessions).
        self.login_listener = login_listener(broker)
        self.unavailable: str | None = None
        host, port = "127.0.0.1", 0
        if self.login_listener is None:
            try:
                host, port = self.bootstrap()
            except RuntimeError as exc:
                log.warning("console: %s", exc)
                self.unavailable = str(exc)
        self.client = KafkaClient(host, port, local_node=broker.node_id)
        self.throughput = Throughput(totals)

    def bootstrap(self) -> tuple[str, int]:
        """The broker's first PLAINTEXT listener, as a client on this host reaches it."""
        for endpoint in self.broker.config.client_listeners:
            if endpoint.security_protocol != "PLAINTEXT":
                continue
            bound = self.broker.bound.get(endpoint.listener)
            if bound is None:
                continue
            return local_address(*bound)
        raise RuntimeError("the console needs a PLAINTEXT, SASL_PLAINTEXT or SASL_SSL (PLAIN or SCRAM) listener "
                           "to reach the broker")

    async def stop(self) -> None:
        self.throughput.stop()
        await self.client.close()
        for session in self.sessions.all():
            self.sessions.remove(session.token)
            await session.client.close()

    # -- dispatch -------------------------------------------------------------------------------

    async def respond(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        url = urlsplit(target)
        path = url.path
        self._check_host(headers)
        if path == "/" or path.startswith("/static/"):
            if method != "GET":
                raise HttpError(405, f"{method} not allowed on {path}")
            return self._static("index.html" if path == "/" else path[len("/static/"):])
        if not path.startswith("/api/"):
            raise HttpError(404, f"no such page: {path}")
        if self.unavailable is not None:
            return self._json_response(502, {"error": self.unavailable})
        parts = [unquote(p) for p in path[len("/api/"):].split("/")]
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        if method not in ("GET", "POST"):
            raise HttpError(405, f"{method} not allowed: reads are GET, changes are POST")
        if method == "POST":
            self._check_same_origin(headers)
        client = self.client
        for idle in self.sessions.expire():  # an hour idle: its password and connections go
            await idle.client.close()
        if parts in (["session"], ["login"], ["logout"]):
            return await self._session_route(parts[0], method, headers, body)
        if self.login_listener is not None:
            session = self.sessions.get(cookie_token(headers))
            if session is None:
                return self._json_response(401, {"error": "log in first: the broker has SASL users", "login": True})
            client = session.client
        try:
            if method == "GET":
                result = await self._get(parts, query, client)
            else:
                result = await self._post(parts, self._json(body), client)
        except ops.Invalid as exc:
            return self._json_response(400, {"error": str(exc), "field": exc.field})
        except ops.NotFound as exc:
            return self._json_response(404, {"error": str(exc)})
        except ops.Conflict as exc:
            return self._json_response(409, {"error": str(exc)})
        except KafkaError as exc:
            status = 403 if exc.code.endswith("_AUTHORIZATION_FAILED") else 400
            return self._json_response(status, {"error": str(exc), "code": exc.code})
        except AuthenticationFailed as exc:  # the broker no longer takes the session's credentials
            return self._json_response(401, {"error": str(exc), "login": True})
        except BrokerUnreachable as exc:
            return self._json_response(502, {"error": str(exc)})
        except HttpError as exc:
            return self._json_response(exc.status, {"error": str(exc), "field": exc.field})
        return self._json_response(200, result)

    async def _get(self, parts: list[str], query: dict[str, str], c: KafkaClient) -> object:
        match parts:
            case ["overview"]:
                out = await ops.overview(c)
                out["version"] = __version__
                out["node_id"] = self.broker.node_id
                return out
            case ["throughput"]:
                return self.throughput.series()
            case ["topics"]:
                return await ops.list_topics(c)
            case ["topics", name]:
                return await ops.describe_topic(c, ops.topic_name(name))
            case ["topics", name, "messages"]:
                return await records.browse(c, name, query)
            case ["topics", name, "tail"]:
                return await records.tail(c, name, query)
            case ["groups"]:
                return await groups.list_groups(c)
            case ["groups", group]:
                return await groups.describe_group(c, group)
            case ["transactions"]:
                return await groups.transactions(c)
            case ["producers"]:
                return await groups.producers(c)
            case ["delayed"]:
                return await delayed_view.pending(c)
            case ["acls"]:
                return await access.list_acls(c)
            case ["users"]:
                return await access.list_users(c)
        raise HttpError(404, f"no such endpoint: GET /api/{'/'.join(parts)}")

    async def _post(self, parts: list[str], data: JsonObject, c: KafkaClient) -> object:
        match parts:
            case ["topics"]:
                return await ops.create_topic(c, data)
            case ["topics", name, "delete"]:
                return await ops.delete_topic(c, ops.topic_name(name))
            case ["topics", name, "configs"]:
                return await ops.alter_configs(c, ops.topic_name(name), data)
            case ["topics", name, "produce"]:
                return await records.produce(c, name, data)
            case ["groups", group, "reset-offsets"]:
                return await groups.reset_offsets(c, group, data)
            case ["acls"]:
                return await access.create_acl(c, data)
            case ["acls", "delete"]:
                return await access.delete_acl(c, data)
            case ["users"]:
                return await access.add_user(c, data)
            case ["users", "delete"]:
                return await access.delete_user(c, data)
        raise HttpError(404, f"no such endpoint: POST /api/{'/'.join(parts)}")

    # -- sessions -------------------------------------------------------------------------------

    async def _session_route(self, route: str, method: str, headers: dict[str, str], body: bytes) -> Response:
        listener = self.login_listener
        token = cookie_token(headers)
        if route == "session":
            if method != "GET":
                raise HttpError(405, "GET /api/session")
            session = self.sessions.get(token)
            return self._json_response(200, {
                "login_required": listener is not None, "mechanisms": listener[2] if listener else [],
                "user": session.username if session else None,
                "principal": session.principal if session else None})
        if method != "POST":
            raise HttpError(405, f"POST /api/{route}")
        if route == "logout":
            gone = self.sessions.remove(token)
            if gone is not None:
                await gone.client.close()
            return self._json_response(200, {"logged_out": gone is not None}, {"Set-Cookie": clear_cookie()})
        if listener is None:
            return self._json_response(400, {"error": "the broker has no SASL listener: nothing to log in to"})
        return await self._login(listener, self._json(body))

    async def _login(self, listener: LoginListener, data: JsonObject) -> Response:
        host, port, mechanisms, tls = listener
        username, password = data.get("username"), data.get("password")
        mechanism = data.get("mechanism") or mechanisms[0]
        if not isinstance(username, str) or not username:
            return self._json_response(400, {"error": "the user name is required", "field": "username"})
        if not isinstance(password, str) or not password:
            return self._json_response(400, {"error": "the password is required", "field": "password"})
        if mechanism not in mechanisms:
            return self._json_response(400, {"error": f"mechanism must be one of {', '.join(mechanisms)}",
                                             "field": "mechanism"})
        client = KafkaClient(host, port, local_node=self.broker.node_id, credentials=(mechanism, username, password),
                             tls=tls)
        try:
            # The first request opens a connection, which authenticates first: the broker's SASL
            # server checks the credentials.
            await client.send(18, 3, client_software_name="kbroker-console", client_software_version="1")
        except AuthenticationFailed as exc:
            await client.close()
            log.info("console login of %r with %s refused: %s", username, mechanism, exc)
            return self._json_response(401, {"error": str(exc), "field": "password"})
        except BrokerUnreachable as exc:
            await client.close()
            return self._json_response(502, {"error": str(exc)})
        session, dropped = self.sessions.add(username, mechanism, client)
        for old in dropped:
            await old.client.close()
        log.info("console login of %r with %s", username, mechanism)
        return self._json_response(200, _session_json(session), {"Set-Cookie": set_cookie(session.token)})

    # -- safety ---------------------------------------------------------------------------------

    def _check_host(self, headers: dict[str, str]) -> None:
        if not self.loopback:
            return
        host = headers.get("host", "")
        name = host[1:].partition("]")[0] if host.startswith("[") else host.rpartition(":")[0] or host
        if not is_loopback(name):
            raise HttpError(403, f"Host {host!r} is not a loopback name: the console listens on loopback only")

    def _check_same_origin(self, headers: dict[str, str]) -> None:
        if headers.get("x-kbroker-console") != "1":
            raise HttpError(403, "changes need the X-Kbroker-Console: 1 header (sent by the console's pages)")
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise HttpError(415, "changes take a JSON body (Content-Type: application/json)")
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            raise HttpError(403, f"cross-site request refused (Sec-Fetch-Site: {site})")
        origin = headers.get("origin")
        if origin is not None and origin != f"http://{headers.get('host', '')}":
            raise HttpError(403, f"cross-origin request refused (Origin: {origin})")

    # -- bodies ---------------------------------------------------------------------------------

    @staticmethod
    def _json(body: bytes) -> JsonObject:
        try:
            data = json.loads(body or b"{}")
        except ValueError as exc:
            raise HttpError(400, f"the body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise HttpError(400, "the body must be a JSON object")
        return data

    @staticmethod
    def _json_response(status: int, data: object, headers: dict[str, str] | None = None) -> Response:
        return status, "application/json", json.dumps(data).encode(), SECURITY_HEADERS | (headers or {})

    @staticmethod
    def _static(name: str) -> Response:
        suffix = name[name.rfind("."):] if "." in name else ""
        if "/" in name or name.startswith(".") or suffix not in STATIC_TYPES:
            raise HttpError(404, f"no such file: {name}")
        try:
            data = resources.files("kbroker.console").joinpath("static", name).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise HttpError(404, f"no such file: {name}") from None
        return 200, STATIC_TYPES[suffix], data, SECURITY_HEADERS

    def error(self, status: int, message: str, field: str | None = None) -> Response:
        return self._json_response(status, {"error": message, "field": field})


def _session_json(session: Session) -> dict[str, object]:
    return {"login_required": True, "user": session.username, "principal": session.principal,
            "mechanism": session.mechanism}
