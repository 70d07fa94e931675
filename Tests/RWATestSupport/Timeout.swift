import Foundation

/// A wait that took longer than its test allows: the test fails with what it waited for,
/// instead of the whole run hanging until the outer timeout.
public struct TimeoutError: Error, CustomStringConvertible {
    public let description: String
}

/// Runs `body`, failing with `TimeoutError` naming `what` if it has not finished within `seconds`.
///
/// The body runs in a task of its own and is cancelled on timeout, but not awaited: an
/// `EventLoopFuture` or a socket read does not notice cancellation, and waiting for it would be
/// the very hang this guards against.
public func withTimeout<T>(
    _ seconds: Double, _ what: @autoclosure () -> String, _ body: @escaping () async throws -> T
) async throws -> T {
    let description = "\(what()): not finished within \(seconds) s"
    nonisolated(unsafe) let body = body
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<UnsafeTransfer<T>, Error>) in
        let once = Once()
        let resumeOnce: @Sendable (Result<UnsafeTransfer<T>, Error>) -> Bool = { result in
            let first = once.claim()
            if first { continuation.resume(with: result) }
            return first
        }
        let work = Task {
            do { _ = resumeOnce(.success(UnsafeTransfer(try await body()))) } catch { _ = resumeOnce(.failure(error)) }
        }
        Task {
            try? await Task.sleep(for: .seconds(seconds))
            if resumeOnce(.failure(TimeoutError(description: description))) { work.cancel() }
        }
    }.value
}

/// Carries a value out of the body's task; the caller is the only one to use it afterwards.
public struct UnsafeTransfer<Value>: @unchecked Sendable {
    public let value: Value
    init(_ value: Value) { self.value = value }
}

/// True for the first caller only.
final class Once: @unchecked Sendable {
    private let lock = NSLock()
    private var claimed = false

    func claim() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        defer { claimed = true }
        return !claimed
    }
}

extension AsyncIteratorProtocol {
    /// The next element; a sequence that ended instead is a test failure naming `what`.
    public mutating func require(_ what: String) async throws -> Element {
        guard let element = try await next() else { throw ToolOutputError("\(what): the sequence ended") }
        return element
    }
}

/// A test's own failure, thrown with what went wrong (and what the processes involved said).
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
