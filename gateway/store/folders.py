"""Folders: the default special-use folders, user folders with hierarchy, and the
per-folder IMAP state (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ) and counters.

Invariants:
* folder names are compared case-insensitively within a mailbox (``full_name_key``,
  as Exchange does; so IMAP's case-insensitive "INBOX" is simply the Inbox);
* ``message_count``, ``unseen_count`` and ``total_size`` are maintained by every message
  change in the same transaction, so STATUS (RFC 9051 §6.3.11) is one row read;
* UIDVALIDITY comes from a per-mailbox counter seeded with the creation time: a folder
  deleted and re-created with the same name never gets the same value (RFC 9051 §2.3.1.1).
"""

from __future__ import annotations

import time

from gateway.errors import AlreadyExists, NotFound, ValidationError
from gateway.store import changes
from gateway.store.engine import Engine, Row, Tx
from gateway.store.models import DEFAULT_FOLDERS, HIERARCHY_DELIMITER, Folder, SpecialUse

MAX_FOLDER_NAME = 255  # one hierarchy level
MAX_FOLDER_DEPTH = 32
MAX_FOLDERS = 10_000  # per mailbox
UIDVALIDITY_MAX = 0xFFFF_FFFF  # nz-number, 32 bits (RFC 9051 §9)

FOLDER_COLS = ("id, mailbox_id, parent_id, name, full_name, special_use, uidvalidity, "
               "uidnext, highest_modseq, message_count, unseen_count, total_size, subscribed")


def folder_from_row(row: Row) -> Folder:
    return Folder(id=int(row[0]), mailbox_id=int(row[1]),
                  parent_id=None if row[2] is None else int(row[2]), name=row[3],
                  full_name=row[4], special_use=row[5], uidvalidity=int(row[6]),
                  uidnext=int(row[7]), highest_modseq=int(row[8]),
                  message_count=int(row[9]), unseen_count=int(row[10]),
                  total_size=int(row[11]), subscribed=bool(row[12]))


def split_name(full_name: object) -> list[str]:
    """Validate a folder path and return its levels."""
    if not isinstance(full_name, str):
        raise ValidationError("folder name must be text")
    parts = full_name.strip(HIERARCHY_DELIMITER).split(HIERARCHY_DELIMITER)
    if len(parts) > MAX_FOLDER_DEPTH:
        raise ValidationError(f"folders nest at most {MAX_FOLDER_DEPTH} levels deep")
    for part in parts:
        if not part.strip():
            raise ValidationError("folder name levels must not be empty")
        if len(part) > MAX_FOLDER_NAME:
            raise ValidationError(f"a folder name is at most {MAX_FOLDER_NAME} characters")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in part):
            raise ValidationError("folder names must not contain control characters")
    return parts


def get_folder_tx(tx: Tx, folder_id: int) -> Folder:
    row = tx.one(f"SELECT {FOLDER_COLS} FROM folders WHERE id = ?", (folder_id,))
    if row is None:
        raise NotFound(f"folder {folder_id} not found")
    return folder_from_row(row)


def _insert_folder(tx: Tx, mailbox_id: int, parent_id: int | None, name: str,
                   full_name: str, special_use: SpecialUse | None, modseq: int,
                   now: float) -> int:
    uidvalidity = tx.scalar("UPDATE mail_state SET next_uidvalidity = next_uidvalidity + 1 "
                            "WHERE mailbox_id = ? RETURNING next_uidvalidity - 1",
                            (mailbox_id,))
    uidvalidity = int(uidvalidity) % UIDVALIDITY_MAX or 1
    return tx.insert_id(
        "INSERT INTO folders (mailbox_id, parent_id, name, full_name, full_name_key, "
        "special_use, uidvalidity, uidnext, highest_modseq, message_count, unseen_count, "
        "total_size, subscribed, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, 0, 0, 0, 1, ?) "
        "RETURNING id",
        (mailbox_id, parent_id, name, full_name, full_name.casefold(), special_use,
         uidvalidity, modseq, now))


