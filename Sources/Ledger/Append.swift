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
///
/// An append writes only its record (and the head); its index keys go straight into the
/// `TailIndex`, where later requests of the batch find them. Readers never see them early:
/// they look only at positions up to their snapshot's head. If the transaction fails, the
/// writer truncates the tail back to where the batch began.
struct BatchApplier {
    let tables: LedgerTables
    let options: LedgerOptions
    let tail: TailIndex
    var head: LogHead
    /// The records this batch appended, for a commit observer.
    private(set) var records: [Record] = []
    let collectsRecords: Bool
    /// Reused buffers: one record and one key at a time.
    private var buffer: [UInt8] = []
    private var keyBuffer: [UInt8] = []

    init(tables: LedgerTables, options: LedgerOptions, tail: TailIndex, head: LogHead, collectsRecords: Bool) {
        self.collectsRecords = collectsRecords
        self.tables = tables
        self.options = options
        self.tail = tail
        self.head = head
        buffer.reserveCapacity(4096)
        keyBuffer.reserveCapacity(512)
    }

    /// Applies one request. A refusal is returned (and recorded), never thrown; thrown errors
    /// are storage failures that doom the whole transaction.
    mutating func apply(_ entries: [AppendEntry], recordedMicros: Int64, in txn: Transaction, streams: Cursor)
        throws -> Result<AppendResult, LedgerError>
    {
        head.recordedMicros = recordedMicros
        switch try plan(entries, in: txn, streams: streams) {
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

    private mutating func plan(_ entries: [AppendEntry], in txn: Transaction, streams: Cursor) throws -> Result<[Step], Refusal> {
        if entries.isEmpty { return .failure(Refusal(index: 0, error: .invalid(reason: "an append needs at least one event"))) }
        if entries.count > options.requestEventsMax {
            return .failure(Refusal(index: 0, error: .invalid(reason: "\(entries.count) events in one request; at most \(options.requestEventsMax)")))
        }
        var steps: [Step] = []
        steps.reserveCapacity(entries.count)
        // Only a request of several entries needs its own view of what it has planned so far.
        var requestVersions: [ByteKey: UInt64] = [:]
        var requestIDs: [IdKey: Int] = [:]
        let isSingle = entries.count == 1
        for (index, entry) in entries.enumerated() {
            let event = entry.event
            if let problem = Validation.problem(with: event, recordBytesMax: options.recordBytesMax) {
                return .failure(Refusal(index: index, error: .invalid(reason: problem)))
            }
            let idKey = IdKey(source: event.source, id: event.id)
            if !isSingle, let earlier = requestIDs[idKey] {
                guard entries[earlier].event.hasSameContent(as: event) else {
                    return .failure(Refusal(index: index, error: .invalid(reason: "id \(event.id) from \(event.source) appears twice in one request with different content")))
                }
                steps.append(.duplicateOfEntry(earlier))
                continue
            }
            if !isSingle { requestIDs[idKey] = index }
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
            let streamKey = ByteKey(event.stream)
            let current = try requestVersions[streamKey] ?? currentVersion(of: streamKey, streams: streams)
            guard entry.expectation.holds(forCurrentVersion: current) else {
                return .failure(Refusal(index: index, error: .expectationFailed(stream: event.stream, expected: entry.expectation, actualVersion: current)))
            }
            if !isSingle { requestVersions[streamKey] = current + 1 }
            steps.append(.append(streamVersion: current + 1))
        }
        return .success(steps)
    }

    /// Newest first: the tail (which holds this batch's appends too), then the B-tree.
    private mutating func originalPosition(of key: IdKey, in txn: Transaction) throws -> UInt64? {
        if let position = tail.position(of: key, atOrBefore: head.position) { return position }
        keyBuffer.removeAll(keepingCapacity: true)
        keyBuffer.append(contentsOf: key.source.text.utf8)
        keyBuffer.append(0)
        keyBuffer.append(contentsOf: key.id.text.utf8)
        return try keyBuffer.withUnsafeBytes { bytes in
            try txn.get(tables.idempotency, key: bytes).map { BigEndian.uint64($0) }
        }
    }

    /// Newest first: the tail (which holds this batch's appends too), then the B-tree.
    private func currentVersion(of stream: ByteKey, streams: Cursor) throws -> UInt64 {
        if let entry = tail.latest(of: stream, atOrBefore: head.position) { return entry.version }
        return try streams.streamVersion(stream.text)
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
        let previousHash = collectsRecords ? head.hash : []
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
        }
        buffer.withUnsafeBytes { RecordCodec.hash($0, into: &head.hash) }
        head.position = position
        tail.state.withLock { $0.add(stream: event.stream, version: streamVersion, source: event.source, id: event.id, position: position) }
        if collectsRecords {
            records.append(Record(
                position: position, streamVersion: streamVersion, recordedMicros: head.recordedMicros, previousHash: previousHash,
                stream: event.stream, type: event.type, source: event.source, id: event.id, time: event.time,
                occurredMicros: event.occurredMicros, dataContentType: event.dataContentType, data: event.data))
        }
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
