import Foundation
import LMDB
import Testing
@testable import Audit
@testable import Ledger

/// Someone with write access to `data.mdb` changes history; `audit verify` names the first bad
/// position. Each test makes a 40-event ledger with heads signed at 10, 20, 30 and 40.
@Suite struct TamperTests {
    static let key = AuditSigningKey.generate()
    static let headSizes: [UInt64] = [10, 20, 30, 40]

    static func makeLedger(_ path: String) async throws -> [SignedTreeHead] {
        try await withLedger(at: path) { ledger in
            let audit = try AuditLog(ledger: ledger)
            var heads: [SignedTreeHead] = []
            for size in headSizes {
                try await Fixture.append(upTo: Int(size), to: ledger)
                heads.append(try await audit.checkpoint(key: key).head)
            }
            return heads
        }
    }

    static func verify(_ path: String, since: UInt64? = nil, trusted: Set<String>? = [key.publicKeyBase64]) async throws -> AuditReport {
        try await withLedger(at: path, options: .readOnlyDefault) { ledger in
            try AuditVerifier(audit: try AuditLog(ledger: ledger), trustedKeys: trusted).verify(since: since)
        }
    }

    /// Every (key, value) of the log.
    static func logEntries(_ txn: Transaction, _ log: Table) throws -> [(UInt64, [UInt8])] {
        try txn.withCursor(log) { cursor in
            var out: [(UInt64, [UInt8])] = []
            var entry = try cursor.first()
            while let current = entry {
                out.append((BigEndian.uint64(current.key), Array(current.value)))
                entry = try cursor.next()
            }
            return out
        }
    }

    static func hash(_ bytes: [UInt8]) -> [UInt8] { bytes.withUnsafeBytes { RecordCodec.hash($0) } }

    static func rewritten(_ bytes: [UInt8], position: UInt64, previous: [UInt8]) -> [UInt8] {
        var out = bytes
        out.replaceSubrange(2..<10, with: BigEndian.bytes(position))
        out.replaceSubrange(34..<66, with: previous)
        return out
    }

    @Test func anIntactLedgerVerifiesFully() async throws {
        let dir = TemporaryDirectory()
        let heads = try await Self.makeLedger(dir.ledgerPath)
        let report = try await Self.verify(dir.ledgerPath)
        #expect(report.intact, "\(report.problems)")
        #expect(report.recordsChecked == 40 && report.headsChecked == 4 && report.latestHead == 40)
        #expect(report.rootHash == heads.last?.rootHash)
        let incremental = try await Self.verify(dir.ledgerPath, since: 20)
        #expect(incremental.intact && incremental.fromPosition == 21 && incremental.recordsChecked == 20, "\(incremental.problems)")
    }

    @Test func aFlippedByteInDataMdbIsNamed() async throws {
        let dir = TemporaryDirectory()
        let heads = try await Self.makeLedger(dir.ledgerPath)
        try flipByte(of: "marker-0017", at: 9, in: dir.ledgerPath + "/data.mdb")
        let report = try await Self.verify(dir.ledgerPath)
        #expect(!report.intact)
        #expect(report.firstBadPosition == 17)
        #expect(report.problems.first?.kind == .recordAltered && report.problems.first?.position == 17, "\(report.problems)")
        #expect(report.problems.contains { $0.kind == .chain && $0.position == 18 })
        #expect(report.problems.filter { $0.kind == .rootMismatch }.map(\.treeSize) == [20, 30, 40])
        // A proof for it can no longer be made; one for an untouched record still can.
        try await withLedger(at: dir.ledgerPath, options: .readOnlyDefault) { ledger in
            let audit = try AuditLog(ledger: ledger)
            #expect(throws: AuditError.proofFails(position: 17, treeSize: 40)) { try audit.inclusionProof(position: 17, head: heads[3]) }
            #expect(try audit.inclusionProof(position: 5, head: heads[3]).verifies(root: heads[3].root!))
        }
        // Incremental verification from a head before it finds it too; one from after it does not re-read it.
        #expect(try await Self.verify(dir.ledgerPath, since: 10).firstBadPosition == 17)
    }

