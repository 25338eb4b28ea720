import FapiaoDomain
import Forensics
import Foundation
import Hummingbird
import HummingbirdTesting
@testable import Projections
import Testing
@testable import Ledger
@testable import Server

@Suite struct AccessTests {
    @Test func noTokenIs401WithABearerChallenge() async throws {
        try await withServer { server, client in
            for (method, uri) in [(HTTPRequest.Method.get, "/v1/invoices/\(Fixture.k1)"), (.get, "/v1/events"), (.post, "/v1/events"),
                                  (.get, "/v1/systems/sys-a/invoices"), (.get, "/v1/projections/invoice_state/changes"), (.get, "/metrics")] {
                let response = try await client.execute(uri: uri, method: method, headers: headers(nil, contentType: "application/json"))
                #expect(response.status == .unauthorized, "\(uri)")
                #expect(response.headers[.wwwAuthenticate] == #"Bearer realm="fapiao""#)
                #expect(try problem(response).type == "urn:fapiao:problem:unauthenticated")
            }
            var forged = HTTPFields()
            forged[.authorization] = "Bearer " + Fixture.token("reader").dropLast() + "1"
            let wrong = try await client.execute(uri: "/v1/invoices/\(Fixture.k1)", method: .get, headers: forged)
            #expect(wrong.status == .unauthorized)
            #expect(wrong.headers[.wwwAuthenticate]?.contains("invalid_token") == true)
            var basic = HTTPFields()
            basic[.authorization] = "Basic cmVhZGVyOnJlYWRlcg=="
            #expect(try await client.execute(uri: "/v1/invoices/\(Fixture.k1)", method: .get, headers: basic).status == .unauthorized)
            // Open to all: health and the API description.
            #expect(try await get(client, "/healthz", as: nil).status == .ok)
            #expect(try await get(client, "/openapi.yaml", as: nil).status == .ok)
            #expect(try server.ledger.headPosition() == 0)
        }
    }

    @Test func theWrongRoleIs403() async throws {
        try await withServer { server, client in
            try await seed(server, client)
            let appendAsReader = try await post(client, [Fixture.lines[0]], as: "reader")
            #expect(appendAsReader.status == .forbidden)
            #expect(try problem(appendAsReader).type == "urn:fapiao:problem:forbidden")
            for uri in ["/v1/invoices/\(Fixture.k1)", "/v1/invoices/\(Fixture.k1)/timeline", "/v1/invoices/\(Fixture.k1)/why?system=sys-a", "/v1/systems/sys-a/invoices"] {
                #expect(try await get(client, uri, as: "writer").status == .forbidden, "\(uri)")
                #expect(try await get(client, uri, as: "subscriber").status == .forbidden, "\(uri)")
                #expect(try await get(client, uri, as: "auditor").status == .ok, "\(uri)")
            }
            for uri in ["/v1/events", "/v1/projections/invoice_state/changes"] {
                #expect(try await get(client, uri, as: "reader").status == .forbidden, "\(uri)")
                #expect(try await get(client, uri, as: "writer").status == .forbidden, "\(uri)")
            }
            #expect(try await get(client, "/metrics", as: "writer").status == .ok)
        }
    }

