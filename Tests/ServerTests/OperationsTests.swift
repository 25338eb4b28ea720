import Audit
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Ledger
@testable import Server

@Suite struct OperationsTests {
    @Test func healthSaysOkWithTheHeadAndProjections() async throws {
        try await withServer { server, client in
            try await seed(server, client)
            let response = try await get(client, "/healthz", as: nil)
            #expect(response.status == .ok)
            let body = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
            #expect(body?["status"] as? String == "ok")
            #expect(body?["headPosition"] as? Int == Fixture.lines.count)
        }
    }

    @Test func metricsArePrometheusText() async throws {
        try await withServer { server, client in
            try await seed(server, client)
            _ = try await post(client, Fixture.lines) // all already present
            let response = try await get(client, "/metrics", as: "reader")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
            let body = text(response)
            for expected in [
                "fapiao_events_appended_total \(Fixture.lines.count)", "fapiao_events_already_present_total \(Fixture.lines.count)",
                "fapiao_append_requests_total 2", "# TYPE fapiao_append_batch_events histogram", "fapiao_append_batch_events_count 2",
                "# TYPE fapiao_append_commit_seconds histogram", "fapiao_append_commit_seconds_count 2",
                #"fapiao_projection_lag_events{projection="invoice_state"} 0"#, "fapiao_sse_subscribers 0",
                "fapiao_ledger_map_used_bytes", "fapiao_ledger_map_size_bytes", "fapiao_ledger_head_position \(Fixture.lines.count)",
            ] {
                #expect(body.contains(expected), "\(expected) in\n\(body)")
            }
        }
    }

    /// docs/openapi.yaml is what /openapi.yaml serves, byte for byte.
    @Test func theServedDocumentIsDocsOpenAPI() async throws {
        let docs = try String(contentsOfFile: Self.repositoryRoot + "/docs/openapi.yaml", encoding: .utf8)
        #expect(OpenAPIDocument.yaml + "\n" == docs, "copy docs/openapi.yaml into Sources/Server/OpenAPIDocument.swift")
        try await withServer { _, client in
            let response = try await get(client, "/openapi.yaml", as: nil)
            #expect(response.status == .ok)
            #expect(text(response) == OpenAPIDocument.yaml)
        }
    }

    /// The document is valid OpenAPI 3.1, by the reference validator (python3 openapi-spec-validator).
    @Test func theOpenAPIDocumentIsValid() throws {
        let check = Process()
        check.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        check.arguments = ["python3", "-c", "import openapi_spec_validator"]
        check.standardError = FileHandle.nullDevice
        do { try check.run() } catch {
            print("SKIPPED theOpenAPIDocumentIsValid: python3 is not installed")
            return
        }
        check.waitUntilExit()
        guard check.terminationStatus == 0 else {
            print("SKIPPED theOpenAPIDocumentIsValid: the python module openapi-spec-validator is missing (pip install openapi-spec-validator)")
            return
        }
        let validate = Process()
        validate.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        validate.arguments = ["python3", "-m", "openapi_spec_validator", Self.repositoryRoot + "/docs/openapi.yaml"]
        // Output to a file, not a pipe: reading a pipe while the child exits can be interrupted (EINTR).
        let directory = TemporaryDirectory("openapi")
        let outputPath = directory.path + "/output.txt"
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        validate.standardOutput = output
        validate.standardError = output
        try validate.run()
        validate.waitUntilExit()
        try output.close()
        let printed = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        #expect(validate.terminationStatus == 0, "\(printed)")
    }

    @Test func theServerSignsTreeHeadsOnItsPolicy() async throws {
        let directory = TemporaryDirectory()
        try await withLedger(at: directory.ledgerPath) { ledger in
            let key = AuditSigningKey.generate()
            let configuration = ServerConfiguration(checkpointPolicy: CheckpointPolicy(everyEvents: 5, everySeconds: 0), checkpointPollMilliseconds: 20)
            let server = try FapiaoServer(ledger: ledger, access: Fixture.access, configuration: configuration, signingKey: key)
            try await server.start()
            defer { server.stop() }
            try await server.application().test(.router) { client in
                _ = try await post(client, Fixture.lines)
                let audit = try AuditLog(ledger: ledger)
                var head: SignedTreeHead?
                for _ in 0..<500 where head == nil {
                    head = try audit.latestHead()
                    if head == nil { try await Task.sleep(for: .milliseconds(10)) }
                }
                #expect(head?.treeSize == UInt64(Fixture.lines.count))
            }
        }
    }

    static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()
}
