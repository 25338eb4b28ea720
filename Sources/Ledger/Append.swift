import Foundation
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

/// An append request as the appender's side prepares it, before it reaches the writer: every
/// check that needs nothing of the log's state (limits, field sizes), each record encoded but
/// for the four fields only the writer knows (position, stream version, recorded time, previous
/// hash), and each index key with its hash. The writer then looks the keys up, patches the
/// records' headers, hashes and puts them.
struct PreparedRequest: Sendable {
    struct Item: Sendable {
        /// The encoded record in `records`.
        var recordOffset: Int
        var recordCount: Int
        /// The stream name's bytes, inside the record.
        var streamOffset: Int
        var streamCount: Int
        var streamHash: Int
        /// `source ‖ 0 ‖ id` in `idKeys`.
        var idOffset: Int
        var idCount: Int
        var idHash: Int
    }

    struct Refusal: Sendable {
        var index: Int
        var error: LedgerError
    }

    let entries: [AppendEntry]
    /// One item per entry, up to `refusal`'s (excluded).
    private(set) var items: [Item] = []
    /// The first refusal found here (the writer may find an earlier one: a conflicting
    /// duplicate before it). A refusal of the whole request (empty, too long) has index 0.
    private(set) var refusal: Refusal?
    private(set) var records: [UInt8] = []
    private(set) var idKeys: [UInt8] = []

    init(_ entries: [AppendEntry], options: LedgerOptions) {
        self.entries = entries
        if entries.isEmpty {
            refusal = Refusal(index: 0, error: .invalid(reason: "an append needs at least one event"))
            return
        }
        if entries.count > options.requestEventsMax {
            refusal = Refusal(index: 0, error: .invalid(reason: "\(entries.count) events in one request; at most \(options.requestEventsMax)"))
            return
        }
        // Entries are read in place through a buffer pointer: copying an `AppendEntry` out of the
        // array retains its seven strings and its data, which cost more than encoding them.
        var found: Refusal?
        var prepared = 0
        var total = Sizes()
        entries.withUnsafeBufferPointer { entries in
            for index in entries.indices {
                if let problem = Validation.problem(with: entries[index].event, recordBytesMax: options.recordBytesMax) {
                    found = Refusal(index: index, error: .invalid(reason: problem))
                    break
                }
                total.add(entries[index].event)
                prepared += 1
            }
        }
        refusal = found
        // A big request is encoded in two halves on two threads: the writer is usually waiting
        // for it, and an appender awaiting each request has the other core to itself. Each half
        // writes straight into its own region of the shared buffers.
        let middle = prepared >= Self.parallelEntriesMin ? prepared / 2 : prepared
        var firstHalf = Sizes()
        if middle < prepared {
            entries.withUnsafeBufferPointer { entries in
                for index in 0..<middle { firstHalf.add(entries[index].event) }
            }
        }
        let (count, halfRecordBytes, halfKeyBytes) = (prepared, firstHalf.recordBytes, firstHalf.keyBytes)
        var records: [UInt8] = []
        var idKeys: [UInt8] = []
        let items = [Item](unsafeUninitializedCapacity: prepared) { items, itemCount in
            idKeys = [UInt8](unsafeUninitializedCapacity: total.keyBytes) { keys, keyCount in
                records = [UInt8](unsafeUninitializedCapacity: total.recordBytes) { recordBuffer, recordCount in
                    entries.withUnsafeBufferPointer { entries in
                        let target = Target(entries: entries, records: recordBuffer, idKeys: keys, items: items)
                        if middle == prepared {
                            target.encode(0..<prepared, recordsAt: 0, keysAt: 0)
                        } else {
                            DispatchQueue.concurrentPerform(iterations: 2) { half in
                                if half == 0 {
                                    target.encode(0..<middle, recordsAt: 0, keysAt: 0)
                                } else {
                                    target.encode(middle..<count, recordsAt: halfRecordBytes, keysAt: halfKeyBytes)
                                }
                            }
                        }
                    }
                    recordCount = total.recordBytes
                }
                keyCount = total.keyBytes
            }
            itemCount = prepared
        }
        (self.records, self.idKeys, self.items) = (records, idKeys, items)
    }

    /// Requests with fewer entries are encoded on the caller's thread alone.
    static let parallelEntriesMin = 256

    /// The bytes a run of entries takes: records and idempotency keys.
    private struct Sizes {
        var recordBytes = 0
        var keyBytes = 0

