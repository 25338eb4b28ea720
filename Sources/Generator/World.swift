import FapiaoDomain

// The generated world: sellers, the buyer group and its receiving systems, the people who
// use those systems, and the calendar. Everything is a pure function of the options.

/// A receiving system as registered (`fapiao.system.registered`).
struct ReceivingSystem: Sendable {
    var id: String
    var name: String
    var owner: Company
    var requiresReview: Bool
    var visibleStatuses: [VisibleStatus]
    var maintenance: MaintenancePlan
    var reviewers: [String]
    /// Share of the invoices delivered here, in percent.
    var sharePercent: Int

    var subject: String { "system/" + id }
    var syncSource: String { "urn:fapiao:sync:" + id }
    var financeSource: String { "urn:fapiao:finance:" + id }
    var accessSource: String { "urn:fapiao:access:" + id }
    var queryLogSource: String { "urn:fapiao:querylog:" + id }
    var opsSource: String { "urn:fapiao:ops:" + id }

    func userSubject(_ user: String) -> String { "system/\(id)/user/\(user)" }
}

/// A user set up before the period, with the grants (and revocations) of their stream.
struct SharedUser: Sendable {
    enum Kind: Sendable { case all, sellers, revoked, partlyRevoked }

    struct Change: Sendable {
        var at: Int64
        var granted: Bool
        /// Seller indices; nil: every seller.
        var sellers: [Int]?
    }

    var id: String
    var system: Int
    var kind: Kind
    var changes: [Change]

    /// The sellers (indices) the user may see at the end of the period; nil: all.
    var coveredSellers: Set<Int>? {
        var all = false
        var covered = Set<Int>()
        for change in changes {
            switch (change.granted, change.sellers) {
            case (true, nil): all = true
            case (false, nil):
                all = false
                covered.removeAll()
            case let (true, sellers?): covered.formUnion(sellers)
            case let (false, sellers?): covered.subtract(sellers)
            }
        }
        return all ? nil : covered
    }

    /// For a partly revoked user: the seller whose access was taken away.
    var revokedSeller: Int? { changes.last { !$0.granted }?.sellers?.first }
}

/// What the generator is asked for.
public struct GeneratorOptions: Sendable, Hashable {
    public var invoices: Int
    public var seed: UInt64
    /// The first CST day of the period.
    public var start: CalendarDate
    /// The period's length; nil: from the invoice count (about 3,000 invoices a day, 7 to 365 days).
    public var days: Int?
    /// Threads generating invoices (the output is the same for any number).
    public var workers: Int

    public init(invoices: Int, seed: UInt64 = 1, start: CalendarDate = CalendarDate(year: 2024, month: 12, day: 1)!, days: Int? = nil, workers: Int = 2) {
        self.invoices = invoices
        self.seed = seed
        self.start = start
        self.days = days
        self.workers = workers
    }

    public static let invoicesMax = 100_000_000

    var periodDays: Int { days ?? min(365, max(7, (invoices + 2_999) / 3_000)) }
}

struct World: Sendable {
    let options: GeneratorOptions
    let sellers: [Company]
    /// Sellers whose names carry full-width brackets, and sellers with an old name.
    let bracketedSellers: [Int]
    let renamedSellers: [Int]
    let group: Company
    let subsidiary: Company
    let sister: Company
    let otherBuyers: [Company]
    /// [0] is beijing-finance.
    let systems: [ReceivingSystem]
    let sharedUsers: [SharedUser]
    let schedule: IssueSchedule
    /// When the systems were registered: a week before the period.
    let setupMicros: Int64

    static let issuerSource = "urn:fapiao:issuer:beijing-etax"
    static let verificationSource = "urn:fapiao:verify:chinatax"
    static let verificationProvider = "inv-veri.chinatax.gov.cn"

    /// Given names and surnames for user ids (`wang.fang`).
    static let surnames = ["wang", "li", "zhang", "liu", "chen", "yang", "zhao", "huang", "zhou", "wu", "xu", "sun", "hu", "zhu", "gao", "lin", "he", "guo", "ma", "luo"]
    static let givenNames = ["wei", "fang", "na", "min", "jing", "li", "qiang", "lei", "jun", "yang", "yong", "yan", "jie", "tao", "ming", "chao", "xia", "ping", "gang", "hui"]

