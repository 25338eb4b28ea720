import Audit
import Forensics
import Foundation
import Hummingbird
import Ingestion
import Ledger
import Logging
import Projections
import ServiceLifecycle

/// The HTTP server over one ledger: ingestion, queries, forensic answers and live
/// subscriptions, for the services around the ledger. See docs/http-api.md.
///
///     let ledger = try Ledger.open(at: path)
///     let server = try FapiaoServer(ledger: ledger, access: try AccessControl.load(path: "tokens.json"))
///     try await server.run()      // until SIGTERM or SIGINT
///     ledger.close()
///
/// It runs the projection engine (async mode) and, given a signing key, signs tree heads on
/// the configured policy. The ledger is the caller's: opened before, closed after `run`.
public final class FapiaoServer: Sendable {
    public let ledger: Ledger
    public let engine: ProjectionEngine
    public let forensics: Forensics
    public let access: AccessControl
    public let configuration: ServerConfiguration
    let importer: Importer
    let metrics: ServerMetrics
    let subscribers: SubscriberSlots
    let audit: AuditLog?
    let signingKey: AuditSigningKey?
    let logger: Logger

    public init(
        ledger: Ledger, access: AccessControl = .open, configuration: ServerConfiguration = ServerConfiguration(),
        signingKey: AuditSigningKey? = nil, logger: Logger = Logger(label: "fapiao.server")
    ) throws {
        // Without tokens everyone may do everything: only this machine may connect.
        guard !access.isOpen || ServerConfiguration.loopbackHosts.contains(configuration.host) else {
            throw ServerSetupError(description: "listening on \(configuration.host) needs tokens: without them every request is allowed, so the server listens on 127.0.0.1 only")
        }
        self.ledger = ledger
        self.access = access
        self.configuration = configuration
        self.logger = logger
        engine = try ProjectionEngine(ledger: ledger, projections: BuiltInProjections.all, mode: .async, logger: logger)
        forensics = Forensics(ledger: ledger, projections: engine)
        importer = Importer(ledger: ledger)
        metrics = ServerMetrics(projections: engine.projections.map(\.name))
        subscribers = SubscriberSlots(max: configuration.subscribersMax, gauge: metrics.subscribers)
        self.signingKey = signingKey
        audit = signingKey == nil ? nil : try AuditLog(ledger: ledger)
    }

    /// Brings the projections up to date and starts following appends.
    public func start() async throws {
        try await engine.start()
    }

    /// Stops following appends. The ledger stays open.
    public func stop() {
        engine.stop()
    }

    // MARK: Routes

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.post("/v1/events") { request, _ in await self.answer { () throws(Problem) in try await self.appendEvents(request) } }
        router.get("/v1/events") { request, _ in await self.answer { () throws(Problem) in try await self.events(request) } }
        router.get("/v1/invoices/:key") { request, context in await self.answer { () throws(Problem) in try await self.invoice(request, context) } }
        router.get("/v1/invoices/:key/timeline") { request, context in await self.answer { () throws(Problem) in try await self.timeline(request, context) } }
        router.get("/v1/invoices/:key/why") { request, context in await self.answer { () throws(Problem) in try await self.why(request, context) } }
        router.get("/v1/systems/:system/invoices") { request, context in await self.answer { () throws(Problem) in try await self.list(request, context) } }
        router.get("/v1/projections/:name/changes") { request, context in await self.answer { () throws(Problem) in try await self.changes(request, context) } }
        router.put("/v1/subscriptions/:name") { request, context in await self.answer { () throws(Problem) in try await self.putSubscription(request, context) } }
        router.get("/v1/subscriptions/:name") { request, context in await self.answer { () throws(Problem) in try await self.getSubscription(request, context) } }
        router.delete("/v1/subscriptions/:name") { request, context in await self.answer { () throws(Problem) in try await self.deleteSubscription(request, context) } }
        router.post("/v1/subscriptions/:name/ack") { request, context in await self.answer { () throws(Problem) in try await self.acknowledge(request, context) } }
        router.get("/v1/subscriptions/:name/events") { request, context in await self.answer { () throws(Problem) in try await self.subscriptionEvents(request, context) } }
        router.get("/healthz") { _, _ in await self.answer { () throws(Problem) in try self.health() } }
        router.get("/metrics") { request, _ in await self.answer { () throws(Problem) in try self.prometheus(request) } }
        router.get("/openapi.yaml") { _, _ in Self.openAPI() }
        return router
    }

    /// Runs a handler, turning a problem into its response.
    func answer(_ handler: () async throws(Problem) -> Response) async -> Response {
        do {
            return try await handler()
        } catch {
            return error.response
        }
    }

    /// The application: the router, the address, and the checkpoint signer as a service.
    public func application() -> some ApplicationProtocol {
        var services: [any Service] = []
        if let audit, let signingKey {
            services.append(Checkpointer(
                audit: audit, key: signingKey, policy: configuration.checkpointPolicy,
                pollMilliseconds: configuration.checkpointPollMilliseconds, logger: logger))
        }
        return Application(
            router: router(),
            configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port), serverName: "fapiao"),
            services: services,
            logger: logger)
    }

    /// Starts, serves until SIGTERM or SIGINT, then shuts down gracefully: the listener
    /// closes, live streams end, in-flight requests (appends among them) finish and are
    /// answered; then the projection engine stops. Closing the ledger is left to the caller,
    /// after `run` returns: the writer commits whatever was queued first.
    public func run() async throws {
        try await start()
        defer { stop() }
        if access.isOpen {
            logger.warning("no --tokens: every request is allowed, and the server listens on \(configuration.host) only (this machine)")
        }
        logger.info("serving", metadata: ["address": "\(configuration.host):\(configuration.port)", "ledger": "\(ledger.path)"])
        let group = ServiceGroup(configuration: .init(
            services: [application()], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        // Bring the projections to the head before the ledger closes, so no catch-up is cut short.
        try? await engine.catchUp()
        logger.info("stopped: every acknowledged append is committed")
    }

    // MARK: Operations

    struct Health: Encodable {
        var status: String
        var headPosition: UInt64
        var projections: [ProjectionEngine.Status]
        var subscribers: Int
    }

    func health() throws(Problem) -> Response {
        do {
            return try ResponseJSON.response(Health(
                status: "ok", headPosition: try ledger.headPosition(), projections: try engine.status(), subscribers: subscribers.inUse))
        } catch {
            throw internalProblem(error)
        }
    }

    func prometheus(_ request: Request) throws(Problem) -> Response {
        _ = try access.authorize(request, roles: Roles.operate)
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.scrape(ledger: ledger, engine: engine))))
    }

    static func openAPI() -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/yaml"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: OpenAPIDocument.yaml)))
    }
}

public struct ServerSetupError: Error, CustomStringConvertible {
    public var description: String
}

/// Signs a tree head whenever the policy says one is due (every N events or T seconds), until
/// graceful shutdown.
struct Checkpointer: Service {
    let audit: AuditLog
    let key: AuditSigningKey
    let policy: CheckpointPolicy
    let pollMilliseconds: Int
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    if let head = try await audit.checkpointIfDue(key: key, policy: policy) {
                        logger.info("signed a tree head", metadata: ["treeSize": "\(head.treeSize)", "root": "\(head.rootHash)"])
                    }
                } catch {
                    logger.error("signing a tree head failed; will retry", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .milliseconds(pollMilliseconds))
            }
        }
    }
}
