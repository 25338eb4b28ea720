/// Why an audit operation could not be done. (What verification finds is not an error: it is
/// an `AuditProblem` in the report.)
public enum AuditError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The ledger has no audit tree yet (read-only, and nothing was ever built).
    case noAuditTree
    /// No signed tree head exists (or none as large as needed).
    case noSignedHead(needed: UInt64?)
    /// No signed head of exactly this tree size.
    case unknownHead(treeSize: UInt64)
    case noRecord(position: UInt64)
    /// A stored node a root or proof needs is absent: the tree was not built that far, or the table was damaged.
    case nodeMissing(level: Int, index: UInt64)
    /// The stored tree holds more leaves than the log has records: records were removed.
    case treeAheadOfLog(treeSize: UInt64, logEnds: UInt64)
    /// The log's keys are not gapless where the tree is being built.
    case logGap(expected: UInt64, found: UInt64)
    case keyFile(path: String, reason: String)
    case bundle(reason: String)
    case emptyLog
    /// A proof built from the ledger does not verify against a signed head: tampering.
    case proofFails(position: UInt64?, treeSize: UInt64)
    /// More events than one bundle or answer may hold.
    case tooMany(count: Int, limit: Int)

    public var description: String {
        switch self {
        case .noAuditTree:
            "this ledger has no audit tree yet; sign a head with `fapiao audit checkpoint --key FILE` (it builds the tree)"
        case let .noSignedHead(needed):
            if let needed {
                "no signed tree head covers position \(needed) yet; sign one with `fapiao audit checkpoint --key FILE`"
            } else {
                "no signed tree head yet; sign one with `fapiao audit checkpoint --key FILE`"
            }
        case let .unknownHead(size): "there is no signed tree head of size \(size); `fapiao audit verify` lists the heads"
        case let .noRecord(position): "there is no record at position \(position)"
        case let .nodeMissing(level, index):
            "the audit tree has no node at level \(level), index \(index): it was not built that far or it was damaged"
        case let .treeAheadOfLog(size, ends):
            "the audit tree holds \(size) leaves but the log ends at position \(ends): records were removed from the log"
        case let .logGap(expected, found):
            found == 0 ? "the log has no record at position \(expected)" : "the log skips from position \(expected - 1) to \(found)"
        case let .keyFile(path, reason): "key file \(path): \(reason)"
        case let .bundle(reason): "not a readable audit bundle: \(reason)"
        case .emptyLog: "the log is empty: there is nothing to sign"
        case let .proofFails(position, size):
            "\(position.map { "the record at position \($0)" } ?? "the log") no longer matches the tree head signed at size \(size): it was altered after it was signed; run `fapiao audit verify`"
        case let .tooMany(count, limit): "\(count) events is more than the \(limit) one bundle holds; narrow it with --subject or --from/--to"
        }
    }
}