    @Test func aDeletedRecordIsNamed() async throws {
        let dir = TemporaryDirectory()
        _ = try await Self.makeLedger(dir.ledgerPath)
        try tamper(dir.ledgerPath) { txn, tables throws in
            #expect(try txn.delete(tables.log, key: positionKey(17)))
        }
        let report = try await Self.verify(dir.ledgerPath)
        #expect(report.firstBadPosition == 17, "\(report.problems)")
        #expect(report.problems.contains { $0.kind == .chain && $0.position == 17 })
        #expect(report.problems.contains { $0.kind == .recordAltered && $0.position == 17 })
        #expect(report.problems.contains { $0.kind == .headBeyondLog && $0.treeSize == 40 })
    }

    @Test func reorderedRecordsAreNamed() async throws {
        let dir = TemporaryDirectory()
        _ = try await Self.makeLedger(dir.ledgerPath)
        try tamper(dir.ledgerPath) { txn, tables in
            let entries = try Self.logEntries(txn, tables.log)
            try txn.put(tables.log, key: positionKey(17), value: entries[22].1, flags: [])
            try txn.put(tables.log, key: positionKey(23), value: entries[16].1, flags: [])
        }
        let report = try await Self.verify(dir.ledgerPath)
        #expect(report.firstBadPosition == 17, "\(report.problems)")
        #expect(report.problems.filter { $0.kind == .recordAltered }.map(\.position) == [17, 23])
    }

    @Test func anInsertedRecordIsNamed() async throws {
        let dir = TemporaryDirectory()
        _ = try await Self.makeLedger(dir.ledgerPath)
        try tamper(dir.ledgerPath) { txn, tables in
            let entries = try Self.logEntries(txn, tables.log)
            // Shift 17...40 up by one and forge a record at 17 that links to 16 correctly.
            for (key, value) in entries.reversed() where key >= 17 {
                try txn.put(tables.log, key: positionKey(key + 1), value: value, flags: [])
            }
            let forged = Self.rewritten(entries[2].1, position: 17, previous: Self.hash(entries[15].1))
            try txn.put(tables.log, key: positionKey(17), value: forged, flags: [])
        }
        let report = try await Self.verify(dir.ledgerPath)
        #expect(report.firstBadPosition == 17, "\(report.problems)")
        #expect(report.problems.first?.kind == .recordAltered)
        #expect(report.problems.contains { $0.kind == .chain && $0.position == 18 })
    }

    /// A careful forger removes record 17, renumbers and re-chains everything after it and
    /// rewrites the stored chain head: the hash chain checks out. The audit tree and the signed
    /// heads do not.
    @Test func aRechainedRewriteIsCaughtByTheTreeAndTheSignedHeads() async throws {
        let dir = TemporaryDirectory()
        _ = try await Self.makeLedger(dir.ledgerPath)
        let rechain = { (txn: Transaction, tables: (log: Table, meta: Table, nodes: Table, heads: Table)) throws in
            let entries = try Self.logEntries(txn, tables.log)
            var previous = Self.hash(entries[15].1)
            var position: UInt64 = 17
            for (key, value) in entries where key > 17 {
                let forged = Self.rewritten(value, position: position, previous: previous)
                try txn.put(tables.log, key: positionKey(position), value: forged, flags: [])
                previous = Self.hash(forged)
                position += 1
            }
            #expect(try txn.delete(tables.log, key: positionKey(40)))
            try txn.put(tables.meta, key: Array("head".utf8), value: BigEndian.bytes(39) + previous, flags: [])
        }
        try tamper(dir.ledgerPath, rechain)
        try await withLedger(at: dir.ledgerPath, options: .readOnlyDefault) { ledger throws in
            #expect(try ledger.verifyChain().isIntact)
        }
        let report = try await Self.verify(dir.ledgerPath)
        #expect(report.firstBadPosition == 17, "\(report.problems)")
        #expect(report.problems.first?.kind == .recordAltered)
        // The head at 40 covers more records than are left: it cannot even be recomputed.
        #expect(report.problems.filter { $0.kind == .rootMismatch }.map(\.treeSize) == [20, 30])
        #expect(report.problems.contains { $0.kind == .headBeyondLog && $0.treeSize == 40 })

        // Even with the audit tree wiped too, the signed heads bound the damage.
        let other = TemporaryDirectory()
        _ = try await Self.makeLedger(other.ledgerPath)
        try tamper(other.ledgerPath) { txn, tables in
            try rechain(txn, tables)
            try txn.clear(tables.nodes)
        }
        let wiped = try await Self.verify(other.ledgerPath)
        #expect(!wiped.intact)
        let first = try #require(wiped.problems.first { $0.kind == .rootMismatch })
        #expect(first.treeSize == 20 && first.message.contains("11...20"), "\(first.message)")
        #expect(!wiped.problems.contains { $0.kind == .rootMismatch && $0.treeSize == 10 })
    }