    @Test func aSystemScopedReaderSeesOnlyItsInvoices() async throws {
        try await withServer { server, client in
            try await seed(server, client)
            // K1: delivered to sys-a. K3: issued to sys-a's owner. K2: sys-b's.
            #expect(try await get(client, "/v1/invoices/\(Fixture.k1)", as: "reader-a").status == .ok)
            #expect(try await get(client, "/v1/invoices/\(Fixture.k3)", as: "reader-a").status == .ok)
            let outOfScope = try await get(client, "/v1/invoices/\(Fixture.k2)", as: "reader-a")
            let absent = try await get(client, "/v1/invoices/24112000000015300000", as: "reader-a")
            #expect(outOfScope.status == .notFound)
            #expect(absent.status == .notFound)
            var outBody = try problem(outOfScope)
            let absentBody = try problem(absent)
            outBody.detail = outBody.detail.replacingOccurrences(of: Fixture.k2, with: "24112000000015300000")
            #expect(outBody == absentBody, "an invoice outside the scope looks exactly like one that does not exist")
            // Near misses never name an invoice outside the scope.
            let typo = String(Fixture.k2.dropLast()) + "9"
            let near = try problem(try await get(client, "/v1/invoices/\(typo)", as: "reader-a"))
            #expect(near.didYouMean?.contains(Fixture.k2) != true)
            let nearUnscoped = try problem(try await get(client, "/v1/invoices/\(typo)", as: "reader"))
            #expect(nearUnscoped.didYouMean?.contains(Fixture.k2) == true)

            // why: another system's question is forbidden; an invoice outside the scope is 404.
            #expect(try await get(client, "/v1/invoices/\(Fixture.k1)/why?system=sys-b", as: "reader-a").status == .forbidden)
            #expect(try await get(client, "/v1/invoices/\(Fixture.k2)/why?system=sys-a", as: "reader-a").status == .notFound)
            #expect(try await get(client, "/v1/invoices/\(Fixture.k3)/why?system=sys-a", as: "reader-a").status == .ok)
            #expect(try await get(client, "/v1/invoices/\(Fixture.k2)/timeline", as: "reader-a").status == .notFound)

            // Lists: its own system only.
            #expect(try await get(client, "/v1/systems/sys-b/invoices", as: "reader-a").status == .forbidden)
            let page = try decode(InvoiceListAnswer.self, try await get(client, "/v1/systems/sys-a/invoices", as: "reader-a"))
            #expect(page.items.map(\.key) == [Fixture.k1])
        }
    }

    /// An invoice in the scope may also have been sent to another system: a scoped reader's
    /// why and timeline show none of that system's events.
    @Test func aSystemScopedAnswerCarriesNoOtherSystemsEvents() async throws {
        try await withServer { server, client in
            try await seed(server, client)
            let extra = try await post(client, [
                Build.line(Fixture.k1, .deliveryAttempted(DeliveryStep(system: "sys-b", attempt: 1)), id: "dlv-b-1", at: "2025-01-02T11:00:00+08:00"),
            ])
            #expect(extra.status == .ok)
            let why = try decode(WhyAnswer.self, try await get(client, "/v1/invoices/\(Fixture.k1)/why?system=sys-a", as: "reader-a"))
            #expect(!why.timeline.isEmpty)
            #expect(why.timeline.allSatisfy { $0.system != "sys-b" }, "\(why.timeline)")
            let unscoped = try decode(WhyAnswer.self, try await get(client, "/v1/invoices/\(Fixture.k1)/why?system=sys-a", as: "reader"))
            #expect(unscoped.timeline.contains { $0.system == "sys-b" })
            let replay = try decode(Replay.self, try await get(client, "/v1/invoices/\(Fixture.k1)/timeline", as: "reader-a"))
            #expect(replay.steps.allSatisfy { $0.system != "sys-b" && $0.systems["sys-b"] == nil }, "\(replay.steps)")
        }
    }

    /// A scoped writer writes only inside its scope; a batch with one event outside writes nothing.
    @Test func aSystemScopedWriterCannotWriteForAnotherSystem() async throws {
        try await withServer { server, client in
            try await seed(server, client)
            let head = try server.ledger.headPosition()
            let refused = try await post(client, [
                Build.line(Fixture.k1, .deliveryAttempted(DeliveryStep(system: "sys-a", attempt: 1)), id: "w-a-1", at: "2025-01-02T11:00:00+08:00"),
                Build.line(Fixture.k1, .deliveryAttempted(DeliveryStep(system: "sys-b", attempt: 1)), id: "w-b-1", at: "2025-01-02T11:00:00+08:00"),
            ], as: "writer-a")
            #expect(refused.status == .forbidden)
            #expect(try server.ledger.headPosition() == head)
            let allowed = try await post(client, [
                Build.line(Fixture.k1, .deliveryAttempted(DeliveryStep(system: "sys-a", attempt: 1)), id: "w-a-1", at: "2025-01-02T11:00:00+08:00"),
            ], as: "writer-a")
            #expect(allowed.status == .ok)
            #expect(try server.ledger.headPosition() == head + 1)
        }
    }

