import LMDB

/// The ledger's tables. The log, the rejections and `meta` are in the ledger's LMDB
/// environment, so one write transaction updates them atomically. The `streams` and
/// `idempotency` B-trees are derived from the log and live with their own `meta.indexed` in a
/// second environment, `index/` in the ledger directory, which a merge thread of its own
/// writes while the log's writer goes on appending. `docs/storage-format.md` documents each key
/// and value.
struct LedgerTables: Sendable {
    /// position (8 bytes, big-endian) → record bytes. Written with `MDB_APPEND`.
    let log: Table
    /// sequence (8 bytes, big-endian) → rejection (JSON). Refused appends, kept as facts.
    let rejections: Table
    /// stream → sequence (8 bytes), duplicates sorted: the rejections that named a stream.
    let rejectionsByStream: Table
    /// name → value: format marker and ledger metadata.
    let meta: Table

    /// The environment of the two B-trees: `index/`, or, for a ledger no writer of this
    /// version has opened yet (read-only openings only), the log's own environment, where
    /// those B-trees were kept before.
    let index: Environment
    /// The index is a few sorted runs (an LSM tree of one level): each merge writes the tail's
    /// keys, sorted, into an empty slot with `MDB_APPEND`, and when `runsMax` runs have gathered
    /// they are merged into one. A slot is a pair of tables, by slot number:
    /// stream ‖ 0x00 ‖ version (8 bytes, big-endian) → position (8 bytes) ...
    let streamRuns: [Table]
    /// ... and source ‖ 0x00 ‖ id → position (8 bytes), the idempotency index, kept forever.
    let idRuns: [Table]
    /// `indexed`, `runs` (the live slots, newest first) and the index format marker, in `index`.
    let indexMeta: Table
    let location: IndexLocation

    static let formatKey = Array("format".utf8)
    static let formatValue = Array("fapiao-ledger/1".utf8)
    /// In `index/`'s `meta`: set once the environment holds the whole index through `indexed`.
    /// Version 1 had one run, slot 0, and no `runs` key.
    static let indexFormatValue = Array("fapiao-index/2".utf8)
    static let indexFormatValueV1 = Array("fapiao-index/1".utf8)
    /// In `index/`'s `meta`: the live run slots, one byte each, newest first.
    static let runsKey = Array("runs".utf8)
    /// Slots: `runsMax` live runs and one to merge them into.
    static let runsMax = 8
    static let runSlots = runsMax + 1

    /// The tables of run slot `slot`: `streams`/`idempotency` for slot 0 (the names of the
    /// single B-trees of earlier versions), `streams.N`/`idempotency.N` after.
    static func runTableNames(slot: Int) -> (streams: String, ids: String) {
        slot == 0 ? ("streams", "idempotency") : ("streams.\(slot)", "idempotency.\(slot)")
    }
    /// Position (8 bytes) through which the `streams` and `idempotency` B-trees hold every
    /// record; later records are in the `TailIndex`, rebuilt from the log.
    static let indexedKey = Array("indexed".utf8)
    /// The chain head as of the last commit: position (8 bytes) ‖ record hash (32 bytes).
    static let headKey = Array("head".utf8)
    /// The index environment's directory inside the ledger's.
    static let indexDirectory = "index"
    /// The names the B-trees had in the log's environment before they moved to `index/`.
    static let legacyIndexTables = ["streams", "idempotency"]

    /// False when the ledger has no index B-trees anywhere a read-only opening can read them
    /// (its `index/` missing or unfinished, and nothing left in the log's environment): there
    /// are no runs, `indexed` is 0 and the tail covers the whole log.
    var hasIndex: Bool { location != .none }

    /// Where a ledger's index B-trees are, as opened.
    enum IndexLocation {
        /// In `index/`.
        case own
        /// In the log's environment, where versions before `index/` kept them (read-only
        /// openings of a ledger no writer has moved yet).
        case legacy
        /// Nowhere (read-only openings only; see `hasIndex`).
        case none
    }

    /// The log's tables, and the index's in `index` as `location` says.
    static func open(in environment: Environment, index: Environment, location: IndexLocation, create: Bool) throws -> LedgerTables {
        func table(_ name: String, _ flags: TableFlags = []) throws -> Table {
            try environment.openTable(name, flags: flags, create: create)
        }
        let meta = try table("meta")
        var streamRuns: [Table] = []
        var idRuns: [Table] = []
        let indexMeta: Table
        switch location {
        case .own:
            indexMeta = try index.openTable("meta", create: create)
            for slot in 0..<runSlots {
                let names = runTableNames(slot: slot)
                do {
                    streamRuns.append(try index.openTable(names.streams, create: create))
                    idRuns.append(try index.openTable(names.ids, create: create))
                } catch LMDBError.notFound where slot > 0 {
                    break  // an index/ of version 1, read-only: slot 0 alone
                }
            }
        case .legacy:
            streamRuns = [try environment.openTable("streams", create: false)]
            idRuns = [try environment.openTable("idempotency", create: false)]
            indexMeta = meta
        case .none:
            indexMeta = meta
        }
        return LedgerTables(
            log: try table("log"),
            rejections: try table("rejections"),
            rejectionsByStream: try table("rejections_by_stream", [.duplicateSort, .duplicateFixed]),
            meta: meta,
            index: index,
            streamRuns: streamRuns,
            idRuns: idRuns,
            indexMeta: indexMeta,
            location: location)
    }
}

