import Foundation
import Testing
@testable import Ledger

/// Appends prepared on the caller's thread, planned into the flat index tail, and the key
/// filter in front of the B-trees: refusals leave nothing in the tail, and answers stay the same
/// before and after merges and reopening.
@Suite struct PreparedAppendTests {
    @Test func aRefusalLateInARequestTakesItsPlannedKeysOutOfTheTail() async throws {
        let dir = TemporaryDirectory()
        try await withLedger(at: dir.ledgerPath, options: LedgerOptions(indexMergeEventsMin: 1_000_000, indexMergeIdleMilliseconds: 600_000)) { ledger in
            _ = try await ledger.append([Fixture.entry(stream: "s1", id: "first")])
            // Two new keys planned, then the third entry's expectation fails.
            let error = await appendError(ledger, [
                Fixture.entry(stream: "s1", id: "a"), Fixture.entry(stream: "s2", id: "b"),
                Fixture.entry(stream: "s1", id: "c", expecting: .version(1)),
            ])
            #expect(error == .expectationFailed(stream: "s1", expected: .version(1), actualVersion: 2))
            #expect(ledger.tail.state.withLock { $0.count } == 1)
            #expect(try ledger.streamVersion("s1") == 1)
            #expect(try ledger.streamVersion("s2") == 0)
            #expect(try ledger.position(source: "urn:fapiao:test", id: "a") == nil)
            // An invalid entry after valid ones: refused the same way.
            var invalid = Fixture.entry(stream: "s3", id: "d")
            invalid.event.type = ""
            let invalidError = await appendError(ledger, [Fixture.entry(stream: "s2", id: "b"), invalid])
            #expect(invalidError == .invalid(reason: "type is empty"))
            #expect(ledger.tail.state.withLock { $0.count } == 1)
            // The same ids go in afterwards, at the next positions and versions.
            let result = try await ledger.append([
                Fixture.entry(stream: "s1", id: "a", expecting: .version(1)), Fixture.entry(stream: "s2", id: "b", expecting: .noStream),
                Fixture.entry(stream: "s1", id: "a"),
            ])
            #expect(result.positions == [2, 3, 2] && result.isNew == [true, true, false])
            #expect(try ledger.stream("s1", limit: 10).map(\.id) == ["first", "a"])
            #expect(try ledger.rejectionCount() == 2)
        }
    }

    @Test func bigRequestsPreparedInTwoHalvesKeepTheirOrder() async throws {
        let dir = TemporaryDirectory()
        try await withLedger(at: dir.ledgerPath) { ledger in
            let count = PreparedRequest.parallelEntriesMin * 2 + 3
            let entries = (0..<count).map { Fixture.entry(stream: "s\($0 % 7)", id: "e\($0)") }
            let result = try await ledger.append(entries)
            #expect(result.positions == (1...UInt64(count)).map { $0 })
            let records = try ledger.records(from: 1, limit: count)
            #expect(records.map(\.id) == entries.map(\.event.id))
            #expect(records.map(\.event) == entries.map(\.event))
            #expect(try ledger.streamVersion("s3") == UInt64((count - 3 + 6) / 7))
            // The writer's chain matches the bytes: a reopened ledger chains on.
        }
        try await withLedger(at: dir.ledgerPath) { ledger in
            _ = try await ledger.append([Fixture.entry(stream: "s0", id: "after")])
            #expect(try ledger.record(at: UInt64(PreparedRequest.parallelEntriesMin * 2 + 4))?.id == "after")
        }
    }

    /// The appender writes records and keys straight into shared buffers, two halves at once:
    /// every byte must be what the codec encodes, whatever the fields look like, and a refusal
    /// in the second half stops the encoding there.
    @Test func preparedBytesAreTheCodecsForEveryShapeOfEvent() throws {
        let count = PreparedRequest.parallelEntriesMin * 2 + 5
        let entries: [AppendEntry] = (0..<count).map { index in
            var entry = Fixture.entry(stream: index % 3 == 0 ? "发票-\(index)" : "s\(index % 11)", id: String(repeating: "i", count: 1 + index % 40))
            entry.event.source = index % 5 == 0 ? "urn:来源:\(index % 4)" : "s"
            entry.event.type = "type.\(index % 17)"
            entry.event.dataContentType = index % 4 == 0 ? nil : (index % 4 == 1 ? "" : "application/json")
            entry.event.data = Array(repeating: UInt8(index % 251), count: (index * 37) % 900)
            entry.event.occurredMicros = Int64(index) * -1_000_003
            return entry
        }
        func check(_ entries: [AppendEntry], expectedItems: Int) throws {
            let prepared = PreparedRequest(entries, options: LedgerOptions())
            #expect(prepared.items.count == expectedItems)
            var expected: [UInt8] = []
            for (index, item) in prepared.items.enumerated() {
                let event = entries[index].event
                RecordCodec.encode(event, position: 0, streamVersion: 0, recordedMicros: 0, previousHash: RecordCodec.genesisHash, into: &expected)
                #expect(Array(prepared.records[item.recordOffset..<(item.recordOffset + item.recordCount)]) == expected, "record \(index)")
                // The codec's encoder shares `writeTemplate`; its decoder does not.
                let decoded = try prepared.records[item.recordOffset..<(item.recordOffset + item.recordCount)].withUnsafeBytes { try RecordCodec.decode($0) }
                #expect(decoded.event == event, "record \(index) decodes to its event")
                #expect(Array(prepared.records[item.streamOffset..<(item.streamOffset + item.streamCount)]) == Array(event.stream.utf8))
                let idKey = Array(event.source.utf8) + [0] + Array(event.id.utf8)
                #expect(Array(prepared.idKeys[item.idOffset..<(item.idOffset + item.idCount)]) == idKey)
                #expect(item.streamHash == Array(event.stream.utf8).withUnsafeBytes { keyHash($0) })
                #expect(item.idHash == idKey.withUnsafeBytes { keyHash($0) })
            }
            let last = try #require(prepared.items.last)
            #expect(prepared.records.count == last.recordOffset + last.recordCount)
        }
        try check(entries, expectedItems: count)
        try check(Array(entries.prefix(PreparedRequest.parallelEntriesMin - 1)), expectedItems: PreparedRequest.parallelEntriesMin - 1)
        var refused = entries
        refused[count - 20].event.stream = "a\u{0}b"
        try check(refused, expectedItems: count - 20)
        #expect(PreparedRequest(refused, options: LedgerOptions()).refusal?.index == count - 20)
    }

