import Foundation
import Testing
@testable import Ledger

/// The index tail: recent index keys wait in memory and are merged into the B-trees in sorted
/// passes. Every read must see the same answers before, during and after merges.
@Suite struct TailIndexTests {
    static func options(mergeEvery: Int, idleMilliseconds: Int = 60_000) -> LedgerOptions {
        LedgerOptions(indexMergeEventsMin: mergeEvery, indexMergeIdleMilliseconds: idleMilliseconds)
    }

    @Test func readsSeeTheTailBeforeAnyMergeAndTheTreesAfterClose() async throws {
        let dir = TemporaryDirectory()
        try await withLedger(at: dir.ledgerPath, options: Self.options(mergeEvery: 1_000_000)) { ledger in
            for n in 1...30 { _ = try await ledger.append([Fixture.entry(stream: "s\(n % 3)", id: "e\(n)")]) }
            #expect(ledger.tail.state.withLock { $0.count } == 30)
            #expect(try ledger.streamVersion("s1") == 10)
            #expect(try ledger.stream("s2", fromVersion: 4, limit: 100).map(\.id) == [11, 14, 17, 20, 23, 26, 29].map { "e\($0)" })
            #expect(try ledger.position(source: "urn:fapiao:test", id: "e7") == 7)
            let retry = try await ledger.append([Fixture.entry(stream: "s1", id: "e7")])
            #expect(retry.positions == [7] && retry.isNew == [false])
        }
        // Closing merged the tail: a fresh (read-only) opening answers from the B-trees alone.
        try await withLedger(at: dir.ledgerPath, options: LedgerOptions(readOnly: true)) { ledger in
            let indexed = try ledger.tables.index.read { txn in try txn.indexedThrough(tables: ledger.tables) }
            #expect(indexed == 30)
            #expect(try ledger.streamVersion("s0") == 10)
            #expect(try ledger.stream("s0", limit: 100).map(\.streamVersion) == Array(1...10))
        }
    }

    @Test func mergesBySizeKeepVersionsAndIdempotencyAcrossTheBoundary() async throws {
        let dir = TemporaryDirectory()
        try await withLedger(at: dir.ledgerPath, options: Self.options(mergeEvery: 7)) { ledger in
            for n in 1...50 {
                let stream = "inv\(n % 4)"
                let expected = try ledger.streamVersion(stream)
                let result = try await ledger.append([Fixture.entry(stream: stream, id: "e\(n)", expecting: .version(expected))])
                #expect(result.positions == [UInt64(n)])
            }
            // Merges run on a thread of their own; past four merges of backlog the writer waits for one.
            #expect(ledger.tail.state.withLock { $0.indexedThrough } >= 14)
            for n in [1, 7, 8, 49] {
                let retry = try await ledger.append([Fixture.entry(stream: "inv\(n % 4)", id: "e\(n)")])
                #expect(retry.positions == [UInt64(n)] && retry.isNew == [false])
            }
            for stream in 0..<4 {
                let records = try ledger.stream("inv\(stream)", limit: 100)
                #expect(records.map(\.streamVersion) == Array(1...UInt64(records.count)))
                #expect(records.allSatisfy { Int($0.id.dropFirst())! % 4 == stream })
            }
            // A wrong expectation is still refused with the merged version.
            let error = await #expect(throws: LedgerError.self) {
                try await ledger.append([Fixture.entry(stream: "inv1", id: "late", expecting: .version(3))])
            }
            #expect(error == .expectationFailed(stream: "inv1", expected: .version(3), actualVersion: 13))
        }
    }

    @Test func anIdleWriterMergesTheTail() async throws {
        let dir = TemporaryDirectory()
        try await withLedger(at: dir.ledgerPath, options: Self.options(mergeEvery: 1_000_000, idleMilliseconds: 20)) { ledger in
            _ = try await ledger.append((1...5).map { Fixture.entry(id: "e\($0)") })
            var waited = 0
            while ledger.tail.state.withLock({ $0.count }) > 0 && waited < 500 {
                try await Task.sleep(for: .milliseconds(10))
                waited += 1
            }
            #expect(ledger.tail.state.withLock { $0.count } == 0)
            #expect(try ledger.tables.index.read { txn in try txn.indexedThrough(tables: ledger.tables) } == 5)
            #expect(try ledger.streamVersion("24112000000015301234") == 5)
        }
    }

    @Test func concurrentReadersDuringMergesAlwaysSeeWholeStreams() async throws {
        let dir = TemporaryDirectory()
        try await withLedger(at: dir.ledgerPath, options: Self.options(mergeEvery: 16)) { ledger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for n in 1...400 { _ = try await ledger.append([Fixture.entry(stream: "s\(n % 5)", id: "e\(n)")]) }
                }
                for _ in 0..<3 {
                    group.addTask {
                        for _ in 0..<200 {
                            let head = try ledger.headPosition()
                            for stream in 0..<5 {
                                let records = try ledger.stream("s\(stream)", limit: 1000)
                                #expect(records.map(\.streamVersion) == Array(1...UInt64(max(records.count, 1))).prefix(records.count).map { $0 })
                                #expect(try ledger.streamVersion("s\(stream)") >= UInt64(records.count))
                            }
                            #expect(try ledger.headPosition() >= head)
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try (0..<5).map { try ledger.streamVersion("s\($0)") }.reduce(0, +) == 400)
        }
    }
}
