import Foundation
import LMDB
import Testing
@testable import Ledger

/// The `streams` and `idempotency` B-trees live in `index/`, an LMDB environment of their own
/// merged by a thread of its own. Ledgers written before kept them in the log's environment: a
/// writer moves them once; a read-only opening reads them where they are. `index/` is derived
/// from the log: lost, it is rebuilt.
@Suite struct IndexEnvironmentTests {
    static let source = "urn:fapiao:test"

    /// 40 events in 6 streams, `e1`…`e40` at positions 1…40, some requests of several events.
    static func appendForty(_ ledger: Ledger) async throws {
        var n = 1
        while n <= 40 {
            let count = n % 3 + 1
            let entries = (n..<min(n + count, 41)).map { Fixture.entry(stream: "s\($0 % 6)", id: "e\($0)") }
            _ = try await ledger.append(entries)
            n += count
        }
    }

    /// A ledger of `appendForty`'s events whose index/ is then lost.
    static func fortyEventsWithoutIndex(at path: String) async throws {
        try await withLedger(at: path) { ledger in try await appendForty(ledger) }
        try FileManager.default.removeItem(atPath: path + "/index")
    }

    /// What a ledger of 40 events must answer, wherever its index is.
    static func expectAnswers(_ ledger: Ledger, sourceLocation: SourceLocation = #_sourceLocation) throws {
        for stream in 0..<6 {
            let expected = (1...40).filter { $0 % 6 == stream }.map { "e\($0)" }
            #expect(try ledger.streamVersion("s\(stream)") == UInt64(expected.count), sourceLocation: sourceLocation)
            #expect(try ledger.stream("s\(stream)", limit: 100).map(\.id) == expected, sourceLocation: sourceLocation)
        }
        for n in [1, 3, 25, 26, 40] {
            #expect(try ledger.position(source: source, id: "e\(n)") == UInt64(n), sourceLocation: sourceLocation)
        }
        #expect(try ledger.position(source: source, id: "e41") == nil, sourceLocation: sourceLocation)
    }

    /// Rewrites a closed ledger into the layout of earlier versions: the B-trees in the log's
    /// environment, holding the records through `indexed` (the rest left to the tail), and no
    /// `index/`.
    static func makeLegacyLayout(at path: String, indexed: UInt64) throws {
        do {
            let log = try Environment(path: path, options: Environment.Options(mapSizeBytes: 1 << 26))
            let index = try Environment(path: path + "/index", options: Environment.Options(mapSizeBytes: 1 << 26, tablesMax: 32))
            try log.write { target in
                // Every run slot of index/ into the one pair of B-trees of old.
                for (kind, name) in LedgerTables.legacyIndexTables.enumerated() {
                    let table = try target.openTable(name, flags: [.create])
                    for slot in 0..<LedgerTables.runSlots {
                        let slotNames = LedgerTables.runTableNames(slot: slot)
                        try index.read { source in
                            let from = try source.openTable(kind == 0 ? slotNames.streams : slotNames.ids, flags: [])
                            try source.withCursor(from) { cursor in
                                var entry = try cursor.first()
                                while let current = entry {
                                    if BigEndian.uint64(current.value) <= indexed {
                                        try target.put(table, key: Array(current.key), value: Array(current.value), flags: [])
                                    }
                                    entry = try cursor.next()
                                }
                            }
                        }
                    }
                }
                let meta = try target.openTable("meta", flags: [])
                try target.put(meta, key: LedgerTables.indexedKey, value: BigEndian.bytes(indexed), flags: [])
            }
        }
        try FileManager.default.removeItem(atPath: path + "/index")
    }

    static func logTableNames(at path: String) throws -> [String] {
        try Environment(path: path, options: Environment.Options(mapSizeBytes: 1 << 26, readOnly: true)).tableNames()
    }

