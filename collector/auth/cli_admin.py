"""`strana sites | users | keys`: manage sites, people and API keys from the shell.

They open the store directly, so they run while `strana serve` is stopped
(DuckDB lets one process open the file); with the server running, use the
JSON API (/api/v1/sites ...) or the dashboard instead. Secrets are never
taken as arguments (they would land in shell history): passwords are
prompted for, or read from stdin with --password-stdin.
"""

from __future__ import annotations

import getpass
import json
import sys

from collector import sites as site_rows


def _open(args):
    import duckdb

    from collector import migrate
    from collector.settings import load

    settings = load()
    path = settings.data_dir / "strana.duckdb"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path))
    except duckdb.IOException as exc:
        print(f"strana {args.command}: cannot open {path}: {exc}\nIs `strana serve` running on it? Stop it, or use "
              "the API (/api/v1/sites ...).", file=sys.stderr)
        raise SystemExit(1) from None
    migrate.apply(con)
    return con


def _password(args, prompt: str = "Password: ") -> str:
    if getattr(args, "password_stdin", False):
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(prompt)
    if getpass.getpass("Again: ") != first:
        raise SystemExit("strana: the passwords do not match")
    return first


def _settings_from(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise site_rows.SiteError(pair, "give settings as key=value")
        key = key.strip()
        try:
            out[key] = json.loads(value) if value[:1] in "[{" or value in ("true", "false") else value
        except json.JSONDecodeError:
            out[key] = value
        if value == "":
            out[key] = None
    return out


def cmd_sites(args) -> int:
    if args.action != "list" and not args.domain:
        print(f"strana sites {args.action}: give the site's domain", file=sys.stderr)
        return 2
    con = _open(args)
    try:
        if args.action == "list":
            for row in site_rows.list_sites(con):
                print(f"{row['domain']}\t{row['origin']}\t{json.dumps(row['settings'])}")
        elif args.action == "add":
            row = site_rows.put_site(con, args.domain, site_rows.validate(_settings_from(args.set)))
            print(f"added {row['domain']} {json.dumps(row['settings'])}")
        elif args.action == "set":
            domain = site_rows.clean_domain(args.domain)
            row = site_rows.get_site(con, domain)
            if row is None:
                print(f"strana sites set: no site {domain!r} (add it first)", file=sys.stderr)
                return 1
            row = site_rows.put_site(con, domain, site_rows.validate(_settings_from(args.set), row["settings"]))
            print(f"{row['domain']} {json.dumps(row['settings'])}")
        elif args.action == "remove":
            found = site_rows.remove_site(con, args.domain)
            print(("removed " if found else "no such site: ") + args.domain)
            return 0 if found else 1
    except site_rows.SiteError as exc:
        print(f"strana sites: {exc}", file=sys.stderr)
        return 2
    finally:
        con.close()
    return 0


def cmd_users(args) -> int:
    from collector.auth import store

    if args.action == "role" and not (args.email and args.site):
        print("strana users role: give --email, --site and --role", file=sys.stderr)
        return 2
    con = _open(args)
    try:
        if args.action == "list":
            for user in store.list_users(con):
                print(f"{user['id']}\t{user['email']}\t{'owner' if user['owner'] else json.dumps(user['roles'])}")
        elif args.action in ("create-owner", "create"):
            email = args.email or input("E-mail: ").strip()
            user_id = store.create_user(con, email, _password(args), owner=args.action == "create-owner")
            if args.action == "create" and args.site:
                store.set_role(con, user_id, site_rows.clean_domain(args.site), args.site_role)
            print(f"created {email} ({'owner' if args.action == 'create-owner' else args.site_role})")
        elif args.action == "role":
            row = store.user_by_email(con, args.email)
            if row is None:
                print(f"strana users: no user {args.email!r}", file=sys.stderr)
                return 1
            role = None if args.site_role == "none" else args.site_role
            store.set_role(con, row[0], site_rows.clean_domain(args.site), role)
            print(f"{args.email}: {args.site_role} on {args.site}")
    except (store.AuthError, site_rows.SiteError) as exc:
        print(f"strana users: {exc}", file=sys.stderr)
        return 2
    finally:
        con.close()
    return 0


def cmd_keys(args) -> int:
    from collector.auth import store

    if (args.action == "create" and not args.site) or (args.action == "revoke" and not args.key_id):
        print("strana keys: create needs --site (and --scope); revoke needs the key's id", file=sys.stderr)
        return 2
    con = _open(args)
    try:
        if args.action == "create":
            site = site_rows.clean_domain(args.site)
            if site_rows.get_site(con, site) is None:
                print(f"strana keys: no site {site!r} (strana sites add {site})", file=sys.stderr)
                return 1
            key_id, token = store.create_key(con, site, args.scope, args.name or "", args.expires_in_days)
            print(token)
            print(f"key {key_id}: {args.scope} for {site}; shown once, store it now", file=sys.stderr)
        elif args.action == "list":
            for key in store.list_keys(con, args.site):
                print("\t".join(str(key[k]) for k in ("id", "site", "scope", "name", "created_at", "revoked_at",
                                                       "last_used_at")))
        elif args.action == "revoke":
            found = store.revoke_key(con, args.key_id)
            print(("revoked " if found else "no active key ") + args.key_id)
            return 0 if found else 1
    except (store.AuthError, site_rows.SiteError) as exc:
        print(f"strana keys: {exc}", file=sys.stderr)
        return 2
    finally:
        con.close()
    return 0


def register(sub) -> None:
    """Adds the three commands to `strana`'s subparsers."""
    keys = ", ".join(site_rows.KEYS)
    sites = sub.add_parser("sites", help="add, list, change, remove sites (server stopped)")
    sites.add_argument("--data-dir", dest="data_dir")
    sites.add_argument("action", choices=["list", "add", "set", "remove"])
    sites.add_argument("domain", nargs="?")
    sites.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help=f"a site setting ({keys}); lists as a,b or JSON; empty value removes it")
    sites.set_defaults(func=cmd_sites)

    users = sub.add_parser("users", help="create the owner and other people, give roles (server stopped)")
    users.add_argument("--data-dir", dest="data_dir")
    users.add_argument("action", choices=["create-owner", "create", "role", "list"])
    users.add_argument("--email")
    users.add_argument("--site")
    users.add_argument("--role", dest="site_role", choices=["admin", "viewer", "none"], default="viewer")
    users.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    users.set_defaults(func=cmd_users)

    keys_p = sub.add_parser("keys", help="create, list, revoke API keys (server stopped)")
    keys_p.add_argument("--data-dir", dest="data_dir")
    keys_p.add_argument("action", choices=["create", "list", "revoke"])
    keys_p.add_argument("key_id", nargs="?")
    keys_p.add_argument("--site")
    keys_p.add_argument("--scope", choices=["read", "write"], default="read")
    keys_p.add_argument("--name")
    keys_p.add_argument("--expires-in-days", dest="expires_in_days", type=int)
    keys_p.set_defaults(func=cmd_keys)
