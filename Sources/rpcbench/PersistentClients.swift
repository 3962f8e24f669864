// Many C client processes timed together without their start-up: each `echo_client -w`
// connects and warms up, prints "connected" and waits; once all have, one start line goes
// to every client's stdin and the wall time runs from then to the last result line. Used by
// `rpcbench run` for the 32-process baseline. Trusts the clients it starts; every wait on
// them is bounded, and every client still running on return is killed.

import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Starts `commands` (each an `echo_client ... -w`), waits up to `connectTimeout` seconds
/// for all to connect, starts them together and waits up to `runTimeout` seconds for all
/// result lines. Returns each client's result line and the wall time in seconds.
func runPersistentClients(_ commands: [[String]], connectTimeout: Double, runTimeout: Double) throws -> (lines: [String], wall: Double) {
    // A client that died before the start line would turn our write into SIGPIPE.
    signal(SIGPIPE, SIG_IGN)
    var processes: [Process] = []
    var inputs: [Pipe] = [], outputs: [Pipe] = []
    defer {
        for process in processes where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
    for command in commands {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        try process.run()
        processes.append(process)
        inputs.append(input)
        outputs.append(output)
    }
    var reader = LineReader(fds: outputs.map { $0.fileHandleForReading.fileDescriptor })
    _ = try reader.oneLineEach(until: .now + .seconds(connectTimeout), waitingFor: "\"connected\" line (timeout \(connectTimeout) s, --connect-timeout)") {
        $0 == "connected"
    }

    let clock = ContinuousClock()
    let start = clock.now
    for (index, input) in inputs.enumerated() {
        let fd = input.fileHandleForWriting.fileDescriptor
        let written = "go\n".withCString { write(fd, $0, 3) }
        guard written == 3 else { throw ValidationError("client \(index) did not take the start line: \(String(cString: strerror(errno)))") }
        try? input.fileHandleForWriting.close()
    }
    let lines = try reader.oneLineEach(until: start + .seconds(runTimeout), waitingFor: "result line (timeout \(runTimeout) s)") { $0.hasPrefix("calls=") }
    let wall = microseconds(reader.lastLineAt! - start) / 1e6

    // Result lines are printed just before exit; a client that then fails is still a failure.
    let exitDeadline = clock.now + .seconds(10)
    for (index, process) in processes.enumerated() {
        while process.isRunning && clock.now < exitDeadline { usleep(1000) }
        guard !process.isRunning, process.terminationStatus == 0 else {
            throw ValidationError("\(commands[index].joined(separator: " ")) did not exit cleanly")
        }
    }
    return (lines, wall)
}

/// Line-wise reading from many pipes at once with poll(2), so that one deadline bounds the
/// wait on all of them and the time the last wanted line arrived is known.
private struct LineReader {
    let fds: [Int32]
    private var pending: [[UInt8]]
    /// When the last line returned by `oneLineEach` was complete.
    private(set) var lastLineAt: ContinuousClock.Instant?

    init(fds: [Int32]) {
        self.fds = fds
        pending = Array(repeating: [], count: fds.count)
    }

    /// Reads until every pipe has produced a line for which `wanted` is true (other lines are
    /// skipped); returns those lines in pipe order. Throws naming the pipes still waiting
    /// when `deadline` passes or a pipe ends first.
    mutating func oneLineEach(until deadline: ContinuousClock.Instant, waitingFor what: String,
                              wanted: (String) -> Bool) throws -> [String] {
        var found: [String?] = Array(repeating: nil, count: fds.count)
        func takeLines(_ index: Int) {
            while found[index] == nil, let newline = pending[index].firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[index][..<newline], as: UTF8.self)
                pending[index].removeSubrange(...newline)
                if wanted(line) {
                    found[index] = line
                    lastLineAt = ContinuousClock.now
                }
            }
        }
        for index in fds.indices { takeLines(index) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while found.contains(where: { $0 == nil }) {
            let left = deadline - ContinuousClock.now
            guard left > .zero else {
                let waiting = found.indices.filter { found[$0] == nil }
                throw ValidationError("\(waiting.count) of \(fds.count) clients (\(waiting.prefix(8).map(String.init).joined(separator: ", "))\(waiting.count > 8 ? ", …" : "")) gave no \(what)")
            }
            // A negative fd is ignored by poll: the pipes already done.
            var polls = fds.indices.map { pollfd(fd: found[$0] == nil ? fds[$0] : -1, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&polls, nfds_t(polls.count), Int32(min(1000, max(1, microseconds(left) / 1000))))
            if ready < 0 && errno == EINTR { continue }
            guard ready >= 0 else { throw ValidationError("poll: \(String(cString: strerror(errno)))") }
            for index in polls.indices where polls[index].revents != 0 {
                let count = read(fds[index], &buffer, buffer.count)
                guard count > 0 else { throw ValidationError("client \(index) ended before its \(what)") }
                pending[index] += buffer[..<count]
                takeLines(index)
            }
        }
        return found.map { $0! }
    }
}
