import LMDB
import Testing
@testable import Ledger

/// `Ledger.using` returns only once the ledger's LMDB environment is gone, so the directory can
/// be opened again at once; the body's error comes through, after the release all the same.
@Suite struct UsingTests {
    final class Spy: @unchecked Sendable {
        weak var environment: Environment?
    }

    @Test func returnsOnceTheEnvironmentIsReleased() async throws {
        let directory = TemporaryDirectory()
        let spy = Spy()
        let head = try await Ledger.using(at: directory.ledgerPath) { ledger in
            spy.environment = ledger.environment
            _ = try await ledger.append([AppendEntry(Fixture.event(id: "a"))])
            return try ledger.headPosition()
        }
        #expect(head == 1)
        #expect(spy.environment == nil)
        #expect(try await Ledger.using(at: directory.ledgerPath) { try $0.headPosition() } == 1)
    }

    @Test func theBodysErrorComesThroughAfterTheRelease() async throws {
        let directory = TemporaryDirectory()
        let spy = Spy()
        await #expect(throws: TestFailure.self) {
            try await Ledger.using(at: directory.ledgerPath) { ledger in
                spy.environment = ledger.environment
                throw TestFailure("stop")
            }
        }
        #expect(spy.environment == nil)
    }
}
