import LMDB
#if canImport(Glibc)
import Glibc
#endif

/// Sees every append inside its transaction, before the commit: what runs here commits or
/// fails together with the records (inline projections and their checkpoints).
/// A thrown error fails the whole batch; nothing of it is written.
public protocol CommitObserver: Sendable {
    func didAppend(_ records: [Record], in transaction: Transaction) throws
}

extension Ledger {
    /// Runs `body` in a write transaction of its own on the writer thread, between append
    /// batches: the one writer stays the one writer. Keep it bounded (a chunk, not a rebuild).
    public func performWrite<T: Sendable>(_ body: @escaping @Sendable (Transaction) throws -> T) async throws -> T {
        guard let writer else { throw LedgerError.readOnly }
        return try await withCheckedThrowingContinuation { continuation in
            let accepted = writer.submit { environment in
                do {
                    continuation.resume(returning: try environment.write { txn in try body(txn) })
                } catch {
                    continuation.resume(throwing: GroupCommitWriter.ledgerError(error, mapSizeBytes: environment.usage().mapSizeBytes))
                }
            }
            if !accepted { continuation.resume(throwing: LedgerError.closed) }
        }
    }

    /// Runs `body` in a read snapshot. For modules built on the ledger (projections, audit).
    public func read<T>(_ body: (Transaction) throws -> T) throws -> T {
        try environment.read { txn in try body(txn) }
    }

    /// Opens (creating when writable) a table of this ledger's environment by name. For the
    /// modules built on the ledger; their tables live beside the log so one transaction can
    /// update both.
    public func table(named name: String, flags: TableFlags = [], create: Bool) throws -> Table {
        try environment.openTable(name, flags: flags, create: create && !options.readOnly)
    }

    /// Observes every append inside its transaction (see `CommitObserver`). One at a time.
    public func setCommitObserver(_ observer: (any CommitObserver)?) {
        writer?.setObserver(observer)
    }

    /// Whether this process may write.
    public var isWritable: Bool { writer != nil }

    /// Records from `position` on, read in a given transaction (a write transaction sees its
    /// own uncommitted appends).
    public func records(from position: UInt64, limit: Int, in txn: Transaction) throws -> [Record] {
        try txn.withCursor(tables.log) { cursor in
            var out: [Record] = []
            var entry = try cursor.seek(atLeast: BigEndian.bytes(max(position, 1)))
            while let current = entry, out.count < limit {
                out.append(try RecordCodec.decode(current.value))
                entry = try cursor.next()
            }
            return out
        }
    }

    /// Calls `body` with the position, stream and type of each record from `position` through
    /// `last`, in log order, without decoding the rest: what a rebuild needs to group the log by
    /// stream. The bytes are valid only during the call. One snapshot per `recordsPerRead` records.
    public func scanHeaders(
        from position: UInt64, through last: UInt64, recordsPerRead: Int = 100_000,
        _ body: (_ position: UInt64, _ stream: UnsafeRawBufferPointer, _ type: UnsafeRawBufferPointer) throws -> Void
    ) throws {
        var next = max(position, 1)
        while next <= last {
            next = try environment.read { txn in
                try txn.withCursor(tables.log) { cursor in
                    var entry = try cursor.seek(atLeast: BigEndian.bytes(next))
                    var read = 0
                    var following = last + 1
                    while let current = entry, read < recordsPerRead {
                        guard let header = RecordCodec.header(of: current.value) else {
                            throw LedgerError.corruptRecord(position: RecordCodec.position(of: current.value), reason: "field lengths do not match the record size")
                        }
                        if header.position > last { return last + 1 }
                        try body(header.position, header.stream, header.type)
                        read += 1
                        following = header.position + 1
                        entry = try cursor.next()
                    }
                    return entry == nil ? last + 1 : following
                }
            }
        }
    }

    /// Waits until no index merge is running (merges run beside the writer; see
    /// docs/architecture.md, "The index tail"). For measurements that must not overlap one.
    public func waitForIndexMerge() {
        writer?.waitForIndexMerge()
    }

