@_exported import TestSupport
import FapiaoDomain
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing
@testable import Ledger
@testable import Projections
@testable import Server


/// Opens a ledger, runs `body`, closes it and waits until it is released (`Ledger.using`); recorded
/// times step deterministically.
func withLedger<T>(
    at path: String, options: LedgerOptions = LedgerOptions(), _ body: (Ledger) async throws -> T
) async throws -> T {
    try await Ledger.using(at: path, options: options, clock: SteppingClock().micros, body)
}

/// A started server over a fresh ledger; `body` gets the server and a client of `setup`.
func withServer<T: Sendable>(
    _ setup: TestingSetup = .router, access: AccessControl = Fixture.access,
    configuration: ServerConfiguration = ServerConfiguration(heartbeatSeconds: 0.2),
    options: LedgerOptions = LedgerOptions(), _ body: @escaping @Sendable (FapiaoServer, any TestClientProtocol) async throws -> T
) async throws -> T {
    let directory = TemporaryDirectory()
    return try await withLedger(at: directory.ledgerPath, options: options) { ledger in
        let server = try FapiaoServer(ledger: ledger, access: access, configuration: configuration)
        try await server.start()
        defer { server.stop() }
        return try await server.application().test(setup) { client in try await body(server, client) }
    }
}

// MARK: Events

/// Contract events as upstream systems send them (CloudEvents JSON).
enum Build {
    static let source = "urn:fapiao:test"

    static func envelope(_ subject: String, _ event: DomainEvent, id: String, at time: String, source: String = source) -> CloudEventEnvelope {
        CloudEventEnvelope(id: id, source: source, subject: subject, time: Literal.instant(time), event: event)
    }

    static func line(_ subject: String, _ event: DomainEvent, id: String, at time: String = "2025-01-02T10:00:00+08:00", source: String = source) -> String {
        String(decoding: envelope(subject, event, id: id, at: time, source: source).encodedLine(), as: UTF8.self)
    }

    static func issued(_ key: String, seller: String, sellerTaxId: String, buyer: String, buyerTaxId: String, at issuedAt: String = "2025-01-02T10:00:00+08:00", amount: String = "100.00") -> DomainEvent {
        Literal.issued(key, at: issuedAt, seller: seller, sellerTaxId: sellerTaxId, buyer: buyer, buyerTaxId: buyerTaxId, amount: amount)
    }

    static func registered(_ system: String, owner: String, requiresReview: Bool = false) -> DomainEvent {
        .systemRegistered(SystemRegistered(system: system, name: "系统 \(system)", ownerTaxId: owner, requiresReview: requiresReview, visibleStatuses: [.approved]))
    }

    static func batch(_ lines: [String]) -> ByteBuffer {
        ByteBuffer(string: "[" + lines.joined(separator: ",") + "]")
    }
}

/// Two receiving systems, two sellers, three invoices:
///
/// | key | seller | buyer | where |
/// | K1 | S1 | A (owner of sys-a) | accepted in sys-a |
/// | K2 | S2 | B (owner of sys-b) | accepted in sys-b |
/// | K3 | S2 | A | not delivered anywhere (sys-a's by its owner) |
enum Fixture {
    static let sellerS1 = "91110108551385082Q"
    static let sellerS2 = "914403001922038216"
    static let ownerA = "91330100799655058B"
    static let ownerB = sellerS1
    static let k1 = "24112000000015301234"
    static let k2 = "24112000000015305678"
    static let k3 = "24112000000015309999"