        mutating func add(_ event: borrowing NewEvent) {
            recordBytes += RecordCodec.encodedSize(of: event)
            keyBytes += event.source.utf8.count + 1 + event.id.utf8.count
        }
    }

    /// Where the entries are encoded to: buffers sized for all of them, each range of entries
    /// writing its own region (so two threads may fill one request).
    private struct Target: @unchecked Sendable {
        let entries: UnsafeBufferPointer<AppendEntry>
        let records: UnsafeMutableBufferPointer<UInt8>
        let idKeys: UnsafeMutableBufferPointer<UInt8>
        let items: UnsafeMutableBufferPointer<Item>

        func encode(_ range: Range<Int>, recordsAt recordStart: Int, keysAt keyStart: Int) {
            guard !range.isEmpty, let recordBase = records.baseAddress, let keyBase = idKeys.baseAddress else { return }
            let recordsEnd = UnsafeMutableRawPointer(recordBase + records.count)
            let keysEnd = UnsafeMutableRawPointer(keyBase + idKeys.count)
            var recordOffset = recordStart
            var idOffset = keyStart
            for index in range {
                let record = UnsafeMutableRawPointer(recordBase + recordOffset)
                let recordCount = RecordCodec.writeTemplate(of: entries[index].event, to: record, end: recordsEnd)
                let key = UnsafeMutableRawPointer(keyBase + idOffset)
                var idCount = RecordCodec.writeUTF8(entries[index].event.source, to: key, end: keysEnd)
                key.storeBytes(of: 0, toByteOffset: idCount, as: UInt8.self)
                idCount += 1
                idCount += RecordCodec.writeUTF8(entries[index].event.id, to: key + idCount, end: keysEnd)
                let streamOffset = recordOffset + RecordCodec.fixedBytes + 2
                let streamCount = Int(BigEndian.uint16(UnsafeRawBufferPointer(start: record, count: recordCount), at: RecordCodec.fixedBytes))
                (items.baseAddress! + index).initialize(to: Item(
                    recordOffset: recordOffset, recordCount: recordCount, streamOffset: streamOffset, streamCount: streamCount,
                    streamHash: keyHash(UnsafeRawBufferPointer(start: record + RecordCodec.fixedBytes + 2, count: streamCount)),
                    idOffset: idOffset, idCount: idCount, idHash: keyHash(UnsafeRawBufferPointer(start: key, count: idCount))))
                recordOffset += recordCount
                idOffset += idCount
            }
        }
    }
}

/// Applies append requests inside one write transaction. Each request is planned completely
/// before any of it is written, so a refused request leaves nothing behind except its rejection
/// record; requests earlier in the same batch are visible to later ones.
///
/// Planning puts each new record's index keys straight into the `TailIndex` (one lock per
/// request), where later entries and requests of the batch find them; a refusal takes them out
/// again. Readers never see them early: they look only at positions up to their snapshot's
/// head. If the transaction fails, the writer truncates the tail back to where the batch began.
struct BatchApplier {
    let tables: LedgerTables
    let options: LedgerOptions
    let tail: TailIndex
    let filters: IndexFilters?
    var head: LogHead
    /// The records this batch appended, for a commit observer.
    private(set) var records: [Record] = []
    let collectsRecords: Bool
    /// Reused buffers.
    private var keyBuffer: [UInt8] = []
    private var steps: [Step] = []
    private var newEntries: [Int] = []
    /// Hashes big requests' records beside the planner (nil: every record hashed inline).
    let chain: ChainHasher?
    /// Whether the request being applied is hashed by `chain`.
    private var pipelined = false

    init(
        tables: LedgerTables, options: LedgerOptions, tail: TailIndex, filters: IndexFilters?, head: LogHead, collectsRecords: Bool,
        chain: ChainHasher? = nil
    ) {
        self.chain = chain
        self.filters = filters
        self.collectsRecords = collectsRecords
        self.tables = tables
        self.options = options
        self.tail = tail
        self.head = head
        keyBuffer.reserveCapacity(512)
    }

