import LMDB

/// The result of re-reading the log and checking every record against its neighbours.
public struct ChainReport: Sendable, Equatable {
    public enum Problem: Sendable, Equatable, CustomStringConvertible {
        /// The key at this place is not the position that should follow (a gap or a reorder).
        case gap(expected: UInt64, found: UInt64)
        /// The record's own position field disagrees with its key.
        case positionMismatch(key: UInt64, recordSays: UInt64)
        /// The record's previous-hash is not the hash of the record before it.
        case brokenLink(position: UInt64, expected: String, found: String)
        /// The record does not decode.
        case undecodable(position: UInt64, reason: String)
        /// The last record's hash differs from the head stored at its commit: it was altered.
        case headMismatch(position: UInt64, stored: String, computed: String)
        /// The log ends before the head stored at the last commit: records were removed.
        case truncated(storedHead: UInt64, logEnds: UInt64)

        public var position: UInt64 {
            switch self {
            case let .gap(expected, _): expected
            case let .positionMismatch(key, _): key
            case let .brokenLink(position, _, _): position
            case let .undecodable(position, _): position
            case let .headMismatch(position, _, _): position
            case let .truncated(_, ends): ends + 1
            }
        }

        public var description: String {
            switch self {
            case let .gap(expected, found): "position \(expected) is missing: the next record found is \(found)"
            case let .positionMismatch(key, says): "the record stored at position \(key) says it is position \(says)"
            case let .brokenLink(position, expected, found):
                "position \(position): previous-hash is \(found), but the record before hashes to \(expected)"
            case let .undecodable(position, reason): "position \(position) does not decode: \(reason)"
            case let .headMismatch(position, stored, computed):
                "position \(position) (the last record) hashes to \(computed), but the head stored at its commit is \(stored)"
            case let .truncated(stored, ends): "the log ends at \(ends), but the head stored at the last commit is \(stored)"
            }
        }
    }

    /// Records checked.
    public var checked: UInt64
    /// The last position checked and its hash (the chain head when the log verified to its end).
    public var lastPosition: UInt64
    public var lastHash: [UInt8]
    /// The first problem found; nil when the chain verified.
    public var problem: Problem?

    public var isIntact: Bool { problem == nil }
}

extension Ledger {
    /// How many records one read snapshot covers while verifying: bounded so a long
    /// verification never pins old pages for long.
    static let verifyChunkRecords = 50_000

    /// Re-reads records `from`...`through` (default: to the head) and checks gaplessness, the
    /// position fields, and that each record's previous-hash is the hash of the one before.
    /// `progress` is called after each chunk with the last position checked.
    public func verifyChain(
        from start: UInt64 = 1, through end: UInt64? = nil, progress: ((UInt64) -> Void)? = nil
    ) throws -> ChainReport {
        let end = try end ?? headPosition()
        var report = ChainReport(checked: 0, lastPosition: start - 1, lastHash: RecordCodec.genesisHash, problem: nil)
        if start > 1 {
            guard let previous = try environment.read({ txn in try txn.recordBytes(at: start - 1, tables: tables).map(Array.init) }) else {
                report.problem = .gap(expected: start - 1, found: start)
                return report
            }
            report.lastHash = previous.withUnsafeBytes { RecordCodec.hash($0) }
        }
        while report.lastPosition < end && report.problem == nil {
            try environment.read { txn in
                try txn.withCursor(tables.log) { cursor in
                    var entry = try cursor.seek(atLeast: BigEndian.bytes(report.lastPosition + 1))
                    var inChunk = 0
                    while let current = entry, inChunk < Self.verifyChunkRecords, report.lastPosition < end {
                        if let problem = Self.check(current, after: report) {
                            report.problem = problem
                            return
                        }
                        report.lastPosition += 1
                        report.lastHash = RecordCodec.hash(current.value)
                        report.checked += 1
                        inChunk += 1
                        entry = try cursor.next()
                    }
                    if entry == nil && report.lastPosition < end {
                        report.problem = .gap(expected: report.lastPosition + 1, found: 0)
                    }
                }
            }
            progress?(report.lastPosition)
        }
        if report.problem == nil { report.problem = try checkStoredHead(against: report) }
        return report
    }

    /// The last record is covered by no later link; the head stored beside the log covers it.
    private func checkStoredHead(against report: ChainReport) throws -> ChainReport.Problem? {
        guard let stored = try environment.read({ txn in try StoredHead.read(in: txn, tables: tables) }) else { return nil }
        if stored.position > report.lastPosition, report.lastPosition == (try headPosition()) {
            return .truncated(storedHead: stored.position, logEnds: report.lastPosition)
        }
        guard stored.position == report.lastPosition, stored.hash != report.lastHash else { return nil }
        return .headMismatch(position: stored.position, stored: stored.hash.hex, computed: report.lastHash.hex)
    }

    private static func check(_ entry: Cursor.Entry, after report: ChainReport) -> ChainReport.Problem? {
        let expected = report.lastPosition + 1
        let key = entry.key.count == 8 ? BigEndian.uint64(entry.key) : 0
        if key != expected { return .gap(expected: expected, found: key) }
        guard let says = RecordCodec.position(of: entry.value), let previous = RecordCodec.previousHash(of: entry.value) else {
            return .undecodable(position: key, reason: "\(entry.value.count) bytes is shorter than a record header")
        }
        if says != key { return .positionMismatch(key: key, recordSays: says) }
        if previous != report.lastHash {
            return .brokenLink(position: key, expected: report.lastHash.hex, found: previous.hex)
        }
        return nil
    }
}
