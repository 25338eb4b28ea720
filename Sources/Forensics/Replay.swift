import FapiaoDomain
import Ledger
import Projections

/// An invoice's history, event by event, with what each observer saw after each one.
public struct Replay: Codable, Sendable, Equatable {
    public struct Step: Codable, Sendable, Equatable {
        public var position: UInt64
        /// The receiving system the event concerns, if any.
        public var system: String?
        /// When it happened at the source, and when the ledger recorded it (RFC 3339, CST).
        public var time: String
        public var recorded: String
        /// True when recorded after a later-occurring event was already recorded: a late arrival.
        public var late: Bool
        public var source: String
        public var type: String
        public var summary: String
        /// After this event: the issuer's status, the verification result, and per system
        /// `delivery/receipt/review → view status`.
        public var issuer: String
        public var verification: String?
        public var systems: [String: String]
    }

    public var key: String
    public var cutoff: WhyAnswer.CutoffUsed
    public var steps: [Step]
}

/// A slice of the global log.
public struct LogSlice: Codable, Sendable, Equatable {
    public var from: UInt64
    public var to: UInt64
    public var entries: [TimelineEntry]
}

extension Forensics {
    /// The invoice's whole history (inside the cutoff) as a timeline of observer states.
    public func replay(typedKey: String, cutoff: Cutoff = Cutoff()) throws -> Replay {
        let key = (try? InvoiceKey.parse(typedKey).get())?.description ?? typedKey
        let items = try History.read(key, cutoff: cutoff, from: ledger)
        var systems: [String: SystemRow] = [:]
        var state = InvoiceState(key: key)
        var steps: [Replay.Step] = []
        var latestOccurred = Int64.min
        for item in items {
            if let event = item.event {
                InvoiceFold.apply(event, record: item.record, to: &state)
                if let system = event.system, systems[system] == nil {
                    systems[system] = History.systemRow(system, cutoff: cutoff, ledger: ledger)
                }
            }
            let late = item.record.occurredMicros < latestOccurred
            latestOccurred = max(latestOccurred, item.record.occurredMicros)
            var views: [String: String] = [:]
            for (system, view) in state.systems {
                let requiresReview = systems[system]?.requiresReview ?? false
                let status = state.viewStatus(in: system, requiresReview: requiresReview)?.rawValue ?? "not in the system"
                views[system] = "delivery \(view.delivery), receipt \(view.receipt), review \(view.review) → \(status)"
            }
            let record = item.record
            steps.append(Replay.Step(
                position: record.position, system: item.event?.system, time: CST.format(record.occurredMicros), recorded: CST.format(record.recordedMicros),
                late: late, source: record.source, type: record.type, summary: EventSummary.describe(item.event, record: record),
                issuer: state.issuer.status, verification: state.verification?.result, systems: views))
        }
        return Replay(key: key, cutoff: .init(at: cutoff.at.map(CST.format), knownAt: cutoff.knownAt.map(CST.format), position: cutoff.position), steps: steps)
    }

    /// Positions `from`...`to` of the global log, optionally only some types (prefix) and sources.
    public func slice(from: UInt64, to: UInt64, typePrefix: String? = nil, source: String? = nil, limit: Int = 10_000) throws -> LogSlice {
        var entries: [TimelineEntry] = []
        var next = max(from, 1)
        while next <= to && entries.count < limit {
            let chunk = try ledger.records(from: next, limit: Int(min(UInt64(1_000), to - next + 1)))
            guard let last = chunk.last else { break }
            for item in DecodedBatch(records: chunk).items where entries.count < limit {
                if let typePrefix, !item.record.type.hasPrefix(typePrefix) { continue }
                if let source, item.record.source != source { continue }
                entries.append(TimelineEntry(
                    position: item.record.position, system: item.event?.system, time: CST.format(item.record.occurredMicros), recorded: CST.format(item.record.recordedMicros),
                    type: item.record.type, source: item.record.source, summary: EventSummary.describe(item.event, record: item.record)))
            }
            next = last.position + 1
        }
        return LogSlice(from: from, to: to, entries: entries)
    }
}

extension History {
    static func systemRow(_ system: String, cutoff: Cutoff, ledger: Ledger) -> SystemRow? {
        guard let items = try? read("system/\(system)", cutoff: cutoff, from: ledger), !items.isEmpty else { return nil }
        var row = SystemRow(system: system)
        for item in items { if let event = item.event { SystemsProjection.fold(event, record: item.record, into: &row) } }
        return row
    }
}

extension Forensics {
    /// The invoice's state as of a cutoff (the same fold as the projections, over the events the
    /// cutoff admits, in the order they happened), and the systems it names. Nil: no event.
    public func state(typedKey: String, cutoff: Cutoff) throws -> (state: InvoiceState, systems: [SystemRow])? {
        let key = (try? InvoiceKey.parse(typedKey).get())?.description ?? typedKey
        let history = History(key: key, system: "", user: nil, invoice: try History.read(key, cutoff: cutoff, from: ledger), systemEvents: [], userEvents: [])
        guard !history.invoice.isEmpty else { return nil }
        let state = history.state
        let systems = state.systems.keys.sorted().compactMap { History.systemRow($0, cutoff: cutoff, ledger: ledger) }
        return (state, systems)
    }
}
