import Foundation

/// A refused append, kept durably as a fact the forensic tools can show ("the sync job tried
/// to append this at 17:02 and was refused because ..."). Rejections live in their own
/// tables and never appear in the event streams.
public struct Rejection: Codable, Sendable, Equatable {
    public enum Reason: String, Codable, Sendable {
        case expectationFailed = "expectation_failed"
        case idempotencyConflict = "idempotency_conflict"
        case invalid
    }

    /// 1-based, gapless, in the order the ledger refused them.
    public var sequence: UInt64
    public var recordedMicros: Int64
    public var reason: Reason
    /// The error message the appender received.
    public var message: String
    /// The entry that failed, as sent.
    public var stream: String
    public var type: String
    public var source: String
    public var id: String
    /// Every stream the refused request named (an atomic request can span several).
    public var requestStreams: [String]
    public var requestEvents: Int
    public var expected: String?
    public var actualVersion: UInt64?
    public var originalPosition: UInt64?

    static func from(
        error: LedgerError, entry: AppendEntry, request: [AppendEntry], sequence: UInt64, recordedMicros: Int64
    ) -> Rejection {
        var rejection = Rejection(
            sequence: sequence, recordedMicros: recordedMicros, reason: .invalid, message: error.description,
            stream: entry.event.stream, type: entry.event.type, source: entry.event.source, id: entry.event.id,
            requestStreams: distinctStreams(of: request), requestEvents: request.count)
        switch error {
        case let .expectationFailed(_, expected, actual):
            rejection.reason = .expectationFailed
            rejection.expected = expected.description
            rejection.actualVersion = actual
        case let .idempotencyConflict(_, _, original):
            rejection.reason = .idempotencyConflict
            rejection.originalPosition = original
        default:
            rejection.reason = .invalid
        }
        return rejection
    }

    /// Distinct by bytes, as the streams index is (a `Set<String>` would merge canonically
    /// equal names that are different streams), sorted.
    private static func distinctStreams(of request: [AppendEntry]) -> [String] {
        var seen = Set<[UInt8]>()
        return request.map(\.event.stream).filter { seen.insert(Array($0.utf8)).inserted }.sorted()
    }

    func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data())
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) throws -> Rejection {
        try JSONDecoder().decode(Rejection.self, from: Data(bytes))
    }
}
