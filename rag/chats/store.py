"""Saved chats in SQLite: ``<index root>/chats.sqlite3``, one file for every collection under that root.

The file is created mode 0600 and kept in WAL mode; every write is one ``BEGIN IMMEDIATE``
transaction and every connection waits ``busy_timeout`` seconds for another writer, so several app
sessions, ``rag serve`` and ``rag chat`` processes can save turns to the same file and none is lost.
Each call opens its own connection (cheap for SQLite), so a :class:`ChatStore` may be shared by threads.

The schema's version is SQLite's ``user_version``; :data:`MIGRATIONS` lists the steps from one
version to the next, applied in order when the file is opened.  A file that is not a chat history
(damaged) or was written by a newer version raises :class:`ChatHistoryError` with one line saying
so: the front ends then answer without saving.

Example:
    >>> import tempfile
    >>> chats = ChatStore(Path(tempfile.mkdtemp()) / CHATS_FILE)
    >>> from rag.types import Answer
    >>> chat_id = chats.create("How is the pump primed?", collection="manuals")
    >>> chats.append(chat_id, Answer(question="How is the pump primed?", text="Fill the casing."), model="extractive")
    1
    >>> chat = chats.load(chat_id)
    >>> chat.title, chat.collection, [t.answer.text for t in chat.turns]
    ('How is the pump primed?', 'manuals', ['Fill the casing.'])
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from rag.chats.codec import answer_from_dict, answer_to_dict
from rag.types import Answer

logger = logging.getLogger(__name__)

CHATS_FILE = "chats.sqlite3"
DEFAULT_BUSY_TIMEOUT = 10.0
TITLE_MAX = 200

#: the schema, one step per version: ``MIGRATIONS[i]`` takes a file from version ``i`` to ``i + 1``
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE chats (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            collection TEXT NOT NULL,
            documents TEXT NOT NULL DEFAULT '[]',
            created REAL NOT NULL,
            updated REAL NOT NULL)""",
        "CREATE INDEX chats_updated ON chats(updated)",
        """CREATE TABLE turns (
            chat_id TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            question TEXT NOT NULL,
            answer_text TEXT NOT NULL,
            answer TEXT NOT NULL,
            model TEXT NOT NULL DEFAULT '',
            timings TEXT NOT NULL DEFAULT '{}',
            meta TEXT NOT NULL DEFAULT '{}',
            created REAL NOT NULL,
            PRIMARY KEY (chat_id, position))""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class ChatHistoryError(ValueError):
    """The chat history cannot be used (damaged, newer, busy, unknown chat); the message is one line."""


@dataclass(frozen=True)
class Turn:
    """One saved question and its answer; ``timings`` in seconds, ``meta`` what a front end kept with it."""

    position: int
    question: str
    answer: Answer
    model: str = ""
    timings: Mapping[str, float] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)
    created: float = 0.0


@dataclass(frozen=True)
class Chat:
    """A saved chat; ``turns`` is empty in listings (:meth:`ChatStore.list`), ``n_turns`` counts them."""

    id: str
    title: str
    collection: str
    documents: tuple[str, ...] = ()
    created: float = 0.0
    updated: float = 0.0
    n_turns: int = 0
    turns: tuple[Turn, ...] = ()


def chat_store(root: str | Path) -> "ChatStore":
    """The chat history of the index root ``root`` (``<root>/chats.sqlite3``)."""
    return ChatStore(Path(root) / CHATS_FILE)


def _title(text: str) -> str:
    title = " ".join(str(text).split())
    if not title:
        raise ValueError("a chat title must not be empty; give it a few words")
    return title[:TITLE_MAX]


class ChatStore:
    """Create, append to, list, search, rename, delete and load saved chats in one SQLite file.

    Args:
        path: the SQLite file (made, with its folder, on the first write; mode 0600).
        busy_timeout: seconds a call waits for another process's write before failing.

    Example:
        >>> ChatStore("chats.sqlite3", busy_timeout=-1)
        Traceback (most recent call last):
        ...
        ValueError: busy_timeout must be >= 0 seconds, got -1
    """

    def __init__(self, path: str | Path, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        if not busy_timeout >= 0:
            raise ValueError(f"busy_timeout must be >= 0 seconds, got {busy_timeout!r}")
        self.path = Path(path)
        self.busy_timeout = float(busy_timeout)

    # -- connection ----------------------------------------------------------------------
    def _fail(self, exc: BaseException) -> ChatHistoryError:
        why = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in why or "busy" in why):
            return ChatHistoryError(f"chat history at {self.path} is busy: another process held it for more than "
                                    f"{self.busy_timeout:g} s ({why}); try again")
        if isinstance(exc, OSError):
            return ChatHistoryError(f"chat history at {self.path} cannot be opened ({why}); check the folder's "
                                    "permissions and free space")
        return ChatHistoryError(f"chat history at {self.path} is damaged ({why}); move it aside or delete it "
                                "to save chats again")

    def _create_file(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        os.close(fd)

    @contextmanager
    def _connect(self, write: bool) -> Iterator[sqlite3.Connection]:
        """A connection in a transaction (``BEGIN IMMEDIATE`` for writes), committed on success."""
        if write:
            try:
                self._create_file()
            except OSError as exc:
                raise self._fail(exc) from None
        elif not self.path.exists():
            yield None  # type: ignore[misc]  # nothing saved yet
            return
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise self._fail(exc) from None
        try:
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
                conn.execute("PRAGMA foreign_keys = ON")
                self._migrate(conn)
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.Error as exc:
                raise self._fail(exc) from None
            try:
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                conn.rollback()
                raise self._fail(exc) from None
            except BaseException:
                conn.rollback()
                raise
        finally:
            conn.close()

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ChatHistoryError(f"chat history at {self.path} is newer (schema {version} > {SCHEMA_VERSION}): "
                                   "it was written by a newer rag; upgrade rag to read it")
        if version == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have migrated it
            if version == 0:
                tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if tables:
                    raise ChatHistoryError(f"chat history at {self.path} is damaged (tables but no schema "
                                           "version); move it aside or delete it to save chats again")
            for step in range(version, SCHEMA_VERSION):
                for sql in MIGRATIONS[step]:
                    conn.execute(sql)
                conn.execute(f"PRAGMA user_version = {step + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.rollback()
            raise
        if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
            logger.warning("chat history at %s: WAL mode is not available; concurrent readers wait", self.path)
        logger.info("chat history at %s: schema %d -> %d", self.path, version, SCHEMA_VERSION)

    def check(self) -> None:
        """Open (creating or migrating) the file: raises :class:`ChatHistoryError` when it cannot be used."""
        with self._connect(write=True):
            pass

    # -- writes --------------------------------------------------------------------------
    def create(self, title: str, collection: str, documents: Sequence[str] = ()) -> str:
        """A new empty chat; its id.  ``title`` is usually the first question; ``documents`` the chat's scope."""
        title = _title(title)
        if not collection:
            raise ValueError("a chat's collection must not be empty; pass the index name")
        chat_id = secrets.token_hex(6)
        now = time.time()
        with self._connect(write=True) as conn:
            conn.execute("INSERT INTO chats (id, title, collection, documents, created, updated) VALUES (?,?,?,?,?,?)",
                         (chat_id, title, collection, json.dumps(list(documents)), now, now))
        return chat_id

    def append(self, chat_id: str, answer: Answer, model: str = "", timings: Mapping[str, float] | None = None,
               meta: Mapping[str, Any] | None = None) -> int:
        """Save one completed turn (``answer.question`` and the answer) at the end of the chat; its 1-based position."""
        answer_json = json.dumps(answer_to_dict(answer), ensure_ascii=False, default=_jsonable)
        now = time.time()
        with self._connect(write=True) as conn:
            if conn.execute("SELECT 1 FROM chats WHERE id = ?", (chat_id,)).fetchone() is None:
                raise ChatHistoryError(f"no saved chat {chat_id!r} in {self.path}; see `rag chats`")
            position = conn.execute("SELECT coalesce(max(position), 0) + 1 FROM turns WHERE chat_id = ?",
                                    (chat_id,)).fetchone()[0]
            conn.execute("INSERT INTO turns (chat_id, position, question, answer_text, answer, model, timings, meta,"
                         " created) VALUES (?,?,?,?,?,?,?,?,?)",
                         (chat_id, position, answer.question, answer.text, answer_json, model,
                          json.dumps(dict(timings or {}), default=_jsonable),
                          json.dumps(dict(meta or {}), ensure_ascii=False, default=_jsonable), now))
            conn.execute("UPDATE chats SET updated = ? WHERE id = ?", (now, chat_id))
        return int(position)

    def rename(self, chat_id: str, title: str) -> None:
        title = _title(title)
        with self._connect(write=True) as conn:
            if conn.execute("UPDATE chats SET title = ? WHERE id = ?", (title, chat_id)).rowcount == 0:
                raise ChatHistoryError(f"no saved chat {chat_id!r} in {self.path}; see `rag chats`")

    def set_documents(self, chat_id: str, documents: Sequence[str]) -> None:
        """Scope the chat to ``documents`` (source paths as the index records them; empty: the whole collection)."""
        with self._connect(write=True) as conn:
            if conn.execute("UPDATE chats SET documents = ? WHERE id = ?",
                            (json.dumps(list(documents)), chat_id)).rowcount == 0:
                raise ChatHistoryError(f"no saved chat {chat_id!r} in {self.path}; see `rag chats`")

    def count(self, collection: str | None = None) -> int:
        """How many chats are saved (of ``collection`` only, when given)."""
        with self._connect(write=False) as conn:
            if conn is None:
                return 0
            if collection is None:
                return int(conn.execute("SELECT count(*) FROM chats").fetchone()[0])
            return int(conn.execute("SELECT count(*) FROM chats WHERE collection = ?", (collection,)).fetchone()[0])

    def delete(self, chat_id: str) -> bool:
        """Delete one chat and its turns; False when there was none with that id."""
        if not self.path.exists():
            return False
        with self._connect(write=True) as conn:
            return conn.execute("DELETE FROM chats WHERE id = ?", (chat_id,)).rowcount > 0

    def delete_all(self, collection: str | None = None) -> int:
        """Delete every chat (of ``collection`` only, when given); how many were deleted."""
        if not self.path.exists():
            return 0
        with self._connect(write=True) as conn:
            if collection is None:
                return conn.execute("DELETE FROM chats").rowcount
            return conn.execute("DELETE FROM chats WHERE collection = ?", (collection,)).rowcount

    # -- reads ---------------------------------------------------------------------------
    def list(self, collection: str | None = None, limit: int | None = None) -> list[Chat]:
        """Chats newest first (by their last turn), without their turns."""
        return self._chats("", (), collection, limit)

    def search(self, text: str, collection: str | None = None, limit: int | None = None) -> list[Chat]:
        """Chats whose title, questions or answers contain ``text`` (case-insensitive for ASCII), newest first."""
        text = text.strip()
        if not text:
            return self.list(collection, limit)
        like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where = ("(c.title LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM turns t WHERE t.chat_id = c.id AND "
                 "(t.question LIKE ? ESCAPE '\\' OR t.answer_text LIKE ? ESCAPE '\\')))")
        return self._chats(where, (like, like, like), collection, limit)

    def _chats(self, where: str, params: tuple[Any, ...], collection: str | None, limit: int | None) -> list[Chat]:
        clauses = [where] if where else []
        if collection is not None:
            clauses.append("c.collection = ?")
            params = (*params, collection)
        sql = ("SELECT c.id, c.title, c.collection, c.documents, c.created, c.updated, "
               "(SELECT count(*) FROM turns t WHERE t.chat_id = c.id) FROM chats c"
               + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY c.updated DESC, c.rowid DESC")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._connect(write=False) as conn:
            if conn is None:
                return []
            rows = conn.execute(sql, params).fetchall()
            return [self._chat(r) for r in rows]

    def _chat(self, row: Sequence[Any], turns: tuple[Turn, ...] = ()) -> Chat:
        try:
            documents = tuple(str(d) for d in json.loads(row[3]))
        except (TypeError, ValueError) as exc:
            raise self._fail(exc) from None
        return Chat(id=row[0], title=row[1], collection=row[2], documents=documents, created=row[4],
                    updated=row[5], n_turns=row[6] if len(row) > 6 else len(turns), turns=turns)

    def exists(self, chat_id: str) -> bool:
        """Whether a chat ``chat_id`` is saved (raises :class:`ChatHistoryError` for a history that cannot be read)."""
        with self._connect(write=False) as conn:
            if conn is None:
                return False
            return conn.execute("SELECT 1 FROM chats WHERE id = ?", (chat_id,)).fetchone() is not None

    def latest(self, collection: str | None = None) -> Chat | None:
        """The most recently updated chat (without turns), or None."""
        found = self.list(collection, limit=1)
        return found[0] if found else None

    def load(self, chat_id: str) -> Chat:
        """The chat with all its turns, in order."""
        with self._connect(write=False) as conn:
            row = conn.execute("SELECT id, title, collection, documents, created, updated FROM chats WHERE id = ?",
                               (chat_id,)).fetchone() if conn is not None else None
            if row is None:
                raise ChatHistoryError(f"no saved chat {chat_id!r} in {self.path}; see `rag chats`")
            rows = conn.execute("SELECT position, question, answer, model, timings, meta, created FROM turns "
                                "WHERE chat_id = ? ORDER BY position", (chat_id,)).fetchall()
        try:
            turns = tuple(Turn(position=r[0], question=r[1], answer=answer_from_dict(json.loads(r[2])), model=r[3],
                               timings=json.loads(r[4]), meta=json.loads(r[5]), created=r[6]) for r in rows)
        except (KeyError, TypeError, ValueError) as exc:
            raise self._fail(exc) from None
        return self._chat(tuple(row), turns)

    def raw_answers(self, chat_id: str) -> list[dict[str, Any]]:
        """Each turn's answer exactly as saved (the trace included), for the JSON export."""
        with self._connect(write=False) as conn:
            if conn is None:
                return []
            rows = conn.execute("SELECT answer FROM turns WHERE chat_id = ? ORDER BY position", (chat_id,)).fetchall()
        try:
            return [json.loads(r[0]) for r in rows]
        except ValueError as exc:
            raise self._fail(exc) from None


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    if isinstance(x, (set, frozenset, tuple)):
        return list(x)
    return str(x)