    @Test func aLedgerWithItsIndexInTheLogsEnvironmentIsReadThereAndMovedByAWriter() async throws {
        let dir = TemporaryDirectory()
        let path = dir.ledgerPath
        try await withLedger(at: path, options: LedgerOptions(indexMergeEventsMin: 1_000_000)) { ledger throws in
            try await Self.appendForty(ledger)
        }
        try Self.makeLegacyLayout(at: path, indexed: 25)
        #expect(try Self.logTableNames(at: path).contains("streams"))

        // Read-only: answers from the old B-trees and the tail, and leaves the ledger as it is.
        try await withLedger(at: path, options: LedgerOptions(readOnly: true)) { ledger throws in
            #expect(ledger.tables.index === ledger.environment)
            #expect(try ledger.indexedThrough() == 25)
            try Self.expectAnswers(ledger)
        }
        #expect(!FileManager.default.fileExists(atPath: path + "/index"))

        // A writer moves the B-trees into index/ and takes them out of the log's environment.
        try await withLedger(at: path, options: LedgerOptions(indexMergeEventsMin: 1_000_000, indexMergeIdleMilliseconds: 600_000)) { ledger throws in
            #expect(ledger.tables.index !== ledger.environment)
            #expect(try ledger.indexedThrough() == 25)
            #expect(ledger.tail.state.withLock { $0.count } == 15)
            try Self.expectAnswers(ledger)
            let retry = try await ledger.append([Fixture.entry(stream: "s3", id: "e3")])
            #expect(retry.positions == [3] && retry.isNew == [false])
            let error = await appendError(ledger, [Fixture.entry(stream: "s1", id: "late", expecting: .version(3))])
            #expect(error == .expectationFailed(stream: "s1", expected: .version(3), actualVersion: 7))
            let next = try await ledger.append([Fixture.entry(stream: "s1", id: "e41", expecting: .version(7))])
            #expect(next.positions == [41])
        }
        let names = try Self.logTableNames(at: path)
        #expect(!names.contains("streams") && !names.contains("idempotency"))
        try await withLedger(at: path, options: LedgerOptions(readOnly: true)) { ledger throws in
            #expect(ledger.tables.index !== ledger.environment)
            #expect(try ledger.indexedThrough() == 41)
            #expect(try ledger.stream("s1", fromVersion: 7, limit: 10).map(\.id) == ["e37", "e41"])
            #expect(try ledger.position(source: Self.source, id: "e41") == 41)
        }
    }

    @Test func aLostIndexIsRebuiltFromTheLog() async throws {
        let dir = TemporaryDirectory()
        let path = dir.ledgerPath
        try await withLedger(at: path, options: LedgerOptions(indexMergeEventsMin: 8)) { ledger throws in
            try await Self.appendForty(ledger)
        }
        try FileManager.default.removeItem(atPath: path + "/index")
        try await withLedger(at: path, options: LedgerOptions(indexMergeEventsMin: 8, indexMergeIdleMilliseconds: 600_000)) { ledger throws in
            #expect(try ledger.indexedThrough() == 0)
            #expect(ledger.tail.state.withLock { $0.count } == 40)
            try Self.expectAnswers(ledger)
            let retry = try await ledger.append([Fixture.entry(stream: "s2", id: "e2")])
            #expect(retry.positions == [2] && retry.isNew == [false])
        }
        try await withLedger(at: path, options: LedgerOptions(readOnly: true)) { ledger throws in
            #expect(try ledger.indexedThrough() == 40)
            try Self.expectAnswers(ledger)
        }
    }

    @Test func aLostIndexOfALongLogIsMergedInStepsAtOpen() async throws {
        let dir = TemporaryDirectory()
        let path = dir.ledgerPath
        try await Self.fortyEventsWithoutIndex(at: path)
        var options = LedgerOptions(indexMergeEventsMin: 1_000, indexMergeIdleMilliseconds: 600_000)
        options.indexCatchUpEvents = 12
        try await withLedger(at: path, options: options) { ledger throws in
            // 40 records: steps through 12, 24 and 36; the last 4 wait in the tail.
            #expect(try ledger.indexedThrough() == 36)
            #expect(ledger.tail.state.withLock { $0.count } == 4)
            try Self.expectAnswers(ledger)
        }
    }

