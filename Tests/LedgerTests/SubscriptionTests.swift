import Foundation
import Testing
@testable import Ledger

@Suite(.timeLimit(.minutes(1))) struct SubscriptionTests {
    /// History first, then live, no gap and no duplicate, while appends race the catch-up.
    @Test func catchesUpThenGoesLiveWithoutGapsOrDuplicates() async throws {
        let dir = TemporaryDirectory()
        try await withLedger(at: dir.ledgerPath) { ledger in
            _ = try await ledger.append((1...2_500).map { Fixture.entry(stream: "s\($0 % 7)", id: "h\($0)") })
            let subscription = ledger.subscribe(from: 1, chunkRecords: 300)
            let writer = Task {
                for n in 1...200 { _ = try await ledger.append([Fixture.entry(stream: "live", id: "l\(n)")]) }
            }
            var positions: [UInt64] = []
            for try await record in subscription {
                positions.append(record.position)
                if positions.count == 2_700 { break }
            }
            try await writer.value
            #expect(positions == Array(1...2_700))
        }
    }

    @Test func filtersByTypePrefixAndStream() async throws {
        let dir = TemporaryDirectory()
        try await withLedger(at: dir.ledgerPath) { ledger in
            _ = try await ledger.append([
                AppendEntry(Fixture.event(stream: "a", id: "1", type: "fapiao.delivery.failed")),
                AppendEntry(Fixture.event(stream: "b", id: "2", type: "fapiao.delivery.failed")),
                AppendEntry(Fixture.event(stream: "a", id: "3", type: "fapiao.review.approved")),
                AppendEntry(Fixture.event(stream: "a", id: "4", type: "fapiao.delivery.succeeded")),
            ])
            var ids: [String] = []
            for try await record in ledger.subscribe(from: 1, filter: RecordFilter(typePrefix: "fapiao.delivery.", stream: "a")) {
                ids.append(record.id)
                if ids.count == 2 { break }
            }
            #expect(ids == ["1", "4"])
        }
    }

    /// A subscriber too far behind is told where to resume, and resuming there loses nothing.
    @Test func aSubscriberTooFarBehindIsToldWhereToResume() async throws {
        let dir = TemporaryDirectory()
        try await withLedger(at: dir.ledgerPath) { ledger in
            _ = try await ledger.append((1...5).map { Fixture.entry(id: "e\($0)") })
            var iterator = ledger.subscribe(from: 1, chunkRecords: 10, lagEventsMax: 20).makeAsyncIterator()
            for _ in 1...5 { _ = try await iterator.next() }
            // The next call finds nothing and waits: the subscriber is live. Then a burst of 45
            // commits at once, more than it may lag.
            let burst = Task {
                try await Task.sleep(for: .milliseconds(50))
                _ = try await ledger.append((6...50).map { Fixture.entry(id: "e\($0)") })
            }
            let error = await #expect(throws: SubscriptionError.self) { _ = try await iterator.next() }
            try await burst.value
            guard case let .fellBehind(last, head)? = error else { return }
            #expect(head == 50)
            #expect(last == 5)
            var resumed: [UInt64] = []
            for try await record in ledger.subscribe(from: last + 1) {
                resumed.append(record.position)
                if record.position == 50 { break }
            }
            #expect(resumed == Array(6...50))
        }
    }

    @Test func endsWhenTheLedgerCloses() async throws {
        let dir = TemporaryDirectory()
        let ledger = try Ledger.open(at: dir.ledgerPath)
        _ = try await ledger.append([Fixture.entry(id: "only")])
        let reader = Task { () -> Int in
            var count = 0
            for try await _ in ledger.subscribe(from: 1) { count += 1 }
            return count
        }
        try await Task.sleep(for: .milliseconds(50))
        ledger.close()
        #expect(try await reader.value == 1)
    }
}