    /// `meta.indexed`: the `streams` and `idempotency` indexes hold every record through this
    /// position, in this snapshot and every later one (merges only add keys). The records after
    /// it are in no B-tree yet.
    public func indexedThrough() throws -> UInt64 {
        try tables.index.read { txn in try txn.indexedThrough(tables: tables) }
    }

    /// Calls `body` with each stream of the `streams` index whose name lies in `[lower, upper)`
    /// (nil: unbounded) and the positions of its records through `last`, the streams in key
    /// order (LMDB's: bytewise, shorter first) and each stream's positions ascending, from one
    /// snapshot. Only the records the index holds: through `last` or this snapshot's
    /// `indexedThrough()`, whichever is lower (the records after it are in the index tail).
    /// A rebuild groups the log by stream this way in a fraction of the time a scan of every
    /// record's header takes (an index entry is about 40 bytes, a record 500), and in parts on
    /// several cores, cut at stream names. The bytes and positions are valid only during the
    /// call.
    public func streamIndex(
        from lower: [UInt8]? = nil, before upper: [UInt8]? = nil, through last: UInt64,
        _ body: (_ stream: UnsafeRawBufferPointer, _ positions: UnsafeBufferPointer<UInt64>) throws -> Void
    ) throws {
        try tables.index.read { txn in
            let last = min(last, try txn.indexedThrough(tables: tables))
            guard last > 0 else { return }
            var positions: [UInt64] = []
            var stream = UnsafeRawBufferPointer(start: nil, count: 0)
            func flush() throws {
                guard !positions.isEmpty else { return }
                try positions.withUnsafeBufferPointer { try body(stream, $0) }
                positions.removeAll(keepingCapacity: true)
            }
            // Every run, merged into one key order. A stream name holds no NUL, so no stream's
            // keys (stream ‖ 0 ‖ version) straddle a bound that is a stream name.
            let runs = try txn.indexRuns(tables: tables)
            try withCursors(runs.map { tables.streamRuns[$0] }, in: txn) { cursors in
                try RunMerge.walk(cursors, from: lower, before: upper) { key, value in
                    // stream ‖ 0x00 ‖ version (8 bytes) → position (8 bytes)
                    let nameCount = key.count - 9
                    guard nameCount >= 0, key[nameCount] == 0, value.count == 8 else {
                        throw LedgerError.storage("a streams index entry of \(key.count) + \(value.count) bytes is not stream ‖ 0 ‖ version → position")
                    }
                    let name = UnsafeRawBufferPointer(rebasing: key[0..<nameCount])
                    if name.count != stream.count || (name.count > 0 && memcmp(name.baseAddress!, stream.baseAddress!, name.count) != 0) {
                        try flush()
                        stream = name
                    }
                    let position = BigEndian.uint64(value)
                    if position <= last { positions.append(position) }
                    return true
                }
            }
            try flush()
        }
    }

    /// `scanHeaders` for the records at `positions` (ascending, each must exist), from one
    /// snapshot.
    public func headers(
        at positions: [UInt64], _ body: (_ position: UInt64, _ stream: UnsafeRawBufferPointer, _ type: UnsafeRawBufferPointer) throws -> Void
    ) throws {
        try environment.read { txn in
            for position in positions {
                guard let bytes = try txn.recordBytes(at: position, tables: tables) else {
                    throw LedgerError.corruptRecord(position: position, reason: "no record at this position")
                }
                guard let header = RecordCodec.header(of: bytes) else {
                    throw LedgerError.corruptRecord(position: position, reason: "field lengths do not match the record size")
                }
                try body(header.position, header.stream, header.type)
            }
        }
    }

    /// The records at `positions` (each must exist), in that order, from one snapshot.
    public func records(at positions: [UInt64]) throws -> [Record] {
        try environment.read { txn in
            var strings = RecordStrings()
            return try positions.map { position in
                guard let bytes = try txn.recordBytes(at: position, tables: tables) else {
                    throw LedgerError.corruptRecord(position: position, reason: "no record at this position")
                }
                return try RecordCodec.decode(bytes, strings: &strings)
            }
        }
    }

    /// The last position in `txn`'s view of the log.
    public func headPosition(in txn: Transaction) throws -> UInt64 {
        try Self.lastPosition(in: txn, tables: tables)
    }
}
