import ArgumentParser
import Audit
import Foundation
import Ledger

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Tamper-evident history: a Merkle tree over the log, signed tree heads, proofs, offline bundles.",
        discussion: """
            The log's Merkle tree is exactly RFC 9162's (Certificate Transparency v2), with each record's \
            stored bytes as a leaf. A signed tree head is the operator's Ed25519 signature of (tree size, \
            root, time); anyone with the public key can then check, offline, that an event is in the log \
            (inclusion proof) and that a later log extends an earlier one (consistency proof). \
            docs/audit.md explains how to verify with your own tools.

            Examples:
              fapiao audit keygen --out keys/                       make a signing key pair
              fapiao audit checkpoint --key keys/audit-signing.key  sign the current head
              fapiao audit prove 24112000000015301234               prove every event of an invoice
              fapiao audit consistency 1000 2000                    the log at 2000 extends the one at 1000
              fapiao audit verify --key keys/audit-signing.pub      re-read and check everything
              fapiao audit bundle --subject 24112000000015301234 invoice.bundle.json
              fapiao audit verify --bundle invoice.bundle.json      check a bundle without the ledger

            Exit codes: 0 ok; 1 tampering found, or nothing signed covers what was asked; \
            65 a bad key file or bundle; 66 no ledger.
            """,
        subcommands: [
            AuditKeygen.self, AuditCheckpoint.self, AuditProve.self, AuditConsistency.self, AuditVerify.self,
            AuditBundleCommand.self,
        ])
}

struct AuditKeygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Make an Ed25519 key pair for signing tree heads: DIR/audit-signing.key (mode 0600) and DIR/audit-signing.pub.",
        discussion: "Existing keys are never overwritten. Give the public key to auditors: it is what they trust.")

    @Option(help: ArgumentHelp("Directory for the key files (created if missing).", valueName: "DIR")) var out: String
    @OptionGroup var output: FormatOption

    struct Answer: Codable {
        var privateKeyFile: String
        var publicKeyFile: String
        var publicKeyBase64: String
        var publicKeyHex: String
    }

    func run() throws {
        let key = AuditSigningKey.generate()
        let paths = try AuditCLI.run { try key.write(to: out) }
        let answer = Answer(privateKeyFile: paths.privateKey, publicKeyFile: paths.publicKey, publicKeyBase64: key.publicKeyBase64, publicKeyHex: key.publicKeyHex)
        switch output.format {
        case .json: try JSONOutput.print(answer)
        case .human:
            Terminal.write("""
                private key  \(answer.privateKeyFile)  (mode 0600: keep it secret, back it up)
                public key   \(answer.publicKeyFile)
                             base64 \(answer.publicKeyBase64)
                             hex    \(answer.publicKeyHex)

                """)
        }
    }
}

struct AuditCheckpoint: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint",
        abstract: "Bring the Merkle tree up to the log's head and sign (tree size, root, time); store the signed head in the ledger.",
        discussion: "Needs write access: run it where the writer runs, or when no other process writes. If the head is already signed, that head is printed.")

    @OptionGroup var ledgerOptions: LedgerOptionsGroup
    @OptionGroup var output: FormatOption
    @Option(help: ArgumentHelp("The private key file (from `fapiao audit keygen`).", valueName: "FILE")) var key: String

    func run() async throws {
        let signingKey = try AuditCLI.run { try AuditSigningKey.load(path: key) }
        let ledger = try ledgerOptions.open(readOnly: false)
        defer { ledger.close() }
        let checkpoint = try await AuditCLI.run { try await AuditLog(ledger: ledger).checkpoint(key: signingKey) }
        switch output.format {
        case .json: try JSONOutput.print(checkpoint.head)
        case .human:
            let head = checkpoint.head
            Terminal.write("""
                \(checkpoint.isNew ? Terminal.green("signed") : "already signed") tree head: size \(head.treeSize)
                  root        \(head.rootHash)
                  ledger time \(head.ledgerTime)
                  public key  \(head.publicKey)
                  signature   \(head.signature)

                """)
        }
    }
}

