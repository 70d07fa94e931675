/// SplitMix64: the simulator's only source of randomness, seeded by the caller, so a seed always
/// gives the same run (and the same CSV, byte for byte).
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// An independent stream for one purpose, so adding a draw in one place does not shift the others.
    public static func stream(seed: UInt64, purpose: UInt64) -> SeededGenerator {
        var mixer = SeededGenerator(seed: seed ^ (purpose &* 0xD6E8_FEB8_6659_FD93))
        return SeededGenerator(seed: mixer.next())
    }
}

/// The market attacks of the paper's Fig. 5.
public enum Attack: String, Sendable, CaseIterable, Codable {
    case none
    /// Malicious buyers bid a fraction of their value.
    case buyerCollusion = "buyer-collusion"
    /// Malicious sellers inflate their asks and withhold supply.
    case sellerCollusion = "seller-collusion"
    /// Malicious buyers refuse to pay after winning.
    case defaultAttack = "default"
}

/// The allocation schemes compared in Fig. 4 and Fig. 5.
public enum Scheme: String, Sendable, CaseIterable, Codable {
    case rwa = "RWA"
    case mpra = "MPRA"
    case tra = "TRA"
    case cpa = "CPA"
}

/// Every parameter of the model. The paper gives none of these; each default is documented in
/// the README ("The case study") and can be overridden on the command line.
public struct Parameters: Sendable, Equatable, Codable {
    public var sellers = 100
    public var buyers = 200
    /// A 10 MHz licence split into 0.1 MHz slices.
    public var slicesPerLicence = 100
    /// A buyer needs 5 MHz: at 200 buyers demand equals supply.
    public var slicesPerBuyer = 50
    /// A seller's cost per slice, uniform in this range.
    public var sellerCostMin = 0.5
    public var sellerCostMax = 1.0
    /// A buyer's private value per slice, uniform in this range.
    public var buyerValueMin = 1.2
    public var buyerValueMax = 2.2

    public var attack = Attack.none
    /// The share of malicious agents (buyers for buyer collusion and default, sellers for seller collusion).
    public var byzantineRatio = 0.0
    /// A colluding buyer bids this fraction of its value.
    public var collusionBidFactor = 0.5
    /// A colluding seller asks this much above its cost (0.5: +50%).
    public var collusionAskInflation = 0.5
    /// A colluding seller withholds its licence with this probability.
    public var withholdProbability = 0.5
    /// A malicious buyer refuses to pay after winning with this probability.
    public var defaultProbability = 0.8

    /// The simulated chain: a block closes at this many transactions or after this many seconds.
    public var blockTransactions = 10
    public var blockSeconds = 5.0
    /// Buyers arrive at this mean rate (per simulated second, Poisson) to place their orders.
    public var buyerArrivalsPerSecond = 2.0

    /// RWA: the pool's virtual slice reserve, as a multiple of the real supply. Virtual reserves
    /// let the pool sell its last real slice at a finite price; the deeper they are, the less the
    /// price rises as the pool drains (at 4, from the opening price to 1.56x it).
    public var rwaVirtualDepth = 4.0
    /// RWA: the pool opens at the sellers' mean cost per slice times this factor.
    public var rwaOpeningPriceFactor = 1.0
    /// CPA: auction rounds; unmatched buyers (with their escrowed funds) and unsold licences carry over.
    public var cpaRounds = 3
    /// Over a day, each buyer needs its slices for a window of this many whole hours (uniform),
    /// starting at a uniform hour and wrapping past midnight (the day repeats).
    public var usageHoursMin = 2
    public var usageHoursMax = 8

    public init() {}

    public var totalSlices: Int { sellers * slicesPerLicence }

    /// The number of malicious agents on the attacked side.
    public var maliciousCount: Int {
        switch attack {
        case .none: return 0
        case .buyerCollusion, .defaultAttack: return Int((Double(buyers) * byzantineRatio).rounded())
        case .sellerCollusion: return Int((Double(sellers) * byzantineRatio).rounded())
        }
    }
}

