@_exported import TestSupport
import FapiaoDomain
import Foundation
import Ingestion
import Synchronization
import Testing
@testable import Forensics
@testable import Ledger
@testable import Projections

// Every scenario here goes the way users' facts go: CloudEvents JSON Lines written to a file,
// imported with `Importer`, folded by a started `ProjectionEngine` of the built-in projections,
// and only then asked about. Positions are predicted while the lines are written (the importer
// appends a file in order, gaplessly) and checked against the ledger's head after the import.



/// Times as the tests write them: RFC 3339 text in, microseconds and CST text out.
enum Time {
    static func micros(_ text: String) -> Int64 {
        guard case .success(let time) = RFC3339.parse(text) else { preconditionFailure("bad test time \(text)") }
        return time.micros
    }

    /// The form `why` answers in: RFC 3339, China Standard Time, seconds.
    static func cst(_ text: String) -> String { CST.format(micros(text)) }

    static func plus(_ text: String, seconds: Int64) -> String {
        RFC3339.formatCST(micros: micros(text) + seconds * 1_000_000)
    }

    static func date(_ text: String) -> CalendarDate {
        guard case .success(let date) = CalendarDate.parse(text) else { preconditionFailure("bad test date \(text)") }
        return date
    }
}

/// The recorded-time clock of the ledger under test: set by the test, so `--known-at` and
/// `projection_lag` are about times the test chose, never the wall clock. The first reading
/// after `set` is the time set; each reading moves the clock one microsecond on.
final class ManualClock: Sendable {
    private let now: Mutex<Int64>

    init(_ start: String = "2025-02-01T09:00:00+08:00") { now = Mutex(Time.micros(start)) }

    func set(_ text: String) { now.withLock { $0 = Time.micros(text) } }

    var micros: @Sendable () -> Int64 {
        { [self] in now.withLock { now in defer { now += 1 }; return now } }
    }
}

// MARK: The cast

/// The parties of the scenarios: a Beijing buyer whose finance system is `beijing-finance`,
/// and a Hangzhou seller. Tax IDs pass the GB 32100 check, amounts add up: nothing is flagged.
enum Cast {
    static let system = "beijing-finance"
    static let otherSystem = "shanghai-finance"
    static let owner = "91110108551385082Q"
    static let buyerName = "北京某某科技（集团）有限公司"
    static let seller = "杭州某某软件有限公司"
    static let sellerTaxId = "91330100799655058B"
    /// Another valid USCC (Huawei): a buyer that is not `beijing-finance`'s owner, or another seller.
    static let otherTaxId = "914403001922038216"
    static let user = "zhang.wei"

    static let key = "24112000000015301234"
    static let otherKey = "24112000000015301235"
    /// A paper invoice: legacy code (0 1100 24 001 04: Beijing, 2024, paper ordinary) and number.
    static let legacyKey = "011002400104-12345678"
}

// MARK: Writing events

/// One JSON Lines file of CloudEvents, written the way upstream systems send them. Every
/// builder returns the ledger position its event will get (`next` starts after the head).
struct EventFile {
    private(set) var lines: [String] = []
    private(set) var next: UInt64

    init(startingAfter head: UInt64) { next = head + 1 }

    var count: Int { lines.count }
    var text: String { lines.map { $0 + "\n" }.joined() }

    @discardableResult
    mutating func event(_ type: String, subject: String, time: String, source: String, data: [String: Any]) -> UInt64 {
        let position = next
        let envelope: [String: Any] = [
            "specversion": "1.0", "id": "e\(position)", "source": source, "type": type, "subject": subject,
            "time": time, "datacontenttype": "application/json", "data": data,
        ]
        let bytes = try! JSONSerialization.data(withJSONObject: envelope, options: [.sortedKeys, .withoutEscapingSlashes])
        lines.append(String(decoding: bytes, as: UTF8.self))
        next += 1
        return position
    }

    // Systems, users, queries

