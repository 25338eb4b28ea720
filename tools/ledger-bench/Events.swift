import Ledger

/// A small, fast, seedable generator: every run appends the same events, so runs compare.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    /// A bijective scramble of a 64-bit value: a stateless hash for deterministic names.
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Realistic invoice events: a 20-digit invoice key as the stream, a UUID-shaped id, and
/// about 300 bytes of invoice JSON as data. Keys and ids are scattered, as real ones are, so
/// the stream and idempotency indexes take random inserts, not sorted ones.
enum BenchEvents {
    static let source = "urn:fapiao:bench"
    static let type = "cn.fapiao.invoice.issued"
    static let time = "2024-12-31T16:59:26+08:00"
    static let occurredMicros: Int64 = 1_735_635_566_000_000
    static let contentType = "application/json"
    /// The size every event's `data` is padded to.
    static let dataBytes = 300

    /// The invoice key of stream number `n` in a namespace: 20 digits, "24" then 18 scattered digits.
    static func invoiceKey(_ n: UInt64, namespace: UInt64) -> String {
        let digits = SplitMix64.mix(n &+ namespace &* 0x1_0000_0000) % 1_000_000_000_000_000_000
        return "24" + leftPadded(String(digits), to: 18)
    }

    /// A UUID-shaped id (lowercase hex, 36 characters), random as version-4 UUIDs are.
    static func id(_ rng: inout SplitMix64) -> String {
        let digits = Array("0123456789abcdef".utf8)
        let bits = (rng.next(), rng.next())
        var out = [UInt8]()
        out.reserveCapacity(36)
        for index in 0..<32 {
            if index == 8 || index == 12 || index == 16 || index == 20 { out.append(UInt8(ascii: "-")) }
            let word = index < 16 ? bits.0 : bits.1
            out.append(digits[Int((word >> UInt64(4 * (index % 16))) & 0xf)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func event(stream: String, rng: inout SplitMix64) -> NewEvent {
        NewEvent(
            stream: stream, type: type, source: source, id: id(&rng), time: time, occurredMicros: occurredMicros,
            dataContentType: contentType, data: data(invoice: stream, rng: &rng))
    }

    /// Invoice JSON padded with a remark to exactly `dataBytes` bytes.
    static func data(invoice: String, rng: inout SplitMix64) -> [UInt8] {
        let cents = rng.next() % 10_000_000
        let taxCents = cents * 13 / 100
        let json = #"{"number":"\#(invoice)","date":"2024-12-31","seller":{"taxId":"91310000MA1FL8XQ3B","name":"上海星河科技有限公司"},"buyer":{"taxId":"91440300MA5DC1234X","name":"深圳云帆贸易有限公司"},"amount":"\#(money(cents))","tax":"\#(money(taxCents))","rate":"0.13","remark":""#
        var bytes = Array(json.utf8)
        let closing = Array(#""}"#.utf8)
        while bytes.count + closing.count < dataBytes { bytes.append(UInt8(ascii: "x")) }
        bytes.append(contentsOf: closing)
        return bytes
    }

    private static func money(_ cents: UInt64) -> String {
        "\(cents / 100)." + leftPadded(String(cents % 100), to: 2)
    }

    private static func leftPadded(_ text: String, to width: Int) -> String {
        String(repeating: "0", count: max(0, width - text.count)) + text
    }
}
