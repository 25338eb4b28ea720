import FapiaoDomain
import Forensics
import Foundation
import Hummingbird
import Ledger
import Projections

/// A page of `GET /v1/systems/{system}/invoices`.
public struct InvoiceListAnswer: Codable, Sendable, Equatable {
    public var items: [InvoiceListItem]
    /// Pass as `cursor` for the next page; absent on the last.
    public var next: String?
    /// The status views' checkpoint: the answer reflects the log up to this position.
    public var checkpoint: UInt64
}

extension FapiaoServer {
    // MARK: GET /v1/invoices/{key}

    func invoice(_ request: Request, _ context: some RequestContext) async throws(Problem) -> Response {
        let principal = try access.authorize(request, roles: Roles.query)
        let typed = try pathParameter("key", context)
        try await waitForProjection(InvoiceStateProjection.name, request)
        let canonical = Self.canonicalKey(typed)
        let owners = try ownersOrProblem(of: principal.scope)
        let found: (state: InvoiceState?, didYouMean: [String]) = try reading { snapshot in
            if let state = try InvoiceStateProjection.row(canonical, in: snapshot), self.admits(state, principal, owners: owners) {
                return (state, [])
            }
            return (nil, try self.nearMisses(typed, principal, owners: owners, snapshot))
        }
        guard let state = found.state else { throw notFound(invoice: canonical, principal, didYouMean: found.didYouMean) }
        return try json(Self.visiblePart(of: state, to: principal))
    }

    // MARK: GET /v1/invoices/{key}/timeline

    func timeline(_ request: Request, _ context: some RequestContext) async throws(Problem) -> Response {
        let principal = try access.authorize(request, roles: Roles.query)
        let typed = try pathParameter("key", context)
        let cutoff = try Self.cutoff(request)
        try requireInvoice(typed, principal)
        var replay: Replay
        do {
            replay = try forensics.replay(typedKey: typed, cutoff: cutoff)
        } catch {
            throw internalProblem(error)
        }
        guard !replay.steps.isEmpty else {
            throw notFound(invoice: replay.key, principal, didYouMean: [], detail: "invoice \(replay.key) has no event in the time asked")
        }
        if let systems = principal.scope.systems {
            // Nothing of another system: not its events, not its view of the invoice.
            replay.steps.removeAll { step in step.system.map { !systems.contains($0) } ?? false }
            for index in replay.steps.indices { replay.steps[index].systems = replay.steps[index].systems.filter { systems.contains($0.key) } }
        }
        return try json(replay)
    }

    // MARK: GET /v1/invoices/{key}/why

    func why(_ request: Request, _ context: some RequestContext) async throws(Problem) -> Response {
        let principal = try access.authorize(request, roles: Roles.query)
        let typed = try pathParameter("key", context)
        let query = request.uri.queryParameters
        guard let system = query.get("system"), !system.isEmpty else {
            throw .badRequest("`system` is required: the receiving system the invoice should be visible in",
                              problems: [Problem.Item(index: nil, attribute: "system", expected: "a system id such as beijing-finance", got: nil)])
        }
        guard principal.scope.admits(system: system) else {
            throw .forbidden("the token \(principal.name) may not ask about system \(system)")
        }
        let user = query.get("user").flatMap { $0.isEmpty ? nil : $0 }
        let question = WhyQuestion(typedKey: typed, system: system, user: user, cutoff: try Self.cutoff(request), criteria: try Self.criteria(request))
        // A scoped token learns nothing of invoices outside its scope: not even that they exist.
        if !principal.scope.isUnlimited { try requireInvoice(typed, principal) }
        var answer: WhyAnswer
        do {
            answer = try forensics.why(question)
        } catch {
            throw internalProblem(error)
        }
        if let systems = principal.scope.systems {
            answer.timeline.removeAll { entry in entry.system.map { !systems.contains($0) } ?? false }
        }
        return try json(answer)
    }

    // MARK: GET /v1/systems/{system}/invoices

