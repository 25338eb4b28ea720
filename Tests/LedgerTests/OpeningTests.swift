import Foundation
import LMDB
import Testing
@testable import Ledger

@Suite struct OpeningTests {
    static let readOnly = LedgerOptions(readOnly: true)

    @Test func readOnlyAfterCloseReadsButRefusesAppends() async throws {
        let dir = TemporaryDirectory()
        let path = dir.ledgerPath
        try await withLedger(at: path) { ledger throws in
            _ = try await ledger.append([Fixture.entry(id: "a"), Fixture.entry(id: "b")])
            _ = await appendError(ledger, [Fixture.entry(id: "c", expecting: .noStream)])
        }
        try await withLedger(at: path, options: Self.readOnly) { ledger throws in
            #expect(try ledger.headPosition() == 2)
            #expect(try ledger.records(from: 1, limit: 10).map(\.id) == ["a", "b"])
            #expect(try ledger.rejectionCount() == 1)
            #expect(try ledger.verifyChain().checked == 2)
            #expect(await appendError(ledger, [Fixture.entry(id: "d")]) == .readOnly)
            #expect(throws: LedgerError.readOnly) { _ = try ledger.appendBlocking([Fixture.entry(id: "d")]) }
        }
        // Nothing changed, and the ledger opens for writing again.
        try await withLedger(at: path) { ledger throws in
            #expect(try await ledger.append([Fixture.entry(id: "d")]).positions == [3])
        }
    }

    @Test func readOnlyOfAMissingLedgerIsNotFound() throws {
        let dir = TemporaryDirectory()
        let missing = dir.path + "/absent"
        #expect(throws: LedgerError.notFound(path: missing)) { _ = try Ledger.open(at: missing, options: Self.readOnly) }
        #expect(!FileManager.default.fileExists(atPath: missing), "a read-only open must not create the ledger")
        // An empty directory holds no ledger either.
        #expect(throws: LedgerError.notFound(path: dir.path)) { _ = try Ledger.open(at: dir.path, options: Self.readOnly) }
    }

    @Test(arguments: [true, false])
    func aNonLMDBDataFileIsIncompatibleAndLeftAlone(readOnly: Bool) throws {
        let dir = TemporaryDirectory()
        let garbage = Data(String(repeating: "not an LMDB file. ", count: 1000).utf8)
        let dataFile = dir.path + "/data.mdb"
        try garbage.write(to: URL(fileURLWithPath: dataFile))
        do {
            _ = try Ledger.open(at: dir.path, options: LedgerOptions(readOnly: readOnly))
            Issue.record("opened a directory whose data.mdb is not LMDB")
        } catch let LedgerError.incompatible(path, reason) {
            #expect(path == dir.path)
            #expect(reason.contains("not an LMDB file"))
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: dataFile)) == garbage)
    }

    @Test func aFileInsteadOfADirectoryIsIncompatible() throws {
        let dir = TemporaryDirectory()
        let file = dir.path + "/file"
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        for options in [LedgerOptions(), Self.readOnly] {
            let error = #expect(throws: LedgerError.self) { try Ledger.open(at: file, options: options) }
            #expect(incompatibleReason(error)?.contains("is a file") == true)
        }
    }

    /// An LMDB environment of some other program has no fapiao tables.
    @Test func aForeignLMDBEnvironmentIsIncompatibleReadOnly() throws {
        let dir = TemporaryDirectory()
        do {
            let env = try Environment(path: dir.path, options: Environment.Options(mapSizeBytes: 1 << 20))
            let table = try env.openTable("other", create: true)
            try env.write { txn in try txn.put(table, key: [1], value: [2], flags: []) }
        }
        let error = #expect(throws: LedgerError.self) { try Ledger.open(at: dir.path, options: Self.readOnly) }
        #expect(incompatibleReason(error)?.contains("another program") == true)
    }

    /// Opened for writing, a foreign LMDB environment is refused too, and left unchanged.
    @Test func aForeignLMDBEnvironmentIsIncompatibleForWriting() throws {
        let dir = TemporaryDirectory()
        do {
            let env = try Environment(path: dir.path, options: Environment.Options(mapSizeBytes: 1 << 20))
            let table = try env.openTable("other", create: true)
            try env.write { txn in try txn.put(table, key: [1], value: [2], flags: []) }
        }
        let error = #expect(throws: LedgerError.self) { try Ledger.open(at: dir.path) }
        #expect(incompatibleReason(error)?.contains("another program") == true)
        let env = try Environment(path: dir.path, options: Environment.Options(mapSizeBytes: 1 << 20))
        #expect(try env.tableNames() == ["other"])
    }

    /// A ledger of another format version is refused, never rewritten.
    @Test(arguments: [true, false])
    func anotherFormatIsIncompatible(readOnly: Bool) async throws {
        let dir = TemporaryDirectory()
        let path = dir.ledgerPath
        try await withLedger(at: path) { ledger throws in _ = try await ledger.append([Fixture.entry(id: "a")]) }
        do {
            let env = try Environment(path: path, options: Environment.Options(mapSizeBytes: 1 << 20))
            let meta = try env.openTable("meta", create: false)
            try env.write { txn in try txn.put(meta, key: LedgerTables.formatKey, value: Array("fapiao-ledger/9".utf8), flags: []) }
        }
        let error = #expect(throws: LedgerError.self) { try Ledger.open(at: path, options: LedgerOptions(readOnly: readOnly)) }
        #expect(incompatibleReason(error)?.contains("format fapiao-ledger/9") == true)
    }
}

/// The reason of an `incompatible` error, or nil for any other outcome.
func incompatibleReason(_ error: LedgerError?) -> String? {
    if case let .incompatible(_, reason) = error { return reason }
    return nil
}
