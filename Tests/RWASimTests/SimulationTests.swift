// Goal: the case study's simulator is deterministic per seed and its mechanisms do what the
// README says: RWA sells whole orders through the real pool and cannot be defaulted on, the
// baselines trade whole licences, MPRA and TRA lose defaulted trades while CPA's escrow keeps them.
import RWASim
import XCTest

final class SimulationTests: XCTestCase {
    func testSameSeedsGiveByteIdenticalCSV() {
        let a = sweep(figure4Configurations(), seeds: 3).map(\.csvLine)
        let b = sweep(figure4Configurations(), seeds: 3).map(\.csvLine)
        XCTAssertEqual(a, b)
        let other = sweep(figure4Configurations(), seeds: 4).map(\.csvLine)
        XCTAssertNotEqual(a, other, "the seeds matter")
    }

    func testRWASellsExactlyTheDemandWhileSupplyLasts() {
        var parameters = Parameters()
        for buyers in [100, 150, 200, 250] {
            parameters.buyers = buyers
            let outcome = simulate(.rwa, parameters, seed: 7)
            let demand = buyers * parameters.slicesPerBuyer
            XCTAssertEqual(outcome.slicesSold, min(demand, parameters.totalSlices), "\(buyers) buyers")
            XCTAssertEqual(outcome.leftoverOrders, max(0, buyers - parameters.totalSlices / parameters.slicesPerBuyer))
        }
    }

    func testRWAOrdersAboveTheirBidStayLeftover() {
        var parameters = Parameters()
        parameters.buyerValueMin = 0.1  // below the pool's opening price (the sellers' mean ask)
        parameters.buyerValueMax = 0.2
        let outcome = simulate(.rwa, parameters, seed: 1)
        XCTAssertEqual(outcome.slicesSold, 0)
        XCTAssertEqual(outcome.leftoverOrders, parameters.buyers)
    }

    func testDefaultIsImpossibleForRWAAndCPAAndVoidsMPRAAndTRATrades() {
        var parameters = Parameters()
        parameters.attack = .defaultAttack
        parameters.byzantineRatio = 0.3
        parameters.defaultProbability = 1
        var clean = parameters
        clean.byzantineRatio = 0
        for seed: UInt64 in 1...5 {
            XCTAssertEqual(
                simulate(.rwa, parameters, seed: seed).slicesSold, simulate(.rwa, clean, seed: seed).slicesSold)
            XCTAssertEqual(
                simulate(.cpa, parameters, seed: seed).slicesSold, simulate(.cpa, clean, seed: seed).slicesSold)
            for scheme in [Scheme.mpra, .tra] {
                let attacked = simulate(scheme, parameters, seed: seed)
                XCTAssertGreaterThan(attacked.defaultedTrades, 0, "\(scheme)")
                XCTAssertEqual(
                    attacked.slicesSold + attacked.defaultedTrades * parameters.slicesPerLicence,
                    simulate(scheme, clean, seed: seed).slicesSold, "\(scheme): the same trades, defaulted ones voided")
            }
        }
    }

    func testBaselinesTradeWholeLicencesAndTRANeverBeatsMPRA() {
        let parameters = Parameters()
        for seed: UInt64 in 1...10 {
            let mpra = simulate(.mpra, parameters, seed: seed)
            let tra = simulate(.tra, parameters, seed: seed)
            XCTAssertEqual(mpra.slicesSold % parameters.slicesPerLicence, 0)
            XCTAssertLessThanOrEqual(
                tra.slicesSold, mpra.slicesSold, "trade reduction gives up at most the marginal pair")
            XCTAssertGreaterThanOrEqual(tra.slicesSold, mpra.slicesSold - parameters.slicesPerLicence)
        }
    }

    func testConfidenceInterval() {
        let estimate = Estimate([1, 2, 3, 4])
        XCTAssertEqual(estimate.mean, 2.5)
        // s = 1.291, t(0.975, 3) = 3.182: half-width 3.182 * 1.291 / 2.
        XCTAssertEqual(estimate.halfWidth, 3.182 * (5.0 / 3).squareRoot() / 2, accuracy: 1e-9)
    }
}

final class DayTests: XCTestCase {
    func testLeasingServesBuyersPurchaseCannotAndNeverOverbooksAnHour() {
        var parameters = Parameters()
        parameters.buyers = 400
        for seed: UInt64 in 1...5 {
            let purchase = simulateDay(.purchase, parameters, seed: seed)
            let lease = simulateDay(.lease, parameters, seed: seed)
            XCTAssertEqual(
                purchase.servedBuyers, parameters.totalSlices / parameters.slicesPerBuyer,
                "purchase sells out at 200 buyers")
            XCTAssertGreaterThan(lease.servedBuyers, purchase.servedBuyers)
            XCTAssertGreaterThan(lease.dailyUtilization, purchase.dailyUtilization)
            XCTAssertTrue(lease.utilizationByHour.allSatisfy { $0 <= 1 }, "no hour leases more slices than exist")
        }
    }

    func testWhenEveryoneNeedsTheWholeDayLeasingIsPurchase() {
        var parameters = Parameters()
        parameters.buyers = 150
        parameters.usageHoursMin = 24
        parameters.usageHoursMax = 24
        // Windows still start at random hours and end by midnight; with a start at 0 they cover the day.
        let lease = simulateDay(.lease, parameters, seed: 3)
        let purchase = simulateDay(.purchase, parameters, seed: 3)
        XCTAssertEqual(lease.servedBuyers, purchase.servedBuyers, "below supply, both serve every buyer")
        XCTAssertEqual(lease.utilizationByHour, purchase.utilizationByHour)
    }
}