    @Test func aBadOrUntrustedSignatureFails() async throws {
        let dir = TemporaryDirectory()
        let heads = try await Self.makeLedger(dir.ledgerPath)
        try tamper(dir.ledgerPath) { txn, tables in
            var forged = heads[1]
            forged.signature = heads[2].signature
            let encoder = JSONEncoder()
            try txn.put(tables.heads, key: positionKey(20), value: Array(try encoder.encode(forged)), flags: [])
        }
        let report = try await Self.verify(dir.ledgerPath)
        #expect(report.problems.map(\.kind) == [.badSignature], "\(report.problems)")
        #expect(report.problems.first?.treeSize == 20)

        let stranger = AuditSigningKey.generate().publicKeyBase64
        let untrusted = try await Self.verify(dir.ledgerPath, trusted: [stranger])
        #expect(untrusted.problems.filter { $0.kind == .untrustedKey }.map(\.treeSize) == [10, 30, 40])
    }

    // MARK: Bundles

    static func makeBundle(_ path: String, subject: String? = "24112000000015301234") async throws -> AuditBundle {
        _ = try await makeLedger(path)
        return try await withLedger(at: path, options: .readOnlyDefault) { ledger in
            let audit = try AuditLog(ledger: ledger)
            let positions = try subject.map { try audit.positions(ofStream: $0) } ?? Array(1...40)
            return try audit.bundle(positions: positions, subject: subject)
        }
    }

    @Test func aBundleVerifiesWithoutTheLedger() async throws {
        let dir = TemporaryDirectory()
        let bundle = try await Self.makeBundle(dir.ledgerPath)
        #expect(bundle.events.count == 27)  // positions not divisible by 3
        let file = dir.path + "/bundle.json"
        try bundle.encoded().write(to: URL(fileURLWithPath: file))
        try FileManager.default.removeItem(atPath: dir.ledgerPath)
        let report = try AuditBundle.load(path: file).verify(trustedKeys: [Self.key.publicKeyBase64])
        #expect(report.intact, "\(report.problems)")
        #expect(report.recordsChecked == 27 && report.latestHead == 40)
    }

    @Test func aBundleWithOneAlteredEventFails() async throws {
        let dir = TemporaryDirectory()
        let bundle = try await Self.makeBundle(dir.ledgerPath)
        let index = 10
        let position = bundle.events[index].position

        var data = bundle
        data.events[index].cloudEvent = data.events[index].cloudEvent.replacingOccurrences(of: "marker-", with: "marker_")
        #expect(data.verify().problems.map(\.kind) == [.eventMismatch])
        #expect(data.verify().firstBadPosition == position)

        var record = bundle
        var bytes = Array(Data(base64Encoded: record.events[index].record)!)
        bytes[bytes.count - 5] ^= 0x01
        record.events[index].record = Data(bytes).base64EncodedString()
        let recordReport = record.verify()
        #expect(!recordReport.intact && recordReport.firstBadPosition == position)
        #expect(Set(recordReport.problems.map(\.kind)).isSuperset(of: [.recordAltered, .badProof, .eventMismatch]))

        var proof = bundle
        proof.events[index].inclusionProof[0] = String(repeating: "0", count: 64)
        #expect(proof.verify().problems.map(\.kind) == [.badProof])

        var moved = bundle
        moved.events[index].position += 1
        #expect(!moved.verify().intact)
    }

    @Test func aBundleWithABadSignatureFails() async throws {
        let dir = TemporaryDirectory()
        let bundle = try await Self.makeBundle(dir.ledgerPath, subject: nil)
        var signature = bundle
        var bytes = Array(Data(base64Encoded: signature.head.signature)!)
        bytes[0] ^= 0x01
        signature.head.signature = Data(bytes).base64EncodedString()
        #expect(signature.verify().problems.map(\.kind) == [.badSignature])

        var root = bundle
        root.head.rootHash = String(repeating: "ab", count: 32)
        let rootReport = root.verify()
        #expect(rootReport.problems.contains { $0.kind == .badSignature })
        #expect(rootReport.problems.filter { $0.kind == .badProof }.count == AuditVerifier.problemsPerKindMax)

        #expect(bundle.verify(trustedKeys: [AuditSigningKey.generate().publicKeyBase64]).problems.map(\.kind) == [.untrustedKey])
    }
}
