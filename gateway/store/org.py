"""Organisation configuration in the store: ``store.org`` (docs/dev/interfaces.md).

Invariants:
* every org write transaction starts by bumping ``org_version`` - that both publishes
  the change to pollers (``version()``) and serialises org writers on PostgreSQL (the
  row lock), so "exactly one default domain" holds under concurrency;
* every address of every mailbox (primary, further SMTP addresses, UPN) has one row in
  ``mailbox_addresses`` keyed by its lower-cased form: the primary key, not a
  read-then-write check, keeps addresses unique; the pre-check only names the clash;
* a mailbox is created with its ``mail_state`` row and default folders in the same
  transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from gateway.errors import AlreadyExists, NotFound, ValidationError
from gateway.store.engine import Engine, Row, Tx
from gateway.store.folders import create_default_folders
from gateway.store.models import (
    CERTIFICATE_KINDS,
    DOMAIN_TYPES,
    AcceptedDomain,
    DomainType,
    Mailbox,
)
from gateway.store.validate import (
    address_key,
    check_address,
    check_domain,
    check_name,
    name_key,
)

MAX_SETTINGS_BYTES = 1_000_000
NT_HASH_LEN = 16

_DOMAIN_COLS = "id, name, domain_name, domain_type, is_default"
_MAILBOX_COLS = ("id, name, display_name, primary_smtp_address, email_addresses, "
                 "user_principal_name, sam_account_name, password_hash, nt_hash, "
                 "ntlm_enabled, owa_enabled, activesync_enabled, imap_enabled, pop_enabled, "
                 "smtp_submission_enabled, credential_version, source, created_at")
_UPDATABLE = frozenset({
    "name", "display_name", "primary_smtp_address", "email_addresses",
    "user_principal_name", "sam_account_name", "password_hash", "nt_hash", "ntlm_enabled",
    "owa_enabled", "activesync_enabled", "imap_enabled", "pop_enabled",
    "smtp_submission_enabled", "source",
})
_BOOL_FIELDS = ("ntlm_enabled", "owa_enabled", "activesync_enabled", "imap_enabled",
                "pop_enabled", "smtp_submission_enabled")
_UNSET: Any = object()


def _domain(row: Row) -> AcceptedDomain:
    return AcceptedDomain(id=int(row[0]), name=row[1], domain_name=row[2],
                          domain_type=row[3], is_default=bool(row[4]))


def _mailbox(row: Row) -> Mailbox:
    return Mailbox(
        id=int(row[0]), name=row[1], display_name=row[2], primary_smtp_address=row[3],
        email_addresses=tuple(json.loads(row[4])), user_principal_name=row[5],
        sam_account_name=row[6], password_hash=row[7],
        nt_hash=bytes(row[8]) if row[8] is not None else None,
        ntlm_enabled=bool(row[9]), owa_enabled=bool(row[10]),
        activesync_enabled=bool(row[11]), imap_enabled=bool(row[12]),
        pop_enabled=bool(row[13]), smtp_submission_enabled=bool(row[14]),
        credential_version=int(row[15]), source=row[16],
        created_at=datetime.fromtimestamp(float(row[17]), UTC))


def _bump(tx: Tx) -> None:
    tx.execute("UPDATE org_version SET version = version + 1 WHERE id = 1")


def _get_mailbox(tx: Tx, mailbox_id: int) -> Mailbox:
    row = tx.one(f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE id = ?", (mailbox_id,))
    if row is None:
        raise NotFound(f"mailbox {mailbox_id} not found")
    return _mailbox(row)


def _check_domain_type(value: object) -> DomainType:
    if value not in DOMAIN_TYPES:
        raise ValidationError(f"domain type must be one of {', '.join(DOMAIN_TYPES)}")
    return value  # type: ignore[return-value]


def _check_bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"{what} must be true or false")
    return value


def _check_cert(kind: object, value: object) -> tuple[str, str, str]:
    if kind not in CERTIFICATE_KINDS:
        raise ValidationError(f"certificate mapping kind must be one of "
                              f"{', '.join(CERTIFICATE_KINDS)}")
    text = check_name(value, "certificate mapping value")
    if kind == "thumbprint":
        key = "".join(text.split()).replace(":", "").lower()
        if not key or any(c not in "0123456789abcdef" for c in key):
            raise ValidationError("a thumbprint is hexadecimal")
    else:
        key = address_key(text)
    return str(kind), key, text


class _MailboxFields:
    """The validated, complete field set of a mailbox being written."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.name = check_name(values["name"], "name")
        self.display_name = check_name(values.get("display_name") or self.name,
                                       "display name")
        self.primary = check_address(values["primary_smtp_address"], "primary SMTP address")
        further = values.get("email_addresses") or ()
        if isinstance(further, str) or not isinstance(further, Iterable):
            raise ValidationError("email addresses must be a list of addresses")
        seen = {address_key(self.primary)}
        self.further: list[str] = []
        for raw in further:
            addr = check_address(raw, "email address")
            if address_key(addr) not in seen:
                seen.add(address_key(addr))
                self.further.append(addr)
        self.upn = check_address(values.get("user_principal_name") or self.primary,
                                 "user principal name")
        self.sam = check_name(values.get("sam_account_name") or self.name,
                              "sam account name")
        if any(c in self.sam for c in '\\/"[]:;|=,+*?<>@'):
            raise ValidationError("sam account name contains a character Windows forbids")
        self.password_hash = values.get("password_hash")
        if self.password_hash is not None and not isinstance(self.password_hash, str):
            raise ValidationError("password hash must be text or null")
        self.flags = {f: _check_bool(values.get(f, f != "ntlm_enabled"), f)
                      for f in _BOOL_FIELDS}
        nt = values.get("nt_hash")
        if nt is not None:
            if not isinstance(nt, bytes | bytearray) or len(nt) != NT_HASH_LEN:
                raise ValidationError("nt hash must be 16 bytes")
            if not self.flags["ntlm_enabled"]:
                raise ValidationError("an nt hash is kept only for mailboxes with NTLM enabled")
            nt = bytes(nt)
        self.nt_hash: bytes | None = nt
        self.source = values.get("source", "local")
        if self.source not in ("local", "ldap"):
            raise ValidationError("source must be 'local' or 'ldap'")

    def address_rows(self) -> dict[str, tuple[str, bool, bool]]:
        """key -> (address as given, is_smtp, is_upn)."""
        rows: dict[str, tuple[str, bool, bool]] = {}
        for addr in (self.primary, *self.further):
            rows[address_key(addr)] = (addr, True, False)
        key = address_key(self.upn)
        prev = rows.get(key)
        rows[key] = (self.upn, prev is not None, True)
        return rows


