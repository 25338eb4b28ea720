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
    /// The index's live run slots in this snapshot, newest first.
    let runs: [Int]

    /// The current version of `stream`: how many events it has in this snapshot.
    func streamVersion(_ stream: String) throws -> UInt64 {
        if let entry = tail.latest(of: stream, atOrBefore: head) { return entry.version }
        // Runs hold disjoint stretches of the log, newer runs later ones: the newest run that
        // has the stream has its latest version.
        for slot in runs {
            let version = try indexTxn.withCursor(tables.streamRuns[slot]) { cursor -> UInt64 in
                guard indexed > head else { return try cursor.streamVersion(stream) }
                // An index ahead of the log (see `Ledger.open`): the newest version in this run
                // whose record the log holds, if any.
                let prefix = Array(stream.utf8) + [0]
                var entry = try cursor.seek(atLeast: LedgerKeys.streamEnd(stream)) != nil ? try cursor.previous() : try cursor.last()
                while let current = entry, current.key.count == prefix.count + 8, current.key.starts(with: prefix) {
                    if BigEndian.uint64(current.value) <= head { return BigEndian.uint64(current.key, at: prefix.count) }
                    entry = try cursor.previous()
                }
                return 0
            }
            if version > 0 { return version }
        }
        return 0
    }

    /// Positions of `stream`'s events from `fromVersion` on, at most `limit`.
    func streamPositions(_ stream: String, fromVersion: UInt64, limit: Int) throws -> [UInt64] {
        let prefix = Array(stream.utf8) + [0]
        var positions: [UInt64] = []
        // Oldest run first: each holds a later stretch of the stream's versions.
        for slot in runs.reversed() where positions.count < limit {
            let from = fromVersion + UInt64(positions.count)
            var pastHead = false
            try indexTxn.withCursor(tables.streamRuns[slot]) { cursor in
                var entry = try cursor.seek(atLeast: LedgerKeys.streamVersion(stream, from))
                while let current = entry, positions.count < limit,
                    current.key.count == prefix.count + 8, current.key.starts(with: prefix)
                {
                    let position = BigEndian.uint64(current.value)
                    if position > head {  // an index ahead of the log (see `Ledger.open`)
                        pastHead = true
                        break
                    }
                    positions.append(position)
                    entry = try cursor.next()
                }
            }
            if pastHead { break }
        }
        if positions.count < limit {
            let after = fromVersion + UInt64(positions.count)
            for entry in tail.entries(of: stream, fromVersion: after, atOrBefore: head) where positions.count < limit {
                positions.append(entry.position)
            }
        }
        return positions
    }

    /// The position recorded for `(source, id)`, if any.
    func position(source: String, id: String) throws -> UInt64? {
        if let position = tail.position(source: source, id: id, atOrBefore: head) { return position }
        let key = LedgerKeys.idempotency(source: source, id: id)
        for slot in runs {
            if let position = try indexTxn.get(tables.idRuns[slot], key: key).map({ $0.withUnsafeBytes { BigEndian.uint64($0) } }) {
                // An index ahead of the log (see `Ledger.open`) may name records the log lacks.
                return position <= head ? position : nil
            }
        }
        return nil
    }
}

/// The writer's look-ups in the index's runs, through one snapshot of `index/`.
struct RunLookups {
    let txn: Transaction
    let tables: LedgerTables
    /// Live run slots, newest first, and a `streams` cursor on each.
    let runs: [Int]
    let streamCursors: [Cursor]

    func position(idKey: UnsafeRawBufferPointer) throws -> UInt64? {
        for slot in runs {
            if let value = try txn.get(tables.idRuns[slot], key: idKey) { return BigEndian.uint64(value) }
        }
        return nil
    }

    /// The newest run holding the stream has its latest version.
    func streamVersion(_ stream: UnsafeRawBufferPointer, keyBuffer: inout [UInt8]) throws -> UInt64 {
        for cursor in streamCursors {
            let version = try cursor.streamVersion(stream, keyBuffer: &keyBuffer)
            if version > 0 { return version }
        }
        return 0
    }

