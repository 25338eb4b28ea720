import LMDB
#if canImport(Glibc)
import Glibc
#endif

/// A read snapshot that answers index questions over both halves of an index: the B-trees
/// (records through `meta.indexed`) and the in-memory tail (records after it, up to the
/// snapshot's head).
struct IndexedSnapshot {
    /// The log's snapshot.
    let txn: Transaction
    /// The index's snapshot, taken before `txn`: the log holds at least what it indexes.
    let indexTxn: Transaction
    let tables: LedgerTables
    let tail: TailIndex
    let indexed: UInt64
    let head: UInt64

    /// The current version of `stream`: how many events it has in this snapshot.
    func streamVersion(_ stream: String) throws -> UInt64 {
        if let entry = tail.latest(of: stream, atOrBefore: head) { return entry.version }
        guard tables.hasIndex else { return 0 }
        return try indexTxn.withCursor(tables.streams) { cursor in
            let version = try cursor.streamVersion(stream)
            guard version > 0, indexed > head else { return version }
            // An index ahead of the log (see `Ledger.open`): the newest version the log holds.
            var entry = try cursor.seek(exactly: LedgerKeys.streamVersion(stream, version))
            var current = version
            while let found = entry, current > 0, BigEndian.uint64(found.value) > head {
                current -= 1
                entry = current > 0 ? try cursor.seek(exactly: LedgerKeys.streamVersion(stream, current)) : nil
            }
            return current
        }
    }

    /// Positions of `stream`'s events from `fromVersion` on, at most `limit`.
    func streamPositions(_ stream: String, fromVersion: UInt64, limit: Int) throws -> [UInt64] {
        let prefix = Array(stream.utf8) + [0]
        var positions: [UInt64] = []
        if tables.hasIndex {
            try indexTxn.withCursor(tables.streams) { cursor in
                var entry = try cursor.seek(atLeast: LedgerKeys.streamVersion(stream, fromVersion))
                while let current = entry, positions.count < limit,
                    current.key.count == prefix.count + 8, current.key.starts(with: prefix)
                {
                    let position = BigEndian.uint64(current.value)
                    if position > head { break }  // an index ahead of the log (see `Ledger.open`)
                    positions.append(position)
                    entry = try cursor.next()
                }
            }
        }
        if positions.count < limit {
            let after = positions.isEmpty ? fromVersion : fromVersion + UInt64(positions.count)
            for entry in tail.entries(of: stream, fromVersion: after, atOrBefore: head) where positions.count < limit {
                positions.append(entry.position)
            }
        }
        return positions
    }

    /// The position recorded for `(source, id)`, if any.
    func position(source: String, id: String) throws -> UInt64? {
        if let position = tail.position(source: source, id: id, atOrBefore: head) { return position }
        guard tables.hasIndex else { return nil }
        let position = try indexTxn.get(tables.idempotency, key: LedgerKeys.idempotency(source: source, id: id)).map {
            $0.withUnsafeBytes { BigEndian.uint64($0) }
        }
        // An index ahead of the log (see `Ledger.open`) may name records the log lacks.
        return position.flatMap { $0 <= head ? $0 : nil }
    }
}

extension Transaction {
    /// `meta.indexed`: the B-trees hold every record through it. On a transaction of the
    /// index's environment (`tables.index`).
    func indexedThrough(tables: LedgerTables) throws -> UInt64 {
        guard tables.hasIndex else { return 0 }
        return try LedgerTables.indexedKey.withUnsafeBytes { key in
            try get(tables.indexMeta, key: key).map { BigEndian.uint64($0) } ?? 0
        }
    }
}

extension Ledger {
    /// Runs `body` on a snapshot whose tail is in line with it. A snapshot that began before a
    /// merge the tail already knows of is retried with a fresh one (rare: merges are).
    func readIndexed<T>(_ body: (IndexedSnapshot) throws -> T) throws -> T {
        for _ in 0..<8 {
            // The index's snapshot first: a merge indexes only committed records, so the log's
            // snapshot, taken after, holds everything the index's does.
            let answer: T? = try tables.index.read { indexTxn in
                try environment.read { txn in
                    let indexed = try indexTxn.indexedThrough(tables: tables)
                    let head = try Self.lastPosition(in: txn, tables: tables)
                    guard try tail.synchronize(with: txn, tables: tables, indexed: indexed, head: head) else { return nil }
                    let answer = try body(IndexedSnapshot(txn: txn, indexTxn: indexTxn, tables: tables, tail: tail, indexed: indexed, head: head))
                    // A prune after a merge that committed while `body` ran has taken tail entries
                    // this snapshot's B-trees do not hold: what `body` read may lack them.
                    guard tail.state.withLock({ $0.indexedThrough }) <= indexed else { return nil }
                    return answer
                }
            }
            if let answer { return answer }
        }
        throw LedgerError.storage("the index tail kept moving under eight snapshots in a row")
    }
}

