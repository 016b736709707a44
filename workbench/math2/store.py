"""Annotation store for the human step of MATH^2: an append-only SQLite log of question versions.

Every change is a new row ``(question_id, version, action, status, question, answer, reason, ...)``;
rows are never updated or deleted (SQLite triggers refuse it), so the full history of a question
(generated -> edited -> accepted ...) is always there. Each write is one SQLite transaction with
``synchronous=FULL``: a crash mid-write leaves the store as it was before that write.

Actions: ``generated`` (version 0, from the pipeline), ``accept``, ``edit`` (new question/answer text,
status ``edited``, still to be accepted), ``reject`` (needs a reason), ``reopen``.
The final dataset is the latest version of every question whose status is ``accepted``, exported as
JSONL with provenance (skills, pipeline decisions, model, seed, and the review history).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterable

ACTIONS = {"generated": None, "accept": "accepted", "edit": "edited", "reject": "rejected", "reopen": "pending"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    row_id INTEGER PRIMARY KEY AUTOINCREMENT,
    question_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    action TEXT NOT NULL,
    status TEXT NOT NULL,
    question TEXT,
    answer TEXT,
    reason TEXT,
    reviewer TEXT,
    created_at TEXT NOT NULL,
    payload TEXT,
    UNIQUE (question_id, version)
);
CREATE TRIGGER IF NOT EXISTS versions_no_update BEFORE UPDATE ON versions
BEGIN SELECT RAISE(ABORT, 'annotation store is append-only'); END;
CREATE TRIGGER IF NOT EXISTS versions_no_delete BEFORE DELETE ON versions
BEGIN SELECT RAISE(ABORT, 'annotation store is append-only'); END;
"""

