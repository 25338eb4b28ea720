import Foundation
import Ledger

/// A self-contained audit bundle: events, the signed head they are proven against, an
/// inclusion proof for each, and the public key. One JSON file; `docs/audit.md` describes every
/// field so an auditor can check it with their own tools, without the ledger.
public struct AuditBundle: Codable, Sendable {
    public static let formatName = "fapiao-audit-bundle/1"

    public var format: String
    /// The invoice key (stream) the bundle was made for, if it was made for one.
    public var subject: String?
    /// The Ed25519 public key that signed `head`, standard base64.
    public var publicKey: String
    public var head: SignedTreeHead
    public var events: [Event]

    public struct Event: Codable, Sendable, Equatable {
        public var position: UInt64
        /// position − 1.
        public var leafIndex: UInt64
        /// The record's stored bytes, standard base64: the Merkle leaf, and what `ledgerhash` hashes.
        public var record: String
        /// The event as `fapiao export` prints it: one CloudEvents JSON line.
        public var cloudEvent: String
        /// SHA-256(0x00 ‖ record bytes), lowercase hex.
        public var leafHash: String
        /// The audit path to `head.rootHash`, RFC 9162 order, lowercase hex.
        public var inclusionProof: [String]
    }

    public static func load(path: String) throws -> AuditBundle {
        guard let data = FileManager.default.contents(atPath: path) else { throw AuditError.bundle(reason: "\(path) cannot be read") }
        do {
            return try JSONDecoder().decode(AuditBundle.self, from: data)
        } catch {
            throw AuditError.bundle(reason: "\(path) is not bundle JSON (\(error))")
        }
    }

    /// The bundle as written: pretty JSON, keys sorted, slashes unescaped.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(self)
        data.append(0x0A)
        return data
    }

    /// Checks everything the bundle claims, using nothing but itself (and the keys trusted):
    /// the head's signature; per event, that its record decodes and is at its position, that
    /// its proof takes its leaf to the signed root, that its CloudEvent line is exactly the one
    /// its record renders to; and the hash-chain link between consecutive positions.
    public func verify(trustedKeys: Set<String>? = nil) -> AuditReport {
        let clock = ContinuousClock()
        let started = clock.now
        var problems = ProblemList()
        checkHead(trustedKeys: trustedKeys, into: &problems)
        var recordHashes: [UInt64: [UInt8]] = [:]
        var previousHashes: [UInt64: [UInt8]] = [:]
        for event in events {
            if let (hash, previous) = check(event, into: &problems) {
                recordHashes[event.position] = hash
                previousHashes[event.position] = previous
            }
        }
        for (position, previous) in previousHashes {
            guard position > 1, let before = recordHashes[position - 1], before != previous else { continue }
            problems.add(AuditProblem(
                kind: .chain, position: position,
                message: "position \(position): previous-hash is \(Hex.encode(previous)), but the bundle's record \(position - 1) hashes to \(Hex.encode(before))"))
        }
        let positions = events.map(\.position)
        return AuditReport(
            intact: problems.items.isEmpty, recordsChecked: UInt64(events.count), fromPosition: positions.min() ?? 0,
            throughPosition: positions.max() ?? 0, leavesCompared: 0, headsChecked: 1, latestHead: head.treeSize, rootHash: head.rootHash,
            publicKeys: [head.publicKey], seconds: (clock.now - started).seconds, problems: problems.sorted(),
            notes: events.isEmpty ? ["the bundle holds no events"] : [])
    }

    private func checkHead(trustedKeys: Set<String>?, into problems: inout ProblemList) {
        if format != Self.formatName {
            problems.add(AuditProblem(kind: .badProof, message: "format is \(format), expected \(Self.formatName)"))
        }
        if head.publicKey != publicKey {
            problems.add(AuditProblem(kind: .untrustedKey, treeSize: head.treeSize, message: "the head is signed by \(head.publicKey), but the bundle names the key \(publicKey)"))
        }
        if !head.hasValidSignature {
            problems.add(AuditProblem(kind: .badSignature, treeSize: head.treeSize, message: "the signature of the head at size \(head.treeSize) does not verify with \(head.publicKey): the head was altered or forged"))
        } else if let trustedKeys, !trustedKeys.contains(head.publicKey) {
            problems.add(AuditProblem(kind: .untrustedKey, treeSize: head.treeSize, message: "the head is signed by \(head.publicKey), which is not a trusted key"))
        }
    }

    /// Checks one event; returns its record's hash and previous-hash when the record decodes.
    private func check(_ event: Event, into problems: inout ProblemList) -> ([UInt8], [UInt8])? {
        let position = event.position
        func problem(_ kind: AuditProblem.Kind, _ message: String) {
            problems.add(AuditProblem(kind: kind, position: position, treeSize: head.treeSize, message: "position \(position): \(message)"))
        }
        guard let bytes = Data(base64Encoded: event.record).map(Array.init) else {
            problem(.eventMismatch, "the record is not base64")
            return nil
        }
        let record: Record
        do {
            record = try bytes.withUnsafeBytes { try RecordCodec.decode($0) }
        } catch {
            problem(.recordAltered, "the record does not decode (\(error))")
            return nil
        }
        if record.position != position || event.leafIndex != position - 1 {
            problem(.recordAltered, "the record says position \(record.position), leaf index \(event.leafIndex)")
        }
        let leaf = MerkleHashing.leafHash(bytes)
        let recordHash = bytes.withUnsafeBytes { MerkleHashing.recordHash($0) }
        if leaf.hex != event.leafHash {
            problem(.recordAltered, "the record's leaf hash is \(leaf.hex), the bundle says \(event.leafHash)")
        }
        if let path = ProofPath.parse(event.inclusionProof), let root = head.root,
            MerkleTree.verifyInclusion(leafHash: leaf, index: position - 1, size: head.treeSize, path: path, root: root) {
            // proven
        } else {
            problem(.badProof, "the inclusion proof does not take the record's leaf \(leaf.hex) to the signed root \(head.rootHash)")
        }
        let rendered = CloudEventRendering.jsonLine(record, hash: recordHash.bytes)
        if Array(event.cloudEvent.utf8) != rendered {
            problem(.eventMismatch, "the CloudEvent differs from the one its record renders to: \(firstDifference(Array(event.cloudEvent.utf8), rendered))")
        }
        return (recordHash.bytes, record.previousHash)
    }

    private func firstDifference(_ given: [UInt8], _ expected: [UInt8]) -> String {
        let common = zip(given, expected).prefix { $0 == $1 }.count
        let context = { (bytes: [UInt8]) in String(decoding: bytes[max(0, common - 20)..<min(bytes.count, common + 20)], as: UTF8.self) }
        return "from byte \(common) it reads \"\(context(given))\", the record gives \"\(context(expected))\""
    }
}

