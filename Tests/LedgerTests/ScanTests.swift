import Foundation
import Testing
@testable import Ledger

/// `scanHeaders` and `records(at:)`: what a rebuild reads the log through.
@Suite struct ScanTests {
    @Test func scanGivesEachRecordsPositionStreamAndTypeInOrderThroughTheLastAsked() async throws {
        let dir = TemporaryDirectory()
        try await withLedger(at: dir.ledgerPath) { ledger in
            var entries: [AppendEntry] = []
            for i in 1...25 {
                let stream = i % 3 == 0 ? "system/bj" : "2411200000001530\(1000 + i % 4)"
                entries.append(AppendEntry(Fixture.event(stream: stream, id: "e\(i)", type: "fapiao.test.t\(i % 2)")))
            }
            _ = try await ledger.append(entries)
            let records = try ledger.records(from: 1, limit: 100)
            for (from, through, perRead) in [(1, 25, 100_000), (1, 25, 4), (3, 17, 5), (20, 40, 1), (26, 30, 3)] as [(UInt64, UInt64, Int)] {
                var seen: [(UInt64, String, String)] = []
                try ledger.scanHeaders(from: from, through: through, recordsPerRead: perRead) { position, stream, type in
                    seen.append((position, String(decoding: stream, as: UTF8.self), String(decoding: type, as: UTF8.self)))
                }
                let expected = records.filter { $0.position >= from && $0.position <= through }
                #expect(seen.map(\.0) == expected.map(\.position), "from \(from) through \(through), \(perRead) per read")
                #expect(seen.map(\.1) == expected.map(\.stream))
                #expect(seen.map(\.2) == expected.map(\.type))
            }
        }
    }

    /// Records read together share their stream, type, source and content type strings; each
    /// record must still decode as it does alone, whatever it shares with the one before.
    @Test func recordsReadTogetherDecodeAsEachAlone() async throws {
        let dir = TemporaryDirectory()
        try await withLedger(at: dir.ledgerPath) { ledger in
            var entries: [AppendEntry] = []
            for i in 0..<60 {
                var event = Fixture.event(
                    stream: ["24112000000015301234", "system/bj", "24112000000015301235", "system/bjx"][i % 4], id: "s\(i)",
                    source: ["urn:fapiao:a", "urn:fapiao:ab", "urn:fapiao:a", "urn:fapiao:b"][i % 3 + (i % 2)],
                    type: "fapiao.test.t\(i % 5)")
                event.dataContentType = i % 7 == 0 ? nil : (i % 2 == 0 ? "application/json" : "application/cloudevents+json")
                entries.append(AppendEntry(event))
            }
            _ = try await ledger.append(entries)
            let alone = try (1...60).map { try #require(try ledger.record(at: UInt64($0))) }
            #expect(try ledger.records(from: 1, limit: 100) == alone)
            let shuffled: [UInt64] = (1...60).map { UInt64(($0 * 37) % 60 + 1) }
            #expect(try ledger.records(at: shuffled) == shuffled.map { alone[Int($0) - 1] })
        }
    }

    @Test func recordsAtPositionsComeInTheOrderAskedAndAMissingOneIsAnError() async throws {
        let dir = TemporaryDirectory()
        try await withLedger(at: dir.ledgerPath) { ledger in
            _ = try await ledger.append((1...6).map { Fixture.entry(id: "r\($0)") })
            #expect(try ledger.records(at: [5, 2, 6, 2]).map(\.id) == ["r5", "r2", "r6", "r2"])
            #expect(try ledger.records(at: []).isEmpty)
            #expect(throws: LedgerError.self) { try ledger.records(at: [1, 7]) }
        }
    }

    /// `streamIndex`: each stream of a range of the index with its positions, streams in key
    /// order (shorter first when one name begins another), never past the last position asked;
    /// `headers(at:)` reads the same headers `scanHeaders` does.
    @Test func streamIndexGivesEachStreamsPositionsInKeyOrderThroughItsEnd() async throws {
        let dir = TemporaryDirectory()
        let streams = ["2411200000001530", "24112000000015301", "system/bj", "24112000000015301", "011001900111-12345678", "2411200000001530"]
        try await withLedger(at: dir.ledgerPath, options: LedgerOptions(indexMergeEventsMin: 10, indexMergeIdleMilliseconds: 600_000)) { ledger in
            var expected: [String: [UInt64]] = [:]
            for round in 0..<4 {
                var entries: [AppendEntry] = []
                for i in 0..<6 { entries.append(AppendEntry(Fixture.event(stream: streams[(i + round) % 6], id: "x\(round)-\(i)"))) }
                let appended = try await ledger.append(entries)
                for (offset, entry) in entries.enumerated() { expected[entry.event.stream, default: []].append(appended.positions[offset]) }
            }
            // 24 records; the writer merged its tail after 12, and after 24 by now or soon (no
            // merge when idle: a slow machine could take one between two appends).
            let indexed = try ledger.indexedThrough()
            #expect(indexed == 12 || indexed == 24, "indexed through \(indexed)")
            let sorted = expected.keys.sorted { a, b in a.utf8.lexicographicallyPrecedes(b.utf8) }
            for (through, lower, upper) in [(12, nil, nil), (5, nil, nil), (12, "2411200000001530", "system/bj"), (12, "24112000000015301", nil), (12, nil, "0")] as [(UInt64, String?, String?)] {
                var seen: [(String, [UInt64])] = []
                try ledger.streamIndex(from: lower.map { Array($0.utf8) }, before: upper.map { Array($0.utf8) }, through: through) { stream, positions in
                    seen.append((String(decoding: stream, as: UTF8.self), Array(positions)))
                }
                let want = sorted
                    .filter { name in lower.map { !name.utf8.lexicographicallyPrecedes($0.utf8) } ?? true }
                    .filter { name in upper.map { name.utf8.lexicographicallyPrecedes($0.utf8) } ?? true }
                    .map { ($0, expected[$0]!.filter { $0 <= through }) }.filter { !$0.1.isEmpty }
                #expect(seen.map(\.0) == want.map(\.0), "through \(through) from \(lower ?? "-") before \(upper ?? "-")")
                #expect(seen.map(\.1) == want.map(\.1), "through \(through) from \(lower ?? "-") before \(upper ?? "-")")
            }
            var scanned: [String] = []
            try ledger.scanHeaders(from: 1, through: 24) { position, stream, type in
                if position % 5 == 0 { scanned.append("\(position) \(String(decoding: stream, as: UTF8.self)) \(String(decoding: type, as: UTF8.self))") }
            }
            var read: [String] = []
            try ledger.headers(at: [5, 10, 15, 20]) { position, stream, type in
                read.append("\(position) \(String(decoding: stream, as: UTF8.self)) \(String(decoding: type, as: UTF8.self))")
            }
            #expect(read == scanned)
            #expect(throws: LedgerError.self) { try ledger.headers(at: [3, 25]) { _, _, _ in } }
        }
    }
}
