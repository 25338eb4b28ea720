import LMDB

/// One event of an append request, with what its stream must look like first.
public struct AppendEntry: Sendable, Hashable {
    public var event: NewEvent
    public var expectation: StreamExpectation

    public init(_ event: NewEvent, expecting expectation: StreamExpectation = .any) {
        self.event = event
        self.expectation = expectation
    }
}

/// The answer to an accepted request: one position per entry, in order.
public struct AppendResult: Sendable, Equatable {
    /// Where each entry is: new positions, or the original position of an idempotent retry.
    public var positions: [UInt64]
    /// For each entry, false when it was already recorded (same `(source, id)` and content).
    public var isNew: [Bool]

    public var newCount: Int { isNew.lazy.filter { $0 }.count }
    public var duplicateCount: Int { isNew.count - newCount }
}

/// The writer's view of the log's end, carried from batch to batch.
struct LogHead: Sendable, Equatable {
    var position: UInt64
    var hash: [UInt8]
    var recordedMicros: Int64
    var rejectionSequence: UInt64
}

/// Applies append requests inside one write transaction. Each request is validated and
/// planned completely before any of it is written, so a refused request leaves nothing behind
/// except its rejection record; requests earlier in the same batch are visible to later ones.
struct BatchApplier {
    let tables: LedgerTables
    let options: LedgerOptions
    var head: LogHead
    /// Reused encoding buffer: one record at a time.
    private var buffer: [UInt8] = []

    init(tables: LedgerTables, options: LedgerOptions, head: LogHead) {
        self.tables = tables
        self.options = options
        self.head = head
        buffer.reserveCapacity(4096)
    }

    /// Applies one request. A refusal is returned (and recorded), never thrown; thrown errors
    /// are storage failures that doom the whole transaction.
    mutating func apply(_ entries: [AppendEntry], recordedMicros: Int64, in txn: Transaction)
        throws -> Result<AppendResult, LedgerError>
    {
        head.recordedMicros = recordedMicros
        switch try plan(entries, in: txn) {
        case let .failure(refusal):
            // An empty request names no event, so there is nothing to record about it.
            if entries.indices.contains(refusal.index) {
                try recordRejection(refusal.error, entry: entries[refusal.index], request: entries, in: txn)
            }
            return .failure(refusal.error)
        case let .success(plan):
            return .success(try write(entries, plan: plan, in: txn))
        }
    }

    private struct Refusal: Error {
        var index: Int
        var error: LedgerError
    }

    /// What an entry becomes: a new record at a stream version, or a pointer to its original.
    private enum Step {
        case append(streamVersion: UInt64)
        case duplicate(position: UInt64)
        case duplicateOfEntry(Int)
    }

    private func plan(_ entries: [AppendEntry], in txn: Transaction) throws -> Result<[Step], Refusal> {
        if entries.isEmpty { return .failure(Refusal(index: 0, error: .invalid(reason: "an append needs at least one event"))) }
        if entries.count > options.requestEventsMax {
            return .failure(Refusal(index: 0, error: .invalid(reason: "\(entries.count) events in one request; at most \(options.requestEventsMax)")))
        }
        var steps: [Step] = []
        steps.reserveCapacity(entries.count)
        // Keyed by bytes, as the indexes are: canonically equal names ("é" composed or not)
        // compare equal as Swift strings but are different streams.
        var versions: [[UInt8]: UInt64] = [:]
        var ids: [[UInt8]: Int] = [:]
        for (index, entry) in entries.enumerated() {
            let event = entry.event
            if let problem = Validation.problem(with: event, recordBytesMax: options.recordBytesMax) {
                return .failure(Refusal(index: index, error: .invalid(reason: problem)))
            }
            let idKey = LedgerKeys.idempotency(source: event.source, id: event.id)
            if let earlier = ids[idKey] {
                guard entries[earlier].event.hasSameContent(as: event) else {
                    return .failure(Refusal(index: index, error: .invalid(reason: "id \(event.id) from \(event.source) appears twice in one request with different content")))
                }
                steps.append(.duplicateOfEntry(earlier))
                continue
            }
            ids[idKey] = index
            if let original = try originalPosition(of: idKey, in: txn) {
                guard let stored = try txn.recordBytes(at: original, tables: tables) else {
                    throw LedgerError.corruptRecord(position: original, reason: "the idempotency index points at a missing record")
                }
                guard event.hasSameContent(as: try RecordCodec.decode(stored)) else {
                    return .failure(Refusal(index: index, error: .idempotencyConflict(source: event.source, id: event.id, originalPosition: original)))
                }
                steps.append(.duplicate(position: original))
                continue
            }
            let streamKey = Array(event.stream.utf8)
            let current = try versions[streamKey] ?? txn.streamVersion(event.stream, tables: tables)
            guard entry.expectation.holds(forCurrentVersion: current) else {
                return .failure(Refusal(index: index, error: .expectationFailed(stream: event.stream, expected: entry.expectation, actualVersion: current)))
            }
            versions[streamKey] = current + 1
            steps.append(.append(streamVersion: current + 1))
        }
        return .success(steps)
    }

