import Foundation
import Testing
@testable import Ledger

@Suite struct ExpectationTests {
    static let stream = "24112000000015301234"

    @Test func expectationsThatHoldAppend() async throws {
        let dir = TemporaryDirectory()
        let ledger = try Ledger.open(at: dir.ledgerPath)
        defer { ledger.close() }
        let s = Self.stream
        #expect(try await ledger.append([Fixture.entry(stream: s, id: "1", expecting: .noStream)]).positions == [1])
        #expect(try await ledger.append([Fixture.entry(stream: s, id: "2", expecting: .streamExists)]).positions == [2])
        #expect(try await ledger.append([Fixture.entry(stream: s, id: "3", expecting: .version(2))]).positions == [3])
        #expect(try await ledger.append([Fixture.entry(stream: s, id: "4", expecting: .any)]).positions == [4])
        // A fresh stream at version 0.
        #expect(try await ledger.append([Fixture.entry(stream: "system/a", id: "5", expecting: .version(0))]).positions == [5])
        // Several entries of one stream in one request see each other's versions.
        let result = try await ledger.append([
            Fixture.entry(stream: s, id: "6", expecting: .version(4)),
            Fixture.entry(stream: s, id: "7", expecting: .version(5)),
        ])
        #expect(result.positions == [6, 7])
        #expect(try ledger.stream(s, limit: 100).map(\.streamVersion) == [1, 2, 3, 4, 5, 6])
        #expect(try ledger.rejectionCount() == 0)
    }

    struct FailingCase: Sendable, CustomTestStringConvertible {
        var expectation: StreamExpectation
        var stream: String
        var actual: UInt64
        var testDescription: String { "\(expectation) on \(stream)" }
    }

    @Test(arguments: [
        FailingCase(expectation: .noStream, stream: ExpectationTests.stream, actual: 2),
        FailingCase(expectation: .streamExists, stream: "system/empty", actual: 0),
        FailingCase(expectation: .version(1), stream: ExpectationTests.stream, actual: 2),
        FailingCase(expectation: .version(3), stream: ExpectationTests.stream, actual: 2),
        FailingCase(expectation: .version(1), stream: "system/empty", actual: 0),
    ])
    func aFailedExpectationWritesNothingAndIsRecorded(_ failing: FailingCase) async throws {
        let dir = TemporaryDirectory()
        let ledger = try Ledger.open(at: dir.ledgerPath)
        defer { ledger.close() }
        _ = try await ledger.append([Fixture.entry(stream: Self.stream, id: "a"), Fixture.entry(stream: Self.stream, id: "b")])
        let headBefore = try ledger.headPosition()

        let error = await appendError(ledger, [Fixture.entry(stream: failing.stream, id: "refused", expecting: failing.expectation)])
        #expect(error == .expectationFailed(stream: failing.stream, expected: failing.expectation, actualVersion: failing.actual))
        #expect(error?.description.contains("nothing was written") == true)

        #expect(try ledger.headPosition() == headBefore)
        #expect(try ledger.position(source: "urn:fapiao:test", id: "refused") == nil)
        #expect(try ledger.stream(failing.stream, limit: 100).allSatisfy { $0.id != "refused" })
        #expect(try ledger.streamVersion(failing.stream) == failing.actual)

        let rejections = try ledger.rejections(from: 1, limit: 10)
        #expect(rejections.count == 1)
        let rejection = try #require(rejections.first)
        #expect(rejection.sequence == 1)
        #expect(rejection.reason == .expectationFailed)
        #expect(rejection.id == "refused")
        #expect(rejection.stream == failing.stream)
        #expect(rejection.expected == failing.expectation.description)
        #expect(rejection.actualVersion == failing.actual)
        #expect(rejection.message == error?.description)
        #expect(try ledger.rejections(forStream: failing.stream, limit: 10) == rejections)
        #expect(try ledger.rejections(forStream: "system/other", limit: 10).isEmpty)
        #expect(try ledger.rejectionCount() == 1)
    }

