import Crypto
import Foundation
import Testing
@testable import Ledger

@Suite struct RecordCodecTests {
    struct CodecCase: Sendable, CustomTestStringConvertible {
        var name: String
        var event: NewEvent
        var testDescription: String { name }
    }

    static let cases: [CodecCase] = [
        CodecCase(name: "with datacontenttype", event: Fixture.event(id: "a")),
        CodecCase(name: "without datacontenttype", event: {
            var event = Fixture.event(id: "b")
            event.dataContentType = nil
            return event
        }()),
        CodecCase(name: "empty datacontenttype", event: {
            var event = Fixture.event(id: "c")
            event.dataContentType = ""
            return event
        }()),
        CodecCase(name: "unicode stream", event: Fixture.event(stream: "system/北京/用户/张三 🧾", id: "发票-1")),
        CodecCase(name: "empty data", event: Fixture.event(id: "d", data: "")),
        CodecCase(name: "binary data", event: {
            var event = Fixture.event(id: "e")
            event.dataContentType = "application/octet-stream"
            event.data = (0...255).map { UInt8($0) } + [0, 0, 0xff]
            return event
        }()),
        CodecCase(name: "negative times", event: {
            var event = Fixture.event(id: "f")
            event.occurredMicros = -1
            event.time = "1969-12-31T23:59:59.999999Z"
            return event
        }()),
    ]

    static func encode(_ event: NewEvent, position: UInt64 = 7, recordedMicros: Int64 = 1_735_635_600_123_456) -> [UInt8] {
        var buffer: [UInt8] = []
        RecordCodec.encode(
            event, position: position, streamVersion: 3, recordedMicros: recordedMicros,
            previousHash: (0..<32).map { UInt8($0) }, into: &buffer)
        return buffer
    }

    static func decode(_ bytes: [UInt8]) throws(LedgerError) -> Record {
        let result = bytes.withUnsafeBytes { raw in Result { () throws(LedgerError) in try RecordCodec.decode(raw) } }
        return try result.get()
    }

    @Test(arguments: RecordCodecTests.cases)
    func roundTrip(_ codec: CodecCase) throws {
        let event = codec.event
        let bytes = Self.encode(event)
        #expect(bytes.count == RecordCodec.encodedSize(of: event))
        let record = try Self.decode(bytes)
        #expect(record.position == 7)
        #expect(record.streamVersion == 3)
        #expect(record.recordedMicros == 1_735_635_600_123_456)
        #expect(record.previousHash == (0..<32).map { UInt8($0) })
        #expect(record.stream == event.stream)
        #expect(record.type == event.type)
        #expect(record.source == event.source)
        #expect(record.id == event.id)
        #expect(record.time == event.time)
        #expect(record.occurredMicros == event.occurredMicros)
        #expect(record.dataContentType == event.dataContentType)
        #expect(record.data == event.data)
        #expect(event.hasSameContent(as: record))
        // The hash is SHA-256 of exactly the stored bytes.
        #expect(bytes.withUnsafeBytes { RecordCodec.hash($0) } == Array(SHA256.hash(data: bytes)))
    }

    @Test(arguments: RecordCodecTests.cases)
    func everyTruncationIsACorruptRecord(_ codec: CodecCase) {
        let bytes = Self.encode(codec.event)
        for length in 0..<bytes.count {
            #expect(throws: LedgerError.self, "truncated to \(length) bytes") { try Self.decode(Array(bytes.prefix(length))) }
        }
        // And so is a trailing byte.
        #expect(throws: LedgerError.self) { try Self.decode(bytes + [0]) }
    }

    @Test func corruptErrorsAreCorruptRecord() {
        let bytes = Self.encode(Fixture.event(id: "a"))
        var wrongVersion = bytes
        wrongVersion[0] = 2
        for bad in [[], Array(bytes.prefix(10)), wrongVersion] {
            do {
                _ = try Self.decode(bad)
                Issue.record("decoded \(bad.count) corrupt bytes")
            } catch {
                guard case .corruptRecord = error else {
                    Issue.record("unexpected \(error)")
                    continue
                }
            }
        }
        // A length field pointing past the end names the record's position.
        var longLength = bytes
        longLength[RecordCodec.fixedBytes] = 0xff
        #expect(throws: LedgerError.corruptRecord(position: 7, reason: "field lengths do not match the record size")) {
            try Self.decode(longLength)
        }
    }

    /// Random damage never crashes the decoder: it either decodes or throws corruptRecord.
    @Test func randomDamageNeverCrashes() {
        var random = SplitMix64(seed: 0xfa_91a0)
        let originals = Self.cases.map { Self.encode($0.event) }
        var decoded = 0
        var refused = 0
        for round in 0..<20_000 {
            var bytes = originals[round % originals.count]
            for _ in 0...(random.next() % 4) {
                let index = Int(random.next() % UInt64(bytes.count))
                switch random.next() % 3 {
                case 0: bytes[index] = UInt8(truncatingIfNeeded: random.next())
                case 1: bytes.removeSubrange(index...)
                default: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: index)
                }
                if bytes.isEmpty { break }
            }
            do {
                _ = try Self.decode(bytes)
                decoded += 1
            } catch {
                guard case .corruptRecord = error else {
                    Issue.record("unexpected \(error)")
                    return
                }
                refused += 1
            }
        }
        #expect(decoded + refused == 20_000)
        #expect(refused > 0)
    }
}

/// A small deterministic generator: the same damage on every run.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
