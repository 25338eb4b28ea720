// Deterministic randomness: the same seed gives the same file, byte for byte, on any number
// of threads. Every invoice draws from its own stream, seeded by (seed, invoice index), so an
// invoice is a pure function of its index and invoices can be generated in parallel.

/// SplitMix64: small, fast, and good enough for test data (not for secrets).
struct SplitMix: Sendable {
    private(set) var state: UInt64

    init(state: UInt64) { self.state = state }

    /// The stream of invoice `index` (or of any other numbered thing) under `seed`.
    init(seed: UInt64, stream: UInt64, index: UInt64) {
        state = SplitMix.mix(seed ^ SplitMix.mix(stream &+ 0x632B_E59B_D9B4_E019) ^ (index &* 0x9E37_79B9_7F4A_7C15))
    }

    /// The SplitMix64 finaliser: a bijective scramble of 64 bits.
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return SplitMix.mix(state)
    }

    /// Uniform in `0..<bound` (Lemire's multiply-shift; the tiny bias is irrelevant here).
    mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0, "below(0)")
        return Int((UInt128(next()) * UInt128(bound)) >> 64)
    }

    /// Uniform in the closed range.
    mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + below(range.count) }

    mutating func int64(_ range: ClosedRange<Int64>) -> Int64 {
        range.lowerBound + Int64(below(Int(range.upperBound - range.lowerBound) + 1))
    }

    /// True with probability `percent`/100.
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }

    mutating func pick<T>(_ values: [T]) -> T { values[below(values.count)] }

    /// One of `choices` with probability proportional to its weight.
    mutating func weighted<T>(_ choices: [(T, Int)]) -> T {
        let total = choices.reduce(0) { $0 + $1.1 }
        var roll = below(total)
        for (value, weight) in choices {
            if roll < weight { return value }
            roll -= weight
        }
        return choices[choices.count - 1].0
    }
}