    /// Opens the look-ups on a snapshot of `index/` for `body`.
    static func with<T>(_ txn: Transaction, tables: LedgerTables, _ body: (RunLookups) throws -> T) throws -> T {
        let runs = try txn.indexRuns(tables: tables)
        return try withCursors(runs.map { tables.streamRuns[$0] }, in: txn) { cursors in
            try body(RunLookups(txn: txn, tables: tables, runs: runs, streamCursors: cursors))
        }
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
                    let runs = try indexTxn.indexRuns(tables: tables)
                    let answer = try body(IndexedSnapshot(
                        txn: txn, indexTxn: indexTxn, tables: tables, tail: tail, indexed: indexed, head: head, runs: runs))
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
                            // Into an empty run, in order: LMDB fills each page and refuses
                            // a key out of order.
                            try cursor.put(
                                key: UnsafeRawBufferPointer(rebasing: arena[Int(key.offset)..<Int(key.offset + key.count)]),
                                value: value, flags: [.append])
                        }
                    }
                }
            }
        }
    }

    /// Writes the tail's keys through `through`, sorted, as a new run: into the tables of a free
    /// slot with `MDB_APPEND`, so only the new keys' pages are written, full; with eight runs
    /// live it compacts first (`compact`). The keys taken are those of records after the
    /// index's own `indexed` (the tail may still hold ones merged before, until the writer
    /// prunes them). Returns the runs now live, newest first.
    @discardableResult
    static func merge(tail: TailIndex, through: UInt64, tables: LedgerTables, in txn: Transaction) throws -> [Int] {
        var streamKeys = SortedKeys()
        var idKeys = SortedKeys()
        let after = try txn.indexedThrough(tables: tables)
        var runs = try txn.indexRuns(tables: tables)
        guard through > after else { return runs }
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
        if runs.count >= LedgerTables.runsMax {
            // Eight runs live: merge some first, in this transaction, so a slot is always free
            // (a compaction that failed or was cut short leaves them as they were, and the
            // next merge starts with it again).
            try compact(tables: tables, in: txn)
            runs = try txn.indexRuns(tables: tables)
        }
        let slot = try freeSlot(besides: runs, tables: tables, in: txn)
        try streamKeys.put(into: tables.streamRuns[slot], in: txn)
        try idKeys.put(into: tables.idRuns[slot], in: txn)
        let live = [slot] + runs
        try txn.storeIndexRuns(live, tables: tables)
        try txn.put(tables.indexMeta, key: LedgerTables.indexedKey, value: BigEndian.bytes(through), flags: [])
        return live
    }

    /// An empty slot for a new run (emptied again to be sure: a slot leaves the live list in the
    /// transaction that empties it).
    private static func freeSlot(besides runs: [Int], tables: LedgerTables, in txn: Transaction) throws -> Int {
        guard let slot = (0..<tables.streamRuns.count).first(where: { !runs.contains($0) }) else {
            throw LedgerError.storage("index/ has no free run slot (\(runs.count) runs live); they should have been merged at \(LedgerTables.runsMax)")
        }
        try txn.clear(tables.streamRuns[slot])
        try txn.clear(tables.idRuns[slot])
        return slot
    }

    /// Merges the newest runs into one, in a free slot (a k-way merge of sorted tables written
    /// with `MDB_APPEND`), and empties them; keys are unique across runs. Size-tiered: the two
    /// newest, then each older run while the runs taken so far hold at least as many keys as
    /// it. So older runs are at least as big as everything newer, a run is rewritten only when
    /// the keys newer than it have caught up with it, and a key is rewritten about log₂ of the
    /// index's growth times, not at every compaction.
    static func compact(tables: LedgerTables, in txn: Transaction) throws {
        let runs = try txn.indexRuns(tables: tables)
        guard runs.count > 1 else { return }
        let sizes = try runs.map { try txn.count(tables.idRuns[$0]) }
        var taken = 2
        var total = sizes[0] + sizes[1]
        while taken < runs.count && total >= sizes[taken] {
            total += sizes[taken]
            taken += 1
        }
        let merged = Array(runs.prefix(taken))
        let slot = try freeSlot(besides: runs, tables: tables, in: txn)
        try mergeRuns(merged.map { tables.streamRuns[$0] }, into: tables.streamRuns[slot], in: txn)
        try mergeRuns(merged.map { tables.idRuns[$0] }, into: tables.idRuns[slot], in: txn)
        for old in merged {
            try txn.clear(tables.streamRuns[old])
            try txn.clear(tables.idRuns[old])
        }
        // Runs stay newest first: the merged run covers the newest stretch of them.
        try txn.storeIndexRuns([slot] + runs.dropFirst(taken), tables: tables)
    }

    private static func mergeRuns(_ sources: [Table], into target: Table, in txn: Transaction) throws {
        try txn.withCursor(target) { out in
            try withCursors(sources, in: txn) { cursors in
                try RunMerge.walk(cursors, from: nil, before: nil) { key, value in
                    try out.put(key: key, value: value, flags: [.append])
                    return true
                }
            }
        }
    }
}

/// Calls `body` with a cursor on each of `tables`, in one transaction.
func withCursors<T>(_ tables: [Table], in txn: Transaction, _ body: ([Cursor]) throws -> T) throws -> T {
    func open(_ index: Int, _ opened: [Cursor]) throws -> T {
        guard index < tables.count else { return try body(opened) }
        return try txn.withCursor(tables[index]) { cursor in try open(index + 1, opened + [cursor]) }
    }
    return try open(0, [])
}

/// Reads several sorted runs as one: every entry of every cursor's table in `[lower, upper)`,
/// in LMDB's key order (keys are unique across the runs).
enum RunMerge {
    /// `body` returns false to stop.
    static func walk(
        _ cursors: [Cursor], from lower: [UInt8]?, before upper: [UInt8]?,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        var current: [Cursor.Entry?] = try cursors.map { cursor in
            try lower.map { try cursor.seek(atLeast: $0) } ?? cursor.first()
        }
        while true {
            var smallest: Int?
            for index in current.indices {
                guard let entry = current[index] else { continue }
                if let best = smallest, let bestEntry = current[best], KeyOrder.compare(entry.key, bestEntry.key) >= 0 { continue }
                smallest = index
            }
            guard let index = smallest, let entry = current[index] else { return }
            if let upper, upper.withUnsafeBytes({ KeyOrder.compare(entry.key, $0) }) >= 0 { return }
            guard try body(entry.key, entry.value) else { return }
            current[index] = try cursors[index].next()
        }
    }
}
