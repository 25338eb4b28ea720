@_exported import TestSupport
import FapiaoDomain
import Foundation
import Testing
@testable import Ingestion
@testable import Ledger

/// Every import test, one at a time: the importer spools to the process's temporary
/// directory, and "no spool file left behind" can only be checked when no other import of
/// this process is running.
@Suite(.serialized) enum ImportSuite {}



/// Opens a ledger, runs `body`, closes it and waits until it is released (`Ledger.using`).
func withLedger<T>(at path: String, _ body: (Ledger) async throws -> T) async throws -> T {
    try await Ledger.using(at: path, body)
}

/// The import's outcome, success or its typed error, for `#expect`s on either.
func importing(_ path: String, into ledger: Ledger) async -> Result<ImportSummary, ImportError> {
    do {
        return .success(try await Importer(ledger: ledger).importFile(atPath: path))
    } catch {
        return .failure(error)
    }
}

/// The summary of an import that must succeed.
func importExpectingSuccess(_ path: String, into ledger: Ledger, sourceLocation: SourceLocation = #_sourceLocation) async throws -> ImportSummary {
    switch await importing(path, into: ledger) {
    case .success(let summary): return summary
    case .failure(let error):
        if case let .refused(refusal) = error {
            throw TestFailure("refused: \(refusal.problems.map(\.description).joined(separator: "\n"))")
        }
        throw TestFailure("import failed: \(error)")
    }
}

/// The refusal of an import that must be refused.
func importExpectingRefusal(_ path: String, into ledger: Ledger) async throws -> ImportRefusal {
    switch await importing(path, into: ledger) {
    case .success(let summary): throw TestFailure("expected a refusal, the import recorded \(summary.new) new event(s)")
    case .failure(.refused(let refusal)): return refusal
    case .failure(let error): throw TestFailure("expected a refusal, got \(error)")
    }
}

/// The importer's spool files in the process's temporary directory.
func spoolFiles() -> Set<String> {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory())) ?? []
    return Set(names.filter { $0.hasPrefix("fapiao-import-") && $0.hasSuffix(".spool") })
}

/// Every record in the ledger, oldest first.
func allRecords(_ ledger: Ledger) throws -> [Record] {
    try ledger.records(from: 1, limit: ledger.options.readEventsMax)
}

// MARK: Lines

/// CloudEvents JSON Lines as upstream systems send them.
enum Line {
    static let source = "urn:fapiao:sync:beijing-finance"
    static let invoiceKey = "24112000000015301234"

    static func subject(for type: EventType) -> String {
        switch type.streamKind {
        case .invoice: invoiceKey
        case .system: "system/beijing-finance"
        case .user: "system/beijing-finance/user/zhang.wei"
        }
    }

    /// One line (no newline); `data` is spliced in as given.
    static func make(
        type: EventType, data: String, id: String = "evt-1", source: String = source, subject: String? = nil,
        time: String = "2024-12-31T17:00:05+08:00"
    ) -> String {
        #"{"specversion":"1.0","id":"\#(id)","source":"\#(source)","type":"\#(type.rawValue)","subject":"\#(subject ?? Self.subject(for: type))","time":"\#(time)","datacontenttype":"application/json","data":\#(data)}"#
    }

