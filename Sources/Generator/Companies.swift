import FapiaoDomain

// Beijing companies as they appear on invoices: a name with the district's conventions, a
// valid Unified Social Credit Code, sometimes an old name (companies rename, people do not
// update their searches), and the industry that decides what they sell.

/// A seller or buyer of the generated world.
struct Company: Sendable {
    var name: String
    /// The USCC: 18 characters with a correct check character.
    var taxId: String
    /// The name before a rename, when there was one.
    var oldName: String?
    /// The pre-2015 tax registration number: 6-digit area code + 9-character organisation code.
    var legacyTaxId: String
    var industry: Int
    /// Small-scale taxpayers (小规模纳税人) invoice at the reduced 1% or 3%.
    var smallScale: Bool

    /// Whether the name carries full-width brackets, such as （北京） or （集团）.
    var hasFullWidthBrackets: Bool { name.contains("（") }
}

enum Beijing {
    /// GB/T 2260 area codes of Beijing's districts (110103 and 110104 were merged in 2010).
    static let districts: [(code: String, name: String)] = [
        ("110101", "东城区"), ("110102", "西城区"), ("110105", "朝阳区"), ("110106", "丰台区"),
        ("110107", "石景山区"), ("110108", "海淀区"), ("110109", "门头沟区"), ("110111", "房山区"),
        ("110112", "通州区"), ("110113", "顺义区"), ("110114", "昌平区"), ("110115", "大兴区"),
    ]

    /// Trade names (字号). Two characters, as most are.
    static let brands = [
        "云栈", "青禾", "华信", "盛达", "恒通", "博远", "中科", "鑫源", "天成", "瑞丰",
        "宏图", "新锐", "京能", "燕山", "长城", "银河", "金桥", "东方", "泰和", "安达",
        "汇通", "百川", "星辰", "蓝海", "永信", "兴业", "华光", "启明", "万象", "康泰",
        "嘉禾", "晨曦", "卓越", "海纳", "凯旋", "明德", "诚信", "同创", "远航", "正源",
        "科睿", "智联", "数联", "易达", "信达", "润泽", "鼎盛", "佳诚", "优品", "聚能",
    ]

    /// The main buyer's trade names (four characters, so no seller shares them).
    static let buyerBrands = ["京华数智", "燕京启航", "首创云图", "中关云衡", "北辰泰安", "西山智造"]

    static let sellersMax = brands.count * Industry.catalog.count
}

enum CompanyFactory {
    /// The 18-character USCC: authority 9 (market regulation), category 1 (enterprise) or 2
    /// (individual business), the district, a 9-character organisation code, the check.
    static func taxId(category: Character, area: String, organisationCode: String) -> String {
        let first17 = "9" + String(category) + area + organisationCode
        guard let id = TaxpayerID.generate(first17: first17) else { preconditionFailure("not a USCC prefix: \(first17)") }
        return id
    }

    /// An organisation code (GB 11714): 8 characters and a check character. Codes issued since
    /// 2015 start with `MA`; older ones are 8 digits.
    static func organisationCode(_ random: inout SplitMix) -> String {
        var body: [Character]
        if random.chance(60) {
            body = Array("MA0")
            for _ in 0..<5 { body.append(TaxpayerID.alphabet[random.below(TaxpayerID.alphabet.count)]) }
        } else {
            body = (0..<8).map { _ in Character(String(random.below(10))) }
            if body[0] == "0" { body[0] = "5" }
        }
        let weights = [3, 7, 9, 10, 5, 8, 4, 2]
        var sum = 0
        for (character, weight) in zip(body, weights) {
            let value = character.wholeNumberValue ?? Int(character.asciiValue! - UInt8(ascii: "A")) + 10
            sum += value * weight
        }
        let check = 11 - sum % 11
        let checkCharacter: Character = check == 10 ? "X" : check == 11 ? "0" : Character(String(check))
        return String(body) + String(checkCharacter)
    }

    /// Seller `index`: a distinct (brand, industry) pair for every index below `Beijing.sellersMax`.
    static func seller(_ index: Int, random: inout SplitMix) -> Company {
        let brandCount = Beijing.brands.count
        let industryCount = Industry.catalog.count
        let brand = Beijing.brands[index % brandCount]
        let industry = (index / brandCount * (brandCount + 1) + index % brandCount) % industryCount
        let district = random.pick(Beijing.districts)
        let word = random.pick(Industry.catalog[industry].words)
        let form = random.weighted([(0, 52), (1, 16), (2, 9), (3, 8), (4, 7), (5, 8)])
        var name: String
        var category: Character = "1"
        switch form {
        case 0: name = "北京" + brand + word + "有限公司"
        case 1: name = brand + "（北京）" + word + "有限公司"
        case 2: name = "北京" + brand + word + "股份有限公司"
        case 3: name = "北京市" + brand + word + "有限责任公司"
        case 4: name = "北京" + brand + word + "（集团）有限公司"
        default:
            // An individual business (个体工商户): category 2, a shop's name with its district.
            name = "北京市" + district.name + brand + Industry.catalog[industry].shop
            category = "2"
        }
        let organisation = organisationCode(&random)
        var oldName: String?
        if random.chance(18) {
            let oldWord = Industry.catalog[(industry + 1 + random.below(industryCount - 1)) % industryCount].words[0]
            oldName = "北京" + brand + oldWord + "有限公司"
        }
        return Company(
            name: name, taxId: taxId(category: category, area: district.code, organisationCode: organisation), oldName: oldName,
            legacyTaxId: district.code + organisation, industry: industry, smallScale: category == "2" || random.chance(15))
    }

