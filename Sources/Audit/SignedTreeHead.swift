import Crypto
import Foundation
import Ledger

/// A signed tree head: the ledger operator's signed statement "at `ledgerTime` the log held
/// exactly `treeSize` records, and their Merkle tree's root is `rootHash`". An auditor who
/// trusts the public key can hold the operator to it: any later change to those records, or a
/// later log that does not extend them, is provable.
///
/// What is signed (Ed25519, RFC 8032) is the UTF-8 text of `message`:
///
///     fapiao-tree-head/v1\n
///     <treeSize, decimal>\n
///     <rootHash, 64 lowercase hex digits>\n
///     <ledgerTime, exactly as in the JSON>\n
public struct SignedTreeHead: Codable, Sendable, Equatable {
    public var treeSize: UInt64
    /// MTH of records 1...treeSize, lowercase hex.
    public var rootHash: String
    /// RFC 3339 in UTC with microseconds, e.g. `2024-12-31T09:00:05.123456Z`: when it was signed,
    /// on the ledger's clock (never before the last record's recorded time).
    public var ledgerTime: String
    /// The Ed25519 signature of `message`, standard base64 (64 bytes).
    public var signature: String
    /// The signer's Ed25519 public key, standard base64 (32 bytes).
    public var publicKey: String

    public static let messageHeader = "fapiao-tree-head/v1"

    public static func message(treeSize: UInt64, rootHash: String, ledgerTime: String) -> [UInt8] {
        Array("\(messageHeader)\n\(treeSize)\n\(rootHash)\n\(ledgerTime)\n".utf8)
    }

    public var message: [UInt8] { Self.message(treeSize: treeSize, rootHash: rootHash, ledgerTime: ledgerTime) }

    public var root: TreeHash? { TreeHash(hex: rootHash) }

    /// Whether `signature` is `publicKey`'s signature of `message`.
    public var hasValidSignature: Bool {
        guard let keyBytes = Data(base64Encoded: publicKey), let signatureBytes = Data(base64Encoded: signature),
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: keyBytes)
        else { return false }
        return key.isValidSignature(signatureBytes, for: message)
    }

    /// Signs (treeSize, root, time) with `key`.
    public static func sign(treeSize: UInt64, root: TreeHash, ledgerMicros: Int64, key: AuditSigningKey) throws -> SignedTreeHead {
        let time = CloudEventRendering.formatRFC3339UTC(micros: ledgerMicros)
        let message = message(treeSize: treeSize, rootHash: root.hex, ledgerTime: time)
        let signature = try key.privateKey().signature(for: message)
        let head = SignedTreeHead(
            treeSize: treeSize, rootHash: root.hex, ledgerTime: time, signature: signature.base64EncodedString(),
            publicKey: key.publicKeyBase64)
        // Check right after making it, as the ledger checks every record it writes.
        precondition(head.hasValidSignature, "a fresh signature does not verify")
        return head
    }

    /// `ledgerTime` as microseconds since the epoch (nil when it is not this type's own format).
    public var ledgerMicros: Int64? { UTCTime.micros(ledgerTime) }

    /// The JSON stored in `audit_heads` and printed: keys sorted, one line.
    func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self))
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) throws -> SignedTreeHead {
        try JSONDecoder().decode(SignedTreeHead.self, from: Data(bytes))
    }
}

/// The operator's Ed25519 signing key. Only the raw 32-byte seed is kept; the key file holds
/// it as base64 on one line and must be readable by its owner only (mode 0600).
public struct AuditSigningKey: Sendable {
    private let raw: [UInt8]

    public static let privateFileName = "audit-signing.key"
    public static let publicFileName = "audit-signing.pub"

    public static func generate() -> AuditSigningKey {
        AuditSigningKey(raw: Array(Curve25519.Signing.PrivateKey().rawRepresentation))
    }

    public init(rawRepresentation: [UInt8]) throws {
        _ = try Curve25519.Signing.PrivateKey(rawRepresentation: rawRepresentation)
        raw = rawRepresentation
    }

    private init(raw: [UInt8]) { self.raw = raw }

