import FapiaoDomain
import Ledger

/// The two clocks of a bitemporal question, and the log's own position, as limits: only
/// events inside all the given limits count.
public struct Cutoff: Sendable, Equatable {
    /// A moment in the real world: events whose `time` is at or before it.
    public var at: Int64?
    /// What the ledger had recorded by then: events whose recorded time is at or before it.
    public var knownAt: Int64?
    /// The ledger as it stood after this position.
    public var position: UInt64?

    public init(at: Int64? = nil, knownAt: Int64? = nil, position: UInt64? = nil) {
        self.at = at
        self.knownAt = knownAt
        self.position = position
    }

    public var isNow: Bool { at == nil && knownAt == nil && position == nil }

    public func includes(_ record: Record) -> Bool {
        if let at, record.occurredMicros > at { return false }
        if let knownAt, record.recordedMicros > knownAt { return false }
        if let position, record.position > position { return false }
        return true
    }
}

/// Time flags as people type them: RFC 3339 (`2024-12-31T18:00:00+08:00`), a local time
/// without offset (taken as China Standard Time), or a date (the end of that day, CST).
public enum TimeInput {
    public static func parse(_ text: String) -> Int64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if case let .success(time) = RFC3339.parse(trimmed) { return time.micros }
        if case let .success(time) = RFC3339.parse(trimmed.replacingOccurrences(of: " ", with: "T") + "+08:00") { return time.micros }
        if case let .success(time) = RFC3339.parse(trimmed.replacingOccurrences(of: " ", with: "T") + ":00+08:00") { return time.micros }
        if case let .success(date) = CalendarDate.parse(trimmed) {
            return date.startMicros(offsetSeconds: RFC3339.cstOffsetSeconds) + RFC3339.microsPerDay - 1
        }
        return nil
    }
}

/// Formats for answers: China Standard Time, seconds.
public enum CST {
    public static func format(_ micros: Int64) -> String { RFC3339.formatCST(micros: micros) }
}

import Foundation
