#!/usr/bin/env python3
"""WAL pages written per block by the arbiter store's `transactions` table, layout 1 against
layout 2 (proto/README.md, "Store layout"): 60 blocks of 1,000 inserts of a random 32-byte hash
and a 210-byte transaction (a transfer's size), WAL mode, synchronous FULL, the WAL truncated
after each block so its size is that block's pages. Only the table under study is created: the
`state` rows a block also writes are the same in both layouts.

    python3 Tools/bench/store/wal-pages.py [blocks] [per block]
"""
import os
import sqlite3
import sys
import tempfile
import time

LAYOUTS = {
    "layout 1 (keyed by hash)": [
        """CREATE TABLE transactions (
            hash BLOB PRIMARY KEY, height INTEGER NOT NULL, idx INTEGER NOT NULL,
            bytes BLOB NOT NULL, created_id INTEGER NOT NULL, UNIQUE (height, idx)) WITHOUT ROWID""",
    ],
    "layout 2 (appended, 8-byte hash index)": [
        """CREATE TABLE transactions (
            height INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
            bytes BLOB NOT NULL, created_id INTEGER NOT NULL)""",
        "CREATE UNIQUE INDEX transactions_by_block ON transactions (height, idx)",
        "CREATE INDEX transactions_by_hash ON transactions (substr(hash, 1, 8))",
    ],
}


def run(name, schema, blocks, per_block):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "chain.sqlite")
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA wal_autocheckpoint = 0")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        for statement in schema:
            db.execute(statement)
        pages = []
        cpu = time.process_time()
        for height in range(1, blocks + 1):
            db.execute("BEGIN")
            for index in range(per_block):
                db.execute(
                    "INSERT INTO transactions (hash, height, idx, bytes, created_id) VALUES (?, ?, ?, ?, 0)",
                    (os.urandom(32), height, index, os.urandom(210)),
                )
            db.execute("COMMIT")
            pages.append(os.path.getsize(path + "-wal") // (page_size + 24))
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cpu = time.process_time() - cpu
        db.close()
    first, last = pages[:10], pages[-10:]
    print(
        f"{name}: WAL pages per block {sum(first) / len(first):.0f} (first 10 blocks), "
        f"{sum(last) / len(last):.0f} (last 10); {cpu:.2f} s of CPU"
    )


if __name__ == "__main__":
    blocks = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    per_block = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    for name, schema in LAYOUTS.items():
        run(name, schema, blocks, per_block)
