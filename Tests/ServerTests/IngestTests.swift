import FapiaoDomain
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Ledger
@testable import Server

@Suite struct IngestTests {
    @Test func aBatchIsAppendedAndAnsweredWithPositions() async throws {
        try await withServer { server, client in
            let response = try await post(client, Fixture.lines)
            #expect(response.status == .ok)
            let answer = try decode(AppendAnswer.self, response)
            #expect(answer.positions == Array(1...UInt64(Fixture.lines.count)))
            #expect(answer.new == Fixture.lines.count)
            #expect(answer.alreadyPresent == 0)
            #expect(answer.events.map(\.id) == ["reg-a", "reg-b", "iss-1", "rcp-1", "iss-2", "rcp-2", "iss-3"])
            #expect(try server.ledger.headPosition() == UInt64(Fixture.lines.count))
        }
    }

    @Test func reSendingTheSameBatchIsIdempotent() async throws {
        try await withServer { server, client in
            let first = try decode(AppendAnswer.self, try await post(client, Fixture.lines))
            let again = try await post(client, Fixture.lines)
            #expect(again.status == .ok)
            let second = try decode(AppendAnswer.self, again)
            #expect(second.positions == first.positions)
            #expect(second.new == 0)
            #expect(second.alreadyPresent == Fixture.lines.count)
            #expect(try server.ledger.headPosition() == UInt64(Fixture.lines.count))
        }
    }