    func privateKey() throws -> Curve25519.Signing.PrivateKey {
        try Curve25519.Signing.PrivateKey(rawRepresentation: raw)
    }

    public var publicKeyBytes: [UInt8] { Array(try! privateKey().publicKey.rawRepresentation) }
    public var publicKeyBase64: String { Data(publicKeyBytes).base64EncodedString() }
    public var publicKeyHex: String { Hex.encode(publicKeyBytes) }

    /// Reads a key file written by `write(to:)`. Refuses one that others can read.
    public static func load(path: String) throws -> AuditSigningKey {
        var info = stat()
        guard stat(path, &info) == 0 else { throw AuditError.keyFile(path: path, reason: "it cannot be read (\(String(cString: strerror(errno))))") }
        guard info.st_mode & 0o077 == 0 else {
            throw AuditError.keyFile(path: path, reason: "others may read it (mode \(String(info.st_mode & 0o777, radix: 8))); run chmod 600 \(path)")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
            let bytes = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), bytes.count == 32
        else { throw AuditError.keyFile(path: path, reason: "it is not a base64 Ed25519 private key (fapiao audit keygen writes one)") }
        return try AuditSigningKey(rawRepresentation: Array(bytes))
    }

    /// Writes `DIR/audit-signing.key` (mode 0600, created exclusively: an existing key is never
    /// overwritten) and `DIR/audit-signing.pub` (mode 0644). Returns both paths.
    public func write(to directory: String) throws -> (privateKey: String, publicKey: String) {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let privatePath = (directory as NSString).appendingPathComponent(Self.privateFileName)
        let publicPath = (directory as NSString).appendingPathComponent(Self.publicFileName)
        try Self.createExclusively(privatePath, mode: 0o600, text: Data(raw).base64EncodedString() + "\n")
        try Self.createExclusively(publicPath, mode: 0o644, text: publicKeyBase64 + "\n")
        return (privatePath, publicPath)
    }

    private static func createExclusively(_ path: String, mode: mode_t, text: String) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL, mode)
        guard descriptor >= 0 else {
            throw AuditError.keyFile(path: path, reason: errno == EEXIST ? "it exists already; keys are never overwritten" : String(cString: strerror(errno)))
        }
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Foundation.write(descriptor, $0.baseAddress, $0.count) }
        guard written == bytes.count, fsync(descriptor) == 0 else {
            throw AuditError.keyFile(path: path, reason: "writing failed (\(String(cString: strerror(errno))))")
        }
    }
}

/// Public keys as an auditor hands them over: base64 or hex of the 32 raw bytes, or a file
/// holding either (such as `audit-signing.pub`).
public enum AuditPublicKey {
    /// The key in standard base64, or nil when `text` is none of the accepted forms.
    public static func parse(_ text: String) -> String? {
        var candidate = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if FileManager.default.fileExists(atPath: candidate),
            let contents = try? String(contentsOfFile: candidate, encoding: .utf8) {
            candidate = contents.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if candidate.count == 64, let bytes = Hex.decode(candidate) { return Data(bytes).base64EncodedString() }
        if let bytes = Data(base64Encoded: candidate), bytes.count == 32 { return bytes.base64EncodedString() }
        return nil
    }
}

/// Our own RFC 3339 UTC form (`YYYY-MM-DDTHH:MM:SS.ffffffZ`), read back.
enum UTCTime {
    static func micros(_ text: String) -> Int64? {
        let bytes = Array(text.utf8)
        guard bytes.count == 27, bytes[4] == UInt8(ascii: "-"), bytes[10] == UInt8(ascii: "T"),
            bytes[19] == UInt8(ascii: "."), bytes[26] == UInt8(ascii: "Z")
        else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for index in range {
                guard let digit = Hex.value(bytes[index]), digit < 10 else { return nil }
                value = value * 10 + Int(digit)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), let hour = number(11..<13),
            let minute = number(14..<16), let second = number(17..<19), let fraction = number(20..<26)
        else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        return Int64(timegm(&parts)) * 1_000_000 + Int64(fraction)
    }
}
