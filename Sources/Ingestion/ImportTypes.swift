import FapiaoDomain
import Ledger

/// What an import did.
public struct ImportSummary: Sendable, Codable, Equatable {
    public var file: String
    /// Lines read, blank ones included.
    public var lines: Int
    /// Events in the file.
    public var events: Int
    /// Events the ledger did not have before.
    public var new: Int
    /// Events it had already (same `(source, id)` and content): idempotent re-import. Includes
    /// repeats of an event within the file.
    public var alreadyPresent: Int
    /// Of those, repeats of an earlier line of the same file.
    public var repeatedInFile: Int
    /// Events recorded as they are but flagged for breaking a rule (a `fapiao.ledger.flagged`
    /// event beside each), by rule.
    public var flagged: Int
    public var flaggedByRule: [String: Int]
    /// The positions the new events took.
    public var firstPosition: UInt64?
    public var lastPosition: UInt64?

    public init(file: String) {
        self.file = file
        lines = 0
        events = 0
        new = 0
        alreadyPresent = 0
        repeatedInFile = 0
        flagged = 0
        flaggedByRule = [:]
    }
}

/// Why a file was refused: every offending line (up to `problemsKeptMax`), and nothing of the
/// file was recorded.
public struct ImportRefusal: Error, Sendable, Equatable {
    public var problems: [EnvelopeProblem]
    /// All problems, including those beyond the ones kept.
    public var problemCount: Int
    public var offendingLines: Int
    public var lines: Int
}

public enum ImportError: Error, Sendable, CustomStringConvertible {
    /// The file could not be read.
    case unreadable(reason: String)
    /// Validation found problems; nothing was recorded.
    case refused(ImportRefusal)
    /// Appending failed part way (map full, disk full, ...). `imported` says what is recorded:
    /// importing the same file again, after fixing the cause, completes it (idempotent).
    case appendFailed(LedgerError, imported: ImportSummary)

    public var description: String {
        switch self {
        case let .unreadable(reason): "cannot read the file: \(reason)"
        case let .refused(refusal):
            "refused: \(refusal.problemCount) problem(s) on \(refusal.offendingLines) of \(refusal.lines) line(s); nothing was recorded"
        case let .appendFailed(error, imported):
            "\(error). \(imported.new) new event(s) of \(imported.events) were recorded before it; import the same file again once fixed: events already recorded are skipped."
        }
    }
}

/// Progress of an import, for a progress bar.
public struct ImportProgress: Sendable {
    public enum Phase: String, Sendable { case validating, appending }
    public var phase: Phase
    public var done: UInt64
    /// Bytes of the file while validating, events while appending.
    public var total: UInt64
}
