import Foundation
import Testing

/// `fapiao why` as users run it: the built binary, its JSON and its exit codes.
struct WhyCLITests {
    /// A ledger imported with `fapiao import`: one invoice whose delivery failed, one visible.
    static func importedLedger(_ dir: borrowing TemporaryDirectory) throws {
        var f = EventFile(startingAfter: 0)
        f.register()
        f.issue(at: "2024-12-31T16:59:26+08:00")
        f.attempted(at: "2024-12-31T17:00:05+08:00")
        f.failed(reason: "auth_expired", at: "2024-12-31T17:02:11+08:00")
        f.issue(Cast.otherKey, at: "2025-01-01T00:30:00+08:00")
        f.deliverAndApprove(Cast.otherKey, from: "2025-01-01T00:31:00+08:00")
        let path = try dir.file("events.jsonl", f.text)
        let imported = try FapiaoProcess.run(["import", path, "--ledger", dir.ledgerPath], in: dir)
        guard imported.status == 0 else { throw TestFailure("import failed (\(imported.status)): \(imported.stderr)") }
    }

    @Test func notVisibleExitsOneWithTheContractJSON() throws {
        let dir = TemporaryDirectory("why-cli")
        try Self.importedLedger(dir)

        let result = try FapiaoProcess.run(["why", "2411 2000 0000 1530 1234", "--system", Cast.system, "--ledger", dir.ledgerPath, "--format", "json"], in: dir)
        #expect(result.status == 1, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)")
        #expect(object["visible"] as? Bool == false)
        #expect(object["key"] as? String == Cast.key)
        #expect(object["user"] is NSNull)
        let causes = try #require(object["causes"] as? [[String: Any]])
        #expect(causes.map { $0["code"] as? String } == ["delivery_failed"])
        #expect(causes.first?["evidence"] as? [Int] == [3, 4])
        #expect((object["suggestions"] as? [String])?.contains { $0.contains("login expired at 2024-12-31T17:02:11+08:00") } == true)
    }

    @Test func visibleExitsZero() throws {
        let dir = TemporaryDirectory("why-cli")
        try Self.importedLedger(dir)

        let json = try FapiaoProcess.run(["why", Cast.otherKey, "--system", Cast.system, "--ledger", dir.ledgerPath, "--format", "json"], in: dir)
        #expect(json.status == 0, "\(json.stdout)\(json.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(object?["visible"] as? Bool == true)
        #expect((object?["causes"] as? [Any])?.isEmpty == true)

        let human = try FapiaoProcess.run(["why", Cast.otherKey, "--system", Cast.system, "--ledger", dir.ledgerPath], in: dir)
        #expect(human.status == 0)
        #expect(human.stdout.contains("VISIBLE"), "\(human.stdout)")

        // Criteria flags: a December range misses an invoice issued 00:30 CST on 1 January.
        let flags = try FapiaoProcess.run(["why", Cast.otherKey, "--system", Cast.system, "--ledger", dir.ledgerPath,
                                           "--issued-to", "2024-12-31", "--format", "json"], in: dir)
        #expect(flags.status == 1)
        #expect(flags.stdout.contains("query_date_out_of_range"), "\(flags.stdout)")
    }

    @Test func badAtExits64NamingTheFlag() throws {
        let dir = TemporaryDirectory("why-cli")
        try Self.importedLedger(dir)

        let result = try FapiaoProcess.run(["why", Cast.key, "--system", Cast.system, "--ledger", dir.ledgerPath, "--at", "yesterday"], in: dir)
        #expect(result.status == 64)
        #expect(result.stderr.contains("--at"), "\(result.stderr)")
        #expect(result.stdout.isEmpty, "\(result.stdout)")

        // A time it understands, before the failure: the attempt has no outcome yet.
        let earlier = try FapiaoProcess.run(["why", Cast.key, "--system", Cast.system, "--ledger", dir.ledgerPath, "--at", "2024-12-31 17:01", "--format", "json"], in: dir)
        #expect(earlier.status == 1)
        let object = try JSONSerialization.jsonObject(with: Data(earlier.stdout.utf8)) as? [String: Any]
        #expect((object?["causes"] as? [[String: Any]])?.first?["code"] as? String == "delivery_pending")
        #expect(object?["asOf"] as? String == "2024-12-31T17:01:00+08:00")
    }
}

/// Runs the built `fapiao` to its end in the test's directory (working directory and
/// TMPDIR), without colour and without the test's own FAPIAO_ variables.
enum FapiaoProcess {
    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func run(_ arguments: [String], in dir: borrowing TemporaryDirectory) throws -> Outcome {
        let process = Process()
        process.executableURL = try executable()
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: dir.path)
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("FAPIAO_") }
        environment["TMPDIR"] = dir.path
        environment["NO_COLOR"] = "1"
        process.environment = environment
        // Output goes to files, so a chatty child never blocks on a full pipe.
        let id = UUID().uuidString
        let outPath = dir.path + "/.stdout-\(id)", errPath = dir.path + "/.stderr-\(id)"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        defer {
            try? FileManager.default.removeItem(atPath: outPath)
            try? FileManager.default.removeItem(atPath: errPath)
        }
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try out.close()
        try err.close()
        return Outcome(
            status: process.terminationStatus,
            stdout: try String(contentsOfFile: outPath, encoding: .utf8),
            stderr: try String(contentsOfFile: errPath, encoding: .utf8))
    }

    /// The `fapiao` SwiftPM built beside this test bundle, else in the package's `.build/debug`.
    static func executable() throws -> URL {
        var directories = [URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()]
        if let main = Bundle.main.executableURL { directories.append(main.resolvingSymlinksInPath().deletingLastPathComponent()) }
        directories.append(Bundle.main.bundleURL.deletingLastPathComponent())
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        directories.append(packageRoot.appendingPathComponent(".build/debug"))
        for directory in directories {
            let candidate = directory.appendingPathComponent("fapiao")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw TestFailure("no built fapiao in \(directories.map(\.path)); run `swift build` first")
    }
}