    @discardableResult
    mutating func register(_ system: String = Cast.system, owner: String = Cast.owner, requiresReview: Bool = true,
                           visible: [String] = ["approved"], at time: String = "2024-12-01T09:00:00+08:00") -> UInt64 {
        event("fapiao.system.registered", subject: "system/\(system)", time: time, source: "urn:fapiao:admin:\(system)",
              data: ["system": system, "name": "财务系统 \(system)", "ownerTaxId": owner, "requiresReview": requiresReview, "visibleStatuses": visible])
    }

    @discardableResult
    mutating func maintenanceStarted(_ system: String = Cast.system, at time: String, reason: String = "nightly upgrade") -> UInt64 {
        event("fapiao.system.maintenance_started", subject: "system/\(system)", time: time, source: "urn:fapiao:admin:\(system)",
              data: ["system": system, "reason": reason])
    }

    @discardableResult
    mutating func maintenanceEnded(_ system: String = Cast.system, at time: String) -> UInt64 {
        event("fapiao.system.maintenance_ended", subject: "system/\(system)", time: time, source: "urn:fapiao:admin:\(system)",
              data: ["system": system])
    }

    /// `sellers` nil: all sellers.
    @discardableResult
    mutating func granted(_ user: String = Cast.user, sellers: [String]? = nil, at time: String = "2024-12-01T09:05:00+08:00", system: String = Cast.system) -> UInt64 {
        access("fapiao.access.granted", user, sellers, time, system)
    }

    @discardableResult
    mutating func revoked(_ user: String = Cast.user, sellers: [String]? = nil, at time: String, system: String = Cast.system) -> UInt64 {
        access("fapiao.access.revoked", user, sellers, time, system)
    }

    private mutating func access(_ type: String, _ user: String, _ sellers: [String]?, _ time: String, _ system: String) -> UInt64 {
        let scope: [String: Any] = sellers.map { ["sellerTaxIds": $0] } ?? ["all": true]
        return event(type, subject: "system/\(system)/user/\(user)", time: time, source: "urn:fapiao:access:\(system)",
                     data: ["system": system, "user": user, "scope": scope])
    }

    /// A recorded search: `criteria` in the contract's shape (`issuedFrom`, `buyerName`, ...).
    @discardableResult
    mutating func query(_ user: String = Cast.user, at time: String, criteria: [String: Any] = [:], resultCount: Int = 0, system: String = Cast.system) -> UInt64 {
        event("fapiao.query.executed", subject: "system/\(system)/user/\(user)", time: time, source: "urn:fapiao:querylog:\(system)",
              data: ["system": system, "user": user, "criteria": criteria, "resultCount": resultCount])
    }

    // The issuer

    /// 520.75 at 6%: tax 31.245 rounds half-up to 31.25.
    @discardableResult
    mutating func issue(_ key: String = Cast.key, at time: String, buyerName: String = Cast.buyerName, buyerTaxId: String? = Cast.owner,
                        seller: String = Cast.seller, sellerTaxId: String = Cast.sellerTaxId) -> UInt64 {
        let parts = key.split(separator: "-").map(String.init)
        var buyer: [String: Any] = ["name": buyerName]
        if let buyerTaxId { buyer["taxId"] = buyerTaxId }
        let data: [String: Any] = [
            "number": parts.last!, "code": parts.count == 2 ? parts[0] : NSNull(), "kind": parts.count == 2 ? "vat_ordinary" : "digital_ordinary",
            "issuedAt": time, "seller": ["name": seller, "taxId": sellerTaxId], "buyer": buyer,
            "lines": [["name": "*信息技术服务*软件维护费", "quantity": "1", "unitPrice": "520.75", "amount": "520.75", "taxRate": "0.06", "tax": "31.25"]],
            "totalAmount": "520.75", "totalTax": "31.25", "totalWithTax": "552.00",
        ]
        return event("fapiao.invoice.issued", subject: key, time: time, source: "urn:fapiao:issuer:beijing-etax", data: data)
    }

    @discardableResult
    mutating func issueFailed(_ key: String = Cast.key, at time: String, reason: String = "tax platform timeout") -> UInt64 {
        event("fapiao.invoice.issue_failed", subject: key, time: time, source: "urn:fapiao:issuer:beijing-etax", data: ["reason": reason])
    }

