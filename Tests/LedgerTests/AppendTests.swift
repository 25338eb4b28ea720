import Foundation
import Testing
@testable import Ledger

@Suite struct AppendTests {
    @Test func appendsAndReadsBackInOrder() async throws {
        let dir = TemporaryDirectory()
        let ledger = try Ledger.open(at: dir.ledgerPath)
        let result = try await ledger.append([Fixture.entry(id: "a"), Fixture.entry(stream: "system/bj", id: "b"), Fixture.entry(id: "c")])
        #expect(result.positions == [1, 2, 3])
        #expect(result.isNew == [true, true, true])
        #expect(try ledger.headPosition() == 3)
        let records = try ledger.records(from: 1, limit: 10)
        #expect(records.map(\.id) == ["a", "b", "c"])
        #expect(records.map(\.streamVersion) == [1, 1, 2])
        #expect(records[0].previousHash == RecordCodec.genesisHash)
        let stream = try ledger.stream("24112000000015301234", limit: 10)
        #expect(stream.map(\.position) == [1, 3])
        #expect(try ledger.stream("24112000000015301234", fromVersion: 2, limit: 10).map(\.id) == ["c"])
        #expect(try ledger.streamVersion("24112000000015301234") == 2)
        #expect(try ledger.streamVersion("system/bj") == 1)
        #expect(try ledger.streamVersion("system/b") == 0)
        #expect(records[1].data == Array(#"{"n":"b"}"#.utf8))
        ledger.close()
    }
}