struct AuditProve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prove",
        abstract: "Inclusion proofs against the latest signed head: one event (--position N) or every event of an invoice (KEY).",
        discussion: """
            Each proof is the RFC 9162 audit path from the record's leaf hash to the signed root. \
            --format json prints them with the head, hashes in lowercase hex.
            """)

    @OptionGroup var ledgerOptions: LedgerOptionsGroup
    @OptionGroup var output: FormatOption
    @Argument(help: "The invoice key (or any stream), as typed.") var key: String?
    @Option(help: "The position of one event.") var position: UInt64?

    func validate() throws {
        guard (key == nil) != (position == nil) else { throw ValidationError("give either an invoice KEY or --position N") }
    }

    struct Answer: Codable {
        var subject: String?
        var head: SignedTreeHead
        var headSignatureValid: Bool
        var proofs: [InclusionProof]
        /// Positions newer than the head: nothing signed covers them yet.
        var unproven: [UInt64]
    }

    func run() throws {
        let ledger = try ledgerOptions.open(readOnly: true)
        let answer = try AuditCLI.run { () throws -> Answer in
            let audit = try AuditLog(ledger: ledger)
            guard let head = try audit.latestHead() else { throw AuditError.noSignedHead(needed: position) }
            let subject = key.map(KeyInput.canonical)
            let positions = try subject.map { try audit.positions(ofStream: $0) } ?? [position!]
            if positions.isEmpty {
                Terminal.error("no events for \(subject ?? "") in the ledger")
                throw ExitCode(ExitCodes.problemFound)
            }
            let covered = positions.filter { $0 <= head.treeSize }
            if covered.isEmpty { throw AuditError.noSignedHead(needed: positions[0]) }
            return Answer(subject: subject, head: head, headSignatureValid: head.hasValidSignature,
                          proofs: try audit.inclusionProofs(positions: covered, head: head),
                          unproven: positions.filter { $0 > head.treeSize })
        }
        switch output.format {
        case .json: try JSONOutput.print(answer)
        case .human:
            var text = AuditText.head(answer.head, signatureValid: answer.headSignatureValid) + "\n"
            for proof in answer.proofs {
                text += "\n" + Terminal.bold("position \(proof.position)") + " (leaf \(proof.leafIndex)) is in the tree of size \(proof.treeSize): "
                text += Terminal.green("proof verifies") + "\n"
                text += "  record hash \(proof.recordHash)\n  leaf hash   \(proof.leafHash)\n"
                text += "  audit path  \(proof.path.count) hash\(proof.path.count == 1 ? "" : "es"), deepest first\n"
                for hash in proof.path { text += Terminal.dim("    \(hash)") + "\n" }
            }
            Terminal.write(text)
        }
        if !answer.unproven.isEmpty {
            Terminal.note("positions \(answer.unproven.map(String.init).joined(separator: ", ")) are newer than the latest signed head (size \(answer.head.treeSize)); sign one with `fapiao audit checkpoint` to prove them")
        }
        if !answer.headSignatureValid || !answer.unproven.isEmpty { throw ExitCode(ExitCodes.problemFound) }
    }
}

struct AuditConsistency: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consistency",
        abstract: "Prove that the log at signed head NEW extends the log at signed head OLD, rewriting nothing.",
        discussion: "OLD and NEW are tree sizes of signed heads (fapiao audit verify lists them).")

    @OptionGroup var ledgerOptions: LedgerOptionsGroup
    @OptionGroup var output: FormatOption
    @Argument(help: "Tree size of the older signed head.") var old: UInt64
    @Argument(help: "Tree size of the newer signed head.") var new: UInt64

    struct Answer: Codable {
        var old: SignedTreeHead
        var new: SignedTreeHead
        var signaturesValid: Bool
        var proof: ConsistencyProof
    }

    func run() throws {
        let ledger = try ledgerOptions.open(readOnly: true)
        let answer = try AuditCLI.run { () throws -> Answer in
            let audit = try AuditLog(ledger: ledger)
            guard let oldHead = try audit.head(treeSize: min(old, new)) else { throw AuditError.unknownHead(treeSize: min(old, new)) }
            guard let newHead = try audit.head(treeSize: max(old, new)) else { throw AuditError.unknownHead(treeSize: max(old, new)) }
            return Answer(old: oldHead, new: newHead, signaturesValid: oldHead.hasValidSignature && newHead.hasValidSignature,
                          proof: try audit.consistencyProof(from: oldHead, to: newHead))
        }
        switch output.format {
        case .json: try JSONOutput.print(answer)
        case .human:
            var text = AuditText.head(answer.old, signatureValid: answer.old.hasValidSignature) + "\n"
            text += AuditText.head(answer.new, signatureValid: answer.new.hasValidSignature) + "\n\n"
            text += Terminal.green("consistent") + ": the log of \(answer.new.treeSize) records extends the log of \(answer.old.treeSize) without changing any of them\n"
            text += "  proof \(answer.proof.path.count) hash\(answer.proof.path.count == 1 ? "" : "es") (RFC 9162 §2.1.4)\n"
            for hash in answer.proof.path { text += Terminal.dim("    \(hash)") + "\n" }
            Terminal.write(text)
        }
        if !answer.signaturesValid { throw ExitCode(ExitCodes.problemFound) }
    }
}

