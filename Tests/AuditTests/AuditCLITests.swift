import Foundation
import Testing
@testable import Audit

/// The built `fapiao` binary end to end: keygen, checkpoint, prove, consistency, verify, bundle,
/// export; and the bundle checked by the Python script of docs/audit.md, as an auditor would.
@Suite struct AuditCLITests {
    static let samplePath = BuiltProducts.packageRoot.appendingPathComponent("examples/beijing-sample.jsonl").path
    static let scriptPath = BuiltProducts.packageRoot.appendingPathComponent("tools/verify_bundle.py").path
    static let invoice = "24112000000015301234"

    static func fapiao(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try run(try BuiltProducts.executable(named: "fapiao"), arguments)
    }

    static func python(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try run(URL(fileURLWithPath: "/usr/bin/env"), ["python3"] + arguments)
    }

    static let pythonAvailable = (try? python(["-c", "pass"]).status) == 0
    static let cryptographyAvailable = (try? python(["-c", "import cryptography"]).status) == 0

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test(.enabled(if: pythonAvailable, "python3 is not installed"))
    func anAuditorVerifiesABundleWithTheDocumentedScript() throws {
        let dir = TemporaryDirectory("audit-cli")
        let ledger = ["--ledger", dir.ledgerPath]
        let keys = dir.path + "/keys"
        #expect(try Self.fapiao(["import", Self.samplePath] + ledger).status == 0)

        let keygen = try Self.fapiao(["audit", "keygen", "--out", keys, "--format", "json"])
        #expect(keygen.status == 0, "\(keygen.stderr)")
        let publicKey = try #require(try Self.json(keygen.stdout)["publicKeyBase64"] as? String)
        let mode = try FileManager.default.attributesOfItem(atPath: keys + "/audit-signing.key")[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(try Self.fapiao(["audit", "keygen", "--out", keys]).status == 65)  // never overwritten

        let checkpoint = try Self.fapiao(["audit", "checkpoint", "--key", keys + "/audit-signing.key", "--format", "json"] + ledger)
        #expect(checkpoint.status == 0, "\(checkpoint.stderr)")
        #expect(try Self.json(checkpoint.stdout)["treeSize"] as? Int == 17)

        let verify = try Self.fapiao(["audit", "verify", "--key", keys + "/audit-signing.pub"] + ledger)
        #expect(verify.status == 0 && verify.stdout.contains("intact"), "\(verify.stdout)\(verify.stderr)")

        let prove = try Self.fapiao(["audit", "prove", "2411 2000 0000 1530 1234", "--format", "json"] + ledger)
        #expect(prove.status == 0, "\(prove.stderr)")
        let answer = try JSONDecoder().decode(ProveAnswer.self, from: Data(prove.stdout.utf8))
        #expect(answer.proofs.count == 5)
        #expect(answer.proofs.allSatisfy { $0.verifies(root: answer.head.root!) })

        let bundlePath = dir.path + "/invoice.bundle.json"
        let bundle = try Self.fapiao(["audit", "bundle", "--subject", Self.invoice, bundlePath] + ledger)
        #expect(bundle.status == 0, "\(bundle.stderr)")

        var check = [Self.scriptPath, bundlePath, "--key", publicKey]
        if Self.cryptographyAvailable { check.append("--require-signature") }
        let python = try Self.python(check)
        #expect(python.status == 0, "\(python.stdout)\(python.stderr)")
        #expect(python.stdout.hasPrefix("OK: 5 events proven against the head signed at size 17"), "\(python.stdout)")
        let swift = try Self.fapiao(["audit", "verify", "--bundle", bundlePath, "--key", publicKey])
        #expect(swift.status == 0, "\(swift.stdout)\(swift.stderr)")

        // One altered event: both verifiers name its position.
        let original = try String(contentsOfFile: bundlePath, encoding: .utf8)
        let altered = dir.path + "/altered.bundle.json"
        try original.replacingOccurrences(of: #"\"totalWithTax\":\"552.00\""#, with: #"\"totalWithTax\":\"553.00\""#)
            .write(toFile: altered, atomically: true, encoding: .utf8)
        let alteredPython = try Self.python([Self.scriptPath, altered])
        #expect(alteredPython.status == 1 && alteredPython.stdout.contains("FAIL position 3: data"), "\(alteredPython.stdout)")
        let alteredSwift = try Self.fapiao(["audit", "verify", "--bundle", altered])
        #expect(alteredSwift.status == 1 && alteredSwift.stdout.contains("at position 3"), "\(alteredSwift.stdout)")

        // A forged signature: the script catches it when it can check signatures at all.
        let object = try Self.json(original)
        var head = try #require(object["head"] as? [String: Any])
        let signature = try #require(head["signature"] as? String)
        head["signature"] = (signature.hasPrefix("A") ? "B" : "A") + signature.dropFirst()
        var forged = object
        forged["head"] = head
        let forgedPath = dir.path + "/forged.bundle.json"
        try JSONSerialization.data(withJSONObject: forged).write(to: URL(fileURLWithPath: forgedPath))
        #expect(try Self.fapiao(["audit", "verify", "--bundle", forgedPath]).status == 1)
        if Self.cryptographyAvailable {
            let forgedPython = try Self.python([Self.scriptPath, forgedPath])
            #expect(forgedPython.status == 1 && forgedPython.stdout.contains("signature does not verify"), "\(forgedPython.stdout)")
        }
    }

    @Test func consistencyAndExportFromTheCLI() throws {
        let dir = TemporaryDirectory("audit-cli")
        let ledger = ["--ledger", dir.ledgerPath]
        let keys = dir.path + "/keys"
        #expect(try Self.fapiao(["import", Self.samplePath] + ledger).status == 0)
        #expect(try Self.fapiao(["audit", "keygen", "--out", keys]).status == 0)
        #expect(try Self.fapiao(["audit", "checkpoint", "--key", keys + "/audit-signing.key"] + ledger).status == 0)

        // One more event, and a second head.
        let first = try #require(try String(contentsOfFile: Self.samplePath, encoding: .utf8).split(separator: "\n").first)
        let extra = dir.path + "/extra.jsonl"
        try (first.replacingOccurrences(of: "\"id\":\"", with: "\"id\":\"extra-") + "\n").write(toFile: extra, atomically: true, encoding: .utf8)
        #expect(try Self.fapiao(["import", extra] + ledger).status == 0)
        #expect(try Self.fapiao(["audit", "checkpoint", "--key", keys + "/audit-signing.key"] + ledger).status == 0)

        let consistency = try Self.fapiao(["audit", "consistency", "17", "18", "--format", "json"] + ledger)
        #expect(consistency.status == 0, "\(consistency.stderr)")
        let answer = try JSONDecoder().decode(ConsistencyAnswer.self, from: Data(consistency.stdout.utf8))
        #expect(answer.proof.verifies() && answer.old.treeSize == 17 && answer.new.treeSize == 18)
        #expect(try Self.fapiao(["audit", "consistency", "17", "19"] + ledger).status == 1)  // no head at 19
        let human = try Self.fapiao(["audit", "consistency", "17", "18"] + ledger)
        #expect(human.stdout.contains("consistent"), "\(human.stdout)")

        let verify = try Self.fapiao(["audit", "verify", "--since", "17", "--format", "json"] + ledger)
        #expect(verify.status == 0, "\(verify.stdout)")
        #expect(try Self.json(verify.stdout)["recordsChecked"] as? Int == 1)

        let export = try Self.fapiao(["export", "--subject", Self.invoice] + ledger)
        let lines = export.stdout.split(separator: "\n")
        #expect(export.status == 0 && lines.count == 5)
        for line in lines {
            let event = try Self.json(String(line))
            #expect(event["subject"] as? String == Self.invoice)
            #expect(event["ledgerhash"] is String && event["ledgerprevhash"] is String && event["ledgerposition"] is Int)
        }
        let slice = try Self.fapiao(["export", "--from", "2", "--to", "4"] + ledger)
        #expect(slice.stdout.split(separator: "\n").count == 3)
        // The log command's JSON is the same rendering.
        let log = try Self.fapiao(["log", "--from", "2", "--limit", "3", "--format", "json"] + ledger)
        #expect(log.stdout == slice.stdout)
    }

    /// docs/audit.md embeds the script; the copy in tools/ is the one tests run. They must agree.
    /// `show --known-at`: what the ledger said then, with the signed head that covers it.
    @Test func showKnownAtNamesTheCoveringSignedHead() throws {
        let dir = TemporaryDirectory()
        let ledger = ["--ledger", dir.ledgerPath]
        let keys = dir.path + "/keys"
        #expect(try Self.fapiao(["import", Self.samplePath] + ledger).status == 0)
        Thread.sleep(forTimeInterval: 1.1)
        let afterImport = Self.nowCST()  // whole seconds: after the import was recorded
        let unsigned = try Self.fapiao(["show", Self.invoice, "--known-at", afterImport, "--format", "json"] + ledger)
        #expect(unsigned.status == 0, "\(unsigned.stderr)")
        #expect(try Self.json(unsigned.stdout)["signedHead"] == nil)
        Thread.sleep(forTimeInterval: 1.1)
        #expect(try Self.fapiao(["audit", "keygen", "--out", keys]).status == 0)
        #expect(try Self.fapiao(["audit", "checkpoint", "--key", keys + "/audit-signing.key"] + ledger).status == 0)
        let covered = try Self.fapiao(["show", Self.invoice, "--known-at", afterImport, "--format", "json"] + ledger)
        let answer = try Self.json(covered.stdout)
        #expect((answer["state"] as? [String: Any])?["key"] as? String == Self.invoice)
        #expect((answer["signedHead"] as? [String: Any])?["treeSize"] as? Int == 17, "\(covered.stdout)")
        // Before anything was recorded, the ledger knew nothing of the invoice.
        #expect(try Self.fapiao(["show", Self.invoice, "--known-at", "2000-01-01"] + ledger).status == 1)
    }

    static func nowCST() -> String {
        let formatter = DateFormatter()
        formatter.timeZone = TimeZone(secondsFromGMT: 8 * 3600)
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss'+08:00'"
        return formatter.string(from: Date())
    }

    @Test func theDocumentedScriptIsTheToolsScript() throws {
        let doc = try String(contentsOf: BuiltProducts.packageRoot.appendingPathComponent("docs/audit.md"), encoding: .utf8)
        let start = try #require(doc.range(of: "```python\n"))
        let end = try #require(doc.range(of: "\n```", range: start.upperBound..<doc.endIndex))
        let embedded = String(doc[start.upperBound..<end.lowerBound]) + "\n"
        let script = try String(contentsOfFile: Self.scriptPath, encoding: .utf8)
        #expect(embedded == script, "docs/audit.md and tools/verify_bundle.py differ: copy the script into the doc")
    }

    struct ProveAnswer: Decodable {
        var head: SignedTreeHead
        var proofs: [InclusionProof]
    }

    struct ConsistencyAnswer: Decodable {
        var old: SignedTreeHead
        var new: SignedTreeHead
        var proof: ConsistencyProof
    }
}
