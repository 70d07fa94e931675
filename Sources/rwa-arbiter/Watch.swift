import ArgumentParser
import Foundation
import NIOPosix
import RWACommandLine
import RWACrypto
import RWALedger
import RWANode

/// Follows the chain live through the arbiter's subscription: the committed blocks from a height
/// on, then each new one as it commits. What a peer's own code does with `ArbiterClient.subscribe`.
struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print committed blocks and their transactions as the arbiter commits them.",
        discussion: """
            Starts at --from (the stored blocks first), then follows new ones. One line per block \
            and one per transaction, or one JSON object per block with --json. A watcher that \
            stopped resumes with --from set to the height after the last block it printed.
            """)

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "First height to print.")
    var from: UInt64 = 1

    @Option(help: "Exit after this many blocks (0: follow until interrupted).")
    var count = 0

    @Flag(help: "Print one JSON object per block.")
    var json = false

    func validate() throws {
        guard count >= 0 else { throw ValidationError("--count must be at least 0") }
    }

    func run() async throws {
        let client = try await connection.connect(as: .generate())
        var printed = 0
        do {
            for try await block in client.subscribe(from: from) {
                var value = Describe.header(block.header)
                value["transactions"] = block.transactions.enumerated().map {
                    Describe.transaction($1, height: block.header.height, index: $0)
                }
                if json {
                    emit(JSON.render(value))
                } else {
                    emit(
                        "block \(block.header.height) \(block.header.hash) txs \(block.header.transactionCount) "
                            + "time_ms \(block.header.timeMilliseconds)")
                    for transaction in block.transactions {
                        let operation = (try? Transaction(decoding: transaction.bytes))?.operation.name ?? "undecodable"
                        emit("  tx \(transaction.hash) \(operation)")
                    }
                }
                printed += 1
                if count > 0 && printed >= count { break }
            }
        } catch {
            await client.close()
            throw CLIError("the subscription ended: \(error)")
        }
        await client.close()
    }
}
