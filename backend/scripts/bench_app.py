"""What scripts/bench_token.py runs inside Gatehouse's own environment (the app built from the environment,
as serve.py builds it), in a process of its own:

    python scripts/bench_app.py sessions EMAIL COUNT   browser sessions for the code-flow driver (JSON list of tokens)
    python scripts/bench_app.py overhead [--requests N] [--profile]
                                                       framework overhead per request (JSON)
    python scripts/bench_app.py exchange CLIENT_ID CLIENT_SECRET SESSION_TOKEN REDIRECT_URI SCOPE [--profile]
                                                       what one code + PKCE exchange asks of PostgreSQL
                                                       and Redis (JSON)

The framework overhead is what a request costs through the app's Flask stack (its hooks, error
handlers, extensions) against a bare Flask app answering the same JSON document: GET /oauth2/jwks,
whose own work (a key set already serialised by the keyring) is next to nothing, so that the ratio
is the stack's. Both are called as WSGI applications in this process with the same environ, best
of ten rounds of N requests each, the two apps taking turns; no server, no sockets.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import hashlib
import io
import json
import pstats
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from flask import Flask, Response
from sqlalchemy import event

JWKS_PATH = "/oauth2/jwks"
ROUNDS = 10


def start_sessions(email: str, count: int) -> list[str]:
    """`count` browser sessions of the user with this email: the cookies of the code-flow driver."""
    from app import create_app
    from app.extensions import current_settings, db
    from app.models import SessionKind
    from app.services import sessions, users

    app = create_app()
    with app.app_context():
        user = users.get_user_by_email(db.session, email)
        tokens = [sessions.start_session(db.session, user=user, settings=current_settings(), kind=SessionKind.BROWSER,
                                         ip="127.0.0.1", user_agent="bench_token.py").token for _ in range(count)]
        db.session.commit()
    return tokens


def bare_app(body: bytes, cache_control: str) -> Flask:
    """A Flask app with nothing but one route answering `body`, the app's JWKS document as the app serves
    it (serialised once), with the app's JWKS cache header. The app's view also asks its keyring whether
    the keys' states changed: a few µs of its share."""
    bare = Flask("bare")

    @bare.get(JWKS_PATH)
    def jwks():
        return Response(body, mimetype="application/json", headers={"Cache-Control": cache_control})

    return bare


def environ(path: str) -> dict[str, Any]:
    """A GET of `path` over https, as a server behind the proxy hands it to the app."""
    return {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1:8000", "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr,
            "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
            "REMOTE_ADDR": "127.0.0.1", "HTTP_ACCEPT": "*/*"}


def call(wsgi: Callable, path: str) -> tuple[str, bytes]:
    answer: dict[str, str] = {}

    def start_response(status: str, headers: list, exc_info: Any = None) -> None:
        answer["status"] = status

    body = b"".join(wsgi(environ(path), start_response))
    return answer["status"], body


def microseconds_per_request(apps: list[Callable], path: str, requests: int) -> list[float]:
    """Each app's best CPU time per request (this process's: time spent waiting for the CPU while
    other processes run is not counted) over ROUNDS rounds of `requests` requests, the apps taking
    turns within each round: the machine's other load then weighs on them alike."""
    best = [float("inf")] * len(apps)
    for _ in range(ROUNDS):
        for i, wsgi in enumerate(apps):
            start = time.process_time()
            for _ in range(requests):
                call(wsgi, path)
            best[i] = min(best[i], (time.process_time() - start) / requests * 1e6)
    return best


def framework_overhead(requests: int, profile: bool) -> dict[str, Any]:
    from app import create_app

    app = create_app()
    status, body = call(app, JWKS_PATH)
    if not status.startswith("200"):
        raise SystemExit(f"GET {JWKS_PATH} through the app answered {status}")
    with app.test_request_context():
        cache_control = app.view_functions["oauth.jwks"]().headers["Cache-Control"]
    bare = bare_app(body, cache_control)
    if call(bare, JWKS_PATH)[1] != body:
        raise SystemExit("the bare app's JWKS differs from the app's")
    app_us, bare_us = microseconds_per_request([app, bare], JWKS_PATH, requests)
    result = {"path": JWKS_PATH, "requests": requests, "app_us": round(app_us, 1), "bare_flask_us": round(bare_us, 1),
              "ratio": round(app_us / bare_us, 2)}
    if profile:
        profiler = cProfile.Profile()
        profiler.runcall(lambda: [call(app, JWKS_PATH) for _ in range(requests)])
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
        result["profile"] = out.getvalue()
    return result


