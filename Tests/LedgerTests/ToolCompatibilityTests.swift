import Foundation
import Testing
@testable import Ledger

/// The ledger is plain LMDB: the standard tools (Debian `lmdb-utils`) read it.
@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/mdb_stat")
    && FileManager.default.isExecutableFile(atPath: "/usr/bin/mdb_dump")))
struct ToolCompatibilityTests {
    /// "Status of NAME" blocks of `mdb_stat -a`, each with its "Entries: N".
    static func entries(inStatOutput output: String) -> [String: Int] {
        var entries: [String: Int] = [:]
        var table: String?
        for line in output.split(separator: "\n") {
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.hasPrefix("Status of ") {
                table = String(text.dropFirst("Status of ".count))
            } else if text.hasPrefix("Entries: "), let name = table {
                entries[name] = Int(text.dropFirst("Entries: ".count))
            }
        }
        return entries
    }

    @Test func mdbStatAndMdbDumpReadALedger() async throws {
        let dir = TemporaryDirectory()
        let path = dir.ledgerPath
        try await withLedger(at: path) { ledger throws in
            _ = try await ledger.append((1...7).map { Fixture.entry(stream: "system/\($0 % 2)", id: "e\($0)") })
            _ = try await ledger.append([Fixture.entry(stream: "system/1", id: "e1")])  // an idempotent retry: nothing new
            _ = await appendError(ledger, [Fixture.entry(stream: "system/0", id: "x", expecting: .noStream)])
            _ = await appendError(ledger, [Fixture.entry(id: "")])
        }
        let stat = try run("/usr/bin/mdb_stat", ["-a", path])
        #expect(stat.status == 0)
        let entries = Self.entries(inStatOutput: stat.output)
        #expect(entries["log"] == 7)
        #expect(entries["rejections"] == 2)
        #expect(entries["rejections_by_stream"] == 2)  // each refused request named one stream
        #expect(entries["meta"] == 2) // format, head
        #expect(entries["Main DB"] == 4)
        // The index B-trees are an environment of their own, in index/.
        let indexStat = try run("/usr/bin/mdb_stat", ["-a", path + "/index"])
        #expect(indexStat.status == 0)
        let indexEntries = Self.entries(inStatOutput: indexStat.output)
        #expect(indexEntries["streams"] == 7)
        #expect(indexEntries["idempotency"] == 7)
        #expect(indexEntries["meta"] == 3) // format, indexed, runs
        #expect(indexEntries["Main DB"] == 2 * LedgerTables.runSlots + 1)  // the run slots and meta

        let dump = try run("/usr/bin/mdb_dump", ["-s", "log", path])
        #expect(dump.status == 0)
        #expect(dump.output.contains("HEADER=END"))
        #expect(dump.output.contains("DATA=END"))
        // Seven key lines (8-byte positions in hex) and seven value lines.
        let body = dump.output.components(separatedBy: "HEADER=END\n").last?.components(separatedBy: "DATA=END").first ?? ""
        let lines = body.split(separator: "\n")
        #expect(lines.count == 14)
        #expect(lines.first?.trimmingCharacters(in: .whitespaces) == "0000000000000001")
    }
}