    /// A backup that copied index/ after the log holds keys of records the log lacks.
    @Test func anIndexAheadOfTheLogIsRebuiltByAWriter() async throws {
        let dir = TemporaryDirectory()
        let path = dir.ledgerPath
        let backup = dir.path + "/backup"
        try await withLedger(at: path) { ledger in try await Self.appendForty(ledger) }
        try FileManager.default.copyItem(atPath: path, toPath: backup)
        try await withLedger(at: path, options: LedgerOptions(indexMergeEventsMin: 8)) { ledger in
            // Stream s1 goes on past the backup's log, in runs of their own (merges every 8).
            for n in 41...60 { _ = try await ledger.append([Fixture.entry(stream: n % 2 == 0 ? "late" : "s1", id: "e\(n)")]) }
        }
        try FileManager.default.removeItem(atPath: backup + "/index")
        try FileManager.default.copyItem(atPath: path + "/index", toPath: backup + "/index")

        // A reader goes on (with a warning): what the log holds is still answered, and what only
        // the index names is not.
        try await withLedger(at: backup, options: LedgerOptions(readOnly: true)) { ledger throws in
            #expect(try ledger.indexedThrough() == 60)
            try Self.expectAnswers(ledger)
            #expect(try ledger.streamVersion("late") == 0)
            #expect(try ledger.stream("late", limit: 100).isEmpty)
            #expect(try ledger.tables.index.read { txn in try txn.indexRuns(tables: ledger.tables) }.count >= 2)
            #expect(try ledger.stream("s1", fromVersion: 5, limit: 100).map(\.id) == ["e25", "e31", "e37"])
        }
        try await withLedger(at: backup) { ledger throws in
            #expect(try ledger.indexedThrough() == 0)
            try Self.expectAnswers(ledger)
            #expect(try ledger.streamVersion("late") == 0)
        }
        try await withLedger(at: backup, options: LedgerOptions(readOnly: true)) { ledger throws in
            #expect(try ledger.indexedThrough() == 40)
            try Self.expectAnswers(ledger)
        }
    }

    /// A backup without index/ (allowed: it is derived): readers answer from the log alone
    /// before any writer rebuilds it, and create nothing.
    @Test func aReaderOfALedgerWithoutIndexAnswersFromTheLog() async throws {
        let dir = TemporaryDirectory()
        let path = dir.ledgerPath
        try await Self.fortyEventsWithoutIndex(at: path)
        try await withLedger(at: path, options: LedgerOptions(readOnly: true)) { ledger throws in
            #expect(!ledger.tables.hasIndex)
            #expect(try ledger.indexedThrough() == 0)
            try Self.expectAnswers(ledger)
        }
        #expect(!FileManager.default.fileExists(atPath: path + "/index"))
    }

    /// A writer that stopped inside the move left index/ without its format marker, holding
    /// part of the keys: the next one fills it again from scratch.
    @Test func anUnfinishedMoveIsDoneAgain() async throws {
        let dir = TemporaryDirectory()
        let path = dir.ledgerPath
        try await withLedger(at: path, options: LedgerOptions(indexMergeEventsMin: 1_000_000)) { ledger in
            try await Self.appendForty(ledger)
        }
        try Self.makeLegacyLayout(at: path, indexed: 30)
        do {
            try FileManager.default.createDirectory(atPath: path + "/index", withIntermediateDirectories: true)
            let index = try Environment(path: path + "/index", options: Environment.Options(mapSizeBytes: 1 << 26, tablesMax: 4))
            try index.write { txn in
                let streams = try txn.openTable("streams", flags: [.create])
                try txn.put(streams, key: Array("s1".utf8) + [0] + BigEndian.bytes(99), value: BigEndian.bytes(999), flags: [])
                let meta = try txn.openTable("meta", flags: [.create])
                try txn.put(meta, key: LedgerTables.indexedKey, value: BigEndian.bytes(999), flags: [])
            }
        }
        // Readers do not trust it: no marker.
        try await withLedger(at: path, options: LedgerOptions(readOnly: true)) { ledger throws in
            #expect(ledger.tables.index === ledger.environment)
            try Self.expectAnswers(ledger)
        }
        try await withLedger(at: path, options: LedgerOptions(indexMergeEventsMin: 1_000_000, indexMergeIdleMilliseconds: 600_000)) { ledger throws in
            #expect(try ledger.indexedThrough() == 30)
            try Self.expectAnswers(ledger)
        }
        let names = try Self.logTableNames(at: path)
        #expect(!names.contains("streams") && !names.contains("idempotency"))
    }