    @Test func anAtomicRequestWithOneFailingEntryWritesNothing() async throws {
        let dir = TemporaryDirectory()
        let ledger = try Ledger.open(at: dir.ledgerPath)
        defer { ledger.close() }
        _ = try await ledger.append([Fixture.entry(stream: "system/b", id: "b1")])

        let request = [
            Fixture.entry(stream: "system/a", id: "a1", expecting: .noStream),
            Fixture.entry(stream: "system/c", id: "c1", expecting: .any),
            Fixture.entry(stream: "system/b", id: "b2", expecting: .noStream),  // fails: b has one event
            Fixture.entry(stream: "system/a", id: "a2", expecting: .version(1)),
        ]
        let error = await appendError(ledger, request)
        #expect(error == .expectationFailed(stream: "system/b", expected: .noStream, actualVersion: 1))
        #expect(try ledger.headPosition() == 1)
        for id in ["a1", "c1", "b2", "a2"] { #expect(try ledger.position(source: "urn:fapiao:test", id: id) == nil) }
        #expect(try ledger.streamVersion("system/a") == 0)
        #expect(try ledger.streamVersion("system/c") == 0)

        // The rejection names the failing entry and every stream of the request.
        let rejection = try #require(try ledger.rejections(limit: 10).first)
        #expect(rejection.id == "b2")
        #expect(rejection.requestStreams == ["system/a", "system/b", "system/c"])
        #expect(rejection.requestEvents == 4)
        for stream in ["system/a", "system/b", "system/c"] {
            #expect(try ledger.rejections(forStream: stream, limit: 10).map(\.sequence) == [1])
        }

        // The same request with the expectation fixed goes through whole.
        var fixed = request
        fixed[2].expectation = .version(1)
        let result = try await ledger.append(fixed)
        #expect(result.positions == [2, 3, 4, 5])
        #expect(try ledger.streamVersion("system/a") == 2)
        #expect(try ledger.verifyChain().isIntact)
    }

    /// Optimistic concurrency: every task reads the version, then appends expecting it. Exactly
    /// one task can win each version; every other one is refused and recorded.
    @Test func concurrentAppendersWithConflictingExpectations() async throws {
        let dir = TemporaryDirectory()
        let ledger = try Ledger.open(at: dir.ledgerPath)
        defer { ledger.close() }
        let stream = Self.stream
        let tasks = 32
        let outcomes = try await withThrowingTaskGroup(of: (expected: UInt64, error: LedgerError?).self) { group in
            for task in 0..<tasks {
                group.addTask {
                    let version = try ledger.streamVersion(stream)
                    let error = await appendError(ledger, [Fixture.entry(stream: stream, id: "t\(task)", expecting: .version(version))])
                    return (version, error)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let winners = outcomes.filter { $0.error == nil }
        let losers = outcomes.filter { $0.error != nil }
        #expect(winners.count >= 1)
        #expect(winners.count + losers.count == tasks)
        // No two winners claimed the same version.
        #expect(Set(winners.map(\.expected)).count == winners.count)
        for loser in losers {
            guard case let .expectationFailed(failedStream, expected, actual)? = loser.error else {
                Issue.record("a loser failed with \(String(describing: loser.error))")
                continue
            }
            #expect(failedStream == stream)
            #expect(expected == .version(loser.expected))
            #expect(actual > loser.expected)
        }
        let records = try ledger.stream(stream, limit: 1000)
        #expect(records.map(\.streamVersion) == Array(1...UInt64(winners.count)))
        #expect(records.map(\.position) == Array(1...UInt64(winners.count)))
        #expect(try ledger.headPosition() == UInt64(winners.count))
        #expect(try ledger.rejectionCount() == UInt64(losers.count))
        #expect(try ledger.rejections(forStream: stream, limit: 1000).count == losers.count)
        #expect(try ledger.rejections(limit: 1000).allSatisfy { $0.reason == .expectationFailed })
        #expect(try ledger.verifyChain().checked == UInt64(winners.count))
    }
}
