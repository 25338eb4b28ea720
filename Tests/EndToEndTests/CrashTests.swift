import Foundation
import Testing
@testable import Ledger

/// Kills a process that is appending as fast as it can, at a random moment, and checks that
/// everything it acknowledged survived: the promise of a durable commit.
@Suite(.serialized) struct CrashTests {
    static let acksPerRun = 2_000
    static let runs = 3
    /// Only a guard against a hung child; no assertion depends on time.
    static let ackTimeout = Duration.seconds(120)

    /// Parses "ack POSITION ID" lines.
    static func acks(in lines: [String]) throws -> [(position: UInt64, id: String)] {
        try lines.map { line in
            let fields = line.split(separator: " ")
            guard fields.count == 3, fields[0] == "ack", let position = UInt64(fields[1]) else {
                throw TestFailure("unexpected line from ledger-torture: \(line)")
            }
            return (position, String(fields[2]))
        }
    }

    @Test func acknowledgedAppendsSurviveSIGKILL() async throws {
        let torture = try BuiltProducts.executable(named: "ledger-torture")
        let dir = TemporaryDirectory("crash")
        let path = dir.ledgerPath
        // position -> (source, id) of every acknowledged event.
        var acknowledged: [UInt64: (source: String, id: String)] = [:]
        for run in 1...Self.runs {
            let child = ChildProcess(torture, [path, "8", "3"])
            try child.start()
            let arrived = try await child.waitForLines(Self.acksPerRun, timeout: Self.ackTimeout)
            child.kill()
            #expect(child.process.terminationReason == .uncaughtSignal, "run \(run): ledger-torture ended by itself")
            try #require(arrived, "run \(run): ledger-torture acknowledged only \(child.lines.count) appends")
            for (position, id) in try Self.acks(in: child.lines) {
                #expect(acknowledged.updateValue(("urn:fapiao:torture", id), forKey: position) == nil, "position \(position) acknowledged twice")
            }

            try await withLedger(at: path) { ledger throws in
                let head = try ledger.headPosition()
                #expect(head >= acknowledged.keys.max() ?? 0)
                // Every acknowledged event of every run so far is where it was acknowledged.
                var missing = 0
                for (position, event) in acknowledged {
                    let record = try ledger.record(at: position)
                    let indexed = try ledger.position(source: event.source, id: event.id)
                    if record?.id != event.id || record?.source != event.source || indexed != position {
                        missing += 1
                    }
                }
                #expect(missing == 0, "run \(run): \(missing) of \(acknowledged.count) acknowledged events are missing")
                // The log is gapless from 1 to the head and chained.
                let report = try ledger.verifyChain()
                #expect(report.isIntact, "run \(run): \(String(describing: report.problem))")
                #expect(report.checked == head)
                // Stream versions are gapless too.
                for stream in 0..<4 {
                    let versions = try ledger.stream("torture/\(stream)", limit: ledger.options.readEventsMax).map(\.streamVersion)
                    #expect(versions == Array(1...UInt64(versions.count)))
                }
                // And the ledger takes appends again.
                let event = NewEvent(
                    stream: "torture/after", type: "fapiao.test.after-crash", source: "urn:fapiao:crash-test", id: "after-\(run)",
                    time: "2024-12-31T16:59:26+08:00", occurredMicros: 1_735_635_566_000_000, data: [])
                let result = try await ledger.append([AppendEntry(event)])
                #expect(result.positions == [head + 1])
                acknowledged[head + 1] = (event.source, event.id)
            }
        }
        #expect(acknowledged.count >= Self.runs * Self.acksPerRun)
    }

    /// A read-only ledger in this process reads while another process writes, sees its new
    /// commits, and refuses appends.
    @Test func readOnlyWhileAnotherProcessWrites() async throws {
        let torture = try BuiltProducts.executable(named: "ledger-torture")
        let dir = TemporaryDirectory("readonly")
        let path = dir.ledgerPath
        let child = ChildProcess(torture, [path, "4", "2"])
        try child.start()
        defer { child.kill() }
        try #require(try await child.waitForLines(200, timeout: Self.ackTimeout))

        try await withLedger(at: path, options: LedgerOptions(readOnly: true)) { ledger throws in
            let before = try Self.acks(in: child.lines)
            let firstHead = try ledger.headPosition()
            #expect(firstHead >= before.map(\.position).max() ?? 0)
            for (position, id) in before { #expect(try ledger.record(at: position)?.id == id) }
            #expect(try ledger.verifyChain(through: firstHead).isIntact)

            let event = NewEvent(
                stream: "torture/0", type: "fapiao.test.refused", source: "urn:fapiao:crash-test", id: "refused",
                time: "2024-12-31T16:59:26+08:00", occurredMicros: 1_735_635_566_000_000, data: [])
            do throws(LedgerError) {
                _ = try await ledger.append([AppendEntry(event)])
                Issue.record("a read-only ledger appended")
            } catch {
                #expect(error == .readOnly)
            }

            // The writer goes on; this reader sees its later commits.
            try #require(try await child.waitForLines(before.count + 200, timeout: Self.ackTimeout))
            let later = try Self.acks(in: child.lines)
            let laterHead = try ledger.headPosition()
            #expect(laterHead > firstHead)
            #expect(laterHead >= later.map(\.position).max() ?? 0)
            #expect(try ledger.record(at: later.last!.position)?.id == later.last!.id)
        }
        child.kill()
        try await withLedger(at: path) { ledger throws in
            #expect(try ledger.position(source: "urn:fapiao:crash-test", id: "refused") == nil)
            #expect(try ledger.verifyChain().isIntact)
        }
    }
}

/// Opens a ledger, runs `body`, closes it and waits until it is released (`Ledger.using`).
func withLedger<T>(at path: String, options: LedgerOptions = LedgerOptions(), _ body: (Ledger) async throws -> T) async throws -> T {
    try await Ledger.using(at: path, options: options, body)
}
