import FapiaoDomain
import Foundation
import Testing
@testable import Ingestion
@testable import Ledger

extension ImportSuite {
    /// `(source, id)` is the idempotency key: importing a file again records nothing new.
    @Suite struct IdempotencyTests {
        static func sampleLines(_ count: Int) -> [String] {
            (1...count).map { Line.delivery(id: "evt-\($0)", subject: "2411200000001530" + String(1000 + $0 % 7)) }
        }

        @Test(arguments: [1, 17, Importer.requestEventsMax + 1])
        func reimportRecordsNothingNew(count: Int) async throws {
            let dir = TemporaryDirectory()
            let path = try dir.file("events.jsonl", Line.file(Self.sampleLines(count)))
            try await withLedger(at: dir.ledgerPath) { ledger in
                let first = try await importExpectingSuccess(path, into: ledger)
                #expect(first.events == count)
                #expect(first.new == count)
                #expect(first.alreadyPresent == 0)
                #expect(first.firstPosition == 1)
                #expect(first.lastPosition == UInt64(count))
                let head = try ledger.headPosition()
                #expect(head == UInt64(count))

                let second = try await importExpectingSuccess(path, into: ledger)
                #expect(second.events == count)
                #expect(second.new == 0)
                #expect(second.alreadyPresent == count)
                #expect(second.firstPosition == nil)
                #expect(second.lastPosition == nil)
                #expect(try ledger.headPosition() == head)
                #expect(try ledger.rejectionCount() == 0)
            }
        }

        /// A file that overlaps what the ledger has: only the new part is recorded.
        @Test func overlappingFileRecordsOnlyTheNewEvents() async throws {
            let dir = TemporaryDirectory()
            let lines = Self.sampleLines(30)
            let first = try dir.file("first.jsonl", Line.file(Array(lines[0..<20])))
            let second = try dir.file("second.jsonl", Line.file(Array(lines[10..<30])))
            try await withLedger(at: dir.ledgerPath) { ledger in
                _ = try await importExpectingSuccess(first, into: ledger)
                let summary = try await importExpectingSuccess(second, into: ledger)
                #expect(summary.new == 10)
                #expect(summary.alreadyPresent == 10)
                #expect(summary.firstPosition == 21)
                #expect(summary.lastPosition == 30)
                #expect(try allRecords(ledger).map(\.id) == (1...30).map { "evt-\($0)" })
            }
        }

        /// The same event twice in one file (a sender's retry) is recorded once.
        @Test(arguments: [1, Importer.requestEventsMax + 5])
        func sameEventTwiceInOneFileIsRecordedOnce(distance: Int) async throws {
            let dir = TemporaryDirectory()
            let repeated = Line.delivery(id: "retry")
            let between = (0..<max(distance - 1, 0)).map { Line.delivery(id: "between-\($0)") }
            let path = try dir.file("events.jsonl", Line.file([repeated] + between + [repeated]))
            try await withLedger(at: dir.ledgerPath) { ledger in
                let summary = try await importExpectingSuccess(path, into: ledger)
                #expect(summary.events == between.count + 2)
                #expect(summary.new == between.count + 1)
                #expect(summary.new + summary.alreadyPresent == summary.events)
                let records = try allRecords(ledger)
                #expect(records.count == between.count + 1)
                #expect(records.filter { $0.id == "retry" }.count == 1)
            }
        }

        /// Whitespace outside `data` is not content; inside `data` it is (stored bytes differ).
        @Test func reformattedEnvelopeIsTheSameEventButReformattedDataIsNot() async throws {
            let dir = TemporaryDirectory()
            let original = Line.delivery(id: "fmt")
            let spacedEnvelope = original.replacingOccurrences(of: #","source":"#, with: #" ,  "source" : "#)
            let spacedData = original.replacingOccurrences(of: #""attempt":1"#, with: #""attempt": 1"#)
            let first = try dir.file("first.jsonl", Line.file([original]))
            let second = try dir.file("second.jsonl", Line.file([spacedEnvelope]))
            let third = try dir.file("third.jsonl", Line.file([spacedData]))
            try await withLedger(at: dir.ledgerPath) { ledger in
                _ = try await importExpectingSuccess(first, into: ledger)
                let again = try await importExpectingSuccess(second, into: ledger)
                #expect(again.alreadyPresent == 1)
                let refusal = try await expectRefusedWhole(third, into: ledger)
                #expect(refusal.problems.first?.description.contains("position 1") == true)
            }
        }
    }
}
