import ArgumentParser
import Foundation
import RWASim

/// `rwa-sim`: the paper's case study (section V) on the real pool math, deterministic per seed.
@main
struct RWASimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rwa-sim",
        abstract: "Reproduce and extend the case study: utilization of RWA, MPRA, TRA and CPA (Fig. 4 and Fig. 5).",
        subcommands: [Figure4.self, Figure5.self, Run.self, Day.self])
}

struct ModelOptions: ParsableArguments {
    @Option(help: "Seeds per configuration (1...n); results are means with 95% confidence intervals.")
    var seeds: Int = 30
    @Option(help: "Write the table as CSV to this file.")
    var csv: String?
    @Flag(help: "Print the table as JSON instead of text.")
    var json = false
    @Option(help: "Seller cost per slice, minimum.") var sellerCostMin = 0.5
    @Option(help: "Seller cost per slice, maximum.") var sellerCostMax = 1.0
    @Option(help: "Buyer value per slice, minimum.") var buyerValueMin = 1.2
    @Option(help: "Buyer value per slice, maximum.") var buyerValueMax = 2.2
    @Option(help: "Slices per licence (10 MHz in 0.1 MHz slices).") var slicesPerLicence = 100
    @Option(help: "Slices each buyer needs.") var slicesPerBuyer = 50
    @Option(help: "Colluding buyers bid this fraction of their value.") var collusionBidFactor = 0.5
    @Option(help: "Colluding sellers inflate asks by this fraction.") var collusionAskInflation = 0.5
    @Option(help: "Colluding sellers withhold supply with this probability.") var withholdProbability = 0.5
    @Option(help: "Malicious buyers refuse to pay with this probability (default attack).") var defaultProbability = 0.8
    @Option(help: "RWA: virtual slice reserve as a multiple of the real supply.") var rwaVirtualDepth = 4.0
    @Option(help: "RWA: opening price as a multiple of the sellers' mean ask.") var rwaOpeningPriceFactor = 1.0
    @Option(help: "CPA: auction rounds.") var cpaRounds = 3
    @Option(help: "Day: fewest hours a buyer uses its slices.") var usageHoursMin = 2
    @Option(help: "Day: most hours a buyer uses its slices.") var usageHoursMax = 8
    @Option(help: "Chain: transactions per block.") var blockTransactions = 10
    @Option(help: "Chain: seconds before a block closes.") var blockSeconds = 5.0

    func validate() throws {
        guard seeds >= 2 else { throw ValidationError("--seeds must be at least 2 for a confidence interval") }
        guard sellerCostMin <= sellerCostMax, buyerValueMin <= buyerValueMax else {
            throw ValidationError("each range needs min <= max")
        }
        guard slicesPerLicence > 0, slicesPerBuyer > 0, cpaRounds > 0, blockTransactions > 0, blockSeconds > 0,
            rwaVirtualDepth > 0
        else {
            throw ValidationError("counts, depths and durations must be positive")
        }
    }

    var parameters: Parameters {
        var p = Parameters()
        p.sellerCostMin = sellerCostMin
        p.sellerCostMax = sellerCostMax
        p.buyerValueMin = buyerValueMin
        p.buyerValueMax = buyerValueMax
        p.slicesPerLicence = slicesPerLicence
        p.slicesPerBuyer = slicesPerBuyer
        p.collusionBidFactor = collusionBidFactor
        p.collusionAskInflation = collusionAskInflation
        p.withholdProbability = withholdProbability
        p.defaultProbability = defaultProbability
        p.rwaVirtualDepth = rwaVirtualDepth
        p.rwaOpeningPriceFactor = rwaOpeningPriceFactor
        p.cpaRounds = cpaRounds
        p.usageHoursMin = usageHoursMin
        p.usageHoursMax = usageHoursMax
        p.blockTransactions = blockTransactions
        p.blockSeconds = blockSeconds
        return p
    }