    /// Each merge writes a run; at `runsMax` runs they are merged (the oldest, biggest one
    /// only once the newer ones outgrow it). Through all of it, versions, stream reads, the
    /// stream index and idempotency answer as one index.
    @Test func runsAreCompactedAndTheIndexAnswersAsOne() async throws {
        let dir = TemporaryDirectory()
        let path = dir.ledgerPath
        let options = LedgerOptions(indexMergeEventsMin: 4, indexMergeIdleMilliseconds: 600_000)
        var mostRuns = 0
        var compactions = 0
        var runsLeftByACompaction = 0
        var lastRuns = 0
        try await withLedger(at: path, options: options) { ledger throws in
            for n in 1...300 {
                let stream = "inv\(n % 7)"
                let version = try ledger.streamVersion(stream)
                _ = try await ledger.append([Fixture.entry(stream: stream, id: "e\(n)", expecting: .version(version))])
                let runs = try ledger.tables.index.read { txn in try txn.indexRuns(tables: ledger.tables) }
                mostRuns = max(mostRuns, runs.count)
                if runs.count < lastRuns {
                    compactions += 1
                    runsLeftByACompaction = max(runsLeftByACompaction, runs.count)
                }
                lastRuns = runs.count
                #expect(runs.count <= LedgerTables.runsMax)
                #expect(Set(runs).count == runs.count)
            }
            let retry = try await ledger.append([Fixture.entry(stream: "inv3", id: "e3")])
            #expect(retry.positions == [3] && retry.isNew == [false])
        }
        // Eight runs live at times: the next merge compacted first, in its own transaction.
        #expect(mostRuns == LedgerTables.runsMax)
        #expect(compactions >= 2)
        // Size-tiered: a compaction merges only the newer runs while they are smaller than the
        // next older one; merging every run would leave two (its run and the merge's).
        #expect(runsLeftByACompaction >= 3)
        for readOnly in [false, true] {
            try await withLedger(at: path, options: LedgerOptions(readOnly: readOnly, indexMergeEventsMin: 4)) { ledger throws in
                let (runs, sizes) = try ledger.tables.index.read { txn in
                    let runs = try txn.indexRuns(tables: ledger.tables)
                    return (runs, try runs.map { try txn.count(ledger.tables.idRuns[$0]) })
                }
                #expect(!runs.isEmpty && runs.count <= LedgerTables.runsMax)
                // Size-tiered: the oldest run is the biggest (merges of about the same size here).
                #expect(sizes.last == sizes.max())
                #expect(sizes.reduce(0, +) == 300)
                var indexed: [String: [UInt64]] = [:]
                try ledger.streamIndex(through: 300) { stream, positions in
                    indexed[String(decoding: stream, as: UTF8.self), default: []].append(contentsOf: positions)
                }
                for stream in 0..<7 {
                    let expected = (1...300).filter { $0 % 7 == stream }
                    #expect(try ledger.streamVersion("inv\(stream)") == UInt64(expected.count))
                    #expect(try ledger.stream("inv\(stream)", limit: 1_000).map(\.id) == expected.map { "e\($0)" })
                    #expect(try ledger.stream("inv\(stream)", fromVersion: 20, limit: 5).map(\.streamVersion) == Array(20...24))
                    #expect(indexed["inv\(stream)"] == expected.map(UInt64.init))
                }
                for n in [1, 77, 150, 299, 300] {
                    #expect(try ledger.position(source: Self.source, id: "e\(n)") == UInt64(n))
                }
            }
        }
    }

    /// index/ of format 1 (one pair of B-trees, slot 0, no `runs`): read as one run; a writer
    /// makes it format 2 and goes on in runs.
    @Test func anIndexOfFormatOneIsReadAndUpgraded() async throws {
        let dir = TemporaryDirectory()
        let path = dir.ledgerPath
        try await withLedger(at: path, options: LedgerOptions(indexMergeEventsMin: 1_000_000, indexMergeIdleMilliseconds: 600_000)) { ledger in
            try await Self.appendForty(ledger)
        }
        do {
            let index = try Environment(path: path + "/index", options: Environment.Options(mapSizeBytes: 1 << 26, tablesMax: 32))
            try index.write { txn in
                let meta = try txn.openTable("meta", flags: [])
                #expect(try txn.get(meta, key: LedgerTables.runsKey) == [0])
                _ = try txn.delete(meta, key: LedgerTables.runsKey)
                try txn.put(meta, key: LedgerTables.formatKey, value: LedgerTables.indexFormatValueV1, flags: [])
                for slot in 1..<LedgerTables.runSlots {
                    let names = LedgerTables.runTableNames(slot: slot)
                    try txn.drop(try txn.openTable(names.streams, flags: []))
                    try txn.drop(try txn.openTable(names.ids, flags: []))
                }
            }
        }
        try await withLedger(at: path, options: LedgerOptions(readOnly: true)) { ledger throws in
            #expect(ledger.tables.streamRuns.count == 1)
            try Self.expectAnswers(ledger)
        }
        try await withLedger(at: path, options: LedgerOptions(indexMergeEventsMin: 8)) { ledger throws in
            #expect(ledger.tables.streamRuns.count == LedgerTables.runSlots)
            try Self.expectAnswers(ledger)
            for n in 41...80 { _ = try await ledger.append([Fixture.entry(stream: "s\(n % 6)", id: "e\(n)")]) }
        }
        try await withLedger(at: path, options: LedgerOptions(readOnly: true)) { ledger throws in
            let runs = try ledger.tables.index.read { txn in try txn.indexRuns(tables: ledger.tables) }
            #expect(runs.count >= 2)
            #expect(try ledger.streamVersion("s1") == UInt64((1...80).filter { $0 % 6 == 1 }.count))
            #expect(try ledger.position(source: Self.source, id: "e80") == 80)
            #expect(try ledger.position(source: Self.source, id: "e3") == 3)
        }
    }