def create_default_folders(tx: Tx, mailbox_id: int, now: float) -> None:
    """Create ``mail_state`` and the default folders of a new mailbox."""
    tx.execute("INSERT INTO mail_state (mailbox_id, modseq, next_uidvalidity) VALUES (?, 1, ?)",
               (mailbox_id, int(now) % UIDVALIDITY_MAX or 1))
    for special_use, name, _attr in DEFAULT_FOLDERS:
        fid = _insert_folder(tx, mailbox_id, None, name, name, special_use, 1, now)
        changes.record(tx, mailbox_id, 1, fid, "folder_created", detail=name)


def create_folder_tx(tx: Tx, mailbox_id: int, full_name: str,
                     special_use: SpecialUse | None = None) -> Folder:
    """Create ``full_name`` and any missing parents (RFC 9051 §6.3.4)."""
    parts = split_name(full_name)
    modseq = changes.next_modseq(tx, mailbox_id)
    if tx.scalar("SELECT count(*) FROM folders WHERE mailbox_id = ?",
                 (mailbox_id,)) >= MAX_FOLDERS:
        raise ValidationError(f"a mailbox holds at most {MAX_FOLDERS} folders")
    now = time.time()
    parent_id: int | None = None
    path = ""
    for depth, part in enumerate(parts):
        path = part if not path else f"{path}{HIERARCHY_DELIMITER}{part}"
        row = tx.one("SELECT id, full_name FROM folders WHERE mailbox_id = ? AND "
                     "full_name_key = ?", (mailbox_id, path.casefold()))
        last = depth == len(parts) - 1
        if row is not None:
            if last:
                raise AlreadyExists(f"folder {row[1]} already exists")
            parent_id, path = int(row[0]), row[1]  # keep the existing level's spelling
            continue
        parent_id = _insert_folder(tx, mailbox_id, parent_id, part, path,
                                   special_use if last else None, modseq, now)
        changes.record(tx, mailbox_id, modseq, parent_id, "folder_created", detail=path)
    assert parent_id is not None
    return get_folder_tx(tx, parent_id)


