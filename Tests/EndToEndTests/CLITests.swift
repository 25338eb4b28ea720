import Foundation
import Testing

/// The built `fapiao` binary, run as a user runs it: arguments, standard input, environment,
/// exit codes, and what it prints. Each test has its own directory, which is also the child's
/// TMPDIR (so the import's spool file is seen, or not, there) and working directory.
struct CLITests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let samplePath = packageRoot.appendingPathComponent("examples/beijing-sample.jsonl").path
    static let sampleEvents = 17

    // MARK: Help, import, idempotency, standard input

    @Test func helpExitsZeroAndMentionsImport() throws {
        let dir = TemporaryDirectory("cli")
        let result = try FapiaoCLI.run(["--help"], in: dir)
        #expect(result.status == 0)
        #expect(result.stdout.contains("import"))
        #expect(result.stdout.contains("check"))
    }

    /// The executable allocates with jemalloc (Package.swift): asked to, jemalloc prints its
    /// statistics at exit, which glibc's malloc would not.
    @Test func allocatesWithJemalloc() throws {
        let dir = TemporaryDirectory("cli")
        let result = try FapiaoCLI.run(["--help"], in: dir, environment: ["MALLOC_CONF": "stats_print:true"])
        #expect(result.status == 0)
        #expect(result.stderr.contains("jemalloc statistics"), "\(result.stderr.prefix(200))")
    }

    @Test func importTheSampleThenAgain() throws {
        let dir = TemporaryDirectory("cli")
        let first = try FapiaoCLI.run(["import", Self.samplePath, "--ledger", dir.ledgerPath], in: dir)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("\(Self.sampleEvents) events, \(Self.sampleEvents) new, 0 already present"), "\(first.stdout)")
        let head = try FapiaoCLI.headPosition(dir)
        #expect(head >= UInt64(Self.sampleEvents))

        let second = try FapiaoCLI.run(["import", Self.samplePath, "--ledger", dir.ledgerPath], in: dir)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stdout.contains("0 new"), "\(second.stdout)")
        #expect(second.stdout.contains("\(Self.sampleEvents) already present"), "\(second.stdout)")
        #expect(try FapiaoCLI.headPosition(dir) == head)

        let json = try FapiaoCLI.run(["import", Self.samplePath, "--ledger", dir.ledgerPath, "--format", "json"], in: dir)
        let summary = try FapiaoCLI.object(json.stdout)
        #expect(summary["new"] as? Int == 0)
        #expect(summary["alreadyPresent"] as? Int == Self.sampleEvents)
        #expect(FapiaoCLI.spoolFiles(in: dir).isEmpty)
    }

    /// Logs go to standard error, at the level $FAPIAO_LOG_LEVEL names: standard output keeps
    /// only results, so `--format json` stays JSON however chatty the ledger is asked to be.
    @Test func logsGoToStandardErrorAtTheLevelAsked() throws {
        let dir = TemporaryDirectory("cli")
        let debug = try FapiaoCLI.run(["import", Self.samplePath, "--ledger", dir.ledgerPath, "--format", "json"], in: dir, environment: ["FAPIAO_LOG_LEVEL": "debug"])
        #expect(debug.status == 0, "\(debug.stderr)")
        #expect(debug.stderr.contains("merged the index tail"), "the writer's merge at close, logged at debug: \(debug.stderr.suffix(300))")
        #expect(try FapiaoCLI.object(debug.stdout)["new"] as? Int == Self.sampleEvents, "stdout is the summary alone: \(debug.stdout.prefix(200))")

        // The same import into a fresh ledger (it merges at close again), the level named in any case.
        let quiet = try FapiaoCLI.run(["import", Self.samplePath, "--ledger", dir.path + "/quiet.ledger", "--format", "json"], in: dir, environment: ["FAPIAO_LOG_LEVEL": "Warning"])
        #expect(quiet.status == 0)
        #expect(!quiet.stderr.contains("merged the index tail"), "\(quiet.stderr)")
        #expect(!quiet.stderr.contains("not a log level"), "\(quiet.stderr)")
        let wrong = try FapiaoCLI.run(["check", "--ledger", dir.ledgerPath], in: dir, environment: ["FAPIAO_LOG_LEVEL": "loud"])
        #expect(wrong.status == 0)
        #expect(wrong.stderr.contains("FAPIAO_LOG_LEVEL=loud is not a log level"), "\(wrong.stderr)")
    }

    @Test func rebuildAndVerifyWithTheirMemoryBudget() throws {
        let dir = TemporaryDirectory("cli")
        let imported = try FapiaoCLI.run(["import", Self.samplePath, "--ledger", dir.ledgerPath], in: dir)
        #expect(imported.status == 0, "\(imported.stderr)")
        let rebuilt = try FapiaoCLI.run(["projections", "rebuild", "--ledger", dir.ledgerPath, "--memory-gib", "0.125"], in: dir)
        #expect(rebuilt.status == 0, "\(rebuilt.stderr)")
        #expect(rebuilt.stdout.contains("rebuilt all projections through position"), "\(rebuilt.stdout)")
        let verified = try FapiaoCLI.run(["projections", "verify", "--ledger", dir.ledgerPath, "--memory-gib", "1", "--format", "json"], in: dir)
        #expect(verified.status == 0, "\(verified.stderr)")
        let results = try JSONSerialization.jsonObject(with: Data(verified.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(results.count == 5)
        #expect(results.allSatisfy { $0["identical"] as? Bool == true }, "\(verified.stdout)")
        let refused = try FapiaoCLI.run(["projections", "rebuild", "--ledger", dir.ledgerPath, "--memory-gib", "0"], in: dir)
        #expect(refused.status == 64)
        #expect(refused.stderr.contains("--memory-gib must be between 0.125 and 1024"), "\(refused.stderr)")
    }

    @Test func importFromStandardInput() throws {
        let dir = TemporaryDirectory("cli")
        let sample = try Data(contentsOf: URL(fileURLWithPath: Self.samplePath))
        let result = try FapiaoCLI.run(["import", "-", "--ledger", dir.ledgerPath], in: dir, stdin: sample)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("<stdin>"), "\(result.stdout)")
        #expect(result.stdout.contains("\(Self.sampleEvents) new"), "\(result.stdout)")

        // The same events from a file are already there.
        let again = try FapiaoCLI.run(["import", Self.samplePath, "--ledger", dir.ledgerPath], in: dir)
        #expect(again.stdout.contains("\(Self.sampleEvents) already present"), "\(again.stdout)")
    }

    @Test func badStandardInputIsRefused() throws {
        let dir = TemporaryDirectory("cli")
        let result = try FapiaoCLI.run(["import", "-", "--ledger", dir.ledgerPath], in: dir, stdin: Data("{\"specversion\":\"1.0\"}\n".utf8))
        #expect(result.status == 65)
        #expect(result.stderr.contains("line 1:"), "\(result.stderr)")
        #expect(try FapiaoCLI.headPosition(dir) == 0)
    }

    @Test func badFileExits65AndRecordsNothing() throws {
        let dir = TemporaryDirectory("cli")
        _ = try FapiaoCLI.run(["import", Self.samplePath, "--ledger", dir.ledgerPath], in: dir)
        let head = try FapiaoCLI.headPosition(dir)

        var lines = try String(contentsOfFile: Self.samplePath, encoding: .utf8).split(separator: "\n").map(String.init)
        lines = lines.map { $0.replacingOccurrences(of: "\"id\":\"", with: "\"id\":\"new-") }  // all new events
        lines[1] = lines[1].replacingOccurrences(of: "\"specversion\":\"1.0\"", with: "\"specversion\":\"0.3\"")
        lines[4] = lines[4].replacingOccurrences(of: "+08:00\"", with: "\"")
        lines.append("{not json")
        let bad = dir.path + "/bad.jsonl"
        try (lines.joined(separator: "\n") + "\n").write(toFile: bad, atomically: true, encoding: .utf8)

        let result = try FapiaoCLI.run(["import", bad, "--ledger", dir.ledgerPath], in: dir)
        #expect(result.status == 65)
        #expect(result.stdout.isEmpty, "\(result.stdout)")
        #expect(result.stderr.contains("line 2: specversion:"), "\(result.stderr)")
        #expect(result.stderr.contains("line 5: time:"), "\(result.stderr)")
        #expect(result.stderr.contains("line \(lines.count):"), "\(result.stderr)")
        #expect(result.stderr.contains("Nothing was recorded"), "\(result.stderr)")
        #expect(try FapiaoCLI.headPosition(dir) == head)
        #expect(FapiaoCLI.spoolFiles(in: dir).isEmpty, "the refused import left a spool file in TMPDIR")

        let json = try FapiaoCLI.run(["import", bad, "--ledger", dir.ledgerPath, "--format", "json"], in: dir)
        #expect(json.status == 65)
        let refusal = try FapiaoCLI.object(json.stdout)
        #expect(refusal["refused"] as? Bool == true)
        #expect(refusal["recorded"] as? Int == 0)
        #expect((refusal["problems"] as? [[String: Any]])?.compactMap { $0["line"] as? Int }.sorted() == [2, 5, lines.count])

        let rejections = try FapiaoCLI.run(["rejections", "--ledger", dir.ledgerPath, "--format", "json"], in: dir)
        #expect(rejections.status == 0)
        #expect(rejections.stdout.isEmpty, "a refused file reached the ledger: \(rejections.stdout)")
    }

    @Test func missingFileExits66() throws {
        let dir = TemporaryDirectory("cli")
        let result = try FapiaoCLI.run(["import", dir.path + "/absent.jsonl", "--ledger", dir.ledgerPath], in: dir)
        #expect(result.status == 66)
        #expect(result.stderr.contains("absent.jsonl"), "\(result.stderr)")
    }

    // MARK: Reading

    @Test func logJSONLinesAreChained() throws {
        let dir = TemporaryDirectory("cli")
        _ = try FapiaoCLI.run(["import", Self.samplePath, "--ledger", dir.ledgerPath], in: dir)
        let head = try FapiaoCLI.headPosition(dir)
        let result = try FapiaoCLI.run(["log", "--ledger", dir.ledgerPath, "--format", "json"], in: dir)
        #expect(result.status == 0)
        let events = try result.stdout.split(separator: "\n").map { try FapiaoCLI.object(String($0)) }
        #expect(events.count == Int(head))
        var previousHash = String(repeating: "0", count: 64)
        for (index, event) in events.enumerated() {
            #expect(event["specversion"] as? String == "1.0")
            #expect(event["ledgerposition"] as? Int == index + 1)
            let hash = try #require(event["ledgerhash"] as? String)
            #expect(hash.count == 64 && hash.allSatisfy(\.isHexDigit))
            #expect(event["ledgerprevhash"] as? String == previousHash, "position \(index + 1) does not chain")
            #expect(event["ledgertime"] is String)
            #expect(event["data"] is [String: Any])
            previousHash = hash
        }

        let page = try FapiaoCLI.run(["log", "--ledger", dir.ledgerPath, "--format", "json", "--from", "3", "--limit", "2"], in: dir)
        let pageEvents = try page.stdout.split(separator: "\n").map { try FapiaoCLI.object(String($0)) }
        #expect(pageEvents.compactMap { $0["ledgerposition"] as? Int } == [3, 4])

        let human = try FapiaoCLI.run(["log", "--ledger", dir.ledgerPath], in: dir)
        #expect(human.status == 0)
        #expect(human.stdout.contains("fapiao.invoice.issued"))
    }

    @Test func streamPrintsOneInvoicesEvents() throws {
        let dir = TemporaryDirectory("cli")
        _ = try FapiaoCLI.run(["import", Self.samplePath, "--ledger", dir.ledgerPath], in: dir)
        let key = "24112000000015301235"
        let sent = try String(contentsOfFile: Self.samplePath, encoding: .utf8).split(separator: "\n")
            .map { try FapiaoCLI.object(String($0)) }.filter { $0["subject"] as? String == key }.compactMap { $0["id"] as? String }

        let json = try FapiaoCLI.run(["stream", key, "--ledger", dir.ledgerPath, "--format", "json"], in: dir)
        #expect(json.status == 0)
        let events = try json.stdout.split(separator: "\n").map { try FapiaoCLI.object(String($0)) }
        #expect(events.allSatisfy { $0["subject"] as? String == key })
        #expect(events.filter { $0["source"] as? String != "urn:fapiao:ledger" }.compactMap { $0["id"] as? String } == sent)

        let human = try FapiaoCLI.run(["stream", key, "--ledger", dir.ledgerPath], in: dir)
        #expect(human.status == 0)
        #expect(human.stdout.contains("fapiao.review.approved"))

        let none = try FapiaoCLI.run(["stream", "24112000000099999999", "--ledger", dir.ledgerPath], in: dir)
        #expect(none.status == 1)
    }

    // MARK: Check

    @Test func checkFindsAFlippedByte() throws {
        let dir = TemporaryDirectory("cli")
        let marker = "marker-\(UUID().uuidString.prefix(8).lowercased())"
        var text = try String(contentsOfFile: Self.samplePath, encoding: .utf8)
        text += #"{"specversion":"1.0","id":"tamper-me","source":"urn:fapiao:sync:beijing-finance","type":"fapiao.delivery.failed","subject":"24112000000015301234","time":"2024-12-31T18:00:00+08:00","data":{"system":"beijing-finance","attempt":3,"reason":"http_error","detail":"\#(marker)"}}"# + "\n"
        let file = dir.path + "/events.jsonl"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let imported = try FapiaoCLI.run(["import", file, "--ledger", dir.ledgerPath], in: dir)
        #expect(imported.status == 0, "\(imported.stderr)")

        let intact = try FapiaoCLI.run(["check", "--ledger", dir.ledgerPath], in: dir)
        #expect(intact.status == 0, "\(intact.stdout)\(intact.stderr)")
        #expect(intact.stdout.contains("intact"))
        let intactJSON = try FapiaoCLI.object(try FapiaoCLI.run(["check", "--ledger", dir.ledgerPath, "--format", "json"], in: dir).stdout)
        #expect(intactJSON["intact"] as? Bool == true)

        let markerPosition = try FapiaoCLI.headPosition(dir)
        #expect(markerPosition == UInt64(Self.sampleEvents + 1 + (try FapiaoCLI.flagCount(dir))))
        try flipByte(ofEvery: marker, at: 7, in: dir.ledgerPath + "/data.mdb")
        let tampered = try FapiaoCLI.run(["check", "--ledger", dir.ledgerPath], in: dir)
        #expect(tampered.status == 1, "\(tampered.stdout)\(tampered.stderr)")
        #expect(tampered.stdout.contains("TAMPERED"), "\(tampered.stdout)")
        let json = try FapiaoCLI.object(try FapiaoCLI.run(["check", "--ledger", dir.ledgerPath, "--format", "json"], in: dir).stdout)
        #expect(json["intact"] as? Bool == false)
        #expect(json["problemPosition"] as? Int == Int(markerPosition))
    }

    // MARK: Where the ledger is

    @Test func statusOfAMissingLedgerExits66() throws {
        let dir = TemporaryDirectory("cli")
        for command in [["status"], ["log"], ["check"], ["stream", "24112000000015301234"]] {
            let result = try FapiaoCLI.run(command + ["--ledger", dir.path + "/absent.ledger"], in: dir)
            #expect(result.status == 66, "\(command): \(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir.path + "/absent.ledger"), "a read created the ledger")
        }
    }

    @Test func theLedgerEnvironmentVariableIsHonoured() throws {
        let dir = TemporaryDirectory("cli")
        let path = dir.path + "/from-env.ledger"
        let imported = try FapiaoCLI.run(["import", Self.samplePath], in: dir, environment: ["FAPIAO_LEDGER": path])
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(FileManager.default.fileExists(atPath: path + "/data.mdb"))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/fapiao.ledger"), "the default path was used instead")

        let status = try FapiaoCLI.run(["status", "--format", "json"], in: dir, environment: ["FAPIAO_LEDGER": path])
        #expect(status.status == 0)
        #expect(try FapiaoCLI.object(status.stdout)["headPosition"] as? Int ?? 0 >= Self.sampleEvents)
        // --ledger wins over the environment.
        let flag = try FapiaoCLI.run(["status", "--ledger", dir.path + "/other.ledger"], in: dir, environment: ["FAPIAO_LEDGER": path])
        #expect(flag.status == 66)
    }

    @Test func withoutEitherTheLedgerIsInTheWorkingDirectory() throws {
        let dir = TemporaryDirectory("cli")
        let imported = try FapiaoCLI.run(["import", Self.samplePath], in: dir)
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir.path + "/fapiao.ledger/data.mdb"))
    }
}

