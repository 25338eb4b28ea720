import FapiaoDomain
import LMDB
import Ledger

/// What a finance user asks a receiving system for: its invoices in some statuses, issued in
/// a date range (CST), for a buyer or seller name.
public struct InvoiceListCriteria: Sendable, Equatable {
    public var system: String
    /// Nil: every status.
    public var statuses: [VisibleStatus]?
    public var buyerName: String?
    public var sellerName: String?
    public var issuedFrom: CalendarDate?
    public var issuedTo: CalendarDate?
    public var limit: Int
    /// Continue after this item (from a previous page's `next`).
    public var after: String?

    public static let limitMax = 10_000

    public init(system: String, statuses: [VisibleStatus]? = nil, buyerName: String? = nil, sellerName: String? = nil,
                issuedFrom: CalendarDate? = nil, issuedTo: CalendarDate? = nil, limit: Int = 100, after: String? = nil) {
        self.system = system
        self.statuses = statuses
        self.buyerName = buyerName
        self.sellerName = sellerName
        self.issuedFrom = issuedFrom
        self.issuedTo = issuedTo
        self.limit = limit
        self.after = after
    }
}

public struct InvoiceListItem: Codable, Sendable, Equatable {
    public var key: String
    public var status: String
    public var issueDate: String
    public var number: String?
    public var sellerName: String?
    public var buyerName: String?
    public var totalWithTax: String?
    /// Positions of the events that put the invoice in this status in this system.
    public var evidence: [UInt64]
}

public struct InvoiceListPage: Codable, Sendable, Equatable {
    public var items: [InvoiceListItem]
    /// Pass as `after` for the next page; nil on the last.
    public var next: String?
    /// The status views' checkpoint: the answer reflects the log up to this position.
    public var checkpoint: UInt64
}

public enum InvoiceQueries {
    /// Answers from the indexes: the status views (system, status, issue date), or the search
    /// index when a name is given (exact match after normalisation), never a scan of the log.
    public static func list(_ criteria: InvoiceListCriteria, in snapshot: ProjectionSnapshot) throws -> InvoiceListPage {
        guard let (views, checkpoint) = try snapshot.store(StatusViewsProjection.name) else {
            return InvoiceListPage(items: [], next: nil, checkpoint: 0)
        }
        let limit = min(max(criteria.limit, 1), InvoiceListCriteria.limitMax)
        let statuses = (criteria.statuses ?? VisibleStatus.allCases).map(\.rawValue)
        let from = criteria.issuedFrom?.description ?? "0000-00-00"
        let to = criteria.issuedTo?.description ?? "9999-99-99"
        var candidates: [(date: String, key: String, status: String, cursor: String)] = []
        if let name = criteria.buyerName ?? criteria.sellerName, let (search, _) = try snapshot.store(SearchProjection.name) {
            let field = criteria.buyerName != nil ? "buyer_name" : "seller_name"
            for (date, key) in try dateRange(prefix: SearchProjection.prefix(field: field, value: NameNormalization.normalize(name)), from: from, to: to, in: search.table("index"), txn: snapshot.transaction, limit: Int.max) {
                guard let viewKey = try views.get("current", key: Array(key.utf8) + [0] + Array(criteria.system.utf8)) else { continue }
                let status = viewKey.split(separator: 0, omittingEmptySubsequences: false).dropFirst().first.map { String(decoding: $0, as: UTF8.self) } ?? ""
                guard statuses.contains(status) else { continue }
                candidates.append((date, key, status, date + "\u{0}" + key))
            }
        } else {
            // Each status's view is ordered by (date, key), the order of the answer: read at most
            // one page (and one more, to know there is a next) from each, from the cursor on.
            let start = max(from, criteria.after ?? "")
            for status in statuses {
                for (date, key) in try dateRange(prefix: StatusViewsProjection.prefix(system: criteria.system, status: status), from: start, to: to, in: views.table("views"), txn: snapshot.transaction, limit: limit + 2) {
                    candidates.append((date, key, status, date + "\u{0}" + key))
                }
            }
        }
        candidates.sort { $0.cursor < $1.cursor }
        if let after = criteria.after { candidates.removeAll { $0.cursor <= after } }
        var items: [InvoiceListItem] = []
        var next: String?
        for candidate in candidates {
            let state = try views.get("state", key: Array(candidate.key.utf8)).map { try InvoiceState.fromRow($0) }
            if let seller = criteria.sellerName, criteria.buyerName != nil,
               NameNormalization.normalize(state?.invoice?.seller.name ?? "") != NameNormalization.normalize(seller) { continue }
            // One more match than fits: the next page starts after the last item of this one
            // (not after the limit-th candidate: candidates the seller check skipped are no items).
            guard items.count < limit else {
                next = items.last.map { $0.issueDate + "\u{0}" + $0.key }
                break
            }
            let evidence = try views.get("views", key: StatusViewsProjection.viewKey(system: criteria.system, status: candidate.status, date: candidate.date, key: candidate.key))
                .map { PositionList.decode($0) } ?? []
            items.append(InvoiceListItem(
                key: candidate.key, status: candidate.status, issueDate: candidate.date, number: state?.invoice?.number,
                sellerName: state?.invoice?.seller.name, buyerName: state?.invoice?.buyer.name,
                totalWithTax: state?.invoice?.totalWithTax, evidence: evidence))
        }
        return InvoiceListPage(items: items, next: next, checkpoint: checkpoint)
    }