    @discardableResult
    mutating func voided(_ key: String, at time: String, reason: String = "wrong amount", by: String = "wang.fang") -> UInt64 {
        event("fapiao.invoice.voided", subject: key, time: time, source: "urn:fapiao:issuer:beijing-etax", data: ["reason": reason, "by": by])
    }

    @discardableResult
    mutating func redLetterRequested(_ key: String = Cast.key, form: String, at time: String) -> UInt64 {
        event("fapiao.invoice.red_letter_requested", subject: key, time: time, source: "urn:fapiao:issuer:beijing-etax",
              data: ["confirmationId": form, "requestedBy": "seller", "reason": "sales return"])
    }

    @discardableResult
    mutating func redLetterConfirmed(_ key: String = Cast.key, form: String, at time: String) -> UInt64 {
        event("fapiao.invoice.red_letter_confirmed", subject: key, time: time, source: "urn:fapiao:issuer:beijing-etax",
              data: ["confirmationId": form])
    }

    @discardableResult
    mutating func redLetterIssued(_ key: String = Cast.key, red: String, form: String, at time: String) -> UInt64 {
        event("fapiao.invoice.red_letter_issued", subject: key, time: time, source: "urn:fapiao:issuer:beijing-etax",
              data: ["redInvoiceNumber": red, "totalAmount": "-520.75", "totalTax": "-31.25", "confirmationId": form])
    }

    @discardableResult
    mutating func verified(_ result: String, at time: String, key: String = Cast.key) -> UInt64 {
        event("fapiao.verification.checked", subject: key, time: time, source: "urn:fapiao:verify:chinatax",
              data: ["provider": "inv-veri.chinatax.gov.cn", "result": result])
    }

    // Delivery, receipt, review

    @discardableResult
    mutating func attempted(_ key: String = Cast.key, attempt: Int = 1, at time: String, system: String = Cast.system) -> UInt64 {
        event("fapiao.delivery.attempted", subject: key, time: time, source: "urn:fapiao:sync:\(system)", data: ["system": system, "attempt": attempt])
    }

    @discardableResult
    mutating func failed(_ key: String = Cast.key, attempt: Int = 1, reason: String, at time: String, system: String = Cast.system) -> UInt64 {
        event("fapiao.delivery.failed", subject: key, time: time, source: "urn:fapiao:sync:\(system)",
              data: ["system": system, "attempt": attempt, "reason": reason, "detail": "reported by the sync job"])
    }

    @discardableResult
    mutating func succeeded(_ key: String = Cast.key, attempt: Int = 1, at time: String, system: String = Cast.system) -> UInt64 {
        event("fapiao.delivery.succeeded", subject: key, time: time, source: "urn:fapiao:sync:\(system)", data: ["system": system, "attempt": attempt])
    }

    @discardableResult
    mutating func accepted(_ key: String = Cast.key, at time: String, system: String = Cast.system) -> UInt64 {
        event("fapiao.receipt.accepted", subject: key, time: time, source: "urn:fapiao:finance:\(system)", data: ["system": system])
    }

    @discardableResult
    mutating func rejected(_ key: String = Cast.key, rule: String, at time: String, system: String = Cast.system) -> UInt64 {
        event("fapiao.receipt.rejected", subject: key, time: time, source: "urn:fapiao:finance:\(system)",
              data: ["system": system, "rule": rule, "detail": "import rule \(rule)"])
    }

    @discardableResult
    mutating func approved(_ key: String = Cast.key, at time: String, system: String = Cast.system) -> UInt64 {
        event("fapiao.review.approved", subject: key, time: time, source: "urn:fapiao:finance:\(system)", data: ["system": system, "by": "li.na"])
    }

    @discardableResult
    mutating func reviewRejected(_ key: String = Cast.key, reason: String, at time: String, system: String = Cast.system) -> UInt64 {
        event("fapiao.review.rejected", subject: key, time: time, source: "urn:fapiao:finance:\(system)",
              data: ["system": system, "by": "li.na", "reason": reason])
    }

