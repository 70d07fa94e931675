import Foundation

/// Mean and 95% confidence interval (Student's t) of a sample.
public struct Estimate: Sendable, Equatable {
    public var mean: Double
    /// Half-width of the 95% confidence interval.
    public var halfWidth: Double
    public var samples: Int

    public init(_ values: [Double]) {
        samples = values.count
        let average = values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
        mean = average
        guard values.count > 1 else {
            halfWidth = 0
            return
        }
        let variance = values.map { ($0 - average) * ($0 - average) }.reduce(0, +) / Double(values.count - 1)
        halfWidth =
            Self.tQuantile975(degreesOfFreedom: values.count - 1) * (variance / Double(values.count)).squareRoot()
    }

    /// The 0.975 quantile of Student's t, from the standard table (1.96 beyond 120 degrees).
    static func tQuantile975(degreesOfFreedom: Int) -> Double {
        let table: [Double] = [
            12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
            2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
        ]
        if degreesOfFreedom <= table.count { return table[degreesOfFreedom - 1] }
        // Between table rows, the value at the lower row: slightly wide, never too narrow.
        if degreesOfFreedom <= 40 { return 2.042 }
        if degreesOfFreedom <= 60 { return 2.021 }
        if degreesOfFreedom <= 120 { return 2.000 }
        return 1.980
    }
}

/// One row of a sweep: a configuration, a scheme, and its utilization over the seeds.
public struct Row: Sendable, Equatable {
    public var attack: Attack
    public var byzantineRatio: Double
    public var buyers: Int
    public var sellers: Int
    public var scheme: Scheme
    public var utilization: Estimate
    public var leftoverOrders: Double
    public var defaultedTrades: Double
}

/// The CSV file of a sweep, exactly as `rwa-sim --csv` writes it.
public func csv(_ rows: [Row]) -> String { ([Row.csvHeader] + rows.map(\.csvLine)).joined(separator: "\n") + "\n" }

/// The CSV file of a day sweep, exactly as `rwa-sim day --csv` writes it.
public func csv(_ rows: [DayRow]) -> String {
    ([DayRow.csvHeader] + rows.map(\.csvLine)).joined(separator: "\n") + "\n"
}

/// Runs every scheme on `configurations` over seeds 1...seeds; `progress` is told after each
/// configuration (it does no I/O here: the caller decides).
public func sweep(
    _ configurations: [Parameters], schemes: [Scheme] = Scheme.allCases, seeds: Int,
    progress: (Int, Int) -> Void = { _, _ in }
) -> [Row] {
    precondition(seeds >= 1, "a sweep needs at least one seed")
    var rows: [Row] = []
    for (done, parameters) in configurations.enumerated() {
        for scheme in schemes {
            let outcomes = (1...UInt64(seeds)).map { simulate(scheme, parameters, seed: $0) }
            rows.append(
                Row(
                    attack: parameters.attack, byzantineRatio: parameters.byzantineRatio, buyers: parameters.buyers,
                    sellers: parameters.sellers, scheme: scheme, utilization: Estimate(outcomes.map(\.utilization)),
                    leftoverOrders: Double(outcomes.map(\.leftoverOrders).reduce(0, +)) / Double(seeds),
                    defaultedTrades: Double(outcomes.map(\.defaultedTrades).reduce(0, +)) / Double(seeds)))
        }
        progress(done + 1, configurations.count)
    }
    return rows
}

/// Fig. 4: 100 sellers, buyers from 100 to 300 in steps of 25, no attack.
public func figure4Configurations(_ base: Parameters = Parameters()) -> [Parameters] {
    stride(from: 100, through: 300, by: 25).map { buyers in
        var parameters = base
        parameters.buyers = buyers
        parameters.attack = .none
        parameters.byzantineRatio = 0
        return parameters
    }
}

/// Fig. 5: 200 buyers and 100 sellers, each attack, Byzantine ratios 0 to 30% in steps of 5%.
public func figure5Configurations(_ base: Parameters = Parameters()) -> [Parameters] {
    [Attack.buyerCollusion, .sellerCollusion, .defaultAttack].flatMap { attack in
        stride(from: 0, through: 30, by: 5).map { percent in
            var parameters = base
            parameters.buyers = 200
            parameters.sellers = 100
            parameters.attack = attack
            parameters.byzantineRatio = Double(percent) / 100
            return parameters
        }
    }
}

extension Row {
    public static let csvHeader =
        "attack,byzantine_ratio,buyers,sellers,scheme,utilization_mean,utilization_ci95,seeds,leftover_orders_mean,defaulted_trades_mean"

    /// Fixed formatting, so the same seeds give byte-identical files.
    public var csvLine: String {
        [
            attack.rawValue, String(format: "%.4f", byzantineRatio), String(buyers), String(sellers), scheme.rawValue,
            String(format: "%.6f", utilization.mean), String(format: "%.6f", utilization.halfWidth),
            String(utilization.samples),
            String(format: "%.3f", leftoverOrders), String(format: "%.3f", defaultedTrades),
        ].joined(separator: ",")
    }
}
