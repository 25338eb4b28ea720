import FapiaoDomain
import Foundation
import Synchronization
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
        system: String, since: CalendarDate?, examplesMax: Int = 10, progress: @Sendable (Int, Int) -> Void = { _, _ in }
    ) throws -> MissingReport {
        guard let projections else { throw ForensicsError.noProjections }
        let systemEvents = try History.read("system/\(system)", cutoff: Cutoff(), from: ledger)
        let systemRow = History.systemRow(system, cutoff: Cutoff(), ledger: ledger)
        guard let owner = systemRow?.ownerTaxId else {
            throw ForensicsError.systemNotRegistered(system)
        }
        let candidates = try projections.read { snapshot in try InvoiceQueries.keys(buyerTaxId: owner, issuedFrom: since, in: snapshot) }
        // Each invoice's answer is independent: work through them on every core, in chunks,
        // then group in candidate order so the report is the same however the work was split.
        let chunkInvoices = 512
        let chunks = stride(from: 0, to: candidates.count, by: chunkInvoices).map { $0..<min($0 + chunkInvoices, candidates.count) }
        let decisive = Mutex<[Int: [Cause?]]>([:])
        let failure = Mutex<(any Error)?>(nil)
        let done = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: chunks.count) { index in
            do {
                let causes = try chunks[index].map { position -> Cause? in
                    let candidate = candidates[position]
                    var history = try History.load(key: candidate.key, system: system, user: nil, cutoff: Cutoff(), from: ledger, systemEvents: systemEvents)
                    history.foldedSystemRow = .some(systemRow)
                    return try diagnose(history, question: WhyQuestion(typedKey: candidate.key, system: system)).decisive
                }
                decisive.withLock { $0[index] = causes }
                let finished = done.withLock { $0 += causes.count; return $0 }
                progress(finished, candidates.count)
            } catch {
                failure.withLock { $0 = error }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
        var groups: [CauseCode: MissingReport.Group] = [:]
        var visible = 0
        let answers = decisive.withLock { $0 }
        for (index, range) in chunks.enumerated() {
            for (candidate, cause) in zip(candidates[range], answers[index] ?? []) {
                guard let cause else { visible += 1; continue }
                var group = groups[cause.code] ?? MissingReport.Group(code: cause.code, count: 0, examples: [])
                group.count += 1
                if group.examples.count < examplesMax {
                    group.examples.append(.init(key: candidate.key, issueDate: candidate.date, summary: cause.summary))
                }
                groups[cause.code] = group
            }
        }
        let ordered = groups.values.sorted { $0.count != $1.count ? $0.count > $1.count : $0.code < $1.code }
        return MissingReport(
            system: system, owner: owner, since: since?.description, examined: candidates.count, visible: visible,
            missing: candidates.count - visible, causes: ordered)
    }
}