    /// The main buyer and its relatives: the group (owner of beijing-finance), a subsidiary
    /// (owner of the logistics ERP) and a sister company (its own finance system) whose tax
    /// ID sellers confuse with the group's.
    static func buyers(random: inout SplitMix) -> (group: Company, subsidiary: Company, sister: Company, others: [Company]) {
        let brand = random.pick(Beijing.buyerBrands)
        func make(_ name: String, _ oldName: String?, area: String, _ random: inout SplitMix) -> Company {
            let organisation = organisationCode(&random)
            return Company(name: name, taxId: taxId(category: "1", area: area, organisationCode: organisation), oldName: oldName,
                           legacyTaxId: area + organisation, industry: 0, smallScale: false)
        }
        let group = make("北京" + brand + "科技（集团）有限公司", "北京" + brand + "科技有限公司", area: "110108", &random)
        let subsidiary = make("北京" + brand + "物流有限公司", "北京" + brand + "供应链管理有限公司", area: "110113", &random)
        let sister = make("北京" + brand + "信息技术有限公司", nil, area: "110105", &random)
        // Other customers of the same sellers: where a misdirected invoice really belonged.
        let others = (0..<6).map { index -> Company in
            let brandOther = Beijing.brands[(index * 7 + 3) % Beijing.brands.count] + Beijing.brands[(index * 11 + 5) % Beijing.brands.count]
            return make("北京" + brandOther + "科技有限公司", nil, area: Beijing.districts[index * 2 % Beijing.districts.count].code, &random)
        }
        return (group, subsidiary, sister, others)
    }
}

/// What sellers sell: line names in the national tax classification's `*category*name`
/// form, units, price ranges and rates.
struct Industry: Sendable {
    struct Product: Sendable {
        var name: String
        var spec: String?
        var unit: String?
        /// Net unit price range in fen.
        var priceFen: ClosedRange<Int>
        /// Quantities: whole units up to this, or (when `decimalQuantity`) one decimal.
        var quantityMax: Int
        var decimalQuantity: Bool = false
        /// The general taxpayer's rate in tenths of a percent (60 = 6%); nil: exempt.
        var rateTenths: Int?
    }

    /// Words for the company name (科技, 信息技术, ...).
    var words: [String]
    /// An individual business's shop name.
    var shop: String
    var products: [Product]