    init(options: GeneratorOptions) {
        self.options = options
        var random = SplitMix(seed: options.seed, stream: 1, index: 0)
        let sellerCount = min(Beijing.sellersMax, max(30, options.invoices / 60))
        let sellers = (0..<sellerCount).map { CompanyFactory.seller($0, random: &random) }
        self.sellers = sellers
        bracketedSellers = sellers.indices.filter { sellers[$0].hasFullWidthBrackets }
        renamedSellers = sellers.indices.filter { sellers[$0].oldName != nil }
        let buyers = CompanyFactory.buyers(random: &random)
        group = buyers.group
        subsidiary = buyers.subsidiary
        sister = buyers.sister
        otherBuyers = buyers.others
        schedule = IssueSchedule(start: options.start, days: options.periodDays, count: max(1, options.invoices))
        setupMicros = schedule.startMicros - 7 * Clock.day + 9 * Clock.hour
        systems = [
            ReceivingSystem(
                id: "beijing-finance", name: "北京财务共享中心", owner: group, requiresReview: true, visibleStatuses: [.approved],
                maintenance: MaintenancePlan(system: "beijing-finance", weekly: (weekday: 5, startHour: 19, minutes: 150), unplannedEveryDays: 9, seed: options.seed),
                reviewers: ["li.na", "chen.jing", "zhao.min"], sharePercent: 78),
            // The sister company's books: its view also lists invoices waiting for review.
            ReceivingSystem(
                id: "chaoyang-it-finance", name: "朝阳信息技术公司财务系统", owner: sister, requiresReview: true, visibleStatuses: [.pendingReview, .approved],
                maintenance: MaintenancePlan(system: "chaoyang-it-finance", weekly: (weekday: 6, startHour: 1, minutes: 120), unplannedEveryDays: 0, seed: options.seed),
                reviewers: ["gao.yan"], sharePercent: 10),
            ReceivingSystem(
                id: "shunyi-logistics-erp", name: "顺义物流ERP", owner: subsidiary, requiresReview: false, visibleStatuses: [.approved],
                maintenance: MaintenancePlan(system: "shunyi-logistics-erp", weekly: (weekday: 0, startHour: 2, minutes: 90), unplannedEveryDays: 0, seed: options.seed),
                reviewers: [], sharePercent: 12),
        ]
        sharedUsers = World.makeSharedUsers(sellers: sellerCount, setup: setupMicros, schedule: schedule)
    }

    /// The people of the systems: most see everything; some see only their sellers; one left
    /// the team and lost access; one lost a seller when it was handed to a colleague.
    static func makeSharedUsers(sellers: Int, setup: Int64, schedule: IssueSchedule) -> [SharedUser] {
        var users: [SharedUser] = []
        func grant(_ id: String, _ system: Int, _ kind: SharedUser.Kind, minute: Int64, sellers: [Int]? = nil, revoke: (day: Int, sellers: [Int]?)? = nil) {
            var changes = [SharedUser.Change(at: setup + (30 + minute) * Clock.minute, granted: true, sellers: sellers)]
            if let revoke {
                let at = Clock.officeHours(atOrAfter: schedule.startMicros + Int64(revoke.day) * Clock.day) + 2 * Clock.hour
                changes.append(SharedUser.Change(at: at, granted: false, sellers: revoke.sellers))
            }
            users.append(SharedUser(id: id, system: system, kind: kind, changes: changes))
        }
        for (offset, id) in ["zhang.wei", "li.na", "wang.fang", "liu.yang", "chen.jing", "zhao.min"].enumerated() {
            grant(id, 0, .all, minute: Int64(offset))
        }
        grant("gao.yan", 1, .all, minute: 10)
        grant("zhao.lei", 1, .all, minute: 11)
        grant("ma.jun", 2, .all, minute: 12)
        // Sees only the first tenth of the sellers (the ones she books).
        grant("zhou.min", 0, .sellers, minute: 40, sellers: Array(0..<max(3, sellers / 10)))
        // Moved to the audit department a third into the period.
        grant("wu.tao", 0, .revoked, minute: 41, revoke: (schedule.days / 3, nil))
        // Lost one of his four sellers to a colleague half-way through.
        let four = Array(sellers / 2 ..< sellers / 2 + 4)
        grant("sun.li", 0, .partlyRevoked, minute: 42, sellers: four, revoke: (schedule.days / 2, [four[0]]))
        return users
    }

    /// The user's stream: each change with its scope in tax IDs.
    func accessChanges(of user: SharedUser) -> [(at: Int64, granted: Bool, scope: AccessScope)] {
        user.changes.map { change in
            (change.at, change.granted, change.sellers.map { .sellerTaxIds($0.map { sellers[$0].taxId }) } ?? .all)
        }
    }

    func usersWithAllAccess(system: Int) -> [SharedUser] { sharedUsers.filter { $0.kind == .all && $0.system == system } }
    var usersWithoutAccess: [SharedUser] { sharedUsers.filter { $0.kind != .all } }
}
