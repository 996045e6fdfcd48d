"""The state file's format: its marks, its tables, what a new file holds.

Written by `opening.create` and read by `SqliteStorage`; older versions
are brought to this one by `migrations.py`. A change here is a new
`SCHEMA_VERSION` and a migration, never an edit of an existing version.
"""

from __future__ import annotations

#: `PRAGMA application_id` of every paxosctl state file: ASCII "PXct".
APPLICATION_ID = 0x50586374

#: The schema this code writes and reads (`PRAGMA user_version` and meta.schema_version).
#: Older files are migrated when first opened: 1 (paxosctl 0.1) -> 2 -> 3 (0.2) -> 4 -> 5 -> 6 -> 7.
SCHEMA_VERSION = 7

#: Files up to this size get a full `quick_check` when opened; above it only
#: the header and schema are checked at start (a page damaged later fails
#: the read or write that meets it), so start-up stays constant-time.
QUICK_CHECK_MAX_BYTES = 16 * 1024 * 1024

# `value` in meta has no declared type (BLOB affinity), so ints stay ints
# and text stays text. Node ids are TEXT.
# Version 2: the learner's request index (request id -> first slot), and
# meta keys for the compaction point, the applied prefix and the first
# retained slot. Deleted rows' pages are reused by later inserts, so the
# file stops growing once compaction or retention deletes old rows.
# Version 3: a vote's or decision's value is a BLOB, `Value.data` as it is
# (the batch encoding of core/commands.py, payloads as bytes); version 2
# held the old codec's JSON text there.
# Version 4: meta key "configs", the configuration history as one JSON
# text (`Persist.configs`, stored and returned as it is); absent until the
# node first writes one, and in every file migrated from 3.
# Version 5: the agent's own incarnation (meta "incarnation", counted up and
# committed each time the store is opened by an agent), whether it was ever
# admitted to its cluster (meta "admitted": 1 once it has run; a new file
# holds 0 until its peers admit it, see runtime/admission.py), and `peers`:
# per member name, the newest incarnation this agent welcomed from it.
# Version 6: the request index is keyed by `core.requestkeys.request_key`
# (a stable 63-bit integer, the id's milliseconds in the high bits) instead
# of the id's text: half the bytes (4.0 against 8.6 MiB for 200,000 ids),
# and new rows land at the end of the B-tree. A row is (key, slot, pos): the id of key `key` was
# first applied at `slot`, command `pos` of its decision. Two ids may share
# a key, so a reader confirms a row by the full id at that position
# (`SqliteStorage.first_slots`): a key alone never decides.
# Version 7: `id_filter`, at most one row: the learner's request id filter
# (`IdFilter.to_bytes`, `Persist.id_filter`) and the slot it covers, written
# now and then in the transaction of that applied prefix, so a restart
# reads only the keys of the slots after it (core/requests.py). Empty in a
# new file and in every file migrated from 6: the first start reads every
# key, as before, and the learner saves one soon after.
ID_FILTER_TABLE = ("CREATE TABLE id_filter (one INTEGER PRIMARY KEY CHECK (one = 0),"
                   " slot INTEGER NOT NULL, data BLOB NOT NULL)")
REQUESTS_TABLE = ("CREATE TABLE requests (key INTEGER NOT NULL, slot INTEGER NOT NULL,"
                  " pos INTEGER NOT NULL, PRIMARY KEY (key, slot, pos)) WITHOUT ROWID")
#: The request index of versions 2 to 5 (created by the 1 -> 2 migration).
REQUESTS_TABLE_2 = ("CREATE TABLE requests (request_id TEXT PRIMARY KEY NOT NULL,"
                    " slot INTEGER NOT NULL) WITHOUT ROWID")
META_ADDED_IN_2 = (("compacted", 0), ("applied", -1), ("log_start", 0))
VOTES_TABLE = ("CREATE TABLE votes (slot INTEGER PRIMARY KEY, ballot_round INTEGER NOT NULL,"
               " ballot_node TEXT NOT NULL, value BLOB NOT NULL)")
DECISIONS_TABLE = "CREATE TABLE decisions (slot INTEGER PRIMARY KEY, value BLOB NOT NULL)"
PEERS_TABLE = ("CREATE TABLE peers (name TEXT PRIMARY KEY NOT NULL, incarnation INTEGER NOT NULL)"
               " WITHOUT ROWID")
SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value NOT NULL)",
    VOTES_TABLE,
    DECISIONS_TABLE,
    REQUESTS_TABLE,
    PEERS_TABLE,
    ID_FILTER_TABLE,
)
INITIAL_META = (
    ("schema_version", SCHEMA_VERSION),
    ("promised_round", 0),  # ZERO_BALLOT: below every real ballot
    ("promised_node", ""),
    ("round", 0),
    *META_ADDED_IN_2,
    ("incarnation", 0),  # counted up when an agent opens the store: its first start is 1
    ("admitted", 0),  # a new store has not run: its peers must admit it first
)

