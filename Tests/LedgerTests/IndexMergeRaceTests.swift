import Synchronization
import Testing
@testable import Ledger

/// A stream read whose snapshot began before an index merge committed must not lose the keys
/// the merge pruned from the in-memory tail (found by the generator's `why` tests: an invoice
/// read during the idle merge after an import came back "not in the ledger").
struct IndexMergeRaceTests {
    @Test func streamReadsNeverMissEventsAcrossIndexMerges() async throws {
        let dir = TemporaryDirectory()
        let options = LedgerOptions(indexMergeEventsMin: 100, indexMergeIdleMilliseconds: 1)
        try await withLedger(at: dir.ledgerPath, options: options) { ledger in
            let acknowledged = Mutex<[Int]>(Array(repeating: 0, count: 10))
            let done = Atomic<Bool>(false)
            let writer = Task {
                defer { done.store(true, ordering: .sequentiallyConsistent) }
                for round in 0..<1_500 {
                    let stream = round % 10
                    let event = NewEvent(stream: "s\(stream)", type: "t", source: "urn:test", id: "e\(round)", time: "2024-12-01T00:00:00Z",
                                         occurredMicros: 0, data: Array("{}".utf8))
                    _ = try await ledger.append([AppendEntry(event)])
                    acknowledged.withLock { $0[stream] += 1 }
                    // Pauses let the idle merge run between appends, while reads go on.
                    if round % 7 == 0 { try await Task.sleep(for: .milliseconds(2)) }
                }
            }
            var misses: [String] = []
            while !done.load(ordering: .sequentiallyConsistent) {
                for stream in 0..<10 {
                    let expected = acknowledged.withLock { $0[stream] }
                    let count = try ledger.stream("s\(stream)", limit: 10_000).count
                    if count < expected { misses.append("s\(stream): \(count) of \(expected)") }
                }
            }
            try await writer.value
            #expect(misses.isEmpty, "reads that missed acknowledged events: \(misses.prefix(5))")
        }
    }
}