    static var lines: [String] {
        [
            Build.line("system/sys-a", Build.registered("sys-a", owner: ownerA), id: "reg-a", at: "2025-01-01T09:00:00+08:00"),
            Build.line("system/sys-b", Build.registered("sys-b", owner: ownerB), id: "reg-b", at: "2025-01-01T09:00:00+08:00"),
            Build.line(k1, Build.issued(k1, seller: "北京云栈科技有限公司", sellerTaxId: sellerS1, buyer: "甲公司", buyerTaxId: ownerA), id: "iss-1"),
            Build.line(k1, .receiptAccepted(ReceiptAccepted(system: "sys-a")), id: "rcp-1", at: "2025-01-02T10:05:00+08:00"),
            Build.line(k2, Build.issued(k2, seller: "深圳某某有限公司", sellerTaxId: sellerS2, buyer: "乙公司", buyerTaxId: ownerB), id: "iss-2"),
            Build.line(k2, .receiptAccepted(ReceiptAccepted(system: "sys-b")), id: "rcp-2", at: "2025-01-02T10:05:00+08:00"),
            Build.line(k3, Build.issued(k3, seller: "深圳某某有限公司", sellerTaxId: sellerS2, buyer: "甲公司", buyerTaxId: ownerA), id: "iss-3"),
        ]
    }

    static func token(_ name: String) -> String { "token-\(name)-" + String(repeating: "0", count: 32) }

    static let tokens: [TokenEntry] = [
        TokenEntry(token: token("writer"), role: .writer, name: "writer"),
        TokenEntry(token: token("reader"), role: .reader, name: "reader"),
        TokenEntry(token: token("auditor"), role: .auditor, name: "auditor"),
        TokenEntry(token: token("subscriber"), role: .subscriber, name: "subscriber"),
        TokenEntry(token: token("reader-a"), role: .reader, systems: ["sys-a"], name: "reader-a"),
        TokenEntry(token: token("reader-s2"), role: .reader, sellerTaxIds: [sellerS2], name: "reader-s2"),
        TokenEntry(token: token("subscriber-a"), role: .subscriber, systems: ["sys-a"], name: "subscriber-a"),
        TokenEntry(token: token("writer-a"), role: .writer, systems: ["sys-a"], name: "writer-a"),
    ]

    static let access = try! AccessControl(tokens: tokens)
}

// MARK: Requests

func headers(_ token: String?, contentType: String? = nil, lastEventID: UInt64? = nil) -> HTTPFields {
    var fields = HTTPFields()
    if let token { fields[.authorization] = "Bearer " + Fixture.token(token) }
    if let contentType { fields[.contentType] = contentType }
    if let lastEventID { fields[HTTPFields.Element.Name("Last-Event-ID")!] = String(lastEventID) }
    return fields
}

func post(_ client: some TestClientProtocol, _ lines: [String], as token: String? = "writer",
          contentType: String = "application/cloudevents-batch+json") async throws -> TestResponse {
    try await client.execute(uri: "/v1/events", method: .post, headers: headers(token, contentType: contentType), body: Build.batch(lines))
}

func get(_ client: some TestClientProtocol, _ uri: String, as token: String? = "reader") async throws -> TestResponse {
    try await client.execute(uri: uri, method: .get, headers: headers(token))
}

/// Posts the fixture and waits until the projections have applied it.
@discardableResult
func seed(_ server: FapiaoServer, _ client: some TestClientProtocol) async throws -> AppendAnswer {
    let response = try await post(client, Fixture.lines)
    #expect(response.status == .ok, "\(text(response))")
    let answer = try decode(AppendAnswer.self, response)
    for projection in server.engine.projections {
        try await server.engine.waitForCheckpoint(projection.name, atLeast: answer.positions.max() ?? 0)
    }
    return answer
}

func decode<T: Decodable>(_ type: T.Type, _ response: TestResponse) throws -> T {
    try JSONDecoder().decode(type, from: Data(response.body.readableBytesView))
}

/// The problem+json body.
struct ProblemBody: Decodable, Equatable {
    var type: String
    var title: String
    var status: Int
    var detail: String
    var problems: [Problem.Item]?
    var didYouMean: [String]?
}

func problem(_ response: TestResponse) throws -> ProblemBody {
    #expect(response.headers[.contentType] == "application/problem+json")
    return try decode(ProblemBody.self, response)
}

func text(_ response: TestResponse) -> String {
    String(decoding: response.body.readableBytesView, as: UTF8.self)
}
