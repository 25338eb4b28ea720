import Foundation
import Testing
@testable import Ledger

@Suite struct ValidationTests {
    struct MalformedCase: Sendable, CustomTestStringConvertible {
        var name: String
        var event: NewEvent
        /// Words the error must contain: it names the field.
        var mentions: String
        var testDescription: String { name }
    }

    static let malformed: [MalformedCase] = [
        MalformedCase(name: "empty id", event: Fixture.event(id: ""), mentions: "id is empty"),
        MalformedCase(name: "empty source", event: Fixture.event(id: "e", source: ""), mentions: "source is empty"),
        MalformedCase(name: "empty stream", event: Fixture.event(stream: "", id: "e"), mentions: "subject (stream) is empty"),
        MalformedCase(name: "empty type", event: Fixture.event(id: "e", type: ""), mentions: "type is empty"),
        MalformedCase(name: "NUL in stream", event: Fixture.event(stream: "system/a\u{0}b", id: "e"), mentions: "subject (stream) contains a NUL byte"),
        MalformedCase(name: "NUL in source", event: Fixture.event(id: "e", source: "urn:a\u{0}b"), mentions: "source contains a NUL byte"),
        MalformedCase(name: "long stream", event: Fixture.event(stream: String(repeating: "s", count: 257), id: "e"), mentions: "subject (stream) is 257 bytes"),
        MalformedCase(name: "long id", event: Fixture.event(id: String(repeating: "i", count: 256)), mentions: "id is 256 bytes"),
        MalformedCase(name: "long source", event: Fixture.event(id: "e", source: String(repeating: "u", count: 256)), mentions: "source is 256 bytes"),
        MalformedCase(
            name: "oversized data", event: Fixture.event(id: "e", data: String(repeating: "d", count: 600)),
            mentions: "data is 600 bytes"),
    ]

    @Test(arguments: ValidationTests.malformed)
    func aMalformedEventIsRefusedAndRecorded(_ bad: MalformedCase) async throws {
        let dir = TemporaryDirectory()
        let ledger = try Ledger.open(at: dir.ledgerPath, options: LedgerOptions(recordBytesMax: 512))
        defer { ledger.close() }
        _ = try await ledger.append([Fixture.entry(id: "ok")])

        // The bad event rides with a good one: neither is written.
        let error = await appendError(ledger, [Fixture.entry(id: "good"), AppendEntry(bad.event)])
        let reason = try #require(invalidReason(error), "expected invalid, got \(String(describing: error))")
        #expect(reason.contains(bad.mentions))
        #expect(error?.description.contains("nothing was written") == true)
        #expect(try ledger.headPosition() == 1)
        #expect(try ledger.position(source: "urn:fapiao:test", id: "good") == nil)

        let rejection = try #require(try ledger.rejections(limit: 10).first)
        #expect(rejection.reason == .invalid)
        #expect(rejection.message.contains(bad.mentions))
        #expect(rejection.requestEvents == 2)
        // The good entry's stream can find the rejection of its request.
        #expect(try ledger.rejections(forStream: Fixture.event(id: "good").stream, limit: 10).count == 1)
        // The ledger still appends.
        #expect(try await ledger.append([Fixture.entry(id: "after")]).positions == [2])
    }

    @Test func aRecordAtTheLimitIsAcceptedAndOneByteMoreIsNot() async throws {
        let dir = TemporaryDirectory()
        let ledger = try Ledger.open(at: dir.ledgerPath, options: LedgerOptions(recordBytesMax: 512))
        defer { ledger.close() }
        var event = Fixture.event(id: "edge", data: "")
        let room = 512 - RecordCodec.encodedSize(of: event)
        event.data = [UInt8](repeating: 0x61, count: room)
        #expect(try await ledger.append([AppendEntry(event)]).positions == [1])
        let stored = try #require(try ledger.record(at: 1))
        #expect(stored.data.count == room)

        event.id = "egde"  // same length: one byte more in data only
        event.data.append(0x61)
        let reason = invalidReason(await appendError(ledger, [AppendEntry(event)]))
        #expect(reason?.contains("the record would be 513 bytes; at most 512") == true)
        #expect(try ledger.headPosition() == 1)
    }

    @Test func anEmptyRequestIsInvalid() async throws {
        let dir = TemporaryDirectory()
        let ledger = try Ledger.open(at: dir.ledgerPath)
        defer { ledger.close() }
        let reason = invalidReason(await appendError(ledger, []))
        #expect(reason?.contains("at least one event") == true)
        #expect(try ledger.headPosition() == 0)
        // Still serving.
        #expect(try await ledger.append([Fixture.entry(id: "a")]).positions == [1])
    }

    @Test func aRequestAboveRequestEventsMaxIsInvalid() async throws {
        let dir = TemporaryDirectory()
        let ledger = try Ledger.open(at: dir.ledgerPath, options: LedgerOptions(requestEventsMax: 5))
        defer { ledger.close() }
        let entries = (0..<6).map { Fixture.entry(id: "e\($0)") }
        let reason = invalidReason(await appendError(ledger, entries))
        #expect(reason?.contains("6 events in one request; at most 5") == true)
        #expect(try ledger.headPosition() == 0)
        #expect(try await ledger.append(Array(entries.prefix(5))).positions == [1, 2, 3, 4, 5])
    }

    /// Unicode stream names are stored byte-exact and indexed like any other.
    @Test func unicodeStreamNames() async throws {
        let dir = TemporaryDirectory()
        let ledger = try Ledger.open(at: dir.ledgerPath)
        defer { ledger.close() }
        let streams = ["system/北京", "system/北京/用户/张三", "system/e\u{301}", "system/\u{e9}"]
        for (n, stream) in streams.enumerated() {
            _ = try await ledger.append([Fixture.entry(stream: stream, id: "u\(n)", expecting: .noStream)])
        }
        for (n, stream) in streams.enumerated() {
            // "e + combining acute" and "é" are equal Swift strings but different bytes: two streams.
            #expect(try ledger.stream(stream, limit: 10).map(\.id) == ["u\(n)"])
            #expect(try ledger.streamVersion(stream) == 1)
        }
    }
}

extension ValidationTests {
    /// Canonically equal names with different bytes are different streams (keys are bytes), also
    /// inside one request, where the planner tracks versions per stream.
    @Test func canonicallyEqualStreamNamesAreDistinctStreamsWithinOneRequest() async throws {
        let dir = TemporaryDirectory()
        let ledger = try Ledger.open(at: dir.ledgerPath)
        defer { ledger.close() }
        let composed = "system/\u{e9}"
        let decomposed = "system/e\u{301}"
        let result = try await ledger.append([
            Fixture.entry(stream: composed, id: "c", expecting: .noStream),
            Fixture.entry(stream: decomposed, id: "d", expecting: .noStream),
        ])
        #expect(result.positions == [1, 2])
        #expect(try ledger.stream(composed, limit: 10).map(\.streamVersion) == [1])
        #expect(try ledger.stream(decomposed, limit: 10).map(\.streamVersion) == [1])
        #expect(try ledger.verifyChain().isIntact)
    }
}
