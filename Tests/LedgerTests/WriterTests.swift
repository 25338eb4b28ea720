import Foundation
import Synchronization
import Testing
@testable import Ledger

@Suite struct WriterTests {
    /// Many concurrent single-event appenders share commits; every one is answered with a
    /// unique position and the log stays gapless and chained.
    @Test func groupCommitUnderManyConcurrentAppenders() async throws {
        let dir = TemporaryDirectory()
        let ledger = try Ledger.open(at: dir.ledgerPath)
        defer { ledger.close() }
        let tasks = 64
        let perTask = 50
        let acks = try await withThrowingTaskGroup(of: [(UInt64, String)].self) { group in
            for task in 0..<tasks {
                group.addTask {
                    var acks: [(UInt64, String)] = []
                    for n in 0..<perTask {
                        let id = "t\(task)-\(n)"
                        let result = try await ledger.append([Fixture.entry(stream: "system/\(task % 8)", id: id)])
                        acks.append((result.positions[0], id))
                    }
                    return acks
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        let total = UInt64(tasks * perTask)
        #expect(acks.count == tasks * perTask)
        #expect(Set(acks.map(\.0)) == Set(1...total))
        #expect(try ledger.headPosition() == total)
        let records = try ledger.records(from: 1, limit: Int(total))
        let idAt = Dictionary(uniqueKeysWithValues: records.map { ($0.position, $0.id) })
        #expect(acks.allSatisfy { idAt[$0.0] == $0.1 })
        // recordedMicros never decreases along the log.
        #expect(zip(records, records.dropFirst()).allSatisfy { $0.recordedMicros <= $1.recordedMicros })
        for stream in 0..<8 {
            #expect(try ledger.stream("system/\(stream)", limit: 10_000).map(\.streamVersion) == Array(1...UInt64(tasks / 8 * perTask)))
        }
        let report = try ledger.verifyChain()
        #expect(report.isIntact)
        #expect(report.checked == total)
        #expect(report.lastPosition == total)
    }

    final class Outcomes: Sendable {
        let byID = Mutex<[String: LedgerError?]>([:])
        var overloaded: Int {
            byID.withLock { $0.values.filter { if case .overloaded? = $0 { true } else { false } }.count }
        }
    }

    /// With the writer held inside a batch, the queue fills to `queuedEventsMax` and every
    /// further appender is told `overloaded` at once; nothing of theirs is written.
    @Test func aFullQueueAnswersOverloaded() async throws {
        let dir = TemporaryDirectory()
        let clock = GatedClock()
        let queuedEventsMax = 4
        let ledger = try Ledger.open(at: dir.ledgerPath, options: LedgerOptions(queuedEventsMax: queuedEventsMax), clock: clock.now)
        defer {
            clock.open()  // never leave the writer held, or close() would wait for ever
            ledger.close()
        }

        let first = Task { try await ledger.append([Fixture.entry(id: "first")]) }
        #expect(try await GatedClock.eventually { clock.calls == 1 })

        let flood = 20
        let expectedOverloaded = flood - queuedEventsMax
        let outcomes = Outcomes()
        let appenders = Task {
            await withTaskGroup(of: Void.self) { group in
                for n in 0..<flood {
                    group.addTask {
                        let id = "flood-\(n)"
                        let error = await appendError(ledger, [Fixture.entry(id: id)])
                        outcomes.byID.withLock { $0[id] = error }
                    }
                }
            }
        }
        // The refusals come at once, while the writer is still held.
        let refusedWhileHeld = try await GatedClock.eventually { outcomes.overloaded >= expectedOverloaded }
        #expect(refusedWhileHeld)
        #expect(try ledger.headPosition() == 0)
        clock.open()
        await appenders.value
        #expect(try await first.value.positions == [1])

        let all = outcomes.byID.withLock { $0 }
        #expect(all.count == flood)
        let accepted = all.filter { $0.value == nil }.map(\.key)
        let refused = all.filter { $0.value != nil }
        #expect(accepted.count == queuedEventsMax)
        #expect(refused.count == expectedOverloaded)
        #expect(refused.values.allSatisfy { $0 == .overloaded(queuedEventsMax: queuedEventsMax) })
        for id in refused.keys { #expect(try ledger.position(source: "urn:fapiao:test", id: id) == nil) }
        for id in accepted { #expect(try ledger.position(source: "urn:fapiao:test", id: id) != nil) }
        #expect(try ledger.headPosition() == UInt64(1 + queuedEventsMax))
        // Overload is back-pressure, not a refusal of the event: no rejection is recorded.
        #expect(try ledger.rejectionCount() == 0)
        #expect(try ledger.verifyChain().isIntact)
    }

    /// A flood without the gate: whatever the timing, every answer is either a durable
    /// position or `overloaded` with nothing written.
    @Test func aFloodKeepsEveryAnswerTrue() async throws {
        let dir = TemporaryDirectory()
        let ledger = try Ledger.open(at: dir.ledgerPath, options: LedgerOptions(queuedEventsMax: 8))
        defer { ledger.close() }
        let outcomes = await withTaskGroup(of: (String, Result<AppendResult, LedgerError>).self) { group in
            for n in 0..<200 {
                group.addTask {
                    let id = "f\(n)"
                    do throws(LedgerError) {
                        return (id, .success(try await ledger.append([Fixture.entry(id: id)])))
                    } catch {
                        return (id, .failure(error))
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        var written: Set<UInt64> = []
        for (id, outcome) in outcomes {
            switch outcome {
            case let .success(result):
                #expect(try ledger.position(source: "urn:fapiao:test", id: id) == result.positions[0])
                written.insert(result.positions[0])
            case let .failure(error):
                #expect(error == .overloaded(queuedEventsMax: 8))
                #expect(try ledger.position(source: "urn:fapiao:test", id: id) == nil)
            }
        }
        #expect(written == Set(1...(try ledger.headPosition())))
    }

    /// Filling the map refuses the batch (`mapFull`, naming the fix), keeps everything
    /// acknowledged before, and a reopen with a larger map carries on.
    @Test func mapFullThenReopenWithALargerMap() async throws {
        let dir = TemporaryDirectory()
        let path = dir.ledgerPath
        let payload = String(repeating: "x", count: 1200)
        var acknowledged: [(UInt64, String)] = []
        let failure: LedgerError? = try await withLedger(at: path, options: LedgerOptions(mapSizeBytes: 2 << 20)) { ledger throws in
            for request in 0..<10_000 {
                let entries = (0..<10).map { AppendEntry(Fixture.event(id: "r\(request)-\($0)", data: payload)) }
                do throws(LedgerError) {
                    let result = try await ledger.append(entries)
                    acknowledged += zip(result.positions, entries.map(\.event.id))
                } catch {
                    // Nothing of the failed request was written.
                    #expect(try ledger.headPosition() == UInt64(acknowledged.count))
                    for entry in entries { #expect(try ledger.position(source: entry.event.source, id: entry.event.id) == nil) }
                    return error
                }
            }
            return nil
        }
        let error = try #require(failure)
        #expect(error == .mapFull(mapSizeBytes: 2 << 20))
        #expect(error.description.contains("--map-size-gib"))
        #expect(acknowledged.count > 100)

        try await withLedger(at: path, options: LedgerOptions(mapSizeBytes: 64 << 20)) { ledger throws in
            #expect(ledger.storageUsage().mapSizeBytes == 64 << 20)
            #expect(try ledger.headPosition() == UInt64(acknowledged.count))
            for (position, id) in acknowledged {
                #expect(try ledger.record(at: position)?.id == id)
            }
            let report = try ledger.verifyChain()
            #expect(report.isIntact)
            #expect(report.checked == UInt64(acknowledged.count))
            let next = UInt64(acknowledged.count) + 1
            #expect(try await ledger.append([AppendEntry(Fixture.event(id: "after", data: payload))]).positions == [next])
        }
    }

    @Test func headUpdatesYieldTheNewHead() async throws {
        let dir = TemporaryDirectory()
        let ledger = try Ledger.open(at: dir.ledgerPath)
        var heads = ledger.headUpdates().makeAsyncIterator()
        _ = try await ledger.append([Fixture.entry(id: "a"), Fixture.entry(id: "b")])
        #expect(await heads.next() == 2)
        _ = try await ledger.append([Fixture.entry(id: "c")])
        #expect(await heads.next() == 3)
        // A refused or duplicate-only request adds nothing, so no new head; the next real one does.
        _ = await appendError(ledger, [Fixture.entry(id: "d", expecting: .noStream)])
        _ = try await ledger.append([Fixture.entry(id: "c")])
        _ = try await ledger.append([Fixture.entry(id: "e")])
        #expect(await heads.next() == 4)
        ledger.close()
        #expect(await heads.next() == nil)
        #expect(await appendError(ledger, [Fixture.entry(id: "late")]) == .closed)
    }
}