    @Test func aSellerScopedReaderSeesOnlyItsSellersInvoices() async throws {
        try await withServer { server, client in
            try await seed(server, client)
            #expect(try await get(client, "/v1/invoices/\(Fixture.k2)", as: "reader-s2").status == .ok)
            #expect(try await get(client, "/v1/invoices/\(Fixture.k3)", as: "reader-s2").status == .ok)
            #expect(try await get(client, "/v1/invoices/\(Fixture.k1)", as: "reader-s2").status == .notFound)
            // A seller's token sees no receiving system's lists.
            #expect(try await get(client, "/v1/systems/sys-b/invoices", as: "reader-s2").status == .forbidden)
        }
    }

    @Test func aSystemScopedStateShowsOnlyItsSystemsViews() {
        var state = InvoiceState(key: Fixture.k1)
        state.systems = ["sys-a": .init(), "sys-b": .init()]
        let principal = Principal(name: "a", role: .reader, scope: Scope(systems: ["sys-a"]))
        #expect(Array(FapiaoServer.visiblePart(of: state, to: principal).systems.keys) == ["sys-a"])
        #expect(FapiaoServer.visiblePart(of: state, to: .local).systems.count == 2)
    }

    @Test func tokensFilesAreChecked() throws {
        let short = TokenEntry(token: "short", role: .reader, name: "x")
        #expect(throws: TokenFileError.self) { try AccessControl(tokens: [short]) }
        let long = TokenEntry(token: Fixture.token("a"), role: .reader, name: "x")
        #expect(throws: TokenFileError.self) { try AccessControl(tokens: [long, long]) }
        #expect(throws: TokenFileError.self) { try AccessControl(tokens: [TokenEntry(token: Fixture.token("b"), role: .reader, systems: [], name: "x")]) }
        #expect(throws: TokenFileError.self) { try AccessControl(tokens: []) }

        let directory = TemporaryDirectory()
        let path = directory.path + "/tokens.json"
        try Data(#"[{"token": "\#(Fixture.token("f"))", "role": "subscriber", "systems": ["sys-a"], "name": "feed"}]"#.utf8).write(to: URL(fileURLWithPath: path))
        let access = try AccessControl.load(path: path)
        let principal = try access.authenticate(authorization: "Bearer " + Fixture.token("f"))
        #expect(principal.role == .subscriber)
        #expect(principal.scope.systems == ["sys-a"])
        try Data(#"[{"token": "\#(Fixture.token("g"))", "role": "admin", "name": "x"}]"#.utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: TokenFileError.self) { try AccessControl.load(path: path) }
    }

    @Test func withoutTokensEverythingIsAllowed() async throws {
        try await withServer(access: .open) { server, client in
            let response = try await post(client, Fixture.lines, as: nil)
            #expect(response.status == .ok)
            #expect(try await get(client, "/v1/systems/sys-a/invoices", as: nil).status == .ok)
        }
    }
}

@Suite struct SetupTests {
    @Test func withoutTokensTheServerRefusesToListenBeyondThisMachine() async throws {
        let directory = TemporaryDirectory()
        try await withLedger(at: directory.ledgerPath) { ledger in
            #expect(throws: ServerSetupError.self) {
                _ = try FapiaoServer(ledger: ledger, access: .open, configuration: ServerConfiguration(host: "0.0.0.0"))
            }
            _ = try FapiaoServer(ledger: ledger, access: Fixture.access, configuration: ServerConfiguration(host: "0.0.0.0"))
        }
    }
}
