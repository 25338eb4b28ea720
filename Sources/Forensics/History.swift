import FapiaoDomain
import Ledger
import Projections

/// Everything the ledger says about one invoice in one system, as of a cutoff: the invoice's
/// stream, the system's stream and the user's stream, each record with its decoded event.
public struct History: Sendable {
    public var key: String
    public var system: String
    public var user: String?
    public var invoice: [DecodedBatch.Item]
    public var systemEvents: [DecodedBatch.Item]
    public var userEvents: [DecodedBatch.Item]

    /// Reads the three streams (bounded chunks) and keeps what the cutoff admits.
    public static func load(
        key: String, system: String, user: String?, cutoff: Cutoff, from ledger: Ledger, systemEvents: [DecodedBatch.Item]? = nil
    ) throws -> History {
        try History(key: key, system: system, user: user, invoice: read(key, cutoff: cutoff, from: ledger),
                    systemEvents: systemEvents ?? read("system/\(system)", cutoff: cutoff, from: ledger),
                    userEvents: user.map { try read("system/\(system)/user/\($0)", cutoff: cutoff, from: ledger) } ?? [])
    }

    /// One stream's records inside the cutoff, decoded.
    public static func read(_ stream: String, cutoff: Cutoff, from ledger: Ledger) throws -> [DecodedBatch.Item] {
        var records: [Record] = []
        var version: UInt64 = 1
        while true {
            let chunk = try ledger.stream(stream, fromVersion: version, limit: 1_000)
            records += chunk.filter(cutoff.includes)
            guard chunk.count == 1_000, let last = chunk.last else { break }
            if let position = cutoff.position, last.position > position { break }
            version = last.streamVersion + 1
        }
        return DecodedBatch(records: records).items
    }

    /// The moment the answer is about: the cutoff's `at`, else just after the latest event seen.
    public func asOf(cutoff: Cutoff) -> Int64? {
        if let at = cutoff.at { return at }
        let latest = [invoice, systemEvents, userEvents].compactMap { items in items.lazy.map(\.record.occurredMicros).max() }
        return latest.max()
    }

    /// The invoice's state folded from its events in the order they happened (ties: position).
    /// A late arrival takes its place in the world's order: a verification or delivery failure
    /// recorded after a later-occurring one must not become "the latest" by arriving last.
    public var state: InvoiceState {
        var state = InvoiceState(key: key)
        let happened = invoice.sorted { ($0.record.occurredMicros, $0.record.position) < ($1.record.occurredMicros, $1.record.position) }
        for item in happened { if let event = item.event { InvoiceFold.apply(event, record: item.record, to: &state) } }
        return state
    }

    /// Set when many invoices share one system history (the morning report): folded once.
    var foldedSystemRow: SystemRow??

    /// The receiving system as registered, with its maintenance windows.
    public var systemRow: SystemRow? {
        if let folded = foldedSystemRow { return folded }
        guard !systemEvents.isEmpty else { return nil }
        var row = SystemRow(system: system)
        for item in systemEvents { if let event = item.event { SystemsProjection.fold(event, record: item.record, into: &row) } }
        return row
    }

    /// The user's grants and revocations.
    public var access: AccessRow? {
        guard let user else { return nil }
        var row = AccessRow(system: system, user: user)
        for item in userEvents { if let event = item.event { row.apply(event, record: item.record) } }
        return row
    }

    /// The user's most recent recorded query at or before `micros`.
    public func lastQuery(atOrBefore micros: Int64) -> (query: QueryExecuted, record: Record)? {
        for item in userEvents.reversed() where item.record.occurredMicros <= micros {
            if case let .queryExecuted(query)? = item.event { return (query, item.record) }
        }
        return nil
    }
}
