@_exported import TestSupport
import FapiaoDomain
import Foundation
import LMDB
import Synchronization
import Testing
@testable import Ledger
@testable import Projections


/// Opens a ledger, runs `body`, closes it and waits until it is released (`Ledger.using`); recorded
/// times step deterministically. Engines made in `body` must be stopped there.
func withLedger<T>(
    at path: String, options: LedgerOptions = LedgerOptions(), clock: @escaping @Sendable () -> Int64 = SteppingClock().micros,
    _ body: (Ledger) async throws -> T
) async throws -> T {
    try await Ledger.using(at: path, options: options, clock: clock, body)
}

/// Opens a ledger with a started engine of `projections` in `mode`, runs `body`, stops the engine.
func withEngine<T>(
    at path: String, mode: ProjectionEngine.Mode, projections: [any Projection] = BuiltInProjections.all,
    clock: @escaping @Sendable () -> Int64 = SteppingClock().micros, rebuildLimits: RebuildLimits = RebuildLimits(),
    options: LedgerOptions = LedgerOptions(), _ body: (Ledger, ProjectionEngine) async throws -> T
) async throws -> T {
    try await withLedger(at: path, options: options, clock: clock) { ledger in
        let engine = try ProjectionEngine(ledger: ledger, projections: projections, mode: mode, rebuildLimits: rebuildLimits)
        try await engine.start()
        defer { engine.stop() }
        return try await body(ledger, engine)
    }
}

// MARK: Events

/// Builds contract events the way upstream systems send them: a CloudEvents envelope whose
/// line must pass the parser, turned into what the ledger stores.
enum Build {
    static let source = "urn:fapiao:test"

    static let sellerTaxId = "91110108551385082Q"
    static let otherSellerTaxId = "914403001922038216"
    static let buyerTaxId = "91330100799655058B"
    static let sellerName = "北京云栈科技有限公司"
    static let buyerName = "北京某某科技（有限公司）"

    static func event(_ subject: String, _ event: DomainEvent, id: String, at time: String, source: String = source) -> NewEvent {
        let timestamp = Literal.instant(time)
        let envelope = CloudEventEnvelope(id: id, source: source, subject: subject, time: timestamp, event: event)
        guard case .success(let parsed) = CloudEventParser.parse(line: envelope.encodedLine(), lineNumber: 1) else {
            preconditionFailure("the test built an event the contract refuses: \(String(decoding: envelope.encodedLine(), as: UTF8.self))")
        }
        return NewEvent(
            stream: parsed.subject, type: parsed.type.rawValue, source: parsed.source, id: parsed.id, time: parsed.time.text,
            occurredMicros: parsed.time.micros, dataContentType: parsed.datacontenttype, data: parsed.data)
    }

    /// An issued invoice for `key` (digital: 20 digits; legacy: CODE-NUMBER).
    static func issued(
        _ key: String, at issuedAt: String, seller: String = sellerName, sellerTaxId: String = sellerTaxId,
        buyer: String = buyerName, buyerTaxId: String? = buyerTaxId, amount: String = "100.00"
    ) -> DomainEvent {
        Literal.issued(key, at: issuedAt, seller: seller, sellerTaxId: sellerTaxId, buyer: buyer, buyerTaxId: buyerTaxId, amount: amount)
    }

    static func registered(_ system: String, requiresReview: Bool, visible: [VisibleStatus] = [.approved]) -> DomainEvent {
        .systemRegistered(SystemRegistered(system: system, name: "系统 \(system)", ownerTaxId: buyerTaxId, requiresReview: requiresReview, visibleStatuses: visible))
    }
}

/// Appends events one request each, returning their positions.
@discardableResult
func append(_ ledger: Ledger, _ events: [NewEvent]) async throws -> [UInt64] {
    var positions: [UInt64] = []
    for event in events {
        positions += try await ledger.append([AppendEntry(event)]).positions
    }
    return positions
}

/// A little scenario writer: events on streams with ids and times that count up.
struct Script {
    var events: [NewEvent] = []
    private var minute = 0

    mutating func add(_ subject: String, _ event: DomainEvent) {
        minute += 1
        let time = RFC3339.format(micros: 1_735_689_600_000_000 + Int64(minute) * 60_000_000, offsetSeconds: RFC3339.cstOffsetSeconds)
        events.append(Build.event(subject, event, id: "script-\(events.count + 1)", at: time))
    }

    mutating func system(_ system: String, requiresReview: Bool) {
        add("system/" + system, Build.registered(system, requiresReview: requiresReview))
    }

