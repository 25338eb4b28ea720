import Foundation
import Testing
@testable import Ledger

@Suite struct IdempotencyTests {
    @Test func aRetryWithTheSameContentAnswersTheOriginalPosition() async throws {
        let dir = TemporaryDirectory()
        let ledger = try Ledger.open(at: dir.ledgerPath)
        defer { ledger.close() }
        _ = try await ledger.append([Fixture.entry(id: "x0")])
        let first = try await ledger.append([Fixture.entry(id: "x1", expecting: .version(1))])
        #expect(first.positions == [2])
        #expect(first.isNew == [true])

        // The retry's expectation no longer holds, but a retry is recognised before expectations.
        let retry = try await ledger.append([Fixture.entry(id: "x1", expecting: .version(1))])
        #expect(retry.positions == [2])
        #expect(retry.isNew == [false])
        #expect(retry.duplicateCount == 1)
        #expect(try ledger.headPosition() == 2)
        #expect(try ledger.rejectionCount() == 0)

        // A request mixing a retry and a new event writes only the new one.
        let mixed = try await ledger.append([Fixture.entry(id: "x1"), Fixture.entry(id: "x2")])
        #expect(mixed.positions == [2, 3])
        #expect(mixed.isNew == [false, true])
        #expect(try ledger.stream(Fixture.event(id: "x").stream, limit: 10).map(\.id) == ["x0", "x1", "x2"])
    }

    @Test func theSameIdWithDifferentContentIsAConflict() async throws {
        let dir = TemporaryDirectory()
        let ledger = try Ledger.open(at: dir.ledgerPath)
        defer { ledger.close() }
        _ = try await ledger.append([Fixture.entry(id: "a"), Fixture.entry(id: "b")])
        let changed = AppendEntry(Fixture.event(id: "b", data: #"{"n":"changed"}"#))
        let error = await appendError(ledger, [Fixture.entry(id: "c"), changed])
        #expect(error == .idempotencyConflict(source: "urn:fapiao:test", id: "b", originalPosition: 2))
        #expect(try ledger.headPosition() == 2)
        #expect(try ledger.position(source: "urn:fapiao:test", id: "c") == nil)
        #expect(try ledger.record(at: 2)?.data == Array(#"{"n":"b"}"#.utf8))

        let rejection = try #require(try ledger.rejections(limit: 10).first)
        #expect(rejection.reason == .idempotencyConflict)
        #expect(rejection.id == "b")
        #expect(rejection.originalPosition == 2)
        #expect(try ledger.rejections(forStream: Fixture.event(id: "b").stream, limit: 10).count == 1)

        // Each field of the content counts, except the ledger's own.
        let variants: [NewEvent] = [
            Fixture.event(stream: "system/other", id: "b"),
            Fixture.event(id: "b", type: "fapiao.test.other"),
            { var e = Fixture.event(id: "b"); e.occurredMicros += 1; return e }(),
            { var e = Fixture.event(id: "b"); e.dataContentType = nil; return e }(),
            // The same instant written differently is still different content: `time` is stored as sent.
            { var e = Fixture.event(id: "b"); e.time = "2024-12-31T08:59:26Z"; return e }(),
        ]
        for variant in variants {
            #expect(await appendError(ledger, [AppendEntry(variant)]) == .idempotencyConflict(source: "urn:fapiao:test", id: "b", originalPosition: 2))
        }
        // The same id from another source is another event.
        #expect(try await ledger.append([AppendEntry(Fixture.event(id: "b", source: "urn:fapiao:elsewhere"))]).positions == [3])
        #expect(try ledger.rejectionCount() == 1 + UInt64(variants.count))
    }

    /// Canonically equal text with other bytes is other content: the ledger stores bytes.
    @Test func canonicallyEqualTextIsNotTheSameContent() async throws {
        let dir = TemporaryDirectory()
        let ledger = try Ledger.open(at: dir.ledgerPath)
        defer { ledger.close() }
        _ = try await ledger.append([Fixture.entry(stream: "system/\u{e9}", id: "n")])
        let decomposed = Fixture.entry(stream: "system/e\u{301}", id: "n")
        #expect(await appendError(ledger, [decomposed]) == .idempotencyConflict(source: "urn:fapiao:test", id: "n", originalPosition: 1))
        let retry = try await ledger.append([Fixture.entry(stream: "system/\u{e9}", id: "n")])
        #expect(retry.isNew == [false])
    }

    @Test func idempotencyHoldsAcrossReopen() async throws {
        let dir = TemporaryDirectory()
        let path = dir.ledgerPath
        try await withLedger(at: path) { ledger throws in
            _ = try await ledger.append([Fixture.entry(id: "a"), Fixture.entry(id: "b"), Fixture.entry(id: "c")])
        }
        try await withLedger(at: path) { ledger throws in
            let retry = try await ledger.append([Fixture.entry(id: "b"), Fixture.entry(id: "d")])
            #expect(retry.positions == [2, 4])
            #expect(retry.isNew == [false, true])
            let error = await appendError(ledger, [AppendEntry(Fixture.event(id: "c", data: "{}"))])
            #expect(error == .idempotencyConflict(source: "urn:fapiao:test", id: "c", originalPosition: 3))
        }
        try await withLedger(at: path) { ledger throws in
            #expect(try ledger.headPosition() == 4)
            #expect(try ledger.rejections(limit: 10).map(\.reason) == [.idempotencyConflict])
            // The rejection sequence continues after a reopen.
            _ = await appendError(ledger, [Fixture.entry(id: "e", expecting: .noStream)])
            #expect(try ledger.rejections(limit: 10).map(\.sequence) == [1, 2])
            #expect(try ledger.verifyChain().checked == 4)
        }
    }

    @Test func duplicatesWithinOneRequest() async throws {
        let dir = TemporaryDirectory()
        let ledger = try Ledger.open(at: dir.ledgerPath)
        defer { ledger.close() }
        let same = try await ledger.append([Fixture.entry(id: "a"), Fixture.entry(id: "b"), Fixture.entry(id: "a")])
        #expect(same.positions == [1, 2, 1])
        #expect(same.isNew == [true, true, false])
        #expect(try ledger.headPosition() == 2)
        #expect(try ledger.streamVersion(Fixture.event(id: "a").stream) == 2)

        let error = await appendError(ledger, [Fixture.entry(id: "c"), AppendEntry(Fixture.event(id: "c", data: "{}"))])
        #expect(invalidReason(error)?.contains("appears twice in one request") == true)
        #expect(try ledger.headPosition() == 2)
        #expect(try ledger.rejections(limit: 10).map(\.reason) == [.invalid])
    }

    /// Two concurrent requests carrying the same event: one writes it, the other gets its position.
    @Test func concurrentRetriesWriteOnce() async throws {
        let dir = TemporaryDirectory()
        let ledger = try Ledger.open(at: dir.ledgerPath)
        defer { ledger.close() }
        let results = try await withThrowingTaskGroup(of: AppendResult.self) { group in
            for _ in 0..<16 { group.addTask { try await ledger.append([Fixture.entry(id: "once")]) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.allSatisfy { $0.positions == [1] })
        #expect(results.filter { $0.isNew == [true] }.count == 1)
        #expect(try ledger.headPosition() == 1)
    }
}