/// Merges the tail into the `streams` and `idempotency` B-trees in one sorted pass.
enum IndexMerge {
    /// Keys to put, in one arena, sortable in LMDB's order.
    struct SortedKeys {
        struct Key {
            /// Big-endian bytes right after the prefix every key shares: orders most pairs alone.
            var prefix: UInt64
            var offset: UInt32
            var count: UInt32
            var position: UInt64
        }

        var arena: [UInt8] = []
        var keys: [Key] = []

        mutating func append(_ bytes: UnsafeRawBufferPointer, suffix version: UInt64?, position: UInt64) {
            let offset = arena.count
            arena.append(contentsOf: bytes)
            if let version {
                arena.append(0)
                BigEndian.append(version, to: &arena)
            }
            keys.append(Key(prefix: 0, offset: UInt32(offset), count: UInt32(arena.count - offset), position: position))
        }

        /// Sorts the keys: by the 8 bytes after their common prefix, then (rarely) by all bytes.
        mutating func sort() {
            guard keys.count > 1 else { return }
            arena.withUnsafeBytes { arena in
                let base = arena.baseAddress!
                let first = keys[0]
                var common = Int(first.count)
                for key in keys.dropFirst() {
                    var same = 0
                    let limit = min(common, Int(key.count))
                    while same < limit && base.load(fromByteOffset: Int(first.offset) + same, as: UInt8.self)
                        == base.load(fromByteOffset: Int(key.offset) + same, as: UInt8.self) { same += 1 }
                    common = same
                    if common == 0 { break }
                }
                for i in keys.indices {
                    var prefix: UInt64 = 0
                    let key = keys[i]
                    for j in 0..<8 {
                        let at = common + j
                        prefix <<= 8
                        if at < Int(key.count) { prefix |= UInt64(base.load(fromByteOffset: Int(key.offset) + at, as: UInt8.self)) }
                    }
                    keys[i].prefix = prefix
                }
                keys.withUnsafeMutableBufferPointer { keys in
                    keys.sort { a, b in
                        if a.prefix != b.prefix { return a.prefix < b.prefix }
                        let common = Int(min(a.count, b.count))
                        let order = memcmp(base + Int(a.offset), base + Int(b.offset), common)
                        return order != 0 ? order < 0 : a.count < b.count
                    }
                }
            }
        }

        /// Puts every key, in order, through one cursor.
        func put(into table: Table, in txn: Transaction) throws {
            try txn.withCursor(table) { cursor in
                try arena.withUnsafeBytes { arena in
                    for key in keys {
                        var value = key.position.bigEndian
                        try withUnsafeBytes(of: &value) { value in
                            try cursor.put(
                                key: UnsafeRawBufferPointer(rebasing: arena[Int(key.offset)..<Int(key.offset + key.count)]),
                                value: value, flags: [.noOverwrite])
                        }
                    }
                }
            }
        }
    }

    /// Copies the tail's keys through `through`, sorted by key, so the B-tree inserts walk the
    /// trees in order and share pages. The keys taken are those of records after the B-trees' own `indexed` (the tail may still
    /// hold ones merged before, until the writer prunes them).
    static func merge(tail: TailIndex, through: UInt64, tables: LedgerTables, in txn: Transaction) throws {
        var streamKeys = SortedKeys()
        var idKeys = SortedKeys()
        let after = try txn.indexedThrough(tables: tables)
        guard through > after else { return }
        let covered = tail.state.withLock { state -> Bool in
            guard state.indexedThrough <= after, state.coveredThrough >= through else { return false }
            let first = Int(after - state.indexedThrough)
            let end = Int(through - state.indexedThrough)
            streamKeys.keys.reserveCapacity(end - first)
            idKeys.keys.reserveCapacity(end - first)
            streamKeys.arena.reserveCapacity(state.arena.count)
            idKeys.arena.reserveCapacity(state.arena.count)
            for index in first..<end {
                let entry = state.entry(at: index)
                let position = state.position(ofEntry: index)
                state.withKey(of: entry, stream: true) { streamKeys.append($0, suffix: entry.version, position: position) }
                state.withKey(of: entry, stream: false) { idKeys.append($0, suffix: nil, position: position) }
            }
            return true
        }
        guard covered else {
            throw LedgerError.storage("the index tail does not hold the records \(after + 1) through \(through) that index/ lacks")
        }
        streamKeys.sort()
        idKeys.sort()
        try streamKeys.put(into: tables.streams, in: txn)
        try idKeys.put(into: tables.idempotency, in: txn)
        try txn.put(tables.indexMeta, key: LedgerTables.indexedKey, value: BigEndian.bytes(through), flags: [])
    }
}