    /// Many merges, so most keys are in the B-trees and the filter (once its scan is in) decides
    /// whether the writer looks there; then a reopening, whose writer starts a new filter.
    @Test func idempotencyAndVersionsHoldAcrossMergesFiltersAndReopening() async throws {
        let dir = TemporaryDirectory()
        let options = LedgerOptions(indexMergeEventsMin: 50, indexMergeIdleMilliseconds: 20)
        for round in 0..<2 {
            try await withLedger(at: dir.ledgerPath, options: options) { ledger in
                for n in 0..<40 {
                    let entries = (0..<20).map { i in Fixture.entry(stream: "inv\((n * 20 + i) % 97)", id: "r\(round)-\(n)-\(i)") }
                    _ = try await ledger.append(entries)
                    if n % 10 == 0 { try await Task.sleep(for: .milliseconds(30)) }
                }
                // Every earlier id is a duplicate, wherever its key is now.
                for n in stride(from: 0, to: 40, by: 7) {
                    for r in 0...round {
                        let i = (n + r) % 20
                        let retry = try await ledger.append([Fixture.entry(stream: "inv\((n * 20 + i) % 97)", id: "r\(r)-\(n)-\(i)")])
                        #expect(retry.isNew == [false])
                    }
                }
                // Versions continue from the B-trees.
                // Counted from the log itself, which knows nothing of the indexes.
                let expected = UInt64(try ledger.records(from: 1, limit: 10_000).filter { $0.stream == "inv5" }.count)
                #expect(expected > 5)
                #expect(try ledger.streamVersion("inv5") == expected)
                let next = try await ledger.append([Fixture.entry(stream: "inv5", id: "next\(round)", expecting: .version(expected))])
                #expect(next.isNew == [true])
                let conflict = await appendError(ledger, [AppendEntry(Fixture.event(stream: "inv5", id: "r0-0-0", data: "{}"))])
                #expect(conflict.map { if case .idempotencyConflict = $0 { true } else { false } } == true)
            }
        }
    }
}

/// The flat tail's tables against a plain dictionary, through adds, truncations and prunes.
@Suite struct TailStateTests {
    @Test func lookupsMatchAReferenceThroughAddsTruncationsAndPrunes() {
        var state = TailIndex.State()
        var rng = SystemRandomNumberGenerator()
        var reference: [(stream: String, id: String, version: UInt64)] = []
        var versions: [String: UInt64] = [:]
        func check() {
            let base = state.indexedThrough
            #expect(state.count == reference.count - Int(base))
            var latest: [String: (UInt64, UInt64)] = [:]
            for (offset, item) in reference.enumerated() where UInt64(offset) >= base {
                latest[item.stream] = (item.version, UInt64(offset) + 1)
                let key = LedgerKeys.idempotency(source: "src", id: item.id)
                let found = key.withUnsafeBytes { state.entry(ofIdKey: $0, hash: keyHash($0)) }.map { state.position(ofEntry: $0) }
                #expect(found == UInt64(offset) + 1)
            }
            for (stream, (version, position)) in latest {
                var bytes = Array(stream.utf8)
                let index = bytes.withUnsafeMutableBytes { state.latestEntry(ofStream: UnsafeRawBufferPointer($0), hash: keyHash(UnsafeRawBufferPointer($0))) }
                #expect(index.map { state.entry(at: $0).version } == version)
                #expect(index.map { state.position(ofEntry: $0) } == position)
            }
            let missing = LedgerKeys.idempotency(source: "src", id: "never")
            #expect(missing.withUnsafeBytes { state.entry(ofIdKey: $0, hash: keyHash($0)) } == nil)
        }
        for step in 0..<3_000 {
            let roll = Int.random(in: 0..<100, using: &rng)
            if roll < 90 || reference.count == Int(state.indexedThrough) {
                let stream = "s\(Int.random(in: 0..<300, using: &rng))"
                let version = (versions[stream] ?? 0) + 1
                versions[stream] = version
                let id = "id\(step)"
                reference.append((stream, id, version))
                state.add(stream: stream, version: version, source: "src", id: id, position: UInt64(reference.count))
            } else if roll < 96 {
                let keep = Int.random(in: Int(state.indexedThrough)...reference.count, using: &rng)
                for item in reference[keep...].reversed() {
                    versions[item.stream] = item.version - 1
                }
                reference.removeSubrange(keep...)
                state.truncate(after: UInt64(keep))
            } else {
                state.prune(through: UInt64(Int.random(in: Int(state.indexedThrough)...reference.count, using: &rng)))
            }
            if step % 100 == 0 { check() }
        }
        check()
    }
}
