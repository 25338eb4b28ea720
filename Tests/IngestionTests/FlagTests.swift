import FapiaoDomain
import Foundation
import Testing
@testable import Ingestion
@testable import Ledger

extension ImportSuite {
    /// Invalid data that really happened upstream is recorded, and flagged, not refused.
    @Suite struct FlagTests {
        static let invalidUSCC = "91320621MA1MRHG207"

        /// (what is wrong, the invoice line, the rule its flag must name)
        static let flaggedInvoices: [(String, String, RuleCode)] = [
            ("buyer USCC fails its check", Line.issued(buyerTaxId: invalidUSCC), .buyerTaxIdInvalid),
            ("line tax off by 0.10, beyond the 0.06 tolerance",
             Line.issued(lineTax: "31.35", totalTax: "31.35", totalWithTax: "552.10"), .lineTaxMismatch),
            ("total tax is not the sum of the lines' tax", Line.issued(totalTax: "35.00", totalWithTax: "555.75"), .totalTaxMismatch),
            ("total with tax is not amount plus tax", Line.issued(totalWithTax: "562.00"), .totalWithTaxMismatch),
        ]

        @Test func theInvalidUSCCReallyIsInvalid() {
            #expect(!TaxpayerID.check(Self.invalidUSCC).isAcceptable)
        }

        /// `preceding` puts the invoice last in an append request, where its flag must not be
        /// split off into the next one.
        @Test(arguments: flaggedInvoices, [0, Importer.requestEventsMax - 1])
        func ruleBreakingInvoiceIsRecordedAndFlagged(invoice: (String, String, RuleCode), preceding: Int) async throws {
            let (what, line, rule) = invoice
            let dir = TemporaryDirectory()
            let before = (0..<preceding).map { Line.delivery(id: "before-\($0)", subject: "24112000000099990001") }
            let after = Line.delivery(id: "after")
            let path = try dir.file("events.jsonl", Line.file(before + [line, after]))
            try await withLedger(at: dir.ledgerPath) { ledger in
                let summary = try await importExpectingSuccess(path, into: ledger)
                #expect(summary.events == preceding + 2, "\(what)")
                #expect(summary.new == preceding + 2, "flags are not counted as the file's events: \(what)")
                #expect(summary.flagged == 1, "\(what)")
                #expect(summary.flaggedByRule[rule.rawValue] == 1, "\(what): \(summary.flaggedByRule)")
                #expect(try ledger.headPosition() == UInt64(preceding + 3))

                let stream = try ledger.stream(Line.invoiceKey, limit: 100)
                try #require(stream.count == 3, "\(what): \(stream.map(\.type))")
                let (issued, flag) = (stream[0], stream[1])
                #expect(issued.type == EventType.invoiceIssued.rawValue)
                #expect(issued.data == Array(Self.data(of: line).utf8), "the invoice is recorded as sent")
                #expect(flag.type == EventType.ledgerFlagged.rawValue)
                #expect(flag.position == issued.position + 1, "the flag comes right after the invoice")
                #expect(flag.streamVersion == issued.streamVersion + 1)
                #expect(flag.source == LedgerFlagged.source)
                #expect(stream[2].id == "after")

                guard case .ledgerFlagged(let flagged) = try DomainEvent.decode(type: .ledgerFlagged, dataBytes: flag.data).get() else {
                    Issue.record("the flag's data is not a ledger flag")
                    return
                }
                #expect(flagged.event.id == "iss-1")
                #expect(flagged.event.source == "urn:fapiao:issuer:beijing-etax")
                #expect(flagged.event.type == EventType.invoiceIssued.rawValue)
                #expect(flagged.findings.map(\.rule).contains(rule), "\(what): \(flagged.findings)")
            }
        }

        @Test(arguments: flaggedInvoices)
        func reimportAddsNoSecondFlag(what: String, line: String, rule: RuleCode) async throws {
            let dir = TemporaryDirectory()
            let path = try dir.file("events.jsonl", Line.file([line]))
            try await withLedger(at: dir.ledgerPath) { ledger in
                _ = try await importExpectingSuccess(path, into: ledger)
                #expect(try ledger.headPosition() == 2)
                let again = try await importExpectingSuccess(path, into: ledger)
                #expect(again.new == 0, "\(what)")
                #expect(again.alreadyPresent == 1, "\(what)")
                #expect(try ledger.headPosition() == 2, "\(what): a second flag was appended")
                #expect(try ledger.stream(Line.invoiceKey, limit: 10).filter { $0.type == EventType.ledgerFlagged.rawValue }.count == 1)
            }
        }

        @Test func validInvoiceIsNotFlagged() async throws {
            let dir = TemporaryDirectory()
            let path = try dir.file("events.jsonl", Line.file([Line.issued()]))
            try await withLedger(at: dir.ledgerPath) { ledger in
                let summary = try await importExpectingSuccess(path, into: ledger)
                #expect(summary.flagged == 0)
                #expect(try ledger.headPosition() == 1)
            }
        }

        /// The `data` member of a line as text (the lines here have `data` last).
        static func data(of line: String) -> String {
            let start = line.range(of: #""data":"#)!.upperBound
            return String(line[start...].dropLast())
        }
    }
}