def _write_addresses(tx: Tx, mailbox_id: int, fields: _MailboxFields) -> None:
    rows = fields.address_rows()
    keys = list(rows)
    marks = ",".join("?" * len(keys))
    clash = tx.one(
        f"SELECT a.address, m.name FROM mailbox_addresses a JOIN mailboxes m "
        f"ON m.id = a.mailbox_id WHERE a.address IN ({marks}) AND a.mailbox_id <> ?",
        (*keys, mailbox_id))
    if clash is not None:
        raise AlreadyExists(f"address {rows[clash[0]][0]} is already used by mailbox {clash[1]}")
    tx.execute("DELETE FROM mailbox_addresses WHERE mailbox_id = ?", (mailbox_id,))
    for key, (_addr, is_smtp, is_upn) in rows.items():
        tx.execute("INSERT INTO mailbox_addresses (address, mailbox_id, is_smtp, is_upn) "
                   "VALUES (?, ?, ?, ?)", (key, mailbox_id, int(is_smtp), int(is_upn)))


def _check_unique_names(tx: Tx, mailbox_id: int, fields: _MailboxFields) -> None:
    row = tx.one("SELECT name FROM mailboxes WHERE name_key = ? AND id <> ?",
                 (name_key(fields.name), mailbox_id))
    if row is not None:
        raise AlreadyExists(f"a mailbox named {row[0]} already exists")
    row = tx.one("SELECT name FROM mailboxes WHERE sam_key = ? AND id <> ?",
                 (name_key(fields.sam), mailbox_id))
    if row is not None:
        raise AlreadyExists(f"sam account name {fields.sam} is already used by mailbox {row[0]}")