    func list(_ request: Request, _ context: some RequestContext) async throws(Problem) -> Response {
        let principal = try access.authorize(request, roles: Roles.query)
        let system = try pathParameter("system", context)
        guard principal.scope.admits(system: system) else {
            throw .forbidden("the token \(principal.name) may not list system \(system)")
        }
        let criteria = try Self.listCriteria(system: system, request)
        try await waitForProjection(StatusViewsProjection.name, request)
        let sellers = principal.scope.sellerTaxIds
        let page: InvoiceListPage = try reading { snapshot in
            var page = try InvoiceQueries.list(criteria, in: snapshot)
            if let sellers {
                page.items = try page.items.filter { item in
                    guard let seller = try InvoiceStateProjection.row(item.key, in: snapshot)?.invoice?.seller.taxId else { return false }
                    return sellers.contains(seller)
                }
            }
            return page
        }
        return try json(InvoiceListAnswer(items: page.items, next: page.next.map(Cursor.encode), checkpoint: page.checkpoint))
    }

    // MARK: Scope

    /// Whether `principal` may see the invoice `state` describes; `owners` from `owners(of:)`.
    func admits(_ state: InvoiceState, _ principal: Principal, owners: Set<String>) -> Bool {
        let scope = principal.scope
        if scope.isUnlimited { return true }
        return scope.admits(Self.facts(of: state), owners: owners)
    }

    static func facts(of state: InvoiceState) -> InvoiceFacts {
        InvoiceFacts(sellerTaxId: state.invoice?.seller.taxId, buyerTaxId: state.invoice?.buyer.taxId, systems: Set(state.systems.keys))
    }

    /// The owner tax IDs of the systems a scope names, as registered: read from the systems'
    /// streams in the log, not the `systems` projection, which may not have applied a
    /// registration that came in the same request as an invoice.
    func owners(of scope: Scope) throws -> Set<String> {
        guard let systems = scope.systems else { return [] }
        var owners = Set<String>()
        for system in systems {
            let records = try ledger.stream("system/" + system, fromVersion: 1, limit: ledger.options.readEventsMax)
            var row = SystemRow(system: system)
            for item in DecodedBatch(records: records).items {
                if let event = item.event { SystemsProjection.fold(event, record: item.record, into: &row) }
            }
            if let owner = row.ownerTaxId { owners.insert(owner) }
        }
        return owners
    }

    func ownersOrProblem(of scope: Scope) throws(Problem) -> Set<String> {
        do { return try owners(of: scope) } catch { throw internalProblem(error) }
    }

    /// 404 unless the invoice has events and is in the principal's scope. Decided from the log
    /// itself (not a projection that may lag behind an append just answered).
    func requireInvoice(_ typed: String, _ principal: Principal) throws(Problem) {
        let canonical = Self.canonicalKey(typed)
        let state: InvoiceState?
        do {
            state = try logState(canonical)
        } catch {
            throw internalProblem(error)
        }
        if principal.scope.isUnlimited, state != nil { return }
        let owners = try ownersOrProblem(of: principal.scope)
        guard let state, admits(state, principal, owners: owners) else {
            let didYouMean: [String] = try reading { snapshot in try self.nearMisses(typed, principal, owners: owners, snapshot) }
            throw notFound(invoice: canonical, principal, didYouMean: didYouMean)
        }
    }

    /// The invoice's state folded from its stream in the log (nil: no event), for scope
    /// decisions: what the scope turns on (seller, buyer, systems named) does not depend on order.
    func logState(_ key: String) throws -> InvoiceState? {
        let records = try ledger.stream(key, fromVersion: 1, limit: ledger.options.readEventsMax)
        guard !records.isEmpty else { return nil }
        var state = InvoiceState(key: key)
        for item in DecodedBatch(records: records).items {
            if let event = item.event { InvoiceFold.apply(event, record: item.record, to: &state) }
        }
        return state
    }

