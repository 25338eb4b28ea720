import Foundation
import Testing
@testable import Ledger

@Suite struct ChainTests {
    @Test func anIntactLedgerVerifies() async throws {
        let dir = TemporaryDirectory()
        let ledger = try Ledger.open(at: dir.ledgerPath)
        defer { ledger.close() }
        let empty = try ledger.verifyChain()
        #expect(empty.isIntact && empty.checked == 0 && empty.lastHash == RecordCodec.genesisHash)

        for n in 0..<20 { _ = try await ledger.append((0..<5).map { Fixture.entry(stream: "system/\($0)", id: "\(n)-\($0)") }) }
        let report = try ledger.verifyChain()
        #expect(report.isIntact)
        #expect(report.checked == 100)
        #expect(report.lastPosition == 100)
        let last = try #require(try ledger.record(at: 100))
        #expect(report.lastHash != RecordCodec.genesisHash)
        // The chain links: each record's previous-hash is the hash of the one before.
        let records = try ledger.records(from: 1, limit: 100)
        #expect(records.first?.previousHash == RecordCodec.genesisHash)
        #expect(last.previousHash != RecordCodec.genesisHash)

        // A range in the middle verifies against the record before it.
        let middle = try ledger.verifyChain(from: 40, through: 60)
        #expect(middle.isIntact && middle.checked == 21 && middle.lastPosition == 60)
        var progress: [UInt64] = []
        _ = try ledger.verifyChain(progress: { progress.append($0) })
        #expect(progress.last == 100)
        // Asking beyond the head is a gap.
        #expect(try ledger.verifyChain(through: 101).problem == .gap(expected: 101, found: 0))
    }

    /// Rewriting one byte of a record on disk (LMDB has no checksums) is invisible to the
    /// codec but breaks the chain at the next record.
    @Test func aTamperedRecordBreaksTheNextLink() async throws {
        let dir = TemporaryDirectory()
        let path = dir.ledgerPath
        try await withLedger(at: path) { ledger throws in
            // One request, so one transaction: each page of the log is written once and the
            // marker has exactly one copy in the file.
            let entries = (1...10).map { n in
                AppendEntry(Fixture.event(id: "e\(n)", data: n == 5 ? #"{"marker":"TAMPER-ME-5"}"# : #"{"n":\#(n)}"#))
            }
            _ = try await ledger.append(entries)
        }
        try flipByte(of: "TAMPER-ME-5", in: path + "/data.mdb")
        try await withLedger(at: path, options: LedgerOptions(readOnly: true)) { ledger throws in
            // The record still decodes: only the chain tells.
            #expect(try ledger.record(at: 5)?.data == Array(#"{"marker":"tAMPER-ME-5"}"#.utf8))
            let report = try ledger.verifyChain()
            #expect(!report.isIntact)
            guard case let .brokenLink(position, _, _)? = report.problem else {
                Issue.record("expected a broken link, got \(String(describing: report.problem))")
                return
            }
            #expect(position == 6)
            #expect(report.checked == 5)
            #expect(report.problem?.description.contains("position 6") == true)
            // Verifying only up to the tampered record cannot see it.
            #expect(try ledger.verifyChain(through: 5).isIntact)
        }
    }

    /// Tampering with the last record leaves no later link to break; the head stored beside
    /// the log at each commit catches it, and a writer refuses to chain onto it.
    @Test func aTamperedLastRecordIsCaughtByTheStoredHead() async throws {
        let dir = TemporaryDirectory()
        let path = dir.ledgerPath
        _ = try await withLedger(at: path) { ledger throws in
            let entries = (1...10).map { n in
                AppendEntry(Fixture.event(id: "e\(n)", data: n == 10 ? #"{"marker":"TAMPER-ME-10"}"# : #"{"n":\#(n)}"#))
            }
            _ = try await ledger.append(entries)
        }
        try flipByte(of: "TAMPER-ME-10", in: path + "/data.mdb")
        try await withLedger(at: path, options: LedgerOptions(readOnly: true)) { ledger throws in
            let report = try ledger.verifyChain()
            #expect(report.checked == 10)
            guard case .headMismatch(position: 10, _, _) = report.problem else {
                Issue.record("expected a head mismatch at 10, got \(String(describing: report.problem))")
                return
            }
        }
        let error = #expect(throws: LedgerError.self) { try Ledger.open(at: path) }
        guard case .corruptRecord(position: 10, _) = error else {
            Issue.record("a writer must refuse to chain onto a tampered head, got \(String(describing: error))")
            return
        }
    }
}