    func report(_ rows: [Row]) throws {
        if let csv {
            do { try RWASim.csv(rows).write(toFile: csv, atomically: true, encoding: .utf8) } catch {
                throw ValidationError("cannot write \(csv): \(error.localizedDescription)")
            }
        }
        if json {
            let objects = rows.map { row -> String in
                #"{"attack":"\#(row.attack.rawValue)","byzantine_ratio":\#(row.byzantineRatio),"buyers":\#(row.buyers),"sellers":\#(row.sellers),"scheme":"\#(row.scheme.rawValue)","utilization_mean":\#(row.utilization.mean),"utilization_ci95":\#(row.utilization.halfWidth),"seeds":\#(row.utilization.samples)}"#
            }
            print("[" + objects.joined(separator: ",") + "]")
        } else {
            print("attack            ratio  buyers  scheme  utilization (95% CI)")
            for row in rows {
                let attack = row.attack.rawValue.padding(toLength: 17, withPad: " ", startingAt: 0)
                let scheme = row.scheme.rawValue.padding(toLength: 6, withPad: " ", startingAt: 0)
                print(
                    attack + String(format: " %5.0f%%  %6d  ", row.byzantineRatio * 100, row.buyers) + scheme
                        + String(
                            format: "  %6.2f%% ± %5.2f", row.utilization.mean * 100, row.utilization.halfWidth * 100))
            }
        }
    }

    func progress(_ done: Int, _ total: Int) {
        FileHandle.standardError.write(
            Data("\rrwa-sim: \(done)/\(total) configurations".utf8 + (done == total ? [0x0a] : [])))
    }
}

extension Attack: ExpressibleByArgument {}
extension Scheme: ExpressibleByArgument {}

struct Figure4: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fig4", abstract: "Utilization against the number of buyers (100 to 300), 100 sellers, no attack.")
    @OptionGroup var options: ModelOptions

    func run() throws {
        try options.report(
            sweep(figure4Configurations(options.parameters), seeds: options.seeds, progress: options.progress))
    }
}

struct Figure5: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fig5",
        abstract: "Utilization under each attack, Byzantine ratio 0 to 30%, 200 buyers, 100 sellers.")
    @OptionGroup var options: ModelOptions

    func run() throws {
        try options.report(
            sweep(figure5Configurations(options.parameters), seeds: options.seeds, progress: options.progress))
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "One configuration, any parameter.")
    @OptionGroup var options: ModelOptions
    @Option(help: "Buyers.") var buyers = 200
    @Option(help: "Sellers.") var sellers = 100
    @Option(help: "Attack: none, buyer-collusion, seller-collusion, default.") var attack = Attack.none
    @Option(help: "Share of malicious agents, 0...1.") var byzantineRatio = 0.0
    @Option(help: "Only this scheme (all by default).") var scheme: Scheme?

    func validate() throws {
        guard buyers >= 0, sellers >= 0 else { throw ValidationError("--buyers and --sellers must be at least 0") }
        guard (0...1).contains(byzantineRatio) else { throw ValidationError("--byzantine-ratio must be within 0...1") }
    }

    func run() throws {
        var parameters = options.parameters
        parameters.buyers = buyers
        parameters.sellers = sellers
        parameters.attack = attack
        parameters.byzantineRatio = byzantineRatio
        try options.report(
            sweep(
                [parameters], schemes: scheme.map { [$0] } ?? Scheme.allCases, seeds: options.seeds,
                progress: options.progress))
    }
}

struct Day: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Beyond the paper: RWA purchase against hourly leasing, slices in use hour by hour over a day.",
        discussion:
            "Buyers need their slices only for a window of hours; leasing rents them by the hour, purchase sells them for the whole day."
    )
    @OptionGroup var options: ModelOptions
    @Option(help: "Buyers (400: demand for slices is twice the supply).") var buyers = 400
    @Option(help: "Sellers.") var sellers = 100

    func run() throws {
        var parameters = options.parameters
        parameters.buyers = buyers
        parameters.sellers = sellers
        let rows = sweepDay(parameters, seeds: options.seeds)
        options.progress(1, 1)
        if let csv = options.csv {
            do { try RWASim.csv(rows).write(toFile: csv, atomically: true, encoding: .utf8) } catch {
                throw ValidationError("cannot write \(csv): \(error.localizedDescription)")
            }
        }
        for mode in DayProfile.Mode.allCases {
            let hours = rows.filter { $0.mode == mode }
            let daily = hours.map(\.utilization.mean).reduce(0, +) / 24
            if options.json {
                print(
                    #"{"mode":"\#(mode.rawValue)","daily_utilization":\#(daily),"served_buyers":\#(hours[0].servedBuyers),"by_hour":[\#(hours.map { String($0.utilization.mean) }.joined(separator: ","))]}"#
                )
            } else {
                print(
                    mode.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
                        + String(
                            format: " served %6.1f of %d buyers, slices in use over the day %6.2f%%",
                            hours[0].servedBuyers, buyers, daily * 100))
                print(
                    "  by hour: "
                        + hours.map { String(format: "%.0f", $0.utilization.mean * 100) }.joined(separator: " "))
            }
        }
    }
}