    /// Near-miss keys the principal may see.
    func nearMisses(_ typed: String, _ principal: Principal, owners: Set<String>, _ snapshot: ProjectionSnapshot) throws -> [String] {
        let keys = try InvoiceQueries.nearMisses(of: typed, in: snapshot).map(\.key)
        if principal.scope.isUnlimited { return keys }
        return try keys.filter { key in
            guard let state = try InvoiceStateProjection.row(key, in: snapshot) else { return false }
            return admits(state, principal, owners: owners)
        }
    }

    /// The same answer whether the invoice is absent or outside the scope.
    func notFound(invoice key: String, _ principal: Principal, didYouMean: [String], detail: String? = nil) -> Problem {
        let scoped = principal.scope.isUnlimited ? "" : " (or not in the scope of this token)"
        return .notFound(detail ?? "invoice \(key) is not in the ledger\(scoped)", didYouMean: didYouMean)
    }

    /// A scoped principal sees only its systems' views of an invoice.
    static func visiblePart(of state: InvoiceState, to principal: Principal) -> InvoiceState {
        guard let systems = principal.scope.systems else { return state }
        var visible = state
        visible.systems = state.systems.filter { systems.contains($0.key) }
        return visible
    }

    // MARK: Parameters

    static func canonicalKey(_ typed: String) -> String {
        (try? InvoiceKey.parse(typed).get())?.description ?? typed
    }

    func pathParameter(_ name: String, _ context: some RequestContext) throws(Problem) -> String {
        guard let raw = context.parameters.get(name), !raw.isEmpty else { throw .badRequest("the path needs {\(name)}") }
        return raw.removingPercentEncoding ?? raw
    }

    /// `at`, `knownAt`, `position`: the two clocks of a bitemporal question, and the log's position.
    static func cutoff(_ request: Request) throws(Problem) -> Cutoff {
        let query = request.uri.queryParameters
        func time(_ name: String) throws(Problem) -> Int64? {
            guard let text = query.get(name), !text.isEmpty else { return nil }
            guard let micros = TimeInput.parse(text) else {
                throw .badRequest("\(name) must be a time", problems: [Problem.Item(
                    index: nil, attribute: name, expected: "RFC 3339 (2024-12-31T18:00:00+08:00), '2024-12-31 18:00' (CST) or a date (end of that day, CST)", got: text)])
            }
            return micros
        }
        var position: UInt64?
        if let text = query.get("position"), !text.isEmpty {
            guard let parsed = UInt64(text) else {
                throw .badRequest("position must be a ledger position", problems: [Problem.Item(index: nil, attribute: "position", expected: "a non-negative integer", got: text)])
            }
            position = parsed
        }
        return Cutoff(at: try time("at"), knownAt: try time("knownAt"), position: position)
    }

    static func date(_ name: String, _ request: Request) throws(Problem) -> CalendarDate? {
        guard let text = request.uri.queryParameters.get(name), !text.isEmpty else { return nil }
        guard case .success(let date) = CalendarDate.parse(text) else {
            throw .badRequest("\(name) must be a date", problems: [Problem.Item(index: nil, attribute: name, expected: "a date like 2024-12-31", got: text)])
        }
        return date
    }

    static func statuses(_ request: Request) throws(Problem) -> [VisibleStatus]? {
        let texts = request.uri.queryParameters.getAll("status").flatMap { $0.split(separator: ",").map(String.init) }
        guard !texts.isEmpty else { return nil }
        var statuses: [VisibleStatus] = []
        for text in texts {
            guard let status = VisibleStatus(rawValue: text) else {
                throw .badRequest("unknown status \(text)", problems: [Problem.Item(
                    index: nil, attribute: "status", expected: "one or more of " + VisibleStatus.allCases.map(\.rawValue).joined(separator: ", "), got: text)])
            }
            statuses.append(status)
        }
        return statuses
    }