def exchange_once(client: Any, web: dict[str, str], redirect_uri: str, scope: str) -> None:
    """authorize (the browser's session cookie already set on `client`) -> token, with PKCE."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode({"client_id": web["client_id"], "response_type": "code", "redirect_uri": redirect_uri,
                       "scope": scope, "state": "s", "nonce": secrets.token_urlsafe(12), "code_challenge": challenge,
                       "code_challenge_method": "S256"})
    authorized = client.get(f"/oauth2/authorize?{query}", base_url="https://bench.local")
    code = parse_qs(urlsplit(authorized.headers.get("Location", "")).query).get("code")
    if authorized.status_code not in (302, 303) or not code:
        raise SystemExit(f"authorize answered {authorized.status_code} {authorized.headers.get('Location')}")
    token = client.post("/oauth2/token", base_url="https://bench.local",
                        auth=(web["client_id"], web["client_secret"]),
                        data={"grant_type": "authorization_code", "code": code[0], "redirect_uri": redirect_uri,
                              "code_verifier": verifier})
    if token.status_code != 200:
        raise SystemExit(f"token answered {token.status_code} {token.get_data(as_text=True)[:200]}")


def exchange_cost(web: dict[str, str], session_token: str, redirect_uri: str, scope: str, *,
                  exchanges: int = 20, profile: bool = False) -> dict[str, Any]:
    """Statements, transactions, pool checkouts, pings (of connections idle in the pool) and Redis commands per
    code + PKCE exchange, counted over `exchanges` exchanges after a first one (which fills caches)."""
    from app import create_app
    from app.extensions import db

    app = create_app()
    client = app.test_client()
    client.set_cookie(app.extensions["gatehouse.settings"].BROWSER_SESSION_COOKIE, session_token,
                      domain="bench.local")
    exchange_once(client, web, redirect_uri, scope)
    counts: Counter[str] = Counter()
    statements: Counter[str] = Counter()
    with app.app_context():
        engine = db.engine

    def on_statement(conn, cursor, statement, parameters, context, executemany) -> None:
        counts["statements"] += 1
        statements[statement.split(" WHERE ")[0][:90]] += 1

    listeners = [(engine, "before_cursor_execute", on_statement),
                 (engine, "begin", lambda conn: counts.update(["transactions"])),
                 (engine.pool, "checkout", lambda *args: counts.update(["pool checkouts"]))]
    for target, name, listener in listeners:
        event.listen(target, name, listener)
    # A ping goes to the DBAPI connection directly, past the statement events (app/database.py).
    ping = engine.dialect.do_ping
    engine.dialect.do_ping = lambda connection: counts.update(["pings"]) or ping(connection)
    redis = app.extensions["gatehouse.stores"].redis
    if redis is not None:
        execute = redis.execute_command
        redis.execute_command = lambda *args, **kwargs: counts.update(["redis commands"]) or execute(*args, **kwargs)
    profiler = cProfile.Profile(time.process_time) if profile else None
    started = time.process_time()
    if profiler:
        profiler.enable()
    for _ in range(exchanges):
        exchange_once(client, web, redirect_uri, scope)
    if profiler:
        profiler.disable()
    cpu_ms = (time.process_time() - started) / exchanges * 1000
    for target, name, listener in listeners:
        event.remove(target, name, listener)
    engine.dialect.do_ping = ping
    per = {name: round(count / exchanges, 2) for name, count in counts.items()}
    # psycopg sends BEGIN and COMMIT (or ROLLBACK) as round trips of their own.
    per["database round trips"] = round(per.get("statements", 0) + 2 * per.get("transactions", 0)
                                        + per.get("pings", 0), 2)
    result: dict[str, Any] = {"exchanges": exchanges, "per_exchange": per, "cpu_ms_in_process": round(cpu_ms, 2),
                              "statements": {sql: round(n / exchanges, 2) for sql, n in statements.most_common()}}
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(60)
        result["profile"] = out.getvalue()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sessions = commands.add_parser("sessions")
    sessions.add_argument("email")
    sessions.add_argument("count", type=int)
    overhead = commands.add_parser("overhead")
    overhead.add_argument("--requests", type=int, default=1000)
    overhead.add_argument("--profile", action="store_true", help="add a cProfile of the app's requests")
    exchange = commands.add_parser("exchange")
    for name in ("client_id", "client_secret", "session_token", "redirect_uri", "scope"):
        exchange.add_argument(name)
    exchange.add_argument("--profile", action="store_true", help="add a cProfile of the exchanges")
    args = parser.parse_args()
    if args.command == "sessions":
        print(json.dumps(start_sessions(args.email, args.count)))
    elif args.command == "exchange":
        result = exchange_cost({"client_id": args.client_id, "client_secret": args.client_secret},
                               args.session_token, args.redirect_uri, args.scope, profile=args.profile)
        print(result.pop("profile", ""), file=sys.stderr)
        print(json.dumps(result))
    else:
        result = framework_overhead(args.requests, args.profile)
        print(result.pop("profile", ""), file=sys.stderr)
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