// MARK: - Running the binary

enum FapiaoCLI {
    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `fapiao` to its end in `dir` (working directory and TMPDIR), without colour and
    /// without any FAPIAO_ variable of the test's own environment. Output goes to files, so a
    /// chatty child can never block on a full pipe.
    static func run(_ arguments: [String], in dir: borrowing TemporaryDirectory, stdin: Data? = nil, environment: [String: String] = [:]) throws -> Outcome {
        let process = Process()
        process.executableURL = try BuiltProducts.executable(named: "fapiao")
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: dir.path)
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("FAPIAO_") }
        env["TMPDIR"] = dir.path
        env["NO_COLOR"] = "1"
        env.merge(environment) { $1 }
        process.environment = env
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
        let input = Pipe()
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        try process.run()
        if let stdin {
            try input.fileHandleForWriting.write(contentsOf: stdin)
            try input.fileHandleForWriting.close()
        }
        process.waitUntilExit()
        try out.close()
        try err.close()
        return Outcome(
            status: process.terminationStatus,
            stdout: try String(contentsOfFile: outPath, encoding: .utf8),
            stderr: try String(contentsOfFile: errPath, encoding: .utf8))
    }

    static func object(_ json: String) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            throw TestFailure("not a JSON object: \(json)")
        }
        return object
    }

    static func headPosition(_ dir: borrowing TemporaryDirectory) throws -> UInt64 {
        let status = try run(["status", "--ledger", dir.ledgerPath, "--format", "json"], in: dir)
        guard status.status == 0, let head = try object(status.stdout)["headPosition"] as? Int else {
            throw TestFailure("status failed: \(status.stderr)")
        }
        return UInt64(head)
    }

    /// How many `fapiao.ledger.flagged` events the ledger holds.
    static func flagCount(_ dir: borrowing TemporaryDirectory) throws -> Int {
        let log = try run(["log", "--ledger", dir.ledgerPath, "--format", "json", "--limit", "10000"], in: dir)
        return try log.stdout.split(separator: "\n").filter { try object(String($0))["type"] as? String == "fapiao.ledger.flagged" }.count
    }

    /// The importer's spool files in the child's TMPDIR.
    static func spoolFiles(in dir: borrowing TemporaryDirectory) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".spool") }
    }
}

/// Flips one byte (at `offset` in the marker) in every occurrence of `marker` in `file`, and
/// returns how many there were; fails when there is none. Every copy, not just one: LMDB
/// copies pages on write, so a freed page may still hold an old copy of the record, and only
/// changing all of them is sure to change the live one.
@discardableResult
func flipByte(ofEvery marker: String, at offset: Int = 0, in file: String) throws -> Int {
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
    let needle = Array(marker.utf8)
    var found: [Int] = []
    if bytes.count >= needle.count {
        for start in 0...(bytes.count - needle.count) where bytes[start] == needle[0] {
            if bytes[start..<(start + needle.count)].elementsEqual(needle) { found.append(start) }
        }
    }
    guard !found.isEmpty else { throw TestFailure("marker \(marker) is not in \(file)") }
    for start in found { bytes[start + offset] ^= 0x20 }
    try Data(bytes).write(to: URL(fileURLWithPath: file))
    return found.count
}