    static let catalog: [Industry] = [
        Industry(words: ["科技", "信息技术", "网络科技", "软件技术"], shop: "电脑维修部", products: [
            Product(name: "*信息技术服务*软件开发服务", unit: "项", priceFen: 500_000...30_000_000, quantityMax: 1, rateTenths: 60),
            Product(name: "*信息技术服务*运维服务费", unit: "月", priceFen: 200_000...5_000_000, quantityMax: 12, rateTenths: 60),
            Product(name: "*信息技术服务*技术服务费", priceFen: 100_000...8_000_000, quantityMax: 1, rateTenths: 60),
            Product(name: "*软件*应用软件", spec: "V3.2", unit: "套", priceFen: 300_000...20_000_000, quantityMax: 20, rateTenths: 130),
        ]),
        Industry(words: ["商贸", "办公用品", "贸易"], shop: "文具店", products: [
            Product(name: "*纸制品*复印纸", spec: "A4 70g", unit: "箱", priceFen: 9_000...16_000, quantityMax: 80, rateTenths: 130),
            Product(name: "*计算机外部设备*显示器", spec: "27英寸", unit: "台", priceFen: 90_000...320_000, quantityMax: 30, rateTenths: 130),
            Product(name: "*办公设备*激光打印机", spec: "M232dw", unit: "台", priceFen: 120_000...560_000, quantityMax: 10, rateTenths: 130),
            Product(name: "*文具*中性笔", spec: "0.5mm", unit: "盒", priceFen: 1_200...4_800, quantityMax: 200, rateTenths: 130),
        ]),
        Industry(words: ["物流", "运输", "货运代理"], shop: "搬家服务部", products: [
            Product(name: "*运输服务*国内道路货物运输服务", unit: "次", priceFen: 30_000...2_500_000, quantityMax: 20, rateTenths: 90),
            Product(name: "*物流辅助服务*仓储服务", unit: "月", priceFen: 200_000...3_000_000, quantityMax: 6, rateTenths: 60),
        ]),
        Industry(words: ["餐饮管理", "餐饮"], shop: "餐馆", products: [
            Product(name: "*餐饮服务*餐费", priceFen: 8_000...600_000, quantityMax: 1, rateTenths: 60),
            Product(name: "*餐饮服务*工作餐", unit: "份", priceFen: 2_500...6_000, quantityMax: 300, rateTenths: 60),
        ]),
        Industry(words: ["物业管理", "物业服务"], shop: "保洁服务部", products: [
            Product(name: "*物业管理服务*物业管理费", unit: "月", priceFen: 500_000...9_000_000, quantityMax: 3, rateTenths: 60),
            Product(name: "*不动产经营租赁服务*房屋租金", unit: "月", priceFen: 2_000_000...40_000_000, quantityMax: 3, rateTenths: 90),
        ]),
        Industry(words: ["建筑工程", "装饰工程"], shop: "装修队", products: [
            Product(name: "*建筑服务*装饰工程", unit: "项", priceFen: 2_000_000...90_000_000, quantityMax: 1, rateTenths: 90),
            Product(name: "*建筑服务*维修工程", unit: "项", priceFen: 100_000...5_000_000, quantityMax: 1, rateTenths: 90),
        ]),
        Industry(words: ["文化传媒", "广告"], shop: "图文店", products: [
            Product(name: "*广告服务*广告发布费", priceFen: 500_000...20_000_000, quantityMax: 1, rateTenths: 60),
            Product(name: "*文化创意服务*设计服务", unit: "项", priceFen: 200_000...3_000_000, quantityMax: 3, rateTenths: 60),
        ]),
        Industry(words: ["咨询", "管理咨询", "企业管理"], shop: "咨询服务部", products: [
            Product(name: "*咨询服务*咨询服务费", priceFen: 300_000...15_000_000, quantityMax: 1, rateTenths: 60),
            Product(name: "*鉴证咨询服务*审计服务", unit: "项", priceFen: 1_000_000...30_000_000, quantityMax: 1, rateTenths: 60),
        ]),
        Industry(words: ["会展服务", "会议服务"], shop: "礼仪服务部", products: [
            Product(name: "*会展服务*会议服务费", unit: "次", priceFen: 500_000...12_000_000, quantityMax: 2, rateTenths: 60),
            Product(name: "*住宿服务*住宿费", unit: "间夜", priceFen: 35_000...120_000, quantityMax: 60, rateTenths: 60),
        ]),
        Industry(words: ["医疗器械", "医药"], shop: "药店", products: [
            Product(name: "*医疗仪器器械*一次性使用医用口罩", spec: "17.5cm×9.5cm", unit: "盒", priceFen: 1_500...6_000, quantityMax: 500, rateTenths: 130),
            Product(name: "*医疗仪器器械*电子血压计", spec: "U80", unit: "台", priceFen: 15_000...60_000, quantityMax: 20, rateTenths: 130),
        ]),
        Industry(words: ["印刷", "包装印刷"], shop: "复印店", products: [
            Product(name: "*印刷品*宣传册", spec: "A4 彩印", unit: "本", priceFen: 300...3_000, quantityMax: 2_000, rateTenths: 130),
            Product(name: "*纸制品*包装纸箱", spec: "五层", unit: "个", priceFen: 200...1_500, quantityMax: 3_000, rateTenths: 130),
        ]),
        Industry(words: ["农业发展", "农产品"], shop: "蔬菜店", products: [
            Product(name: "*蔬菜*有机蔬菜", unit: "千克", priceFen: 600...4_000, quantityMax: 400, decimalQuantity: true, rateTenths: nil),
            Product(name: "*谷物*大米", spec: "25kg", unit: "袋", priceFen: 9_000...25_000, quantityMax: 100, rateTenths: 90),
            Product(name: "*水果*苹果", unit: "千克", priceFen: 800...2_500, quantityMax: 300, decimalQuantity: true, rateTenths: nil),
        ]),
        Industry(words: ["能源", "石油化工"], shop: "加油站", products: [
            Product(name: "*汽油*92号车用汽油（VIB）", unit: "升", priceFen: 690...820, quantityMax: 600, decimalQuantity: true, rateTenths: 130),
            Product(name: "*柴油*0号车用柴油（VI）", unit: "升", priceFen: 650...780, quantityMax: 800, decimalQuantity: true, rateTenths: 130),
        ]),
        Industry(words: ["人力资源", "劳务派遣"], shop: "家政服务部", products: [
            Product(name: "*人力资源服务*劳务派遣服务", unit: "月", priceFen: 1_000_000...20_000_000, quantityMax: 1, rateTenths: 60),
            Product(name: "*人力资源服务*招聘服务费", priceFen: 300_000...3_000_000, quantityMax: 1, rateTenths: 60),
        ]),
    ]
}