extension AuditLog {
    /// A bundle of the events at `positions`, proven against the latest signed head, which must
    /// cover them all.
    public func bundle(positions: [UInt64], subject: String?) throws -> AuditBundle {
        guard positions.count <= Self.bundleEventsMax else { throw AuditError.tooMany(count: positions.count, limit: Self.bundleEventsMax) }
        guard let head = try latestHead() else { throw AuditError.noSignedHead(needed: nil) }
        if let beyond = positions.first(where: { $0 > head.treeSize }) { throw AuditError.noSignedHead(needed: beyond) }
        let proofs = try inclusionProofs(positions: positions, head: head)
        let events = try ledger.read { txn in
            try proofs.map { proof in
                try RecordBytes.read(at: proof.position, log: log, in: txn) { bytes in
                    let record = try RecordCodec.decode(bytes)
                    let line = CloudEventRendering.jsonLine(record, hash: MerkleHashing.recordHash(bytes).bytes)
                    return AuditBundle.Event(
                        position: proof.position, leafIndex: proof.leafIndex, record: Data(bytes).base64EncodedString(),
                        cloudEvent: String(decoding: line, as: UTF8.self), leafHash: proof.leafHash, inclusionProof: proof.path)
                }
            }
        }
        return AuditBundle(format: AuditBundle.formatName, subject: subject, publicKey: head.publicKey, head: head, events: events)
    }

    // MARK: Export

    /// Writes the events of positions `from...through` (through the head when nil), or only
    /// those of `subject` in that range, as CloudEvents JSON Lines with the ledger's extension
    /// attributes, a chunk of lines per `sink` call. `data` is byte-identical to what was
    /// appended. Returns how many events were written.
    @discardableResult
    public func export(from: UInt64 = 1, through: UInt64? = nil, subject: String? = nil, sink: ([UInt8]) throws -> Void) throws -> UInt64 {
        let end = min(through ?? UInt64.max, try ledger.headPosition())
        let start = max(from, 1)
        guard start <= end else { return 0 }
        if let subject {
            let positions = try self.positions(ofStream: subject).filter { (start...end).contains($0) }
            var written: UInt64 = 0
            var index = 0
            while index < positions.count {
                let chunk = positions[index..<min(index + Self.exportChunkRecords, positions.count)]
                try sink(try ledger.read { txn in
                    var out: [UInt8] = []
                    for position in chunk {
                        try RecordBytes.read(at: position, log: log, in: txn) { try Self.appendLine($0, to: &out) }
                    }
                    return out
                })
                written += UInt64(chunk.count)
                index += chunk.count
            }
            return written
        }
        var next = start
        var written: UInt64 = 0
        while next <= end {
            let (lines, count, last) = try ledger.read { txn in
                try txn.withCursor(log) { cursor in
                    var out: [UInt8] = []
                    var count: UInt64 = 0
                    var last = end
                    var entry = try cursor.seek(atLeast: BigEndianKey.bytes(next))
                    while let current = entry, BigEndianKey.uint64(current.key) <= end {
                        try Self.appendLine(current.value, to: &out)
                        count += 1
                        if count == Self.exportChunkRecords {
                            last = BigEndianKey.uint64(current.key)
                            break
                        }
                        entry = try cursor.next()
                    }
                    return (out, count, last)
                }
            }
            if !lines.isEmpty { try sink(lines) }
            written += count
            next = last + 1
        }
        return written
    }

    static let exportChunkRecords = 10_000

    private static func appendLine(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) throws {
        let record = try RecordCodec.decode(bytes)
        out.append(contentsOf: CloudEventRendering.jsonLine(record, hash: MerkleHashing.recordHash(bytes).bytes))
        out.append(0x0A)
    }
}
