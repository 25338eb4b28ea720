/// What can go wrong appending to or reading a ledger. Operating errors say what was wrong and
/// how to fix it; none of them leaves anything half-written.
public enum LedgerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A stream's expectation did not hold. Nothing of the request was written.
    case expectationFailed(stream: String, expected: StreamExpectation, actualVersion: UInt64)
    /// `(source, id)` was appended before with different content. Nothing was written.
    case idempotencyConflict(source: String, id: String, originalPosition: UInt64)
    /// The event itself is unacceptable (empty id, oversized record, ...). Nothing was written.
    case invalid(reason: String)
    /// The writer's queue is full: try again later. Nothing was written.
    case overloaded(queuedEventsMax: Int)
    /// The memory map is full. Nothing of the batch was written; the ledger is intact.
    case mapFull(mapSizeBytes: Int)
    /// The disk is full. Nothing of the batch was written; the ledger is intact.
    case diskFull
    /// The ledger was closed before the request could be served.
    case closed
    /// Appending needs a ledger opened for writing.
    case readOnly
    /// No ledger at the path.
    case notFound(path: String)
    /// The directory holds something that is not a fapiao ledger of a format this build knows.
    case incompatible(path: String, reason: String)
    /// A stored record does not decode. The audit tools say more.
    case corruptRecord(position: UInt64?, reason: String)
    /// Any other storage failure, with LMDB's message.
    case storage(String)

    public var description: String {
        switch self {
        case let .expectationFailed(stream, expected, actual):
            return "stream \(stream) expected \(expected), but its current version is \(actual); nothing was written. Re-read the stream and retry with the current version."
        case let .idempotencyConflict(source, id, position):
            return "event id \(id) from \(source) was recorded at position \(position) with different content; nothing was written. Give a new event a new id."
        case let .invalid(reason):
            return "invalid event: \(reason); nothing was written"
        case let .overloaded(max):
            return "the ledger writer is overloaded (\(max) events queued); nothing was written. Retry with backoff."
        case let .mapFull(size):
            let gib = Double(size) / Double(1 << 30)
            return "the ledger's map is full (map size \(size) bytes = \(gib) GiB); nothing of the batch was written and the ledger is intact. Reopen with a larger --map-size-gib (or FAPIAO_MAP_SIZE_GIB)."
        case .diskFull:
            return "the disk is full; nothing of the batch was written and the ledger is intact. Free space and retry."
        case .closed:
            return "the ledger is closed"
        case .readOnly:
            return "the ledger is open read-only; appending needs it open for writing"
        case let .notFound(path):
            return "no ledger at \(path). Create one by importing events (fapiao import FILE --ledger \(path)) or point --ledger / FAPIAO_LEDGER at an existing one."
        case let .incompatible(path, reason):
            return "\(path) is not a fapiao ledger this build can read: \(reason)"
        case let .corruptRecord(position, reason):
            return "record \(position.map(String.init) ?? "?") is corrupt: \(reason). Run `fapiao audit verify` to locate tampering."
        case let .storage(message):
            return "storage error: \(message)"
        }
    }
}

/// What a writer expects of a stream before its event is appended.
public enum StreamExpectation: Sendable, Hashable, CustomStringConvertible {
    /// No check.
    case any
    /// The stream must have no events yet.
    case noStream
    /// The stream must have at least one event.
    case streamExists
    /// The stream's current version must be exactly this (its last event's version; 0 = empty).
    case version(UInt64)

    public var description: String {
        switch self {
        case .any: "any version"
        case .noStream: "no stream"
        case .streamExists: "an existing stream"
        case let .version(v): "version \(v)"
        }
    }

    func holds(forCurrentVersion current: UInt64) -> Bool {
        switch self {
        case .any: true
        case .noStream: current == 0
        case .streamExists: current > 0
        case let .version(v): current == v
        }
    }
}