extension Transaction {
    /// The index's live run slots, newest first, in this snapshot of `tables.index`.
    func indexRuns(tables: LedgerTables) throws -> [Int] {
        switch tables.location {
        case .none: return []
        case .legacy: return [0]
        case .own:
            guard let stored = try get(tables.indexMeta, key: LedgerTables.runsKey) else { return [0] }  // version 1
            let runs = stored.map { Int($0) }
            // A reader that opened index/ at version 1 has slot 0 alone; a writer moved it to
            // runs since.
            guard runs.allSatisfy({ $0 < tables.streamRuns.count }) else {
                throw LedgerError.storage("index/ was reorganised since this process opened the ledger; open it again")
            }
            return runs
        }
    }

    /// Records the live runs (newest first). In a write transaction of `tables.index`.
    func storeIndexRuns(_ runs: [Int], tables: LedgerTables) throws {
        try put(tables.indexMeta, key: LedgerTables.runsKey, value: runs.map { UInt8($0) }, flags: [])
    }
}

/// Key encodings shared by the writer and the readers.
enum LedgerKeys {
    static func position(_ position: UInt64) -> [UInt8] { BigEndian.bytes(position) }

    /// stream ‖ 0x00 ‖ version. Stream names hold no NUL, so a stream's keys sort together
    /// and before any longer stream name that shares the prefix.
    static func streamVersion(_ stream: String, _ version: UInt64) -> [UInt8] {
        var key = [UInt8]()
        key.reserveCapacity(stream.utf8.count + 9)
        key.append(contentsOf: stream.utf8)
        key.append(0)
        BigEndian.append(version, to: &key)
        return key
    }

    /// The first key after every version of `stream`: stream ‖ 0x01.
    static func streamEnd(_ stream: String) -> [UInt8] {
        var key = Array(stream.utf8)
        key.append(1)
        return key
    }

    static func idempotency(source: String, id: String) -> [UInt8] {
        var key = [UInt8]()
        key.reserveCapacity(source.utf8.count + id.utf8.count + 1)
        key.append(contentsOf: source.utf8)
        key.append(0)
        key.append(contentsOf: id.utf8)
        return key
    }
}

extension Cursor {
    /// The current version of `stream` in the `streams` B-tree (0 when it has no entry there):
    /// one seek past its last key. The cursor must be on the `streams` table.
    func streamVersion(_ stream: String) throws -> UInt64 {
        let prefixCount = stream.utf8.count + 1
        let entry: Cursor.Entry?
        if try seek(atLeast: LedgerKeys.streamEnd(stream)) != nil {
            entry = try previous()
        } else {
            entry = try last()
        }
        guard let entry, entry.key.count == prefixCount + 8 else { return 0 }
        let name = UnsafeRawBufferPointer(rebasing: entry.key[0..<(prefixCount - 1)])
        guard name.elementsEqual(stream.utf8), entry.key[prefixCount - 1] == 0 else { return 0 }
        return BigEndian.uint64(entry.key, at: prefixCount)
    }
}

extension Cursor {
    /// `streamVersion(_:)` for a stream name given as bytes, its seek key built in `keyBuffer`.
    func streamVersion(_ stream: UnsafeRawBufferPointer, keyBuffer: inout [UInt8]) throws -> UInt64 {
        keyBuffer.removeAll(keepingCapacity: true)
        keyBuffer.append(contentsOf: stream)
        keyBuffer.append(1)
        let entry: Cursor.Entry?
        if try keyBuffer.withUnsafeBytes({ try seek(atLeast: $0) }) != nil {
            entry = try previous()
        } else {
            entry = try last()
        }
        let prefixCount = stream.count + 1
        guard let entry, entry.key.count == prefixCount + 8 else { return 0 }
        let name = UnsafeRawBufferPointer(rebasing: entry.key[0..<stream.count])
        guard name.elementsEqual(stream), entry.key[stream.count] == 0 else { return 0 }
        return BigEndian.uint64(entry.key, at: prefixCount)
    }
}

extension Transaction {
    /// The stored record bytes at `position`.
    func recordBytes(at position: UInt64, tables: LedgerTables) throws -> UnsafeRawBufferPointer? {
        var key = position.bigEndian
        return try withUnsafeBytes(of: &key) { try get(tables.log, key: $0) }
    }
}


/// The chain head kept in `meta`, written in every transaction that appends.
struct StoredHead: Equatable {
    var position: UInt64
    var hash: [UInt8]

    var bytes: [UInt8] { BigEndian.bytes(position) + hash }

    init(position: UInt64, hash: [UInt8]) {
        self.position = position
        self.hash = hash
    }

    init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count == 8 + RecordCodec.hashBytes else { return nil }
        position = BigEndian.uint64(bytes)
        hash = Array(UnsafeRawBufferPointer(rebasing: bytes[8...]))
    }

    static func read(in txn: Transaction, tables: LedgerTables) throws -> StoredHead? {
        try LedgerTables.headKey.withUnsafeBytes { key in
            try txn.get(tables.meta, key: key).flatMap { StoredHead($0) }
        }
    }
}