    /// Attempt, success, receipt and approval, one minute apart from `start`: the invoice
    /// shows in an approved-only view. Returns the four positions.
    @discardableResult
    mutating func deliverAndApprove(_ key: String = Cast.key, from start: String, system: String = Cast.system) -> [UInt64] {
        [attempted(key, at: start, system: system), succeeded(key, at: Time.plus(start, seconds: 60), system: system),
         accepted(key, at: Time.plus(start, seconds: 120), system: system), approved(key, at: Time.plus(start, seconds: 180), system: system)]
    }
}

// MARK: The ledger under test

/// A ledger in its own directory with a started async engine of the built-in projections.
final class Scenario {
    let directory: String
    let ledger: Ledger
    let engine: ProjectionEngine
    let clock: ManualClock

    init(directory: String, ledger: Ledger, engine: ProjectionEngine, clock: ManualClock) {
        self.directory = directory
        self.ledger = ledger
        self.engine = engine
        self.clock = clock
    }

    var forensics: Forensics { Forensics(ledger: ledger, projections: engine) }

    /// A new file whose events follow the ledger's head.
    func file() throws -> EventFile { EventFile(startingAfter: try ledger.headPosition()) }

    /// Imports `file` as a user does, recorded at `recordedAt` when given, and (unless told not
    /// to) waits until every projection has applied it. Fails unless every line became exactly
    /// the position predicted for it (nothing flagged, nothing already present).
    func load(_ file: EventFile, recordedAt: String? = nil, waitForProjections: Bool = true) async throws {
        if let recordedAt { clock.set(recordedAt) }
        let head = try ledger.headPosition()
        let path = directory + "/events-\(UUID().uuidString).jsonl"
        try Data(file.text.utf8).write(to: URL(fileURLWithPath: path))
        let summary: ImportSummary
        do {
            summary = try await Importer(ledger: ledger).importFile(atPath: path)
        } catch {
            throw TestFailure("the import was refused: \(error)\n\(file.text)")
        }
        try #require(summary.new == file.count && summary.flagged == 0, "\(summary)")
        try #require(try ledger.headPosition() == head + UInt64(file.count))
        try #require(try ledger.headPosition() == file.next - 1)
        if waitForProjections { try await waitUntilCaughtUp() }
    }

    func waitUntilCaughtUp() async throws {
        let head = try ledger.headPosition()
        for projection in engine.projections {
            try await engine.waitForCheckpoint(projection.name, atLeast: head, timeoutSeconds: 30)
        }
    }

    func why(_ key: String = Cast.key, system: String = Cast.system, user: String? = nil, cutoff: Cutoff = Cutoff(),
             criteria: QueryCriteria? = nil) throws -> WhyAnswer {
        try forensics.why(WhyQuestion(typedKey: key, system: system, user: user, cutoff: cutoff, criteria: criteria))
    }
}

/// Opens a ledger with a started engine, runs `body`, stops the engine, closes the ledger and
/// waits until its LMDB environment is really gone.
func withScenario<T>(_ body: (Scenario) async throws -> T) async throws -> T {
    let directory = TemporaryDirectory()
    let clock = ManualClock()
    var ledger: Ledger? = try Ledger.open(at: directory.ledgerPath, clock: clock.micros)
    weak let environment = ledger?.environment
    let outcome: Result<T, any Error>
    do {
        let engine = try ProjectionEngine(ledger: ledger!, projections: BuiltInProjections.all, mode: .async)
        try await engine.start()
        defer { engine.stop() }
        outcome = .success(try await body(Scenario(directory: directory.path, ledger: ledger!, engine: engine, clock: clock)))
    } catch {
        outcome = .failure(error)
    }
    ledger?.close()
    ledger = nil
    var waits = 0
    while environment != nil && waits < 10_000 {
        try await Task.sleep(for: .milliseconds(1))
        waits += 1
    }
    guard environment == nil else { throw TestFailure("the ledger's environment is still open after close()") }
    return try outcome.get()
}

// MARK: Reading answers

extension WhyAnswer {
    var codes: [CauseCode] { causes.map(\.code) }

    func cause(_ code: CauseCode) -> Cause? { causes.first { $0.code == code } }
}