    /// Criteria given as parameters are evaluated instead of the user's recorded query (as the CLI's flags).
    static func criteria(_ request: Request) throws(Problem) -> QueryCriteria? {
        let query = request.uri.queryParameters
        func text(_ name: String) -> String? { query.get(name).flatMap { $0.isEmpty ? nil : $0 } }
        let number = text("number"), buyerName = text("buyerName"), sellerName = text("sellerName")
        let issuedFrom = try date("issuedFrom", request), issuedTo = try date("issuedTo", request)
        let statuses = try statuses(request)
        guard number != nil || issuedFrom != nil || issuedTo != nil || buyerName != nil || sellerName != nil || statuses != nil else { return nil }
        return QueryCriteria(number: number, issuedFrom: issuedFrom, issuedTo: issuedTo, buyerName: buyerName, sellerName: sellerName, statuses: statuses)
    }

    static func listCriteria(system: String, _ request: Request) throws(Problem) -> InvoiceListCriteria {
        let query = request.uri.queryParameters
        var limit = 100
        if let text = query.get("limit"), !text.isEmpty {
            guard let parsed = Int(text), parsed >= 1, parsed <= InvoiceListCriteria.limitMax else {
                throw .badRequest("limit must be between 1 and \(InvoiceListCriteria.limitMax)", problems: [Problem.Item(
                    index: nil, attribute: "limit", expected: "an integer from 1 to \(InvoiceListCriteria.limitMax)", got: text)])
            }
            limit = parsed
        }
        var after: String?
        if let text = query.get("cursor"), !text.isEmpty {
            guard let decoded = Cursor.decode(text) else {
                throw .badRequest("cursor is not one this server gave", problems: [Problem.Item(index: nil, attribute: "cursor", expected: "the `next` of a previous page", got: text)])
            }
            after = decoded
        }
        func text(_ name: String) -> String? { query.get(name).flatMap { $0.isEmpty ? nil : $0 } }
        return InvoiceListCriteria(
            system: system, statuses: try statuses(request), buyerName: text("buyerName"), sellerName: text("sellerName"),
            issuedFrom: try date("issuedFrom", request), issuedTo: try date("issuedTo", request), limit: limit, after: after)
    }

    /// `minPosition=N`: read-your-writes. Waits (up to `projectionWaitSecondsMax`) until the
    /// projection has applied the log through N.
    func waitForProjection(_ name: String, _ request: Request) async throws(Problem) {
        guard let text = request.uri.queryParameters.get("minPosition"), !text.isEmpty else { return }
        guard let position = UInt64(text) else {
            throw .badRequest("minPosition must be a ledger position", problems: [Problem.Item(index: nil, attribute: "minPosition", expected: "a non-negative integer", got: text)])
        }
        do {
            try await engine.waitForCheckpoint(name, atLeast: position, timeoutSeconds: configuration.projectionWaitSecondsMax)
        } catch {
            throw Problem(.serviceUnavailable, "projection-behind", title: "The projection has not caught up yet",
                          detail: "projection \(name) did not reach position \(position) within \(configuration.projectionWaitSecondsMax) s; retry",
                          headers: [("Retry-After", "1")])
        }
    }

    // MARK: Helpers

    func reading<T>(_ body: (ProjectionSnapshot) throws -> T) throws(Problem) -> T {
        do {
            return try engine.read(body)
        } catch let problem as Problem {
            throw problem
        } catch {
            throw internalProblem(error)
        }
    }

    func json<T: Encodable>(_ value: T) throws(Problem) -> Response {
        do {
            return try ResponseJSON.response(value)
        } catch {
            throw internalProblem(error)
        }
    }

    func internalProblem(_ error: any Error) -> Problem {
        if let error = error as? LedgerError { return .from(error) }
        logger.error("request failed", metadata: ["error": "\(error)"])
        return .internalError("\(error)")
    }
}

/// List cursors: the status views' `after` key (date ‖ 0 ‖ key), base64url so it travels in a URL.
enum Cursor {
    static func encode(_ after: String) -> String {
        Data(after.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decode(_ text: String) -> String? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64) else { return nil }
        return String(data: data, encoding: .utf8)
    }
}
