"""`boothline users ...` and `boothline keys ...`: an admin's accounts and API keys (no self sign-up).

    boothline users create NAME [--daily-credits N]   boothline users grant NAME N   boothline users list
    boothline keys create NAME                        boothline keys revoke KEY-ID
    boothline serve [--host 127.0.0.1] [--port 8000]
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from boothline.params import Params
from boothline.paths import Workspace

# The account modules (SQLAlchemy) load when a users/keys command runs, not with every `boothline` command.


def service_store(params: Params, workspace: Workspace):
    from boothline.service.store import open_store

    return open_store(params.service.database_url, workspace.resolve(params.service.root))


def add_admin_commands(sub, common: argparse.ArgumentParser) -> None:
    users = sub.add_parser("users", parents=[common], help="service accounts: create, grant credits, list")
    users_sub = users.add_subparsers(dest="action", required=True)
    create = users_sub.add_parser("create", help="a new user (no keys yet)")
    create.add_argument("name")
    create.add_argument("--daily-credits", type=int, help="free credits per UTC day (default: service.daily_credits)")
    grant = users_sub.add_parser("grant", help="add credits on top of the daily allowance (negative: take back)")
    grant.add_argument("name")
    grant.add_argument("credits", type=int)
    users_sub.add_parser("list", help="name<TAB>daily<TAB>available now")

    serve = sub.add_parser("serve", parents=[common], help="the studio API on 127.0.0.1 (make serve: with Prefect)")
    serve.add_argument("--host", help="address to bind (default: service.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: service.port, 8000)")

    keys = sub.add_parser("keys", parents=[common], help="API keys: create (printed once), revoke")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    keys_sub.add_parser("create", help="a new key for a user; the key is the last word printed").add_argument("name")
    keys_sub.add_parser("revoke", help="stop a key working, at once").add_argument("key_id")


def cmd_users(args: argparse.Namespace, load) -> int:
    from boothline.service import credits
    from boothline.service.accounts import create_user
    from boothline.service.store import User

    params = load()
    store = service_store(params, Workspace(args.workspace))
    if args.action == "create":
        daily = params.service.daily_credits if args.daily_credits is None else args.daily_credits
        account = create_user(store, args.name, daily)
        print(f"user {account.name} created ({daily} free credits a day)")
    elif args.action == "grant":
        total = credits.grant(store, args.name, args.credits)
        print(f"user {args.name}: {total} granted credits")
    else:
        now = datetime.now(timezone.utc)
        with store.reading() as session:
            users = [(u.id, u.name, u.daily_credits) for u in session.query(User).order_by(User.name)]
        for user_id, name, daily in users:
            print(f"{name}\t{daily}\t{credits.balance(store, user_id, now).available}")
    return 0


def cmd_serve(args: argparse.Namespace, load) -> int:
    import uvicorn

    from boothline.service.app import create_app

    params = load()
    host = args.host or params.service.host
    port = args.port or params.service.port
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {host}: reachable beyond this machine; put TLS in front of it", file=sys.stderr)
    uvicorn.run(create_app(params, Workspace(args.workspace)), host=host, port=port, log_level="info")
    return 0


def cmd_keys(args: argparse.Namespace, load) -> int:
    from boothline.service.accounts import create_key, revoke_key

    store = service_store(load(), Workspace(args.workspace))
    if args.action == "create":
        key_id, token = create_key(store, args.name)
        print(f"key {key_id} for {args.name} (shown once; keep it secret): {token}")
    else:
        revoke_key(store, args.key_id)
        print(f"key {args.key_id} revoked")
    return 0
