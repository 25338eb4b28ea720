import FapiaoDomain
import Foundation
import Testing
@testable import Ingestion
@testable import Ledger

extension ImportSuite {
    /// What goes in comes out: the ledger stores `data` byte for byte as the line carried it,
    /// and its CloudEvents export splices those same bytes back.
    @Suite struct RoundTripTests {
        @Test func everyTypeHasOddData() {
            #expect(Set(OddData.byType.map(\.0)) == Set(EventType.allCases))
        }

        @Test(arguments: OddData.byType)
        func dataIsKeptByteForByte(type: EventType, data: String) async throws {
            let dir = TemporaryDirectory()
            let line = Line.make(type: type, data: data, id: "rt-\(type.rawValue)")
            let path = try dir.file("events.jsonl", line + "\n")
            try await withLedger(at: dir.ledgerPath) { ledger in
                let summary = try await importExpectingSuccess(path, into: ledger)
                #expect(summary.events == 1)
                #expect(summary.new == 1)
                #expect(summary.flagged == 0)

                let records = try allRecords(ledger)
                try #require(records.count == 1)
                let record = records[0]
                let sent = Array(data.utf8)
                #expect(record.data == sent, "stored data differs from the line's: \(String(decoding: record.data, as: UTF8.self))")
                #expect(record.type == type.rawValue)
                #expect(record.stream == Line.subject(for: type))
                #expect(record.source == Line.source)
                #expect(record.id == "rt-\(type.rawValue)")
                #expect(record.time == "2024-12-31T17:00:05+08:00")
                #expect(record.dataContentType == "application/json")

                let withHash = try ledger.recordsWithHashes(from: 1, limit: 1)
                let exported = CloudEventRendering.jsonLine(withHash[0].record, hash: withHash[0].hash)
                // Valid JSON to a parser that is not ours...
                let object = try JSONSerialization.jsonObject(with: Data(exported)) as? [String: Any]
                #expect(object?["type"] as? String == type.rawValue)
                #expect(object?["ledgerposition"] as? Int == 1)
                // ...and its `data` member is the very bytes that were sent.
                let root = try JSONParser.parse(exported)
                let dataNode = try #require(root.member("data"))
                #expect(Array(exported[dataNode.range]) == sent)
                // The export is itself importable: the same event, with extension attributes.
                let reparsed = try CloudEventParser.parse(line: exported, lineNumber: 1).get()
                #expect(reparsed.data == sent)
            }
        }

        /// The export of a whole import is JSON Lines a second ledger accepts, keeping every byte.
        @Test func exportImportsIntoAnotherLedgerUnchanged() async throws {
            let dir = TemporaryDirectory()
            let lines = OddData.byType.enumerated().map { index, pair in Line.make(type: pair.0, data: pair.1, id: "rt-\(index)") }
            let path = try dir.file("events.jsonl", Line.file(lines))
            let exported = try await withLedger(at: dir.ledgerPath) { ledger in
                _ = try await importExpectingSuccess(path, into: ledger)
                return try ledger.recordsWithHashes(from: 1, limit: 100).map { CloudEventRendering.jsonLine($0.record, hash: $0.hash) }
            }
            #expect(exported.count == lines.count)
            let exportPath = try dir.file("export.jsonl", bytes: Array(exported.joined(separator: [0x0A])) + [0x0A])
            try await withLedger(at: dir.path + "/second") { second in
                let summary = try await importExpectingSuccess(exportPath, into: second)
                #expect(summary.new == lines.count)
                let records = try allRecords(second)
                #expect(records.map(\.data) == OddData.byType.map { Array($0.1.utf8) })
            }
        }
    }
}