    @Test func oneBadEventRefusesTheWholeBatchAndWritesNothing() async throws {
        try await withServer { server, client in
            var lines = Fixture.lines
            // Element 2 loses its time, element 4 gets an amount as a JSON number.
            lines[2] = lines[2].replacingOccurrences(of: #""time":"2025-01-02T10:00:00+08:00","#, with: "")
            lines[4] = lines[4].replacingOccurrences(of: #""totalAmount":"100.00""#, with: #""totalAmount":100"#)
            let response = try await post(client, lines)
            #expect(response.status == .badRequest)
            let body = try problem(response)
            #expect(body.type == "urn:fapiao:problem:invalid-events")
            let problems = try #require(body.problems)
            #expect(problems.contains { $0.index == 2 && $0.attribute == "time" })
            #expect(problems.contains { $0.index == 4 && $0.attribute == "data.totalAmount" })
            #expect(Set(problems.compactMap(\.index)) == [2, 4])
            #expect(try server.ledger.headPosition() == 0)
            #expect(try server.ledger.rejectionCount() == 0, "refused in validation: the ledger never saw it")
        }
    }

    @Test func aSingleStructuredEventIsAccepted() async throws {
        try await withServer { server, client in
            for (index, contentType) in ["application/cloudevents+json", "application/json; charset=utf-8"].enumerated() {
                let line = Build.line("system/sys-\(index)", Build.registered("sys-\(index)", owner: Fixture.ownerA), id: "reg-\(index)")
                let response = try await client.execute(
                    uri: "/v1/events", method: .post, headers: headers("writer", contentType: contentType), body: ByteBuffer(string: line))
                #expect(response.status == .ok, "\(contentType): \(text(response))")
                #expect(try decode(AppendAnswer.self, response).positions == [UInt64(index + 1)])
            }
            // A batch content type needs an array; a single one needs an object.
            let wrongShape = try await client.execute(
                uri: "/v1/events", method: .post, headers: headers("writer", contentType: "application/cloudevents-batch+json"),
                body: ByteBuffer(string: Fixture.lines[0]))
            #expect(wrongShape.status == .badRequest)
            let unsupported = try await post(client, Fixture.lines, contentType: "text/plain")
            #expect(unsupported.status == .unsupportedMediaType)
            #expect(try server.ledger.headPosition() == 2)
        }
    }

    @Test func malformedJSONIsABadRequestNamingTheByte() async throws {
        try await withServer { server, client in
            let response = try await client.execute(
                uri: "/v1/events", method: .post, headers: headers("writer", contentType: "application/cloudevents-batch+json"),
                body: ByteBuffer(string: "[{\"specversion\": \"1.0\",]"))
            #expect(response.status == .badRequest)
            let body = try problem(response)
            #expect(body.problems?.first?.got?.contains("at byte") == true)
            #expect(try server.ledger.headPosition() == 0)
        }
    }

    @Test func anIdReusedWithOtherContentIsAConflict() async throws {
        try await withServer { server, client in
            _ = try await post(client, Fixture.lines)
            let changed = Build.line("system/sys-a", Build.registered("sys-a", owner: Fixture.sellerS2), id: "reg-a")
            let response = try await post(client, [Fixture.lines[1], changed])
            #expect(response.status == .conflict)
            let body = try problem(response)
            #expect(body.type == "urn:fapiao:problem:idempotency-conflict")
            #expect(body.problems?.first?.index == 1)
            #expect(try server.ledger.headPosition() == UInt64(Fixture.lines.count))

            // Inside one batch, caught before the ledger sees it.
            let twice = try await post(client, [
                Build.line("system/sys-c", Build.registered("sys-c", owner: Fixture.ownerA), id: "reg-c"),
                Build.line("system/sys-c", Build.registered("sys-c", owner: Fixture.sellerS2), id: "reg-c"),
            ])
            #expect(twice.status == .badRequest)
            #expect(try problem(twice).problems?.first?.index == 1)
        }
    }

    @Test func anExpectationThatFailsIsAConflictAndWritesNothing() async throws {
        try await withServer { server, client in
            _ = try await post(client, Fixture.lines)
            func maintenance(_ id: String, expecting version: Int) -> String {
                let line = Build.line("system/sys-a", .maintenanceStarted(MaintenanceStarted(system: "sys-a", reason: "upgrade")), id: id)
                return line.replacingOccurrences(of: #","data":"#, with: #","expectedversion":\#(version),"data":"#)
            }
            let stale = try await post(client, [maintenance("m-0", expecting: 1), maintenance("m-1", expecting: 0)])
            #expect(stale.status == .conflict)
            let body = try problem(stale)
            #expect(body.type == "urn:fapiao:problem:expectation-failed")
            #expect(try server.ledger.headPosition() == UInt64(Fixture.lines.count), "nothing of the request was written")
            let fresh = try await post(client, [maintenance("m-2", expecting: 1)])
            #expect(fresh.status == .ok, "\(text(fresh))")
        }
    }

    @Test func aBodyOverTheLimitIsRefusedWith413() async throws {
        try await withServer(configuration: ServerConfiguration(requestBytesMax: 2_048)) { server, client in
            let response = try await post(client, Fixture.lines)
            #expect(response.status == .contentTooLarge)
            #expect(try problem(response).type == "urn:fapiao:problem:too-large")
            #expect(try server.ledger.headPosition() == 0)
        }
    }

    @Test func anInvoiceBreakingARuleIsRecordedWithItsFlag() async throws {
        try await withServer { server, client in
            let key = "24112000000015300001"
            let line = Build.line(key, Build.issued(key, seller: "某公司", sellerTaxId: "91110108551385082X", buyer: "甲公司", buyerTaxId: Fixture.ownerA), id: "iss-bad")
            let response = try await post(client, [line])
            #expect(response.status == .ok, "\(text(response))")
            let answer = try decode(AppendAnswer.self, response)
            #expect(answer.positions == [1])
            #expect(answer.events[0].flagged?.isEmpty == false)
            let stream = try server.ledger.stream(key, limit: 10)
            #expect(stream.map(\.type) == ["fapiao.invoice.issued", "fapiao.ledger.flagged"])
        }
    }

    @Test(arguments: [
        (LedgerError.overloaded(queuedEventsMax: 10), 503, "overloaded"),
        (LedgerError.mapFull(mapSizeBytes: 1 << 20), 507, "storage-full"),
        (LedgerError.diskFull, 507, "storage-full"),
        (LedgerError.closed, 503, "shutting-down"),
    ])
    func ledgerFailuresMapToStatuses(error: LedgerError, status: Int, slug: String) {
        let problem = Problem.from(error)
        #expect(Int(problem.status.code) == status)
        #expect(problem.slug == slug)
        if status == 503 { #expect(problem.headers.contains { $0.name == "Retry-After" }) }
    }

    @Test func aFullMapAnswers507AndTheLedgerStaysIntact() async throws {
        try await withServer(options: LedgerOptions(mapSizeBytes: 1 << 20)) { server, client in
            var answered507 = false
            for round in 0..<40 {
                let lines = (0..<60).map { index in
                    Build.line("system/big-\(round)-\(index)", .maintenanceStarted(MaintenanceStarted(
                        system: "big-\(round)-\(index)", reason: String(repeating: "x", count: 2_000))), id: "big-\(round)-\(index)")
                }
                let response = try await post(client, lines)
                if response.status.code == 507 {
                    #expect(try problem(response).type == "urn:fapiao:problem:storage-full")
                    answered507 = true
                    break
                }
                #expect(response.status == .ok, "\(text(response))")
            }
            #expect(answered507)
            #expect(try server.ledger.headPosition() % 60 == 0, "whole requests only")
        }
    }
}
