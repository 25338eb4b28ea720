import ArgumentParser
import Audit
import Foundation
import Ledger
import Logging
import Server

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the ledger over HTTP: ingestion, queries, why, live Server-Sent Events, metrics.",
        discussion: """
            The API is docs/http-api.md (OpenAPI 3.1 at /openapi.yaml). Clients authenticate with \
            bearer tokens from --tokens, a JSON array of {"token", "role" (writer, reader, auditor, \
            subscriber), "systems"?, "sellerTaxIds"?, "name"}. Without --tokens every request is \
            allowed, so the server then listens on 127.0.0.1 only.

            The projections are kept up to date in the background. With --signing-key, a tree head \
            is signed every --checkpoint-every-events events or --checkpoint-every-seconds seconds.

            SIGTERM or SIGINT stops it gracefully: no new connections, live streams end, appends in \
            flight finish and are answered, then the ledger closes. Nothing acknowledged is lost.

            Examples:
              fapiao serve --ledger ./fapiao.ledger
              fapiao serve --ledger /srv/fapiao.ledger --host 0.0.0.0 --port 8080 --tokens tokens.json --signing-key audit-signing.key
            """)

    @OptionGroup var ledgerOptions: LedgerOptionsGroup
    @Option(help: "The port to listen on.") var port: Int = 8080
    @Option(help: "The address to listen on. Anything but 127.0.0.1, localhost or ::1 needs --tokens.") var host: String = "127.0.0.1"
    @Option(help: ArgumentHelp("The bearer tokens file (JSON).", valueName: "FILE")) var tokens: String?
    @Option(help: ArgumentHelp("Sign tree heads with this private key (from `fapiao audit keygen`).", valueName: "FILE")) var signingKey: String?
    @Option(help: "With --signing-key: sign after this many new events (0: never by count).") var checkpointEveryEvents: UInt64 = 10_000
    @Option(help: "With --signing-key: sign this many seconds after the last head when there are new events (0: never by time).")
    var checkpointEverySeconds: Double = 60
    @Option(help: "The largest request body, in bytes (larger: 413).") var requestBytesMax: Int = 8 << 20
    @Option(help: "The most live Server-Sent Events connections (more: 429).") var subscribersMax: Int = 256

    func validate() throws {
        guard (1...65_535).contains(port) else { throw ValidationError("--port must be between 1 and 65535, got \(port)") }
        if tokens == nil && !ServerConfiguration.loopbackHosts.contains(host) {
            throw ValidationError("--host \(host) needs --tokens: without tokens every request is allowed, so the server listens on 127.0.0.1 only")
        }
        guard requestBytesMax >= 1024 else { throw ValidationError("--request-bytes-max must be at least 1024, got \(requestBytesMax)") }
        guard subscribersMax >= 1 else { throw ValidationError("--subscribers-max must be at least 1, got \(subscribersMax)") }
        guard checkpointEverySeconds >= 0 else { throw ValidationError("--checkpoint-every-seconds must not be negative") }
    }

    func run() async throws {
        let access: AccessControl
        do {
            access = try tokens.map { try AccessControl.load(path: $0) } ?? .open
        } catch let error as TokenFileError {
            Terminal.error(error.description)
            throw ExitCode(ExitCodes.dataError)
        }
        let key = try signingKey.map { path in try AuditCLI.run { try AuditSigningKey.load(path: path) } }
        let configuration = ServerConfiguration(
            host: host, port: port, requestBytesMax: requestBytesMax, subscribersMax: subscribersMax,
            checkpointPolicy: CheckpointPolicy(everyEvents: checkpointEveryEvents, everySeconds: checkpointEverySeconds))
        let ledger = try ledgerOptions.open(readOnly: false)
        defer { ledger.close() }
        let server = try CLIError.wrap { try FapiaoServer(ledger: ledger, access: access, configuration: configuration, signingKey: key) }
        try await server.run()
    }
}