    @Test func aFileWhereIndexShouldBeIsRefusedWithTheFix() async throws {
        let dir = TemporaryDirectory()
        let path = dir.ledgerPath
        try await Self.fortyEventsWithoutIndex(at: path)
        try Data("not an index".utf8).write(to: URL(fileURLWithPath: path + "/index"))
        do {
            _ = try await withLedger(at: path) { _ in }
            Issue.record("a writer opened a ledger whose index/ is a file")
        } catch let error as LedgerError {
            guard case let .incompatible(_, reason) = error else { throw error }
            #expect(reason.contains("is a file"))
        }
        // Nothing was written: the log still answers, read-only, from itself.
        try await withLedger(at: path, options: LedgerOptions(readOnly: true)) { ledger throws in
            try Self.expectAnswers(ledger)
        }
    }

    /// A writer that stopped between filling index/ and dropping the old B-trees (or an
    /// earlier version that wrote to them since) leaves B-trees in the log's environment: the
    /// next writer drops them, and index/ with the tail answers.
    @Test func oldBTreesLeftInTheLogsEnvironmentAreDropped() async throws {
        let dir = TemporaryDirectory()
        let path = dir.ledgerPath
        try await withLedger(at: path) { ledger in try await Self.appendForty(ledger) }
        do {
            let log = try Environment(path: path, options: Environment.Options(mapSizeBytes: 1 << 26))
            try log.write { txn in
                let streams = try txn.openTable("streams", flags: [.create])
                try txn.put(streams, key: Array("stale".utf8), value: BigEndian.bytes(1), flags: [])
                _ = try txn.openTable("idempotency", flags: [.create])
            }
        }
        try await withLedger(at: path) { ledger throws in
            try Self.expectAnswers(ledger)
            #expect(!ledger.tail.readersPrune)
        }
        let names = try Self.logTableNames(at: path)
        #expect(!names.contains("streams") && !names.contains("idempotency"))
        try await withLedger(at: path, options: LedgerOptions(readOnly: true)) { ledger throws in
            #expect(ledger.tail.readersPrune)
            try Self.expectAnswers(ledger)
        }
    }

    /// Merges run beside the writer: with a merge every 4 events, appends from many tasks and
    /// readers checking whole streams all along, nothing is lost or seen twice, and the tail
    /// never holds much more than the backlog the writer allows.
    @Test func backgroundMergesKeepUpWithManyAppenders() async throws {
        let dir = TemporaryDirectory()
        let mergeEvery = 4
        try await withLedger(at: dir.ledgerPath, options: LedgerOptions(indexMergeEventsMin: mergeEvery)) { ledger throws in
            let largestTail = try await withThrowingTaskGroup(of: Int.self) { group in
                for task in 0..<8 {
                    group.addTask {
                        var largest = 0
                        for n in 0..<60 {
                            let id = task * 100 + n
                            _ = try await ledger.append([Fixture.entry(stream: "s\(id % 5)", id: "e\(id)")])
                            largest = max(largest, ledger.tail.state.withLock { $0.count })
                        }
                        return largest
                    }
                }
                group.addTask {
                    for _ in 0..<200 {
                        for stream in 0..<5 {
                            let versions = try ledger.stream("s\(stream)", limit: 1_000).map(\.streamVersion)
                            #expect(versions == Array(stride(from: 1, through: UInt64(versions.count), by: 1)))
                        }
                        await Task.yield()
                    }
                    return 0
                }
                return try await group.reduce(0) { max($0, $1) }
            }
            var total = 0
            for stream in 0..<5 { total += try ledger.stream("s\(stream)", limit: 1_000).count }
            #expect(total == 480)
            // A batch (at most 8 events here) is answered before the writer looks at the tail, and
            // the writer waits only for a running merge: a few batches past the backlog at most.
            #expect(largestTail <= GroupCommitWriter.tailBacklogMerges * mergeEvery + 3 * 8)
        }
    }
}
