import Foundation
import LMDB
import Testing
@testable import Audit
@testable import Ledger

/// The audit tree on a real ledger: built incrementally, it gives the same roots and proofs as
/// the reference recursion over the records' bytes; signed heads verify; export keeps `data`.
@Suite struct LedgerAuditTests {
    static let key = AuditSigningKey.generate()
    static let events = 37

    /// Every record's stored bytes, read back through the ledger's public API.
    static func recordBytes(_ audit: AuditLog) throws -> [[UInt8]] {
        try (1...(try audit.ledger.headPosition())).map { try #require(try audit.recordBytes(at: $0)) }
    }

    @Test func theStoredTreeGivesTheReferenceRootsAndProofsAtEverySize() async throws {
        let dir = TemporaryDirectory()
        try await withLedger(at: dir.ledgerPath) { ledger in
            let audit = try AuditLog(ledger: ledger)
            // Build in small steps, with appends in between, as the server would.
            var heads: [SignedTreeHead] = []
            for step in [1, 2, 3, 5, 8, 13, 21, 37] {
                try await Fixture.append(upTo: step, to: ledger, perBatch: 3)
                heads.append(try await audit.checkpoint(key: Self.key).head)
            }
            #expect(try audit.builtSize() == 37)
            let data = try Self.recordBytes(audit)
            let leaves = data.map { MerkleHashing.leafHash($0) }
            for size in 1...UInt64(Self.events) {
                #expect(try audit.root(size: size).bytes == Naive.mth(Array(data.prefix(Int(size)))), "root at \(size)")
            }
            for head in heads {
                #expect(head.hasValidSignature)
                #expect(head.rootHash == MerkleTree.subtreeHash(leaves, 0..<head.treeSize).hex)
                let proofs = try audit.inclusionProofs(positions: Array(1...head.treeSize), head: head)
                for proof in proofs {
                    #expect(proof.path.map { Hex.decode($0)! } == Naive.path(Int(proof.leafIndex), Array(data.prefix(Int(head.treeSize)))))
                    #expect(proof.verifies(root: head.root!))
                }
                for old in heads where old.treeSize <= head.treeSize {
                    let proof = try audit.consistencyProof(from: old, to: head)
                    #expect(proof.verifies())
                    #expect(proof.path.map { Hex.decode($0)! } == (old.treeSize == head.treeSize ? [] : Naive.subproof(Int(old.treeSize), Array(data.prefix(Int(head.treeSize))), true)))
                }
            }
            // Signing again without new events returns the same head.
            let again = try await audit.checkpoint(key: Self.key)
            #expect(!again.isNew && again.head == heads.last)
            #expect(try audit.signedHeads().map(\.treeSize) == [1, 2, 3, 5, 8, 13, 21, 37])
            let report = try AuditVerifier(audit: audit, trustedKeys: [Self.key.publicKeyBase64]).verify()
            #expect(report.intact, "\(report.problems)")
            #expect(report.recordsChecked == 37 && report.headsChecked == 8)
            #expect(report.rootHash == heads.last?.rootHash)
        }
    }

    @Test func headTimesNeverGoBackwards() async throws {
        let dir = TemporaryDirectory()
        try await withLedger(at: dir.ledgerPath) { ledger in
            let audit = try AuditLog(ledger: ledger)
            try await Fixture.append(upTo: 3, to: ledger)
            let first = try await audit.checkpoint(key: Self.key, clock: { 2_000_000_000_000_000 }).head
            try await Fixture.append(upTo: 4, to: ledger)
            let second = try await audit.checkpoint(key: Self.key, clock: { 1_000_000 }).head
            #expect(first.ledgerTime == "2033-05-18T03:33:20.000000Z")
            #expect(second.ledgerMicros == first.ledgerMicros)  // a clock that went back is not followed
            try await Fixture.append(upTo: 5, to: ledger)
            let third = try await audit.checkpoint(key: Self.key, clock: { 2_000_000_010_000_000 }).head
            // The head that vouches for what the ledger knew at a moment: the first signed at or after it.
            #expect(try audit.firstHead(signedAtOrAfter: first.ledgerMicros! - 1) == first)
            #expect(try audit.firstHead(signedAtOrAfter: first.ledgerMicros! + 1) == third)
            #expect(try audit.firstHead(signedAtOrAfter: third.ledgerMicros! + 1) == nil)
        }
    }

    @Test func thePolicySaysWhenAHeadIsDue() throws {
        let policy = CheckpointPolicy(everyEvents: 100, everySeconds: 60)
        let head = SignedTreeHead(treeSize: 50, rootHash: "", ledgerTime: "2024-12-31T09:00:00.000000Z", signature: "", publicKey: "")
        let signedAt = head.ledgerMicros!
        #expect(!policy.isDue(headPosition: 50, latest: head, nowMicros: signedAt + 3_600_000_000))  // nothing new
        #expect(!policy.isDue(headPosition: 60, latest: head, nowMicros: signedAt + 1_000_000))
        #expect(policy.isDue(headPosition: 60, latest: head, nowMicros: signedAt + 60_000_000))
        #expect(policy.isDue(headPosition: 150, latest: head, nowMicros: signedAt))
        #expect(policy.isDue(headPosition: 1, latest: nil, nowMicros: 0))
        #expect(!CheckpointPolicy(everyEvents: 0, everySeconds: 0).isDue(headPosition: 10, latest: head, nowMicros: .max))
    }

    @Test func exportKeepsDataByteIdenticalAndAddsTheLedgerAttributes() async throws {
        let dir = TemporaryDirectory()
        try await withLedger(at: dir.ledgerPath) { ledger in
            try await Fixture.append(upTo: 25, to: ledger)
            let audit = try AuditLog(ledger: ledger)
            var output: [UInt8] = []
            let count = try audit.export { output += $0 }
            #expect(count == 25)
            let lines = output.split(separator: 0x0A)
            #expect(lines.count == 25)
            for (index, line) in lines.enumerated() {
                let position = UInt64(index + 1)
                let record = try #require(try ledger.record(at: position))
                let bytes = try #require(try audit.recordBytes(at: position))
                #expect(Array(line) == CloudEventRendering.jsonLine(record, hash: bytes.withUnsafeBytes { RecordCodec.hash($0) }))
                #expect(line.suffix(record.data.count + 1).dropLast().elementsEqual(record.data))
                let object = try #require(try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])
                #expect(object["ledgerposition"] as? Int == index + 1)
                #expect(object["ledgerhash"] as? String == Hex.encode(bytes.withUnsafeBytes { RecordCodec.hash($0) }))
            }
            var slice: [UInt8] = []
            #expect(try audit.export(from: 5, through: 9) { slice += $0 } == 5)
            #expect(slice.split(separator: 0x0A).count == 5)
            var stream: [UInt8] = []
            #expect(try audit.export(from: 4, subject: "system/sync") { stream += $0 } == 7)  // 6, 9, ..., 24 (3 is before 4)
        }
    }
}