class FolderAPI:
    """Folder methods of ``store.mail``."""

    _engine: Engine

    async def list_folders(self, mailbox_id: int) -> list[Folder]:
        """Every folder of the mailbox, ordered by full name (one indexed scan)."""
        rows = await self._engine.read(lambda tx: tx.all(
            f"SELECT {FOLDER_COLS} FROM folders WHERE mailbox_id = ? ORDER BY full_name_key",
            (mailbox_id,)))
        return [folder_from_row(r) for r in rows]

    async def get_folder(self, folder_id: int) -> Folder:
        """One folder by id: STATUS/SELECT data in one row read."""
        return await self._engine.read(lambda tx: get_folder_tx(tx, folder_id))

    async def find_folder(self, mailbox_id: int, full_name: str) -> Folder | None:
        """A folder by path, case-insensitively ("INBOX" is the Inbox)."""
        key = HIERARCHY_DELIMITER.join(split_name(full_name)).casefold()
        row = await self._engine.read(lambda tx: tx.one(
            f"SELECT {FOLDER_COLS} FROM folders WHERE mailbox_id = ? AND full_name_key = ?",
            (mailbox_id, key)))
        return folder_from_row(row) if row is not None else None

    async def get_special_folder(self, mailbox_id: int, special_use: SpecialUse) -> Folder:
        row = await self._engine.read(lambda tx: tx.one(
            f"SELECT {FOLDER_COLS} FROM folders WHERE mailbox_id = ? AND special_use = ?",
            (mailbox_id, special_use)))
        if row is None:
            raise NotFound(f"mailbox {mailbox_id} has no {special_use} folder")
        return folder_from_row(row)

    async def create_folder(self, mailbox_id: int, full_name: str) -> Folder:
        """Create a user folder (and missing parents); ``AlreadyExists`` if present."""
        split_name(full_name)
        return await self._engine.write(lambda tx: create_folder_tx(tx, mailbox_id, full_name))

    async def rename_folder(self, folder_id: int, new_full_name: str) -> Folder:
        """Rename/move a user folder with its subfolders (RFC 9051 §6.3.6); UIDVALIDITY
        and messages are kept. Default folders cannot be renamed."""
        parts = split_name(new_full_name)

        def fn(tx: Tx) -> Folder:
            folder = get_folder_tx(tx, folder_id)
            if folder.special_use is not None:
                raise ValidationError(f"the default folder {folder.full_name} cannot be "
                                      "renamed")
            modseq = changes.next_modseq(tx, folder.mailbox_id)
            new_path = HIERARCHY_DELIMITER.join(parts)
            old_key = folder.full_name.casefold()
            new_key = new_path.casefold()
            if new_path == folder.full_name:
                return folder
            if new_key.startswith(old_key + HIERARCHY_DELIMITER):
                raise ValidationError("a folder cannot be moved into itself")
            clash = tx.one("SELECT full_name FROM folders WHERE mailbox_id = ? AND "
                           "full_name_key = ? AND id <> ?", (folder.mailbox_id, new_key,
                                                              folder_id))
            if clash is not None:
                raise AlreadyExists(f"folder {clash[0]} already exists")
            parent_id: int | None = None
            if len(parts) > 1:
                parent_path = HIERARCHY_DELIMITER.join(parts[:-1])
                row = tx.one("SELECT id FROM folders WHERE mailbox_id = ? AND "
                             "full_name_key = ?", (folder.mailbox_id, parent_path.casefold()))
                parent_id = int(row[0]) if row is not None else \
                    create_folder_tx(tx, folder.mailbox_id, parent_path).id
            tx.execute("UPDATE folders SET parent_id = ?, name = ?, full_name = ?, "
                       "full_name_key = ?, highest_modseq = ? WHERE id = ?",
                       (parent_id, parts[-1], new_path, new_key, modseq, folder_id))
            changes.record(tx, folder.mailbox_id, modseq, folder_id, "folder_renamed",
                           detail=new_path)
            # Subfolders: bounded by the folder count, never by the message count.
            prefix = folder.full_name + HIERARCHY_DELIMITER
            for fid, full in tx.all("SELECT id, full_name FROM folders WHERE mailbox_id = ? "
                                    "ORDER BY id", (folder.mailbox_id,)):
                if fid != folder_id and full.casefold().startswith(prefix.casefold()):
                    path = new_path + HIERARCHY_DELIMITER + full[len(prefix):]
                    tx.execute("UPDATE folders SET full_name = ?, full_name_key = ? "
                               "WHERE id = ?", (path, path.casefold(), fid))
                    changes.record(tx, folder.mailbox_id, modseq, int(fid), "folder_renamed",
                                   detail=path)
            return get_folder_tx(tx, folder_id)
        return await self._engine.write(fn)

    async def delete_folder(self, folder_id: int) -> None:
        """Delete a user folder without subfolders, with its messages."""
        from gateway.store.messages import release_contents

        def fn(tx: Tx) -> None:
            folder = get_folder_tx(tx, folder_id)
            if folder.special_use is not None:
                raise ValidationError(f"the default folder {folder.full_name} cannot be "
                                      "deleted")
            modseq = changes.next_modseq(tx, folder.mailbox_id)
            if tx.scalar("SELECT count(*) FROM folders WHERE parent_id = ?", (folder_id,)):
                raise ValidationError(f"folder {folder.full_name} has subfolders; delete "
                                      "them first")
            counts = tx.all("SELECT content_id, count(*) FROM messages WHERE folder_id = ? "
                            "GROUP BY content_id ORDER BY content_id", (folder_id,))
            tx.execute("DELETE FROM messages WHERE folder_id = ?", (folder_id,))
            release_contents(tx, [(int(c), int(n)) for c, n in counts])
            tx.execute("DELETE FROM folders WHERE id = ?", (folder_id,))
            changes.record(tx, folder.mailbox_id, modseq, folder_id, "folder_deleted",
                           detail=folder.full_name)
        await self._engine.write(fn)

    async def set_subscribed(self, folder_id: int, subscribed: bool) -> None:
        """IMAP SUBSCRIBE/UNSUBSCRIBE (RFC 9051 §6.3.7)."""
        def fn(tx: Tx) -> None:
            if tx.execute("UPDATE folders SET subscribed = ? WHERE id = ?",
                          (int(bool(subscribed)), folder_id)).rowcount == 0:
                raise NotFound(f"folder {folder_id} not found")
        await self._engine.write(fn)
