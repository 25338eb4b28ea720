// What each generated invoice is meant to show: visible, or one cause of domain.md's
// pipeline, made the decisive one. The proportions are the generator's picture of an
// ordinary month at a Beijing group's finance department: most invoices arrive and are
// approved; the failures are the ones people actually call about.

/// The intended answer of `why` for one invoice: "visible" or a cause code of docs/events.md.
public enum Intended: String, Sendable, Hashable, CaseIterable, Comparable {
    case visible
    case notInLedger = "not_in_ledger"
    case issueFailed = "issue_failed"
    case voided
    case redLetterReversed = "red_letter_reversed"
    case verificationFailed = "verification_failed"
    case wrongRecipient = "wrong_recipient"
    case notDelivered = "not_delivered"
    case deliveryPending = "delivery_pending"
    case deliveryFailed = "delivery_failed"
    case receiptRejected = "receipt_rejected"
    case pendingReview = "pending_review"
    case reviewRejected = "review_rejected"
    case accessDenied = "access_denied"
    case systemMaintenance = "system_maintenance"
    case queryNumberMismatch = "query_number_mismatch"
    case queryDateOutOfRange = "query_date_out_of_range"
    case queryBuyerNameMismatch = "query_buyer_name_mismatch"
    case querySellerNameMismatch = "query_seller_name_mismatch"
    case queryStatusFiltered = "query_status_filtered"

    /// Share of invoices, in basis points (1/10,000). The rest are visible.
    public var basisPoints: Int {
        switch self {
        case .visible: 10_000 - Intended.allCases.dropFirst().reduce(0) { $0 + $1.basisPoints }
        case .notInLedger: 40
        case .issueFailed: 50
        case .voided: 80
        case .redLetterReversed: 100
        case .verificationFailed: 50
        case .wrongRecipient: 70
        case .notDelivered: 150
        case .deliveryPending: 50
        case .deliveryFailed: 250
        case .receiptRejected: 150
        case .pendingReview: 300
        case .reviewRejected: 100
        case .accessDenied: 100
        case .systemMaintenance: 50
        case .queryNumberMismatch: 120
        case .queryDateOutOfRange: 120
        case .queryBuyerNameMismatch: 60
        case .querySellerNameMismatch: 60
        case .queryStatusFiltered: 50
        }
    }

    /// Causes that need a user (access, maintenance, the user's query).
    public var needsUser: Bool {
        switch self {
        case .accessDenied, .systemMaintenance, .queryNumberMismatch, .queryDateOutOfRange, .queryBuyerNameMismatch,
             .querySellerNameMismatch, .queryStatusFiltered: true
        default: false
        }
    }

    var order: Int { Intended.allCases.firstIndex(of: self)! }
    public static func < (a: Intended, b: Intended) -> Bool { a.order < b.order }

    /// Thresholds on a 64-bit fraction: scenario k covers [threshold[k-1], threshold[k]).
    static let thresholds: [UInt64] = {
        var sum: UInt128 = 0
        return Intended.allCases.map { intended in
            sum += UInt128(intended.basisPoints)
            return sum >= 10_000 ? UInt64.max : UInt64((sum << 64) / 10_000)
        }
    }()

    /// The scenario of invoice `index`: a golden-ratio (Weyl) sequence through the shares, so
    /// every prefix of the file has the proportions to within a couple of invoices, and even a
    /// few hundred invoices show every cause. The seed shifts the sequence.
    static func of(index: Int, seed: UInt64) -> Intended {
        let point = SplitMix.mix(seed ^ 0x5CE7_A210) &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15
        let position = thresholds.firstIndex { point < $0 } ?? thresholds.count - 1
        return Intended.allCases[position]
    }
}
