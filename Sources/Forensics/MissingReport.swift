import FapiaoDomain
import Ledger
import Projections

/// The morning report: every invoice issued to a system's owner that the system does not
/// show, grouped by decisive cause.
public struct MissingReport: Codable, Sendable, Equatable {
    public struct Group: Codable, Sendable, Equatable {
        public var code: CauseCode
        public var count: Int
        /// The first invoices of the group (by issue date), with their summary.
        public var examples: [Example]
    }

    public struct Example: Codable, Sendable, Equatable {
        public var key: String
        public var issueDate: String
        public var summary: String
    }

    public var system: String
    public var owner: String
    public var since: String?
    /// Invoices issued to the owner in the period, how many the system shows, how many not.
    public var examined: Int
    public var visible: Int
    public var missing: Int
    public var causes: [Group]
}

public enum ForensicsError: Error, CustomStringConvertible {
    case systemNotRegistered(String)
    case noProjections

    public var description: String {
        switch self {
        case let .systemNotRegistered(system):
            "system \(system) is not registered in the ledger (no fapiao.system.registered event on system/\(system)), so its owner is unknown"
        case .noProjections:
            "this needs the search index: build the projections with `fapiao projections rebuild`"
        }
    }
}

extension Forensics {
    public func allMissing(
        system: String, since: CalendarDate?, examplesMax: Int = 10, progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> MissingReport {
        guard let projections else { throw ForensicsError.noProjections }
        let systemEvents = try History.read("system/\(system)", cutoff: Cutoff(), from: ledger)
        guard let owner = History.systemRow(system, cutoff: Cutoff(), ledger: ledger)?.ownerTaxId else {
            throw ForensicsError.systemNotRegistered(system)
        }
        let candidates = try projections.read { snapshot in try InvoiceQueries.keys(buyerTaxId: owner, issuedFrom: since, in: snapshot) }
        var groups: [CauseCode: MissingReport.Group] = [:]
        var visible = 0
        for (index, candidate) in candidates.enumerated() {
            let history = try History.load(key: candidate.key, system: system, user: nil, cutoff: Cutoff(), from: ledger, systemEvents: systemEvents)
            let answer = try diagnose(history, question: WhyQuestion(typedKey: candidate.key, system: system))
            if let decisive = answer.decisive {
                var group = groups[decisive.code] ?? MissingReport.Group(code: decisive.code, count: 0, examples: [])
                group.count += 1
                if group.examples.count < examplesMax {
                    group.examples.append(.init(key: candidate.key, issueDate: candidate.date, summary: decisive.summary))
                }
                groups[decisive.code] = group
            } else {
                visible += 1
            }
            if index % 1_000 == 0 { progress(index, candidates.count) }
        }
        progress(candidates.count, candidates.count)
        let ordered = groups.values.sorted { $0.count != $1.count ? $0.count > $1.count : $0.code < $1.code }
        return MissingReport(
            system: system, owner: owner, since: since?.description, examined: candidates.count, visible: visible,
            missing: candidates.count - visible, causes: ordered)
    }
}
