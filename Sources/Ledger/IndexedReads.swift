import LMDB
#if canImport(Glibc)
import Glibc
#endif

/// A read snapshot that answers index questions over both halves of an index: the B-trees
/// (records through `meta.indexed`) and the in-memory tail (records after it, up to the
/// snapshot's head).
struct IndexedSnapshot {
    let txn: Transaction
    let tables: LedgerTables
    let tail: TailIndex
    let indexed: UInt64
    let head: UInt64

    /// The current version of `stream`: how many events it has in this snapshot.
    func streamVersion(_ stream: String) throws -> UInt64 {
        if let entry = tail.latest(of: ByteKey(stream), atOrBefore: head) { return entry.version }
        return try txn.withCursor(tables.streams) { cursor in try cursor.streamVersion(stream) }
    }

    /// Positions of `stream`'s events from `fromVersion` on, at most `limit`.
    func streamPositions(_ stream: String, fromVersion: UInt64, limit: Int) throws -> [UInt64] {
        let prefix = Array(stream.utf8) + [0]
        var positions: [UInt64] = []
        try txn.withCursor(tables.streams) { cursor in
            var entry = try cursor.seek(atLeast: LedgerKeys.streamVersion(stream, fromVersion))
            while let current = entry, positions.count < limit,
                current.key.count == prefix.count + 8, current.key.starts(with: prefix)
            {
                positions.append(BigEndian.uint64(current.value))
                entry = try cursor.next()
            }
        }
        if positions.count < limit {
            let after = positions.isEmpty ? fromVersion : fromVersion + UInt64(positions.count)
            for entry in tail.entries(of: ByteKey(stream), fromVersion: after, atOrBefore: head) where positions.count < limit {
                positions.append(entry.position)
            }
        }
        return positions
    }

    /// The position recorded for `(source, id)`, if any.
    func position(source: String, id: String) throws -> UInt64? {
        if let position = tail.position(of: IdKey(source: source, id: id), atOrBefore: head) { return position }
        return try txn.get(tables.idempotency, key: LedgerKeys.idempotency(source: source, id: id)).map {
            $0.withUnsafeBytes { BigEndian.uint64($0) }
        }
    }
}

extension Transaction {
    /// `meta.indexed`: the B-trees hold every record through it.
    func indexedThrough(tables: LedgerTables) throws -> UInt64 {
        try LedgerTables.indexedKey.withUnsafeBytes { key in
            try get(tables.meta, key: key).map { BigEndian.uint64($0) } ?? 0
        }
    }
}

extension Ledger {
    /// Runs `body` on a snapshot whose tail is in line with it. A snapshot that began before a
    /// merge the tail already knows of is retried with a fresh one (rare: merges are).
    func readIndexed<T>(_ body: (IndexedSnapshot) throws -> T) throws -> T {
        for _ in 0..<8 {
            let answer: T? = try environment.read { txn in
                let indexed = try txn.indexedThrough(tables: tables)
                let head = try Self.lastPosition(in: txn, tables: tables)
                guard try tail.synchronize(with: txn, tables: tables, indexed: indexed, head: head) else { return nil }
                let answer = try body(IndexedSnapshot(txn: txn, tables: tables, tail: tail, indexed: indexed, head: head))
                // A merge that committed while `body` ran has pruned tail entries this snapshot's
                // B-trees do not hold (it began before the merge): what `body` read may lack them.
                guard tail.state.withLock({ $0.indexedThrough }) <= indexed else { return nil }
                return answer
            }
            if let answer { return answer }
        }
        throw LedgerError.storage("the index tail kept moving under eight snapshots in a row")
    }
}

/// Merges the tail into the `streams` and `idempotency` B-trees in one sorted pass.
enum IndexMerge {
    /// LMDB's default key order: bytes compared as unsigned, shorter first on a tie.
    static func precedes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        let common = min(a.count, b.count)
        let order = a.withUnsafeBytes { x in b.withUnsafeBytes { y in common == 0 ? 0 : memcmp(x.baseAddress!, y.baseAddress!, common) } }
        return order != 0 ? order < 0 : a.count < b.count
    }

    /// Copies the tail's keys through `through`, sorted by key, so the B-tree inserts walk the
    /// trees in order and share pages.
    static func merge(tail: TailIndex, through: UInt64, tables: LedgerTables, in txn: Transaction) throws {
        var streamKeys: [([UInt8], UInt64)] = []
        var idKeys: [([UInt8], UInt64)] = []
        tail.state.withLock { state in
            streamKeys.reserveCapacity(state.count)
            idKeys.reserveCapacity(state.count)
            for (stream, entries) in state.streams {
                for entry in entries where entry.position <= through {
                    streamKeys.append((LedgerKeys.streamVersion(stream.text, entry.version), entry.position))
                }
            }
            for (key, position) in state.ids where position <= through {
                idKeys.append((LedgerKeys.idempotency(source: key.source.text, id: key.id.text), position))
            }
        }
        streamKeys.sort { precedes($0.0, $1.0) }
        idKeys.sort { precedes($0.0, $1.0) }
        for (key, position) in streamKeys {
            try txn.put(tables.streams, key: key, value: BigEndian.bytes(position), flags: [.noOverwrite])
        }
        for (key, position) in idKeys {
            try txn.put(tables.idempotency, key: key, value: BigEndian.bytes(position), flags: [.noOverwrite])
        }
        try txn.put(tables.meta, key: LedgerTables.indexedKey, value: BigEndian.bytes(through), flags: [])
    }
}