struct AuditVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Re-read every record: check record hashes, the hash chain, the Merkle root at every signed head and every signature.",
        discussion: """
            On tampering it names the first bad position and what differs, and exits 1. With --bundle it \
            checks an audit bundle instead, without the ledger. With --key it also requires every head to \
            be signed by one of the given public keys (base64, hex, or a .pub file).
            """)

    @OptionGroup var ledgerOptions: LedgerOptionsGroup
    @OptionGroup var output: FormatOption
    @Option(help: ArgumentHelp("Start after this signed head's tree size (a head verified before).", valueName: "TREESIZE"))
    var since: UInt64?
    @Option(help: ArgumentHelp("Verify this bundle file instead of the ledger.", valueName: "PATH")) var bundle: String?
    @Option(name: .customLong("key"), help: ArgumentHelp("A trusted public key (repeatable).", valueName: "PUBKEY"))
    var keys: [String] = []

    func run() throws {
        let trusted = try trustedKeys()
        let report: AuditReport
        if let bundle {
            report = try AuditCLI.run { try AuditBundle.load(path: bundle).verify(trustedKeys: trusted) }
        } else {
            let ledger = try ledgerOptions.open(readOnly: true)
            let head = try CLIError.wrap { try ledger.headPosition() }
            let bar = ProgressBar("verifying", total: head - min(since ?? 0, head))
            let from = since ?? 0
            report = try AuditCLI.run {
                try AuditVerifier(audit: try AuditLog(ledger: ledger), trustedKeys: trusted).verify(since: since) { bar.update($0 - from) }
            }
            bar.finish(report.recordsChecked)
        }
        switch output.format {
        case .json: try JSONOutput.print(report)
        case .human: Terminal.write(AuditText.render(report, bundle: bundle))
        }
        if !report.intact { throw ExitCode(ExitCodes.problemFound) }
    }

    private func trustedKeys() throws -> Set<String>? {
        guard !keys.isEmpty else { return nil }
        return Set(try keys.map { text in
            guard let key = AuditPublicKey.parse(text) else {
                throw ValidationError("--key \(text) is not an Ed25519 public key (base64 or hex of 32 bytes, or a file holding one)")
            }
            return key
        })
    }
}

struct AuditBundleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bundle",
        abstract: "Write a self-contained audit bundle: events, the latest signed head, an inclusion proof for each event, the public key.",
        discussion: """
            OUT is a JSON file (or a directory, which gets fapiao-audit-bundle.json). Verify it with \
            `fapiao audit verify --bundle OUT` or `python3 tools/verify_bundle.py OUT` (docs/audit.md).
            """)

    @OptionGroup var ledgerOptions: LedgerOptionsGroup
    @Argument(help: "The bundle file to write.") var out: String
    @Option(help: "Only the events of this invoice (or stream), as typed.") var subject: String?
    @Option(help: "First position.") var from: UInt64 = 1
    @Option(help: "Last position (default: the latest signed head's size).") var to: UInt64?

    func run() throws {
        let ledger = try ledgerOptions.open(readOnly: true)
        let canonical = subject.map(KeyInput.canonical)
        let bundle = try AuditCLI.run { () throws -> AuditBundle in
            let audit = try AuditLog(ledger: ledger)
            guard let head = try audit.latestHead() else { throw AuditError.noSignedHead(needed: nil) }
            let last = to ?? head.treeSize
            let positions: [UInt64]
            if let canonical {
                let all = try audit.positions(ofStream: canonical).filter { $0 >= from }
                positions = all.filter { $0 <= last }
                let newer = all.filter { $0 > head.treeSize }.count
                if newer > 0 {
                    Terminal.note("\(newer) event\(newer == 1 ? " is" : "s are") newer than the latest signed head (size \(head.treeSize)) and left out; sign one with `fapiao audit checkpoint` to include \(newer == 1 ? "it" : "them")")
                }
            } else {
                guard last >= from else { return try audit.bundle(positions: [], subject: nil) }
                guard last - from < UInt64(AuditLog.bundleEventsMax) else {
                    throw AuditError.tooMany(count: Int(clamping: last - from + 1), limit: AuditLog.bundleEventsMax)
                }
                positions = Array(from...last)
            }
            return try audit.bundle(positions: positions, subject: canonical)
        }
        if bundle.events.isEmpty {
            Terminal.error("no events \(canonical.map { "of \($0) " } ?? "")in positions \(from)...\(to ?? bundle.head.treeSize) are covered by the latest signed head (size \(bundle.head.treeSize))")
            throw ExitCode(ExitCodes.problemFound)
        }
        var isDirectory: ObjCBool = false
        let path = FileManager.default.fileExists(atPath: out, isDirectory: &isDirectory) && isDirectory.boolValue
            ? (out as NSString).appendingPathComponent("fapiao-audit-bundle.json") : out
        do {
            try bundle.encoded().write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            Terminal.error("cannot write \(path): \(error.localizedDescription)")
            throw ExitCode(ExitCodes.cannotCreate)
        }
        Terminal.write("""
            wrote \(path): \(bundle.events.count) event\(bundle.events.count == 1 ? "" : "s")\(canonical.map { " of \($0)" } ?? ""), proven against the head signed at size \(bundle.head.treeSize)
            verify it: fapiao audit verify --bundle \(path)   or   python3 tools/verify_bundle.py \(path)

            """)
    }
}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export events as CloudEvents JSON Lines with the ledger's extension attributes.",
        discussion: """
            Each line carries ledgerposition, ledgertime, ledgerhash and ledgerprevhash (docs/events.md); \
            data is byte-identical to what was imported. Positions are inclusive.

            Examples:
              fapiao export > all.jsonl
              fapiao export --from 1000 --to 2000
              fapiao export --subject 24112000000015301234
            """)

    @OptionGroup var ledgerOptions: LedgerOptionsGroup
    @Option(help: "First position.") var from: UInt64 = 1
    @Option(help: "Last position (default: the head).") var to: UInt64?
    @Option(help: "Only the events of this invoice (or stream), as typed.") var subject: String?

    func run() throws {
        let ledger = try ledgerOptions.open(readOnly: true)
        let count = try AuditCLI.run {
            try AuditLog(ledger: ledger).export(from: from, through: to, subject: subject.map(KeyInput.canonical)) { lines in
                Terminal.write(bytes: lines)
            }
        }
        if count == 0 { Terminal.note("no events to export") }
    }
}