    /// A small valid event whose content depends on `attempt`, so two attempts with one id conflict.
    static func delivery(id: String, attempt: Int = 1, subject: String = invoiceKey) -> String {
        make(type: .deliveryAttempted, data: #"{"system":"beijing-finance","attempt":\#(attempt)}"#, id: id, subject: subject)
    }

    /// An issued invoice (one line, 520.75 at 6%), with the buyer tax ID and line tax given.
    static func issued(
        id: String = "iss-1", key: String = invoiceKey, buyerTaxId: String = "91330100799655058B",
        lineTax: String = "31.25", totalTax: String = "31.25", totalWithTax: String = "552.00"
    ) -> String {
        let data = #"{"number":"\#(key)","code":null,"kind":"digital_ordinary","issuedAt":"2024-12-31T16:59:26+08:00","seller":{"name":"北京云栈科技有限公司","taxId":"91110108551385082Q"},"buyer":{"name":"杭州青禾贸易有限公司","taxId":"\#(buyerTaxId)"},"lines":[{"name":"*信息技术服务*软件维护费","quantity":"1","unitPrice":"520.75","amount":"520.75","taxRate":"0.06","tax":"\#(lineTax)"}],"totalAmount":"520.75","totalTax":"\#(totalTax)","totalWithTax":"\#(totalWithTax)"}"#
        return make(type: .invoiceIssued, data: data, id: id, source: "urn:fapiao:issuer:beijing-etax", subject: key, time: "2024-12-31T16:59:26+08:00")
    }

    /// Lines joined with `\n`, with a final newline.
    static func file(_ lines: [String]) -> String { lines.joined(separator: "\n") + "\n" }
}

/// A `data` object for every type of the contract (and the ledger's own flag), written the
/// way real senders write: odd whitespace, keys out of contract order, non-ASCII text, and
/// escapes (`\u00e9`, `\/`, `\"`, `\t`) that a re-encoding would change. The ledger must keep
/// every byte.
enum OddData {
    static let byType: [(EventType, String)] = [
        (.invoiceIssued, #"{ "totalWithTax" : "764.00","kind":"digital_special", "number":"24112000000015301234","code":null,"issuedAt":"2024-12-31T16:59:26+08:00","seller":{"taxId":"91110108551385082Q","name":"北京云栈科技有限公司"},"buyer":{"name":"Caf\u00e9 \/ 杭州青禾贸易有限公司","taxId":"91330100799655058B"},"lines":[ {"name":"*信息技术服务*技术服务费","quantity":"1","unitPrice":"520.75","amount":"520.75","taxRate":"0.06","tax":"31.25"},{"name":"*咨询服务*咨询费","spec":"月度","unit":"次","quantity":"2","unitPrice":"100","amount":"200.00","taxRate":"6%","tax":"12.00"}],"totalAmount":"720.75","totalTax":"43.25","remarks":"合同 HT-2024-118\t\"加急\""\#t}"#),
        (.invoiceIssueFailed, #"{"reason" :\#t"tax bureau platform unavailable \u2014 503 \/ retry"}"#),
        (.invoiceVoided, #"{"by":"li.na","reason":"wrong buyer 买方错误 \ud83d\ude00"}"#),
        (.redLetterRequested, #"{ "reason":"returned goods","requestedBy":"buyer","confirmationId":"HZ-2025-0001" }"#),
        (.redLetterConfirmed, #"{"confirmationId":"HZ\/2025\/0001"}"#),
        (.redLetterIssued, #"{"totalTax":"-43.25","totalAmount":"-720.75","redInvoiceNumber":"25112000000000000042"}"#),
        (.deliveryAttempted, #"{"attempt":1,   "system":"beijing-finance"}"#),
        (.deliveryFailed, #"{"system":"beijing-finance","attempt":2,"reason":"auth_expired","detail":"login expired: \"session\" \u00e9chou\u00e9e"}"#),
        (.deliverySucceeded, #"{"system":"beijing-finance","attempt":3,"extra":{"nested":[1,2.50,true,null]}}"#),
        (.receiptAccepted, #"{"system":"beijing-finance"}"#),
        (.receiptRejected, #"{"system":"beijing-finance","rule":"vendor_blacklist","detail":""}"#),
        (.reviewApproved, #"{"by":"王芳","system":"beijing-finance"}"#),
        (.reviewRejected, #"{"system":"beijing-finance","by":"wang.fang","reason":"no contract\ttab"}"#),
        (.verificationChecked, #"{"provider":"chinatax","result":"not_found","detail":null}"#),
        (.systemRegistered, #"{"system":"\u0062eijing-finance","name":"北京财务系统","ownerTaxId":"91330100799655058B","requiresReview":true,"visibleStatuses":["approved"]}"#),
        (.maintenanceStarted, #"{"system":"beijing-finance","reason":"upgrade \/ 升级"}"#),
        (.maintenanceEnded, #"{"system":"beijing-finance"}"#),
        (.accessGranted, #"{"system":"beijing-finance","user":"zhang.wei","scope":{"sellerTaxIds":["91110108551385082Q"]}}"#),
        (.accessRevoked, #"{"scope":{ "all" : true },"user":"zhang.wei","system":"beijing-finance"}"#),
        (.queryExecuted, #"{"system":"beijing-finance","user":"zhang.wei","criteria":{"number":"２４１１２０００００００１５３０１２３４","issuedFrom":"2024-12-01","issuedTo":"2024-12-31","buyerName":"杭州青禾贸易有限公司 ","statuses":["approved","pending_review"]},"resultCount":0}"#),
        (.ledgerFlagged, #"{"event":{"source":"urn:fapiao:issuer:beijing-etax","id":"iss-1","type":"fapiao.invoice.issued"},"rulesVersion":"2024-digital","findings":[{"rule":"buyer_tax_id_invalid","expected":"a valid USCC","actual":"91320621MA1MRHG207"}]}"#),
    ]
}