    /// (date, key) of entries `prefix ‖ date ‖ 0 ‖ key` with `from ≤ date ≤ to`, in key order.
    static func dateRange(prefix: [UInt8], from: String, to: String, in table: Table, txn: Transaction, limit: Int) throws -> [(String, String)] {
        var out: [(String, String)] = []
        try txn.withCursor(table) { cursor in
            var entry = try cursor.seek(atLeast: prefix + Array(from.utf8))
            while let current = entry, out.count < limit, current.key.starts(with: prefix) {
                let rest = current.key.dropFirst(prefix.count)
                guard let zero = rest.firstIndex(of: 0) else { break }
                let date = String(decoding: rest[rest.startIndex..<zero], as: UTF8.self)
                if date > to { break }
                out.append((date, String(decoding: rest[(zero + 1)...], as: UTF8.self)))
                entry = try cursor.next()
            }
        }
        return out
    }

    /// Keys one edit away from what was typed (see `NearMiss`), confirmed by
    /// `describeDifference`: exact readings first, then legacy aliases, then typos in order of
    /// the edit's position.
    public static func nearMisses(of typed: String, in snapshot: ProjectionSnapshot, limit: Int = 10) throws -> [(key: String, difference: KeyDifference)] {
        guard let (search, _) = try snapshot.store(SearchProjection.name) else { return [] }
        var seen = Set<String>()
        var found: [(String, KeyDifference)] = []
        let direct = InvoiceKey.readings(ofTyped: typed).map(\.description)
        for key in direct where try snapshot.transaction.get(search.table("entries"), key: Array(key.utf8)) != nil {
            if seen.insert(key).inserted, let parsed = InvoiceKey(canonical: key) { found.append((key, describeDifference(typed: typed, actual: parsed))) }
        }
        // The legacy code and number of a digital paper invoice name its 20-digit key.
        for alias in direct {
            for (_, key) in try dateRange(prefix: SearchProjection.prefix(field: "alias", value: alias), from: "", to: "\u{10FFFF}", in: search.table("index"), txn: snapshot.transaction, limit: 10) {
                if seen.insert(key).inserted { found.append((key, .legacyAlias)) }
            }
        }
        let entries = search.table("entries")
        for candidate in InvoiceKey.nearMissCandidates(forTyped: typed) where found.count < limit {
            let key = candidate.description
            guard !seen.contains(key) else { continue }
            let exists = try key.utf8.withContiguousStorageIfAvailable { bytes in
                try snapshot.transaction.get(entries, key: UnsafeRawBufferPointer(bytes)) != nil
            } ?? (try snapshot.transaction.get(entries, key: Array(key.utf8)) != nil)
            guard exists else { continue }
            let difference = describeDifference(typed: typed, actual: candidate)
            if case .unrelated = difference { continue }
            seen.insert(key)
            found.append((key, difference))
        }
        return Array(found.prefix(limit))
    }
}

extension InvoiceQueries {
    /// Keys of invoices issued to `buyerTaxId`, issued on or after `from` (CST), by issue date.
    public static func keys(buyerTaxId: String, issuedFrom from: CalendarDate?, in snapshot: ProjectionSnapshot, limit: Int = Int.max) throws -> [(date: String, key: String)] {
        guard let (search, _) = try snapshot.store(SearchProjection.name) else { return [] }
        return try dateRange(prefix: SearchProjection.prefix(field: "buyer_tax_id", value: buyerTaxId), from: from?.description ?? "", to: "9999-99-99",
                             in: search.table("index"), txn: snapshot.transaction, limit: limit).map { (date: $0.0, key: $0.1) }
    }
}