class OrgStore:
    """``store.org``: accepted domains, mailboxes, certificate mappings, settings."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- accepted domains -------------------------------------------------------------

    async def list_accepted_domains(self) -> list[AcceptedDomain]:
        rows = await self._engine.read(lambda tx: tx.all(
            f"SELECT {_DOMAIN_COLS} FROM accepted_domains ORDER BY name_key"))
        return [_domain(r) for r in rows]

    async def get_accepted_domain(self, identity: str) -> AcceptedDomain:
        key = str(identity).strip()

        def fn(tx: Tx) -> Row | None:
            return tx.one(f"SELECT {_DOMAIN_COLS} FROM accepted_domains "
                          f"WHERE name_key = ? OR domain_name = ? ORDER BY id",
                          (name_key(key), key.lower().rstrip(".")))
        row = await self._engine.read(fn)
        if row is None:
            raise NotFound(f"accepted domain {identity!r} not found")
        return _domain(row)

    async def create_accepted_domain(self, name: str, domain_name: str,
                                     domain_type: DomainType = "Authoritative"
                                     ) -> AcceptedDomain:
        name = check_name(name, "name")
        domain = check_domain(domain_name, wildcard=True, what="domain name")
        dtype = _check_domain_type(domain_type)

        def fn(tx: Tx) -> AcceptedDomain:
            _bump(tx)
            row = tx.one("SELECT name FROM accepted_domains WHERE name_key = ? "
                         "OR domain_name = ?", (name_key(name), domain))
            if row is not None:
                raise AlreadyExists(f"accepted domain {row[0]} already has that name or "
                                    "domain name")
            first = tx.scalar("SELECT count(*) FROM accepted_domains") == 0
            new_id = tx.insert_id(
                "INSERT INTO accepted_domains (name, name_key, domain_name, domain_type, "
                "is_default) VALUES (?, ?, ?, ?, ?) RETURNING id",
                (name, name_key(name), domain, dtype, int(first)))
            return AcceptedDomain(new_id, name, domain, dtype, first)
        return await self._engine.write(fn)

    async def update_accepted_domain(self, id: int, *, name: str = _UNSET,
                                     domain_type: DomainType = _UNSET,
                                     make_default: bool = _UNSET) -> AcceptedDomain:
        new_name = check_name(name, "name") if name is not _UNSET else None
        new_type = _check_domain_type(domain_type) if domain_type is not _UNSET else None
        default = _check_bool(make_default, "make_default") \
            if make_default is not _UNSET else None

        def fn(tx: Tx) -> AcceptedDomain:
            _bump(tx)
            row = tx.one(f"SELECT {_DOMAIN_COLS} FROM accepted_domains WHERE id = ?", (id,))
            if row is None:
                raise NotFound(f"accepted domain {id} not found")
            current = _domain(row)
            if new_name is not None:
                clash = tx.one("SELECT name FROM accepted_domains WHERE name_key = ? "
                               "AND id <> ?", (name_key(new_name), id))
                if clash is not None:
                    raise AlreadyExists(f"an accepted domain named {clash[0]} already exists")
                tx.execute("UPDATE accepted_domains SET name = ?, name_key = ? WHERE id = ?",
                           (new_name, name_key(new_name), id))
            if new_type is not None:
                tx.execute("UPDATE accepted_domains SET domain_type = ? WHERE id = ?",
                           (new_type, id))
            if default is True and not current.is_default:
                tx.execute("UPDATE accepted_domains SET is_default = 0 WHERE is_default = 1")
                tx.execute("UPDATE accepted_domains SET is_default = 1 WHERE id = ?", (id,))
            elif default is False and current.is_default:
                raise ValidationError("make another domain the default instead; one domain "
                                      "is always the default")
            out = tx.one(f"SELECT {_DOMAIN_COLS} FROM accepted_domains WHERE id = ?", (id,))
            assert out is not None
            return _domain(out)
        return await self._engine.write(fn)

    async def delete_accepted_domain(self, id: int) -> None:
        def fn(tx: Tx) -> None:
            _bump(tx)
            row = tx.one("SELECT is_default FROM accepted_domains WHERE id = ?", (id,))
            if row is None:
                raise NotFound(f"accepted domain {id} not found")
            others = tx.scalar("SELECT count(*) FROM accepted_domains WHERE id <> ?", (id,))
            if row[0] and others:
                raise ValidationError("the default accepted domain cannot be removed while "
                                      "other domains exist; make another one the default")
            tx.execute("DELETE FROM accepted_domains WHERE id = ?", (id,))
        await self._engine.write(fn)

    # -- mailboxes --------------------------------------------------------------------

    async def list_mailboxes(self) -> list[Mailbox]:
        rows = await self._engine.read(lambda tx: tx.all(
            f"SELECT {_MAILBOX_COLS} FROM mailboxes ORDER BY name_key"))
        return [_mailbox(r) for r in rows]

    async def get_mailbox_by_id(self, id: int) -> Mailbox:
        return await self._engine.read(lambda tx: _get_mailbox(tx, int(id)))

    async def get_mailbox(self, identity: str) -> Mailbox:
        text = str(identity).strip()

        def fn(tx: Tx) -> Row | None:
            row = tx.one(f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE name_key = ?",
                         (name_key(text),))
            if row is None:
                row = tx.one(f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE id = "
                             f"(SELECT mailbox_id FROM mailbox_addresses WHERE address = ?)",
                             (address_key(text),))
            if row is None and text.isdigit() and len(text) < 19:
                row = tx.one(f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE id = ?",
                             (int(text),))
            return row
        row = await self._engine.read(fn)
        if row is None:
            raise NotFound(f"mailbox {identity!r} not found")
        return _mailbox(row)

    async def find_mailbox_for_login(self, *, address: str | None = None,
                                     account: str | None = None) -> Mailbox | None:
        def fn(tx: Tx) -> Row | None:
            if address is not None:
                return tx.one(f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE id = "
                              f"(SELECT mailbox_id FROM mailbox_addresses WHERE address = ?)",
                              (address_key(address),))
            if account is not None:
                return tx.one(f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE sam_key = ?",
                              (name_key(account.strip()),))
            return None
        row = await self._engine.read(fn)
        return _mailbox(row) if row is not None else None

    async def find_mailbox_by_address(self, address: str) -> Mailbox | None:
        row = await self._engine.read(lambda tx: tx.one(
            f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE id = (SELECT mailbox_id FROM "
            f"mailbox_addresses WHERE address = ? AND is_smtp = 1)", (address_key(address),)))
        return _mailbox(row) if row is not None else None

    async def create_mailbox(self, *, name: str, primary_smtp_address: str,
                             display_name: str | None = None,
                             user_principal_name: str | None = None,
                             sam_account_name: str | None = None,
                             email_addresses: Iterable[str] = (),
                             password_hash: str | None = None, nt_hash: bytes | None = None,
                             ntlm_enabled: bool = False, source: str = "local") -> Mailbox:
        fields = _MailboxFields({
            "name": name, "primary_smtp_address": primary_smtp_address,
            "display_name": display_name, "user_principal_name": user_principal_name,
            "sam_account_name": sam_account_name, "email_addresses": tuple(email_addresses),
            "password_hash": password_hash, "nt_hash": nt_hash, "ntlm_enabled": ntlm_enabled,
            "source": source})
        now = time.time()

        def fn(tx: Tx) -> Mailbox:
            _bump(tx)
            _check_unique_names(tx, 0, fields)
            f = fields.flags
            new_id = tx.insert_id(
                "INSERT INTO mailboxes (name, name_key, display_name, primary_smtp_address, "
                "email_addresses, user_principal_name, sam_account_name, sam_key, "
                "password_hash, nt_hash, ntlm_enabled, owa_enabled, activesync_enabled, "
                "imap_enabled, pop_enabled, smtp_submission_enabled, credential_version, "
                "source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "1, ?, ?) RETURNING id",
                (fields.name, name_key(fields.name), fields.display_name, fields.primary,
                 json.dumps(fields.further), fields.upn, fields.sam, name_key(fields.sam),
                 fields.password_hash, fields.nt_hash, *(int(f[k]) for k in _BOOL_FIELDS),
                 fields.source, now))
            _write_addresses(tx, new_id, fields)
            create_default_folders(tx, new_id, now)
            return _get_mailbox(tx, new_id)
        return await self._engine.write(fn)

    async def update_mailbox(self, id: int, /, **changes: Any) -> Mailbox:
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValidationError(f"cannot change {', '.join(sorted(unknown))} of a mailbox")

        def fn(tx: Tx) -> Mailbox:
            _bump(tx)
            cur = _get_mailbox(tx, id)
            values: dict[str, Any] = {k: getattr(cur, k) for k in _UPDATABLE}
            values.update(changes)
            if not values["ntlm_enabled"] and "nt_hash" not in changes:
                values["nt_hash"] = None  # NTLM off: the NT hash is not kept
            fields = _MailboxFields(values)
            _check_unique_names(tx, id, fields)
            bump = (fields.password_hash != cur.password_hash or fields.nt_hash != cur.nt_hash)
            f = fields.flags
            tx.execute(
                "UPDATE mailboxes SET name = ?, name_key = ?, display_name = ?, "
                "primary_smtp_address = ?, email_addresses = ?, user_principal_name = ?, "
                "sam_account_name = ?, sam_key = ?, password_hash = ?, nt_hash = ?, "
                "ntlm_enabled = ?, owa_enabled = ?, activesync_enabled = ?, imap_enabled = ?, "
                "pop_enabled = ?, smtp_submission_enabled = ?, "
                "credential_version = credential_version + ?, source = ? WHERE id = ?",
                (fields.name, name_key(fields.name), fields.display_name, fields.primary,
                 json.dumps(fields.further), fields.upn, fields.sam, name_key(fields.sam),
                 fields.password_hash, fields.nt_hash, *(int(f[k]) for k in _BOOL_FIELDS),
                 int(bump), fields.source, id))
            _write_addresses(tx, id, fields)
            return _get_mailbox(tx, id)
        return await self._engine.write(fn)

    async def delete_mailbox(self, id: int) -> None:
        from gateway.store.messages import release_contents

        def fn(tx: Tx) -> None:
            _bump(tx)
            _get_mailbox(tx, id)
            tx.execute("UPDATE mail_state SET modseq = modseq + 1 WHERE mailbox_id = ?", (id,))
            counts = tx.all("SELECT content_id, count(*) FROM messages WHERE mailbox_id = ? "
                            "GROUP BY content_id ORDER BY content_id", (id,))
            tx.execute("DELETE FROM messages WHERE mailbox_id = ?", (id,))
            release_contents(tx, [(int(c), int(n)) for c, n in counts])
            tx.execute("UPDATE folders SET parent_id = NULL WHERE mailbox_id = ?", (id,))
            tx.execute("DELETE FROM folders WHERE mailbox_id = ?", (id,))
            tx.execute("DELETE FROM mailboxes WHERE id = ?", (id,))
        await self._engine.write(fn)

    # -- certificate mappings ---------------------------------------------------------

    async def add_certificate_mapping(self, mailbox_id: int, kind: str, value: str) -> None:
        kind, key, text = _check_cert(kind, value)

        def fn(tx: Tx) -> None:
            _bump(tx)
            _get_mailbox(tx, mailbox_id)
            row = tx.one("SELECT mailbox_id FROM certificate_mappings WHERE kind = ? "
                         "AND value_key = ?", (kind, key))
            if row is not None:
                if int(row[0]) == mailbox_id:
                    return
                raise AlreadyExists(f"certificate {kind} {text} is mapped to another mailbox")
            tx.execute("INSERT INTO certificate_mappings (kind, value_key, value, mailbox_id) "
                       "VALUES (?, ?, ?, ?)", (kind, key, text, mailbox_id))
        await self._engine.write(fn)

    async def remove_certificate_mapping(self, mailbox_id: int, kind: str, value: str) -> None:
        kind, key, _text = _check_cert(kind, value)

        def fn(tx: Tx) -> None:
            _bump(tx)
            cur = tx.execute("DELETE FROM certificate_mappings WHERE kind = ? AND value_key = ? "
                             "AND mailbox_id = ?", (kind, key, mailbox_id))
            if cur.rowcount == 0:
                raise NotFound("no such certificate mapping")
        await self._engine.write(fn)

    async def find_mailbox_by_certificate(self, kind: str, value: str) -> Mailbox | None:
        kind, key, _text = _check_cert(kind, value)
        row = await self._engine.read(lambda tx: tx.one(
            f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE id = (SELECT mailbox_id FROM "
            f"certificate_mappings WHERE kind = ? AND value_key = ?)", (kind, key)))
        return _mailbox(row) if row is not None else None

    # -- settings and version -----------------------------------------------------------

    async def get_settings(self, section: str) -> dict[str, object]:
        section = check_name(section, "settings section").lower()
        raw = await self._engine.read(lambda tx: tx.scalar(
            "SELECT value FROM org_settings WHERE section = ?", (section,)))
        return dict(json.loads(raw)) if raw else {}

    async def set_settings(self, section: str, values: dict[str, object]) -> None:
        section = check_name(section, "settings section").lower()
        if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
            raise ValidationError("settings are a mapping of names to values")
        try:
            json.dumps(values)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"settings values must be JSON values: {exc}") from None

        def fn(tx: Tx) -> None:
            _bump(tx)
            raw = tx.scalar("SELECT value FROM org_settings WHERE section = ?", (section,))
            merged = dict(json.loads(raw)) if raw else {}
            merged.update(values)
            text = json.dumps(merged, sort_keys=True)
            if len(text) > MAX_SETTINGS_BYTES:
                raise ValidationError(f"settings section {section} exceeds "
                                      f"{MAX_SETTINGS_BYTES} bytes")
            tx.execute("INSERT INTO org_settings (section, value) VALUES (?, ?) "
                       "ON CONFLICT (section) DO UPDATE SET value = excluded.value",
                       (section, text))
        await self._engine.write(fn)

    async def version(self) -> int:
        return int(await self._engine.read(lambda tx: tx.scalar(
            "SELECT version FROM org_version WHERE id = 1")))