/// Audit errors as messages and exit codes.
enum AuditCLI {
    static func run<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as AuditError {
            fail(error)
        } catch let error as LedgerError {
            CLIError.fail(error)
        }
    }

    static func run<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as AuditError {
            fail(error)
        } catch let error as LedgerError {
            CLIError.fail(error)
        }
    }

    static func fail(_ error: AuditError) -> Never {
        Terminal.error("\(error)")
        switch error {
        case .keyFile, .bundle: exit(ExitCodes.dataError)
        default: exit(ExitCodes.problemFound)
        }
    }
}

/// Human renderings of heads and reports.
enum AuditText {
    static func head(_ head: SignedTreeHead, signatureValid: Bool) -> String {
        let signature = signatureValid ? Terminal.green("signature valid") : Terminal.red("SIGNATURE INVALID")
        return Terminal.bold("signed tree head") + " size \(head.treeSize), root \(head.rootHash)\n"
            + "  signed \(head.ledgerTime) by \(head.publicKey): \(signature)"
    }

    static func render(_ report: AuditReport, bundle: String?) -> String {
        var text = ""
        let rate = report.seconds > 0 ? Int(Double(report.recordsChecked) / report.seconds) : 0
        if report.intact {
            if let bundle {
                text += Terminal.green("intact") + ": \(bundle): \(report.recordsChecked) event\(report.recordsChecked == 1 ? "" : "s") proven against the head signed at size \(report.latestHead ?? 0); signature valid; each CloudEvent matches its record\n"
            } else {
                text += Terminal.green("intact") + ": \(report.recordsChecked) records (positions \(report.fromPosition)...\(report.throughPosition)): record hashes and hash chain verified\n"
                text += "  \(report.leavesCompared) leaves match the audit tree built at append; "
                text += report.headsChecked == 0 ? "no signed heads\n" : "\(report.headsChecked) signed head\(report.headsChecked == 1 ? "" : "s"): roots recomputed from the records, signatures valid\n"
                text += "  root at \(report.throughPosition): \(report.rootHash)\n"
                text += Terminal.dim("  \(String(format: "%.2f", report.seconds)) s, \(rate) events/s") + "\n"
            }
        } else {
            let first = report.firstBadPosition.map { " at position \($0)" } ?? ""
            text += Terminal.red("TAMPERED or CORRUPT") + "\(first): \(report.problems.count) finding\(report.problems.count == 1 ? "" : "s"), first bad place first\n"
            for problem in report.problems {
                text += "  " + RecordPrinter.pad(problem.kind.rawValue, 17) + problem.message + "\n"
            }
        }
        if !report.publicKeys.isEmpty { text += Terminal.dim("  signed by \(report.publicKeys.joined(separator: ", "))") + "\n" }
        for note in report.notes { text += Terminal.dim("  note: \(note)") + "\n" }
        return text
    }
}
