import FapiaoDomain
import Foundation
import Testing
@testable import Ingestion
@testable import Ledger

/// Imports `path`, which must be refused whole: the head does not move, the summary of what
/// was recorded is nothing, and no spool file is left behind.
func expectRefusedWhole(_ path: String, into ledger: Ledger, sourceLocation: SourceLocation = #_sourceLocation) async throws -> ImportRefusal {
    let headBefore = try ledger.headPosition()
    let spoolsBefore = spoolFiles()
    let refusal = try await importExpectingRefusal(path, into: ledger)
    #expect(try ledger.headPosition() == headBefore, "a refused file moved the head", sourceLocation: sourceLocation)
    #expect(spoolFiles().subtracting(spoolsBefore).isEmpty, "a refused import left its spool file behind", sourceLocation: sourceLocation)
    #expect(try ledger.rejectionCount() == 0, "a refused file reached the ledger", sourceLocation: sourceLocation)
    return refusal
}

extension ImportSuite {
    /// Bad input is refused whole, with the line and attribute of every problem.
    @Suite struct RefusalTests {
        static let good = Line.delivery(id: "good-1")
        static let base = Line.make(type: .deliveryAttempted, data: #"{"system":"beijing-finance","attempt":1}"#, id: "evt-2")

        static func without(_ member: String) -> String {
            let pattern = try! Regex(#""\#(member)":("[^"]*"|\{[^}]*\}),?"#)
            return base.replacing(pattern, with: "").replacingOccurrences(of: ",}", with: "}")
        }

        /// (what is wrong, the line, the attribute its problem names)
        static let badLines: [(String, String, String)] = [
            ("malformed JSON", #"{"specversion":"1.0","id":"evt-2","source":"#, ""),
            ("not an object", #"["specversion","1.0"]"#, ""),
            ("trailing garbage", base + "x", ""),
            ("wrong specversion", base.replacingOccurrences(of: #""specversion":"1.0""#, with: #""specversion":"0.3""#), "specversion"),
            ("unknown type", base.replacingOccurrences(of: "fapiao.delivery.attempted", with: "fapiao.delivery.teleported"), "type"),
            ("missing id", without("id"), "id"),
            ("empty id", base.replacingOccurrences(of: #""id":"evt-2""#, with: #""id":"""#), "id"),
            ("missing source", without("source"), "source"),
            ("missing subject", without("subject"), "subject"),
            ("missing time", without("time"), "time"),
            ("missing data", without("data"), "data"),
            ("data not an object", base.replacingOccurrences(of: #""data":{"system":"beijing-finance","attempt":1}"#, with: #""data":"{}""#), "data"),
            ("missing data.system", Line.make(type: .deliveryAttempted, data: #"{"attempt":1}"#, id: "evt-2"), "data.system"),
            ("attempt as a string", Line.make(type: .deliveryAttempted, data: #"{"system":"beijing-finance","attempt":"1"}"#, id: "evt-2"), "data.attempt"),
            ("amount as a JSON number",
             Line.make(type: .redLetterIssued, data: #"{"redInvoiceNumber":"25112000000000000042","totalAmount":-720.75,"totalTax":"-43.25"}"#, id: "evt-2"),
             "data.totalAmount"),
            ("line amount as a JSON number",
             Line.issued(id: "evt-2").replacingOccurrences(of: #""amount":"520.75""#, with: #""amount":520.75"#), "data.lines[0].amount"),
            ("time without offset", base.replacingOccurrences(of: "2024-12-31T17:00:05+08:00", with: "2024-12-31T17:00:05"), "time"),
            ("time with a space", base.replacingOccurrences(of: "2024-12-31T17:00:05+08:00", with: "2024-12-31 17:00:05+08:00"), "time"),
            ("time on 30 February", base.replacingOccurrences(of: "2024-12-31T17:00:05+08:00", with: "2024-02-30T17:00:05+08:00"), "time"),
            ("subject with spaces", base.replacingOccurrences(of: Line.invoiceKey, with: "2411 2000 0000 1530 1234"), "subject"),
            ("subject of 19 digits", base.replacingOccurrences(of: Line.invoiceKey, with: "2411200000001530123"), "subject"),
            ("subject in full-width digits", base.replacingOccurrences(of: Line.invoiceKey, with: "２４１１２０００００００１５３０１２３４"), "subject"),
            ("system stream for an invoice event", base.replacingOccurrences(of: Line.invoiceKey, with: "system/beijing-finance"), "subject"),
            ("datacontenttype not JSON", base.replacingOccurrences(of: "application/json", with: "text/plain"), "datacontenttype"),
            ("data_base64", base.replacingOccurrences(of: #""data":"#, with: #""data_base64":"e30=","data":"#), "data_base64"),
        ]

        @Test(arguments: badLines)
        func refusedWholeWithLineAndAttribute(what: String, bad: String, attribute: String) async throws {
            let dir = TemporaryDirectory()
            let path = try dir.file("events.jsonl", Line.file([Self.good, bad, Line.delivery(id: "good-3")]))
            try await withLedger(at: dir.ledgerPath) { ledger in
                let refusal = try await expectRefusedWhole(path, into: ledger)
                #expect(refusal.lines == 3)
                #expect(refusal.offendingLines == 1, "\(what): \(refusal.problems)")
                #expect(refusal.problems.allSatisfy { $0.lineNumber == 2 }, "\(what): \(refusal.problems)")
                #expect(refusal.problems.contains { $0.attribute == attribute }, "\(what): \(refusal.problems)")
                #expect(refusal.problems.allSatisfy { $0.description.hasPrefix("line 2") })
            }
        }

        @Test func everyOffendingLineIsReported() async throws {
            let dir = TemporaryDirectory()
            let lines = [Self.good, Self.badLines[0].1, Line.delivery(id: "ok"), Self.without("time"), Self.badLines[4].1]
            let path = try dir.file("events.jsonl", Line.file(lines))
            try await withLedger(at: dir.ledgerPath) { ledger in
                let refusal = try await expectRefusedWhole(path, into: ledger)
                #expect(Set(refusal.problems.map(\.lineNumber)) == [2, 4, 5])
                #expect(refusal.offendingLines == 3)
            }
        }

        /// A line with several mistakes gets one problem per attribute, not just the first.
        @Test func everyProblemOfALineIsReported() async throws {
            let dir = TemporaryDirectory()
            let bad = Line.make(type: .deliveryFailed, data: #"{"attempt":0,"reason":"timeout"}"#, id: "evt-2", time: "yesterday")
                .replacingOccurrences(of: #""specversion":"1.0""#, with: #""specversion":"2.0""#)
            let path = try dir.file("events.jsonl", Line.file([bad]))
            try await withLedger(at: dir.ledgerPath) { ledger in
                let refusal = try await expectRefusedWhole(path, into: ledger)
                #expect(Set(refusal.problems.map(\.attribute)) == ["specversion", "time", "data.system", "data.attempt", "data.reason", "data.detail"])
            }
        }

        @Test func idReusedWithOtherContentInTheFileNamesTheEarlierLine() async throws {
            let dir = TemporaryDirectory()
            let lines = [Line.delivery(id: "a"), Line.delivery(id: "dup", attempt: 1), Line.delivery(id: "b"), Line.delivery(id: "dup", attempt: 2)]
            let path = try dir.file("events.jsonl", Line.file(lines))
            try await withLedger(at: dir.ledgerPath) { ledger in
                let refusal = try await expectRefusedWhole(path, into: ledger)
                try #require(refusal.problems.count == 1)
                let problem = refusal.problems[0]
                #expect(problem.lineNumber == 4)
                #expect(problem.attribute == "id")
                #expect(problem.description.contains("line 2"), "\(problem)")
                #expect(problem.description.contains("\"dup\""), "\(problem)")
            }
        }

        /// The same id from another source is another event: not a clash.
        @Test func sameIdFromAnotherSourceIsAnotherEvent() async throws {
            let dir = TemporaryDirectory()
            let other = Line.make(type: .deliveryAttempted, data: #"{"system":"beijing-finance","attempt":2}"#, id: "dup", source: "urn:fapiao:sync:other")
            let path = try dir.file("events.jsonl", Line.file([Line.delivery(id: "dup"), other]))
            try await withLedger(at: dir.ledgerPath) { ledger in
                let summary = try await importExpectingSuccess(path, into: ledger)
                #expect(summary.new == 2)
            }
        }

        @Test func idReusedWithOtherContentAgainstTheLedgerNamesThePosition() async throws {
            let dir = TemporaryDirectory()
            let first = try dir.file("first.jsonl", Line.file([Line.delivery(id: "a"), Line.delivery(id: "b"), Line.delivery(id: "dup", attempt: 1)]))
            let second = try dir.file("second.jsonl", Line.file([Line.delivery(id: "c"), Line.delivery(id: "dup", attempt: 2)]))
            try await withLedger(at: dir.ledgerPath) { ledger in
                _ = try await importExpectingSuccess(first, into: ledger)
                let refusal = try await expectRefusedWhole(second, into: ledger)
                try #require(refusal.problems.count == 1)
                let problem = refusal.problems[0]
                #expect(problem.lineNumber == 2)
                #expect(problem.attribute == "id")
                #expect(problem.description.contains("position 3"), "\(problem)")
                #expect(try ledger.headPosition() == 3)
                #expect(try ledger.position(source: Line.source, id: "c") == nil)
            }
        }

        /// The clash is found however far into the file it is (the ledger is asked in batches).
        @Test func idClashAgainstTheLedgerBeyondTheFirstLookupBatch() async throws {
            let dir = TemporaryDirectory()
            let first = try dir.file("first.jsonl", Line.file([Line.delivery(id: "dup", attempt: 1)]))
            let lines = (1...2_500).map { Line.delivery(id: "n-\($0)") } + [Line.delivery(id: "dup", attempt: 2)]
            let second = try dir.file("second.jsonl", Line.file(lines))
            try await withLedger(at: dir.ledgerPath) { ledger in
                _ = try await importExpectingSuccess(first, into: ledger)
                let refusal = try await expectRefusedWhole(second, into: ledger)
                #expect(refusal.problems.map(\.lineNumber) == [2_501])
                #expect(refusal.problems.first?.description.contains("position 1") == true)
            }
        }

        @Test func oneBadLineAfterAThousandGoodOnesRecordsNothing() async throws {
            let dir = TemporaryDirectory()
            var lines = (1...1_000).map { Line.delivery(id: "n-\($0)", subject: "2411200000001530" + String(1000 + $0 % 50)) }
            lines.append(Self.badLines[0].1)
            let path = try dir.file("events.jsonl", Line.file(lines))
            try await withLedger(at: dir.ledgerPath) { ledger in
                let refusal = try await expectRefusedWhole(path, into: ledger)
                #expect(refusal.problems.map(\.lineNumber) == [1_001])
                #expect(refusal.lines == 1_001)
                #expect(try ledger.headPosition() == 0)
                #expect(try ledger.position(source: Line.source, id: "n-1") == nil)
            }
        }

        /// The bad line is refused even when it comes after more good lines than one append
        /// request holds: nothing is appended before every line has passed.
        @Test func badLineAfterSeveralRequestsWorthRecordsNothing() async throws {
            let dir = TemporaryDirectory()
            let lines = (1...(Importer.requestEventsMax * 3 + 7)).map { Line.delivery(id: "n-\($0)") } + [Self.without("data")]
            let path = try dir.file("events.jsonl", Line.file(lines))
            try await withLedger(at: dir.ledgerPath) { ledger in
                let refusal = try await expectRefusedWhole(path, into: ledger)
                #expect(refusal.problems.map(\.lineNumber) == [lines.count])
            }
        }

        /// An event the parser accepts but the ledger would not store (a 1,800-line invoice:
        /// the contract allows 2,000 lines, the record is beyond the ledger's `recordBytesMax`)
        /// is refused in validation, before anything is appended: otherwise the requests
        /// before it would be recorded and the file half-imported.
        @Test func eventTooLargeForTheLedgerIsRefusedBeforeAnythingIsAppended() async throws {
            let dir = TemporaryDirectory()
            let huge = Self.largeInvoice(lines: 1_800)
            #expect(huge.utf8.count > LedgerOptions().recordBytesMax, "the record is beyond the ledger's limit")
            #expect(huge.utf8.count < CloudEventParser.lineBytesMax, "the line is within the parser's limit")
            #expect((try? CloudEventParser.parse(line: huge, lineNumber: 1).get()) != nil, "the parser accepts it")
            let lines = (1...(Importer.requestEventsMax * 2)).map { Line.delivery(id: "n-\($0)") } + [huge]
            let path = try dir.file("events.jsonl", Line.file(lines))
            try await withLedger(at: dir.ledgerPath) { ledger in
                let refusal = try await expectRefusedWhole(path, into: ledger)
                #expect(refusal.problems.map(\.lineNumber) == [lines.count])
                #expect(refusal.problems.first?.attribute == "data", "\(refusal.problems)")
            }
        }

        /// The importer's size check predicts exactly the ledger's record size.
        @Test(arguments: [nil, "application/json"])
        func recordSizeMatchesTheLedgersCodec(contentType: String?) {
            let event = NewEvent(
                stream: "system/北京-finance", type: "fapiao.system.maintenance_ended", source: "urn:fapiao:ops", id: "m-1",
                time: "2024-12-31T17:00:05.123+08:00", occurredMicros: 1, dataContentType: contentType,
                data: Array(#"{"system":"北京-finance"}"#.utf8))
            #expect(Importer.recordBytes(of: event) == RecordCodec.encodedSize(of: event))
        }

        /// A valid issued invoice of `lines` lines of 1.00 at 6%.
        static func largeInvoice(lines count: Int) -> String {
            let line = #"{"name":"*信息技术服务*软件维护费","spec":"型号 X-2000 标准版","unit":"套","quantity":"1","unitPrice":"1.00","amount":"1.00","taxRate":"0.06","tax":"0.06"}"#
            let lines = Array(repeating: line, count: count).joined(separator: ",")
            let data = #"{"number":"\#(Line.invoiceKey)","code":null,"kind":"digital_ordinary","issuedAt":"2024-12-31T16:59:26+08:00","seller":{"name":"北京云栈科技有限公司","taxId":"91110108551385082Q"},"buyer":{"name":"杭州青禾贸易有限公司","taxId":"91330100799655058B"},"lines":[\#(lines)],"totalAmount":"\#(count).00","totalTax":"\#(String(format: "%.2f", Double(count) * 0.06))","totalWithTax":"\#(String(format: "%.2f", Double(count) * 1.06))"}"#
            return Line.make(type: .invoiceIssued, data: data, id: "huge", source: "urn:fapiao:issuer:beijing-etax")
        }
    }
}