    private func originalPosition(of idKey: [UInt8], in txn: Transaction) throws -> UInt64? {
        try idKey.withUnsafeBytes { key in
            try txn.get(tables.idempotency, key: key).map { BigEndian.uint64($0) }
        }
    }

    private mutating func write(_ entries: [AppendEntry], plan: [Step], in txn: Transaction) throws -> AppendResult {
        var positions = [UInt64](repeating: 0, count: entries.count)
        var isNew = [Bool](repeating: false, count: entries.count)
        for (index, step) in plan.enumerated() {
            switch step {
            case let .duplicate(position):
                positions[index] = position
            case let .duplicateOfEntry(earlier):
                positions[index] = positions[earlier]
            case let .append(streamVersion):
                positions[index] = try appendRecord(entries[index].event, streamVersion: streamVersion, in: txn)
                isNew[index] = true
            }
        }
        return AppendResult(positions: positions, isNew: isNew)
    }

    private mutating func appendRecord(_ event: NewEvent, streamVersion: UInt64, in txn: Transaction) throws -> UInt64 {
        let position = head.position + 1
        RecordCodec.encode(
            event, position: position, streamVersion: streamVersion, recordedMicros: head.recordedMicros,
            previousHash: head.hash, into: &buffer)
        assert(buffer.count == RecordCodec.encodedSize(of: event), "encoded size disagrees with its prediction")
        var positionKey = position.bigEndian
        try withUnsafeBytes(of: &positionKey) { key in
            try buffer.withUnsafeBytes { value in
                // MDB_APPEND: LMDB refuses a key that does not sort last. A free gaplessness check.
                try txn.put(tables.log, key: key, value: value, flags: [.append])
            }
            try LedgerKeys.streamVersion(event.stream, streamVersion).withUnsafeBytes { streamKey in
                try txn.put(tables.streams, key: streamKey, value: key, flags: [.noOverwrite])
            }
            try LedgerKeys.idempotency(source: event.source, id: event.id).withUnsafeBytes { idKey in
                try txn.put(tables.idempotency, key: idKey, value: key, flags: [.noOverwrite])
            }
        }
        head.hash = buffer.withUnsafeBytes { RecordCodec.hash($0) }
        head.position = position
        return position
    }

    /// Stores the chain head (position and hash) beside the log, in the same transaction: a
    /// record altered after the fact, even the last one, no longer matches it.
    func storeHead(in txn: Transaction) throws {
        try txn.put(tables.meta, key: LedgerTables.headKey, value: StoredHead(position: head.position, hash: head.hash).bytes, flags: [])
    }

    private mutating func recordRejection(_ error: LedgerError, entry: AppendEntry, request: [AppendEntry], in txn: Transaction) throws {
        let sequence = head.rejectionSequence + 1
        let rejection = Rejection.from(error: error, entry: entry, request: request, sequence: sequence, recordedMicros: head.recordedMicros)
        let key = BigEndian.bytes(sequence)
        try txn.put(tables.rejections, key: key, value: rejection.encoded(), flags: [.append])
        for stream in rejection.requestStreams where Validation.isIndexable(stream: stream) {
            try txn.put(tables.rejectionsByStream, key: Array(stream.utf8), value: key, flags: [.appendDuplicate])
        }
        head.rejectionSequence = sequence
    }
}

/// Checks an event against the ledger's own limits (the domain checks its meaning elsewhere).
enum Validation {
    static func problem(with event: NewEvent, recordBytesMax: Int) -> String? {
        if let problem = fieldProblem("subject (stream)", event.stream, max: LedgerOptions.streamBytesMax) { return problem }
        if event.stream.utf8.contains(0) { return "subject (stream) contains a NUL byte" }
        if let problem = fieldProblem("source", event.source, max: LedgerOptions.sourceBytesMax) { return problem }
        if let problem = fieldProblem("id", event.id, max: LedgerOptions.idBytesMax) { return problem }
        if let problem = fieldProblem("type", event.type, max: LedgerOptions.typeBytesMax) { return problem }
        if let problem = fieldProblem("time", event.time, max: LedgerOptions.timeBytesMax) { return problem }
        if let contentType = event.dataContentType, contentType.utf8.count > LedgerOptions.contentTypeBytesMax {
            return "datacontenttype is \(contentType.utf8.count) bytes; at most \(LedgerOptions.contentTypeBytesMax)"
        }
        let size = RecordCodec.encodedSize(of: event)
        if size > recordBytesMax {
            return "the record would be \(size) bytes; at most \(recordBytesMax) (data is \(event.data.count) bytes)"
        }
        return nil
    }

    private static func fieldProblem(_ name: String, _ value: String, max: Int) -> String? {
        let count = value.utf8.count
        if count == 0 { return "\(name) is empty" }
        if count > max { return "\(name) is \(count) bytes; at most \(max)" }
        return nil
    }

    static func isIndexable(stream: String) -> Bool {
        let count = stream.utf8.count
        return count > 0 && count <= LedgerOptions.streamBytesMax && !stream.utf8.contains(0)
    }
}