_COLS = ("row_id", "question_id", "version", "action", "status", "question", "answer", "reason", "reviewer",
         "created_at", "payload")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class AnnotationStore:
    """Append-only review log in one SQLite file.

    >>> import tempfile, os
    >>> s = AnnotationStore(os.path.join(tempfile.mkdtemp(), "a.sqlite"))
    >>> s.add_generated([{"id": "q1", "question": "1+1?", "answer": "2", "skills": ["a", "b"], "status": "kept"}])
    1
    >>> _ = s.review("q1", "edit", question="What is 1+1?"); s.review("q1", "accept")["status"]
    'accepted'
    >>> [v["action"] for v in s.history("q1")]
    ['generated', 'edit', 'accept']
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)  # explicit transactions below
        con.execute("PRAGMA synchronous=FULL")
        return con

    # ---------------------------------------------------------------------------------- writes
    def add_generated(self, candidates: Iterable[dict], *, provenance: dict | None = None) -> int:
        """Insert version 0 of every candidate not yet in the store (kept ones ``pending``, dropped
        ones ``dropped``); existing questions are left untouched. Returns how many were added."""
        rows = []
        for c in candidates:
            if not c.get("question"):
                continue  # nothing to review: the generator produced no readable question
            payload = {"skills": c.get("skills"), "pipeline_status": c.get("status"),
                       "dropped_at": c.get("dropped_at"), "reason": c.get("reason"),
                       "decisions": {k: v.get("decision") for k, v in (c.get("stages") or {}).items()},
                       "provenance": provenance or {}}
            rows.append((c["id"], 0, "generated", "pending" if c.get("status") == "kept" else "dropped",
                         c["question"], c.get("answer"), c.get("reason"), "pipeline", _now(), json.dumps(payload)))
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            have = {r[0] for r in con.execute("SELECT DISTINCT question_id FROM versions")}
            new = [r for r in rows if r[0] not in have]
            con.executemany("INSERT INTO versions (question_id, version, action, status, question, answer, reason, "
                            "reviewer, created_at, payload) VALUES (?,?,?,?,?,?,?,?,?,?)", new)
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()
        return len(new)

    def review(self, question_id: str, action: str, *, question: str | None = None, answer: str | None = None,
               reason: str | None = None, reviewer: str = "human") -> dict[str, Any]:
        """Append a new version of ``question_id``. ``edit`` needs a new question or answer; ``reject``
        needs a reason. Unchanged fields carry over from the latest version. Returns the new row."""
        if action not in ACTIONS or action == "generated":
            raise ValueError(f"action must be one of accept, edit, reject, reopen; got {action!r}")
        if action == "edit" and question is None and answer is None:
            raise ValueError("an edit needs a new question and/or answer")
        if action == "reject" and not (reason and reason.strip()):
            raise ValueError("a rejection needs a reason")
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")  # read-then-append under one write lock
            last = con.execute("SELECT version, question, answer, payload FROM versions WHERE question_id=? "
                               "ORDER BY version DESC LIMIT 1", (question_id,)).fetchone()
            if last is None:
                raise KeyError(f"no question {question_id!r} in the store {self.path}")
            row = (question_id, last[0] + 1, action, ACTIONS[action],
                   last[1] if question is None else question, last[2] if answer is None else answer,
                   reason, reviewer, _now(), last[3])
            con.execute("INSERT INTO versions (question_id, version, action, status, question, answer, reason, "
                        "reviewer, created_at, payload) VALUES (?,?,?,?,?,?,?,?,?,?)", row)
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()
        return self.latest(question_id)

    # ----------------------------------------------------------------------------------- reads
    def _rows(self, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
        con = self._connect()
        try:
            out = [dict(zip(_COLS, r)) for r in con.execute(sql, args)]
        finally:
            con.close()
        for r in out:
            r["payload"] = json.loads(r["payload"]) if r["payload"] else {}
        return out

    def history(self, question_id: str) -> list[dict[str, Any]]:
        """Every version of a question, oldest first."""
        return self._rows(f"SELECT {', '.join(_COLS)} FROM versions WHERE question_id=? ORDER BY version", (question_id,))

    def latest(self, question_id: str | None = None) -> Any:
        """The latest version of one question (dict), or of every question (list, by id)."""
        sql = (f"SELECT {', '.join(_COLS)} FROM versions v WHERE version = (SELECT MAX(version) FROM versions "
               f"WHERE question_id = v.question_id)")
        if question_id is not None:
            rows = self._rows(sql + " AND question_id=?", (question_id,))
            if not rows:
                raise KeyError(f"no question {question_id!r} in the store {self.path}")
            return rows[0]
        return self._rows(sql + " ORDER BY question_id")

    def counts(self) -> dict[str, int]:
        """How many questions are in each latest status."""
        out: dict[str, int] = {}
        for r in self.latest():
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out

    def n_versions(self) -> int:
        con = self._connect()
        try:
            return con.execute("SELECT COUNT(*) FROM versions").fetchone()[0]
        finally:
            con.close()

    # ---------------------------------------------------------------------------------- export
    def export_jsonl(self, path: str | os.PathLike, *, statuses: tuple[str, ...] = ("accepted",),
                     extra: dict | None = None) -> int:
        """Write the latest version of each question with a status in ``statuses`` as JSONL, with its
        provenance and full review history. Written to a temporary file and renamed (atomic).
        Returns the number of lines."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        lines = []
        for r in self.latest():
            if r["status"] not in statuses:
                continue
            hist = self.history(r["question_id"])
            lines.append(json.dumps({
                "id": r["question_id"], "question": r["question"], "answer": r["answer"],
                "skills": r["payload"].get("skills"), "status": r["status"], "version": r["version"],
                "edited_by_human": any(h["action"] == "edit" for h in hist),
                "provenance": {**r["payload"].get("provenance", {}), **(extra or {}),
                               "pipeline_decisions": r["payload"].get("decisions"),
                               "store": str(self.path)},
                "history": [{k: h[k] for k in ("version", "action", "status", "question", "answer", "reason",
                                              "reviewer", "created_at")} for h in hist],
            }))
        tmp = p.with_suffix(p.suffix + ".tmp")
        with open(tmp, "w") as f:
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
        return len(lines)
