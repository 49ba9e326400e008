"""`imap-api tokens create|list|revoke` and `imap-api secrets rotate|check|genkey`: operator commands.

They talk to Redis directly (the API need not run). With the embedded server of a running
`imap-api serve`, the URL comes from <stateDir>/redis.url, which serve writes.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from imapapi import crypto, tokens, vault
from imapapi.settings import OPTIONS, ConfigError, configure, die, load_settings

COMMANDS = ("tokens", "secrets")
URL_FILE = "redis.url"


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    """Settings options (--dbs.redis=..., --config=...) vs the command's own arguments."""
    mine, theirs = [], []
    for arg in argv:
        name = arg[2:].split("=", 1)[0] if arg.startswith("--") and "=" in arg else None
        (mine if name in OPTIONS or name == "config" else theirs).append(arg)
    return mine, theirs


def _redis(settings):
    import redis

    url = settings.redis_url
    if not url:
        path = Path(settings.state_dir) / URL_FILE
        if path.is_file():
            url = path.read_text(encoding="utf-8").strip()
    if not url:
        die("no Redis URL: set REDIS_URL or --dbs.redis=URL (a running `imap-api serve` "
            f"with the embedded server writes it to {Path(settings.state_dir) / URL_FILE})")
    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="imap-api")
    sub = p.add_subparsers(dest="group", required=True)
    t = sub.add_parser("tokens", help="API access tokens").add_subparsers(dest="action", required=True)
    c = t.add_parser("create", help="create a token (printed once)")
    c.add_argument("--scope", action="append", required=True, choices=tokens.SCOPES,
                   help="api, metrics, ui or * (repeat for several)")
    c.add_argument("--account", help="restrict the token to one account's routes")
    c.add_argument("--description", default="")
    t.add_parser("list", help="tokens with scopes and last use (never the token)")
    r = t.add_parser("revoke", help="revoke by id (from list) or by the token itself")
    r.add_argument("id")
    s = sub.add_parser("secrets", help="encryption of stored secrets").add_subparsers(
        dest="action", required=True)
    rot = s.add_parser("rotate", help="re-encrypt every stored secret with a new key")
    rot.add_argument("--new-key-file", required=True)
    s.add_parser("check", help="which key ids the stored secrets use; fails on a missing one")
    g = s.add_parser("genkey", help="write a new key file (mode 0600)")
    g.add_argument("path")
    return p


def main(argv: list[str]) -> int:
    options, rest = _split(argv)
    try:
        settings = configure(load_settings(options))
    except ConfigError as exc:
        die(str(exc))
    args = _parser().parse_args(rest)
    if args.group == "secrets" and args.action == "genkey":
        try:
            path = crypto.write_new_key_file(args.path)
        except FileExistsError:
            die(f"{args.path} exists; not overwriting a key")
        print(f"wrote {path} (key id {crypto.key_id(crypto.read_key_file(path)[0])})")
        return 0
    redis = _redis(settings)
    if args.group == "tokens":
        return _tokens(redis, args)
    return _secrets(redis, settings, args)


def _tokens(redis, args) -> int:
    if args.action == "create":
        token, record = tokens.create(redis, args.scope, account=args.account,
                                      description=args.description)
        print(token)
        print(f"id {record['id']} scopes {','.join(record['scopes'])}"
              + (f" account {record['account']}" if record["account"] else "")
              + " (the token is shown only now; Redis keeps its SHA-256)", file=sys.stderr)
        return 0
    if args.action == "list":
        for row in tokens.list_tokens(redis):
            print(json.dumps(row))
        return 0
    if not tokens.revoke(redis, args.id):
        die(f"no token {args.id}", code=1)
    print(f"revoked {args.id}")
    return 0


def _current_ring(settings):
    try:
        ring = crypto.load_keyring(encryption_key=settings.encryption_key,
                                   key_file=settings.key_file, state_dir=settings.state_dir)
    except crypto.KeyConfigError as exc:
        die(str(exc))
    if ring is None:
        die("no current encryption key (service.keyFile, service.encryptionKey or "
            "<stateDir>/secret.key)")
    return ring


def _secrets(redis, settings, args) -> int:
    ring = _current_ring(settings)
    if args.action == "check":
        missing = vault.unknown_key_ids(redis, ring)
        if missing:
            die(str(crypto.KeyUnavailable(sorted(missing)[0])), code=1)
        print(f"every stored secret opens with the configured keys ({', '.join(ring.ids)})")
        return 0
    try:
        new = crypto.Keyring(crypto.read_key_file(args.new_key_file))
    except crypto.KeyConfigError as exc:
        die(str(exc))
    missing = vault.unknown_key_ids(redis, ring.encrypting_with(new))
    if missing:
        die(str(crypto.KeyUnavailable(sorted(missing)[0])), code=1)
    count = vault.rotate(redis, ring, new)
    print(f"re-encrypted {count} field(s) with key id {new.primary_id}; now point "
          f"service.keyFile at {args.new_key_file} (keep the old key in it as a second line "
          "until every process runs with the new one)")
    return 0
