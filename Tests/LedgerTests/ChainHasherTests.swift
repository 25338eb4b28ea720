import Foundation
import Testing
@testable import Ledger

/// Big requests have their hash chain computed on a thread of their own, beside the writer's
/// planning (`ChainHasher`). Whatever a request holds (new events, retries of earlier ones,
/// repeats within itself, a refusal late in it) and however requests share a batch, the stored
/// bytes must be exactly those of the writer hashing inline, and the chain must verify.
@Suite struct ChainHasherTests {
    static let micros: Int64 = 1_735_635_600_000_000

    /// The same script of appends for both ledgers: sequential requests and, in between,
    /// several queued together so the writer takes them in one batch.
    static func runScript(_ ledger: Ledger) async throws -> [String] {
        var outcomes: [String] = []
        func record(_ result: Result<AppendResult, LedgerError>) {
            switch result {
            case let .success(appended): outcomes.append("ok \(appended.positions) \(appended.isNew)")
            case let .failure(error): outcomes.append("refused \(error)")
            }
        }
        func entries(_ range: Range<Int>, stream: (Int) -> String = { "s\($0 % 13)" }) -> [AppendEntry] {
            range.map { Fixture.entry(stream: stream($0), id: "e\($0)") }
        }
        func append(_ list: [AppendEntry]) async {
            do { record(.success(try await ledger.append(list))) } catch { record(.failure(error)) }
        }
        // New events only, then a request mixing new ones, retries of earlier ones and a repeat
        // of one of its own.
        await append(entries(0..<300))
        var mixed = entries(300..<420)
        mixed.insert(contentsOf: entries(10..<30), at: 40)
        mixed.append(Fixture.entry(stream: "s\(305 % 13)", id: "e305"))
        await append(mixed)
        // A refusal late in a big request: an expectation, then an invalid entry.
        var late = entries(420..<600)
        late.append(Fixture.entry(stream: "s1", id: "x1", expecting: .version(1)))
        await append(late)
        var invalid = entries(600..<700)
        invalid[90].event.type = ""
        await append(invalid)
        // The same ids go in afterwards.
        await append(entries(420..<700))
        // Several requests in one batch: big, small, big with a refusal, big.
        let queued = try [
            ledger.enqueue(entries(700..<800)),
            ledger.enqueue(entries(800..<805)),
            ledger.enqueue(entries(805..<900) + [Fixture.entry(stream: "s2", id: "x2", expecting: .noStream)]),
            ledger.enqueue(entries(805..<1_000)),
        ]
        for pending in queued {
            do { record(.success(try await pending.result())) } catch { record(.failure(error)) }
        }
        return outcomes
    }

    @Test func recordsHashedBesideThePlanningAreThoseHashedInline() async throws {
        let inlineDir = TemporaryDirectory()
        let besideDir = TemporaryDirectory()
        var inline = LedgerOptions()
        inline.chainHashedEntriesMin = .max
        var beside = LedgerOptions()
        beside.chainHashedEntriesMin = 1
        let clock: @Sendable () -> Int64 = { Self.micros }

        let (inlineOutcomes, inlineRecords) = try await withLedger(at: inlineDir.ledgerPath, options: inline, clock: clock) { ledger in
            (try await Self.runScript(ledger), try ledger.records(from: 1, limit: 10_000))
        }
        let (besideOutcomes, besideRecords) = try await withLedger(at: besideDir.ledgerPath, options: beside, clock: clock) { ledger in
            let outcomes = try await Self.runScript(ledger)
            // On one core there is no chain thread, and the comparison would be inline against inline.
            #expect(ProcessInfo.processInfo.activeProcessorCount < 2 || (ledger.writer?.chainJobs ?? 0) >= 8)
            let report = try ledger.verifyChain()
            #expect(report.problem == nil)
            #expect(report.checked == 1_000)
            return (outcomes, try ledger.records(from: 1, limit: 10_000))
        }
        #expect(besideOutcomes == inlineOutcomes)
        #expect(besideRecords.count == 1_000 && inlineRecords.count == 1_000)
        let firstDifference = besideRecords.indices.first { $0 >= inlineRecords.count || besideRecords[$0] != inlineRecords[$0] }
        #expect(firstDifference == nil, "records differ from position \((firstDifference ?? 0) + 1)")
        // The refusals are where the script put them.
        #expect(inlineOutcomes.filter { $0.hasPrefix("refused") }.count == 3)

        // A reopened ledger chains on from the head the hasher computed.
        try await withLedger(at: besideDir.ledgerPath, options: beside, clock: clock) { ledger in
            _ = try await ledger.append((0..<70).map { Fixture.entry(stream: "after", id: "a\($0)") })
            #expect(try ledger.verifyChain().problem == nil)
        }
    }
}
