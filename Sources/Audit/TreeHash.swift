import Crypto

/// A SHA-256 value of the Merkle tree: a leaf hash, a node hash or a root. 32 bytes, stored
/// inline (no allocation), so hashing a million leaves allocates nothing per leaf.
public struct TreeHash: Sendable, Hashable, CustomStringConvertible {
    public static let byteCount = 32
    private var words: (UInt64, UInt64, UInt64, UInt64)

    /// The hash in `bytes`, which must be exactly 32 bytes long.
    public init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count == Self.byteCount else { return nil }
        words = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: bytes) }
    }

    public init?(_ bytes: [UInt8]) {
        guard let hash = bytes.withUnsafeBytes({ TreeHash($0) }) else { return nil }
        self = hash
    }

    /// Lowercase or uppercase hex, 64 digits.
    public init?(hex: String) {
        let digits = Array(hex.utf8)
        guard digits.count == Self.byteCount * 2 else { return nil }
        var bytes = [UInt8](repeating: 0, count: Self.byteCount)
        for index in 0..<Self.byteCount {
            guard let high = Hex.value(digits[2 * index]), let low = Hex.value(digits[2 * index + 1]) else { return nil }
            bytes[index] = high << 4 | low
        }
        self.init(bytes)
    }

    init(_ digest: SHA256Digest) {
        words = (0, 0, 0, 0)
        digest.withUnsafeBytes { source in
            withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: source) }
        }
    }

    public func withUnsafeBytes<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try Swift.withUnsafeBytes(of: words) { try body($0) }
    }

    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Lowercase hex, the form every document and proof uses.
    public var hex: String { withUnsafeBytes { Hex.encode($0) } }

    public var description: String { hex }

    public static func == (lhs: TreeHash, rhs: TreeHash) -> Bool {
        lhs.words.0 == rhs.words.0 && lhs.words.1 == rhs.words.1 && lhs.words.2 == rhs.words.2 && lhs.words.3 == rhs.words.3
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }
}

/// The hashing of RFC 9162 §2.1.1, with SHA-256.
public enum MerkleHashing {
    private static let leafPrefix: [UInt8] = [0x00]
    private static let nodePrefix: [UInt8] = [0x01]

    /// MTH({}) = SHA-256 of the empty string.
    public static let emptyRoot = TreeHash(SHA256.hash(data: [UInt8]()))

    /// MTH({d}) = SHA-256(0x00 || d). For the ledger, `d` is a record's stored bytes.
    @inline(__always)
    public static func leafHash(_ bytes: UnsafeRawBufferPointer) -> TreeHash {
        var hasher = SHA256()
        leafPrefix.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        hasher.update(bufferPointer: bytes)
        return TreeHash(hasher.finalize())
    }

    public static func leafHash(_ bytes: [UInt8]) -> TreeHash {
        bytes.withUnsafeBytes { leafHash($0) }
    }

    /// SHA-256(0x01 || left || right).
    @inline(__always)
    public static func nodeHash(_ left: TreeHash, _ right: TreeHash) -> TreeHash {
        var hasher = SHA256()
        nodePrefix.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        left.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        right.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        return TreeHash(hasher.finalize())
    }

    /// SHA-256 of a record's bytes: the ledger's record hash (the hash chain's link).
    @inline(__always)
    public static func recordHash(_ bytes: UnsafeRawBufferPointer) -> TreeHash {
        var hasher = SHA256()
        hasher.update(bufferPointer: bytes)
        return TreeHash(hasher.finalize())
    }
}

/// Hex and base64 text for hashes, keys and signatures.
enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    static func encode(_ bytes: UnsafeRawBufferPointer) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func encode(_ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { encode($0) } }

    static func value(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    static func decode(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }
}

/// Big-endian keys, so LMDB's byte-wise order is numeric order (as the ledger's own tables).
enum BigEndianKey {
    static func bytes(_ value: UInt64) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }

    static func uint64(_ bytes: UnsafeRawBufferPointer, at offset: Int = 0) -> UInt64 {
        precondition(offset + 8 <= bytes.count, "8-byte read past the end")
        return UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
}