    /// Applies one request. A refusal is returned (and recorded), never thrown; thrown errors
    /// are storage failures that doom the whole transaction.
    mutating func apply(_ request: PreparedRequest, recordedMicros: Int64, in txn: Transaction, index lookups: RunLookups)
        throws -> Result<AppendResult, LedgerError>
    {
        head.recordedMicros = recordedMicros
        guard let chain, request.items.count >= options.chainHashedEntriesMin else {
            pipelined = false
            return try planAndWrite(request, in: txn, index: lookups)
        }
        return try request.records.withUnsafeBytes { records in
            try request.items.withUnsafeBufferPointer { items in
                chain.begin(records: records, items: items, position: head.position, previousHash: head.hash, recordedMicros: recordedMicros)
                pipelined = true
                var finished = false
                defer { if !finished { chain.end(cancel: true) } }
                let result = try planAndWrite(request, in: txn, index: lookups)
                finished = true
                let refused = if case .failure = result { true } else { false }
                chain.end(cancel: refused)  // a refusal stops the chain thread where it is
                return result
            }
        }
    }

    private mutating func planAndWrite(_ request: PreparedRequest, in txn: Transaction, index lookups: RunLookups)
        throws -> Result<AppendResult, LedgerError>
    {
        let entries = request.entries
        if let refusal = try plan(request, in: txn, index: lookups) {
            // An empty request names no event, so there is nothing to record about it.
            if entries.indices.contains(refusal.index) {
                try recordRejection(refusal.error, entry: entries[refusal.index], request: entries, in: txn)
            }
            return .failure(refusal.error)
        }
        return .success(try write(request, in: txn))
    }

    /// What an entry becomes: a new record at a stream version, or a pointer to its original.
    private enum Step {
        case append(streamVersion: UInt64)
        case duplicate(position: UInt64)
        case duplicateOfEntry(Int)
    }

    /// Plans the prepared entries into `steps`, adding each new record's keys to the tail.
    /// Returns the first refusal (and takes this request's keys out of the tail again).
    /// `lookups` reads a snapshot of `index/` (its runs).
    private mutating func plan(_ request: PreparedRequest, in txn: Transaction, index lookups: RunLookups) throws -> PreparedRequest.Refusal? {
        steps.removeAll(keepingCapacity: true)
        newEntries.removeAll(keepingCapacity: true)
        let requestStart = head.position
        return try tail.state.withLock { state throws -> PreparedRequest.Refusal? in
            precondition(state.coveredThrough == requestStart, "the tail must end where the log ends")
            // The entries before an invalid one are planned first: one of them may be refused first.
            let refusal = try request.records.withUnsafeBytes { records in
                try request.idKeys.withUnsafeBytes { idKeys in
                    try planEntries(request, records: records, idKeys: idKeys, state: &state, requestStart: requestStart, in: txn, index: lookups)
                }
            } ?? request.refusal
            if refusal != nil { state.truncate(after: requestStart) }
            return refusal
        }
    }

    private mutating func planEntries(
        _ request: PreparedRequest, records: UnsafeRawBufferPointer, idKeys: UnsafeRawBufferPointer, state: inout TailIndex.State,
        requestStart: UInt64, in txn: Transaction, index lookups: RunLookups
    ) throws -> PreparedRequest.Refusal? {
        let entries = request.entries
        var next = requestStart
        for (index, item) in request.items.enumerated() {
            let idKey = UnsafeRawBufferPointer(rebasing: idKeys[item.idOffset..<(item.idOffset + item.idCount)])
            let original: UInt64?
            if let entry = state.entry(ofIdKey: idKey, hash: item.idHash) {
                original = state.position(ofEntry: entry)
            } else if filters?.mayHoldID(item.idHash) ?? true {
                original = try lookups.position(idKey: idKey)
            } else {
                original = nil
            }
            if let original {
                let event = entries[index].event
                if original > requestStart {
                    // An earlier entry of this very request.
                    let earlier = newEntries[Int(original - requestStart - 1)]
                    guard entries[earlier].event.hasSameContent(as: event) else {
                        return .init(index: index, error: .invalid(reason: "id \(event.id) from \(event.source) appears twice in one request with different content"))
                    }
                    steps.append(.duplicateOfEntry(earlier))
                    if pipelined { chain?.plan(index, version: 0) }
                    continue
                }
                guard let stored = try txn.recordBytes(at: original, tables: tables) else {
                    throw LedgerError.corruptRecord(position: original, reason: "the idempotency index points at a missing record")
                }
                guard event.hasSameContent(as: try RecordCodec.decode(stored)) else {
                    return .init(index: index, error: .idempotencyConflict(source: event.source, id: event.id, originalPosition: original))
                }
                steps.append(.duplicate(position: original))
                if pipelined { chain?.plan(index, version: 0) }
                continue
            }
            let stream = UnsafeRawBufferPointer(rebasing: records[item.streamOffset..<(item.streamOffset + item.streamCount)])
            let current: UInt64
            if let entry = state.latestEntry(ofStream: stream, hash: item.streamHash) {
                current = state.entry(at: entry).version
            } else if filters?.mayHoldStream(item.streamHash) ?? true {
                current = try lookups.streamVersion(stream, keyBuffer: &keyBuffer)
            } else {
                current = 0
            }
            let expectation = entries[index].expectation
            guard expectation.holds(forCurrentVersion: current) else {
                return .init(index: index, error: .expectationFailed(stream: entries[index].event.stream, expected: expectation, actualVersion: current))
            }
            next += 1
            state.add(stream: stream, streamHash: item.streamHash, idKey: idKey, idHash: item.idHash, version: current + 1, position: next)
            newEntries.append(index)
            steps.append(.append(streamVersion: current + 1))
            if pipelined { chain?.plan(index, version: current + 1) }
        }
        return nil
    }