/// One market's agents, drawn from a seed. Every scheme runs on the same agents for a seed, so
/// the schemes are compared on identical markets.
public struct Market: Sendable {
    public struct Seller: Sendable {
        public var costPerSlice: Double
        public var isMalicious: Bool
        /// Colluding sellers may keep their licence off the market.
        public var withholds: Bool
        /// The price per slice it asks (its cost, inflated if colluding).
        public var askPerSlice: Double
    }

    public struct Buyer: Sendable {
        public var valuePerSlice: Double
        public var isMalicious: Bool
        /// The price per slice it bids (its value, reduced if colluding).
        public var bidPerSlice: Double
        /// A malicious buyer under the default attack refuses to pay if it wins (drawn up front).
        public var defaults: Bool
        /// When it places its order, in simulated seconds.
        public var arrivalSeconds: Double
        /// The hours of the day it uses its slices: `hours` hours from `firstHour`, wrapping past midnight.
        public var firstHour: Int
        public var hours: Int

        /// Its hours of use, each in 0..<24.
        public var usageHours: [Int] { (0..<hours).map { (firstHour + $0) % 24 } }
    }

    public var sellers: [Seller]
    public var buyers: [Buyer]

    public init(_ parameters: Parameters, seed: UInt64) {
        // Sellers and buyers draw from separate streams, so changing one side's count leaves the other's draws alone.
        var sellerDraws = SeededGenerator.stream(seed: seed, purpose: 1)
        var buyerDraws = SeededGenerator.stream(seed: seed, purpose: 5)
        var attack = SeededGenerator.stream(seed: seed, purpose: 2)
        var arrivals = SeededGenerator.stream(seed: seed, purpose: 3)
        var usage = SeededGenerator.stream(seed: seed, purpose: 4)
        let malicious = parameters.maliciousCount
        var sellers: [Seller] = (0..<parameters.sellers).map { _ in
            let cost = Double.random(in: parameters.sellerCostMin...parameters.sellerCostMax, using: &sellerDraws)
            return Seller(costPerSlice: cost, isMalicious: false, withholds: false, askPerSlice: cost)
        }
        var clock = 0.0
        var buyers: [Buyer] = (0..<parameters.buyers).map { _ in
            let value = Double.random(in: parameters.buyerValueMin...parameters.buyerValueMax, using: &buyerDraws)
            clock += -log(1 - Double.random(in: 0..<1, using: &arrivals)) / parameters.buyerArrivalsPerSecond
            let first = Int.random(in: 0..<24, using: &usage)
            let hours = Int.random(in: parameters.usageHoursMin...parameters.usageHoursMax, using: &usage)
            return Buyer(
                valuePerSlice: value, isMalicious: false, bidPerSlice: value, defaults: false, arrivalSeconds: clock,
                firstHour: first, hours: hours)
        }
        // Which agents are malicious: a random subset of the attacked side.
        switch parameters.attack {
        case .none:
            break
        case .buyerCollusion, .defaultAttack:
            for index in Array(buyers.indices).shuffled(using: &attack).prefix(malicious) {
                buyers[index].isMalicious = true
                if parameters.attack == .buyerCollusion {
                    buyers[index].bidPerSlice = buyers[index].valuePerSlice * parameters.collusionBidFactor
                } else {
                    buyers[index].defaults = Double.random(in: 0..<1, using: &attack) < parameters.defaultProbability
                }
            }
        case .sellerCollusion:
            for index in Array(sellers.indices).shuffled(using: &attack).prefix(malicious) {
                sellers[index].isMalicious = true
                sellers[index].askPerSlice = sellers[index].costPerSlice * (1 + parameters.collusionAskInflation)
                sellers[index].withholds = Double.random(in: 0..<1, using: &attack) < parameters.withholdProbability
            }
        }
        self.sellers = sellers
        self.buyers = buyers
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