    mutating func issue(_ key: String, at issuedAt: String = "2025-01-02T10:00:00+08:00", buyer: String = Build.buyerName, seller: String = Build.sellerName, sellerTaxId: String = Build.sellerTaxId) {
        add(key, Build.issued(key, at: issuedAt, seller: seller, sellerTaxId: sellerTaxId, buyer: buyer))
    }

    mutating func accept(_ key: String, in system: String) {
        add(key, .receiptAccepted(ReceiptAccepted(system: system)))
    }
}

// MARK: Reading projections

/// Every row of every table of every projection's active generation, with its checkpoint,
/// read in one snapshot: `[projection.table: [(key, value)]]`.
struct ProjectionDump: Equatable, CustomStringConvertible {
    struct Row: Equatable {
        var key: [UInt8]
        var value: [UInt8]
    }

    var tables: [String: [Row]] = [:]
    var checkpoints: [String: UInt64] = [:]

    var description: String {
        tables.keys.sorted().map { "\($0): \(tables[$0]!.count) rows" }.joined(separator: ", ") + "; checkpoints \(checkpoints)"
    }

    /// The first difference, for a readable failure.
    func firstDifference(from other: ProjectionDump) -> String? {
        if checkpoints != other.checkpoints { return "checkpoints \(checkpoints) vs \(other.checkpoints)" }
        for name in Set(tables.keys).union(other.tables.keys).sorted() {
            let mine = tables[name] ?? []
            let theirs = other.tables[name] ?? []
            for (a, b) in zip(mine, theirs) where a != b {
                return "\(name): \(text(a)) vs \(text(b))"
            }
            if mine.count != theirs.count { return "\(name): \(mine.count) rows vs \(theirs.count)" }
        }
        return nil
    }

    private func text(_ row: Row) -> String {
        let key = String(decoding: row.key.map { $0 == 0 ? UInt8(ascii: "|") : $0 }, as: UTF8.self)
        return "\(key) = \(String(decoding: row.value, as: UTF8.self))"
    }
}

func dump(_ engine: ProjectionEngine) throws -> ProjectionDump {
    try engine.read { snapshot in
        var dump = ProjectionDump()
        for projection in engine.projections {
            guard let (store, checkpoint) = try snapshot.store(projection.name) else { continue }
            dump.checkpoints[projection.name] = checkpoint
            for spec in projection.tables {
                var rows: [ProjectionDump.Row] = []
                try snapshot.transaction.withCursor(store.table(spec.name)) { cursor in
                    var entry = try cursor.first()
                    while let current = entry {
                        rows.append(.init(key: Array(current.key), value: Array(current.value)))
                        entry = try cursor.next()
                    }
                }
                dump.tables[projection.name + "." + spec.name] = rows
            }
        }
        return dump
    }
}

/// Waits until every projection's checkpoint has reached the ledger's head.
func waitUntilCaughtUp(_ engine: ProjectionEngine) async throws {
    let head = try engine.ledger.headPosition()
    for projection in engine.projections {
        try await engine.waitForCheckpoint(projection.name, atLeast: head, timeoutSeconds: 30)
    }
}

/// The projection's catalog entry (generation, version, checkpoint).
func catalogEntry(_ engine: ProjectionEngine, _ name: String, building: Bool = false) throws -> CatalogEntry? {
    try engine.ledger.read { txn in try CatalogEntry.read(name, building: building, table: engine.catalog, in: txn) }
}

func list(_ engine: ProjectionEngine, _ criteria: InvoiceListCriteria) throws -> InvoiceListPage {
    try engine.read { snapshot in try InvoiceQueries.list(criteria, in: snapshot) }
}

func invoiceRow(_ engine: ProjectionEngine, _ key: String) throws -> InvoiceState? {
    try engine.read { snapshot in try InvoiceStateProjection.row(key, in: snapshot) }
}

/// Runs `body` with a time limit: a hang fails the test instead of stalling the suite. The
/// body runs on in the background after a timeout (closing the ledger ends it).
func withTimeout<T: Sendable>(seconds: Double, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let outcome = Mutex<Result<T, any Error>?>(nil)
    Task {
        let result: Result<T, any Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        outcome.withLock { $0 = result }
    }
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if let result = outcome.withLock({ $0 }) { return try result.get() }
        try await Task.sleep(for: .milliseconds(5))
    }
    throw TestFailure("timed out after \(seconds) s")
}