    private mutating func write(_ request: PreparedRequest, in txn: Transaction) throws -> AppendResult {
        let count = request.entries.count
        var positions = [UInt64](repeating: 0, count: count)
        var isNew = [Bool](repeating: false, count: count)
        try request.records.withUnsafeBytes { prepared in
            for index in 0..<count {
                switch steps[index] {
                case let .duplicate(position):
                    positions[index] = position
                case let .duplicateOfEntry(earlier):
                    positions[index] = positions[earlier]
                case let .append(streamVersion):
                    let item = request.items[index]
                    let record = UnsafeRawBufferPointer(rebasing: prepared[item.recordOffset..<(item.recordOffset + item.recordCount)])
                    let previousHash = collectsRecords ? head.hash : []
                    positions[index] = try appendRecord(record, streamVersion: streamVersion, hashedBy: pipelined ? index : nil, in: txn)
                    isNew[index] = true
                    if collectsRecords {
                        let event = request.entries[index].event
                        records.append(Record(
                            position: positions[index], streamVersion: streamVersion, recordedMicros: head.recordedMicros,
                            previousHash: previousHash, stream: event.stream, type: event.type, source: event.source,
                            id: event.id, time: event.time, occurredMicros: event.occurredMicros,
                            dataContentType: event.dataContentType, data: event.data))
                    }
                }
            }
        }
        return AppendResult(positions: positions, isNew: isNew)
    }

    /// Puts a prepared record at the next position: copied straight into its place in the page
    /// (`MDB_RESERVE`), its header patched there, then hashed there, or, for a request the
    /// `chain` hashes, its hash taken from there (entry `hashedBy`).
    private mutating func appendRecord(_ template: UnsafeRawBufferPointer, streamVersion: UInt64, hashedBy entry: Int?, in txn: Transaction) throws -> UInt64 {
        let position = head.position + 1
        var positionKey = position.bigEndian
        // The chain thread's hash of this record, once it has it (it hashes the same bytes).
        let hashed = entry.flatMap { chain?.hash(of: $0) }
        try withUnsafeBytes(of: &positionKey) { key in
            // MDB_APPEND: LMDB refuses a key that does not sort last. A free gaplessness check.
            try txn.put(tables.log, key: key, reserving: template.count, flags: [.append]) { stored in
                stored.copyMemory(from: template)
                head.hash.withUnsafeBytes { previous in
                    RecordCodec.patch(stored, position: position, streamVersion: streamVersion, recordedMicros: head.recordedMicros, previousHash: previous)
                }
                if hashed == nil { RecordCodec.hash(UnsafeRawBufferPointer(stored), into: &head.hash) }
            }
        }
        if let hashed { head.hash.withUnsafeMutableBytes { $0.copyMemory(from: hashed) } }
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
    static func problem(with event: borrowing NewEvent, recordBytesMax: Int) -> String? {
        if let problem = fieldProblem("subject (stream)", event.stream, max: LedgerOptions.streamBytesMax) { return problem }
        if containsNUL(event.stream) { return "subject (stream) contains a NUL byte" }
        // `source ‖ 0 ‖ id` is the idempotency key: a NUL in source would make it ambiguous.
        if containsNUL(event.source) { return "source contains a NUL byte" }
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

    private static func containsNUL(_ text: borrowing String) -> Bool {
        text.utf8.withContiguousStorageIfAvailable { bytes in
            bytes.count > 0 && memchr(bytes.baseAddress!, 0, bytes.count) != nil
        } ?? text.utf8.contains(0)
    }

    private static func fieldProblem(_ name: String, _ value: borrowing String, max: Int) -> String? {
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
