import FapiaoDomain
import Foundation
import Testing
@testable import Ingestion
@testable import Ledger

extension ImportSuite {
    /// How a file is cut into lines: blank lines, missing final newline, CRLF, huge lines.
    @Suite struct LineFramingTests {
        static let events = [Line.delivery(id: "a"), Line.delivery(id: "b"), Line.delivery(id: "c")]

        /// (what, file bytes, lines the summary counts)
        static let framings: [(String, String, Int)] = [
            ("plain", events.joined(separator: "\n") + "\n", 3),
            ("no final newline", events.joined(separator: "\n"), 3),
            ("CRLF", events.joined(separator: "\r\n") + "\r\n", 3),
            ("CRLF, no final newline", events.joined(separator: "\r\n"), 3),
            ("blank lines", "\n" + events.joined(separator: "\n\n") + "\n\n", 7),
            ("whitespace-only lines", " \t\n" + events.joined(separator: "\n   \r\n") + "\n\t\n", 7),
            ("leading and trailing spaces on a line", events.map { " \t" + $0 + "  " }.joined(separator: "\n"), 3),
        ]

        @Test(arguments: framings)
        func framingIsAccepted(what: String, text: String, lineCount: Int) async throws {
            let dir = TemporaryDirectory()
            let path = try dir.file("events.jsonl", text)
            try await withLedger(at: dir.ledgerPath) { ledger in
                let summary = try await importExpectingSuccess(path, into: ledger)
                #expect(summary.events == 3, "\(what)")
                #expect(summary.new == 3, "\(what)")
                #expect(summary.lines == lineCount, "\(what)")
                let records = try allRecords(ledger)
                #expect(records.map(\.id) == ["a", "b", "c"])
                #expect(records.allSatisfy { $0.data == Array(#"{"system":"beijing-finance","attempt":1}"#.utf8) }, "no \\r or blank kept in data: \(what)")
            }
        }

        /// Line numbers in problems count blank lines too, as an editor does.
        @Test func lineNumbersCountBlankLines() async throws {
            let dir = TemporaryDirectory()
            let path = try dir.file("events.jsonl", "\r\n" + Self.events[0] + "\r\n\r\n{oops}\r\n" + Self.events[1])
            try await withLedger(at: dir.ledgerPath) { ledger in
                let refusal = try await expectRefusedWhole(path, into: ledger)
                #expect(refusal.problems.map(\.lineNumber) == [4])
                #expect(refusal.lines == 5)
            }
        }

        @Test(arguments: ["", "\n", "\n\n\r\n  \n"])
        func fileWithoutEventsImportsNothing(text: String) async throws {
            let dir = TemporaryDirectory()
            let path = try dir.file("events.jsonl", text)
            try await withLedger(at: dir.ledgerPath) { ledger in
                let summary = try await importExpectingSuccess(path, into: ledger)
                #expect(summary.events == 0)
                #expect(summary.new == 0)
                #expect(summary.alreadyPresent == 0)
                #expect(summary.firstPosition == nil)
                #expect(try ledger.headPosition() == 0)
            }
        }

        /// Over the 1 MiB line limit: refused with its line number, and the lines after it
        /// keep their numbers. Beyond the reader's buffer (4 MiB) the line is not even loaded.
        @Test(arguments: [CloudEventParser.lineBytesMax + 1, CloudEventParser.lineBytesMax * 2, 4 << 20, (4 << 20) + 1, 9 << 20])
        func overlongLineIsRefusedWithItsNumber(bytes: Int) async throws {
            let dir = TemporaryDirectory()
            let prefix = #"{"specversion":"1.0","id":"big","source":"s","type":"fapiao.invoice.issue_failed","subject":"24112000000015301234","time":"2024-12-31T17:00:05+08:00","data":{"reason":""#
            let suffix = #""}}"#
            var file = Array((Self.events[0] + "\n" + Self.events[1] + "\n").utf8)
            file += Array(prefix.utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: bytes - prefix.utf8.count - suffix.utf8.count) + Array(suffix.utf8)
            file += Array(("\n" + Self.events[2] + "\n{bad}\n").utf8)
            let path = try dir.file("events.jsonl", bytes: file)
            try await withLedger(at: dir.ledgerPath) { ledger in
                let refusal = try await expectRefusedWhole(path, into: ledger)
                #expect(refusal.problems.map(\.lineNumber) == [3, 5], "\(refusal.problems)")
                #expect(refusal.problems.first?.description.contains("\(bytes) bytes") == true, "\(refusal.problems)")
                #expect(refusal.lines == 5)
            }
        }

        /// Lines that straddle the reader's chunk boundaries arrive whole.
        @Test func lineSplitAcrossReadChunksIsWhole() async throws {
            let dir = TemporaryDirectory()
            // About 3 MiB of lines of varying length: several straddle the 1 MiB chunk boundaries.
            let lines = (1...12_000).map { Line.delivery(id: "straddle-\($0)-" + String(repeating: "p", count: $0 % 97)) }
            let path = try dir.file("events.jsonl", Line.file(lines))
            try await withLedger(at: dir.ledgerPath) { ledger in
                let summary = try await importExpectingSuccess(path, into: ledger)
                #expect(summary.new == lines.count)
                let last = try ledger.records(from: UInt64(lines.count), limit: 1)
                #expect(last.first?.id == "straddle-12000-" + String(repeating: "p", count: 12_000 % 97))
            }
        }

        @Test func aDirectoryOrMissingFileIsUnreadable() async throws {
            let dir = TemporaryDirectory()
            try await withLedger(at: dir.ledgerPath) { ledger throws in
                for path in [dir.path, dir.path + "/absent.jsonl"] {
                    guard case .failure(.unreadable) = await importing(path, into: ledger) else {
                        Issue.record("\(path) should be unreadable")
                        continue
                    }
                }
                #expect(try ledger.headPosition() == 0)
            }
        }
    }
}
