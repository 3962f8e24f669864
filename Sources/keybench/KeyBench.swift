// keybench: Diffie-Hellman operations per second for each group, side by side in the same
// run with `openssl speed -elapsed ffdhNNNN` (OpenSSL's libcrypto, same exponent sizes), and
// the ratio. Key generation uses our fixed-base comb; shared secrets use mpn_sec_powm.

import ArgumentParser
import BenchBaselines
import Release
import Foundation
import KeyCrypto

@main
struct KeyBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keybench",
        abstract: "Benchmarks for key material and the key directory.",
        version: SecureRPCRelease.versionLine("keybench"),
        subcommands: [DHBench.self, DirectoryBench.self, KeyServerBench.self, SiteBench.self],
        defaultSubcommand: DHBench.self
    )
}

struct DHBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dh",
        abstract: "Diffie-Hellman ops/s per group, compared with `openssl speed ffdh` in the same run."
    )

    @Option(help: "Seconds per measurement.")
    var seconds: Double = 2

    @Flag(help: "Skip the OpenSSL baseline.")
    var noOpenssl = false

    func run() throws {
        print("keybench: \(seconds) s per measurement; OpenSSL figures from `openssl speed -elapsed -seconds N ffdhNNNN` in this run\n")
        print(pad("group", 11) + pad("exp bits", 9, right: true) + pad("keygen/s", 11, right: true) + pad("derive/s", 11, right: true)
              + pad("openssl/s", 11, right: true) + pad("keygen÷ossl", 12, right: true) + pad("derive÷ossl", 12, right: true))
        for name in DHGroupName.allCases {
            let keygen = measure { _ = DHPrivateKey.generate(group: name) }
            let a = DHPrivateKey.generate(group: name), b = DHPrivateKey.generate(group: name)
            let derive = measure { _ = try? a.sharedSecret(with: b.publicKey) }
            let bits = DHGroup.named(name).byteLength * 8
            let openssl = (noOpenssl || name == .dh192des) ? nil : OpenSSLSpeed.ffdhDerivesPerSecond(bits: bits, seconds: Int(seconds.rounded(.up)))
            let ratio = { (x: Double) in openssl.map { String(format: "%.2f×", x / $0) } ?? "—" }
            print(pad(name.rawValue, 11) + pad("\(DHGroup.named(name).exponentBits)", 9, right: true)
                  + pad(String(format: "%.0f", keygen), 11, right: true) + pad(String(format: "%.0f", derive), 11, right: true)
                  + pad(openssl.map { String(format: "%.0f", $0) } ?? "—", 11, right: true)
                  + pad(ratio(keygen), 12, right: true) + pad(ratio(derive), 12, right: true))
        }
        print("""

        keygen = 2^x mod p (fixed-base comb, constant time); derive = peer^x mod p (mpn_sec_powm, wiped scratch).
        OpenSSL's ffdh figure is a derive (its key generation is not timed by `speed`).
        """)
    }

    /// Operations per second of `body`, run for about `seconds`.
    private func measure(_ body: () -> Void) -> Double {
        for _ in 0..<3 { body() }
        let start = Date()
        var count = 0
        while Date().timeIntervalSince(start) < seconds {
            for _ in 0..<4 { body() }
            count += 4
        }
        return Double(count) / Date().timeIntervalSince(start)
    }

    private func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - text.count))
        return right ? fill + text + " " : text + fill + " "
    }
}
